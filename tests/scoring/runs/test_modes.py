"""The judging modes (``scoring.runs.modes``): one class per ``Run.Mode`` in the registry;
units stored in chunks and the judgment keys they carry are byte for byte what runs have
always stored (SQL reads them, ``scoring.datasets.kinds.judged``; and a key is the cache of
every later run); the preview's estimates are unchanged; local chunks and embeddings are
routed to the ``gpu`` queue by name, and the old task names still run."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from django.db import connection

from annotation.errors import ApplicationError
from annotation.prompts.models import Prompt, Response
from annotation.rubrics.models import Criterion, Rubric, RubricVersion
from rubricstudio.celery import app
from scoring.analytics import tasks as analytics_tasks
from scoring.judges.models import JudgeEndpoint
from scoring.runs import chunks as run_chunks
from scoring.runs import planning
from scoring.runs import services as run_services
from scoring.runs import tasks as run_tasks
from scoring.runs.models import Run, RunChunk
from scoring.runs.modes.base import JudgingMode, Unit
from scoring.runs.modes.registry import MODES, mode_for

MESSAGES = [{"role": "user", "content": "Is it safe?"}]
C1 = {
    "key": "00000000-0000-0000-0000-000000000001",
    "text": "Says yes",
    "points": 5.0,
    "category": "",
    "tags": [],
    "version": 9201,
}
C2 = {
    "key": "00000000-0000-0000-0000-000000000002",
    "text": "Is rude",
    "points": -3.0,
    "category": "",
    "tags": [],
    "version": 9201,
}

# The units runs stored before the modes were classes (computed then, for this data).
EXPECTED = {
    Run.Mode.PER_CRITERION: [
        {"r": 9101, "s": 0, "crit": [C1],
         "k": "b005c832af9745c980c095de70958363df304834261c3cb82191c43eff2eb59c"},
        {"r": 9101, "s": 0, "crit": [C2],
         "k": "54fc89164280ebfd6c42f1e36800d3bd4b073c2ef2f965b9ce4982e1ad5a7081"},
        {"r": 9102, "s": 0, "crit": [C1],
         "k": "141432b766002f901f7edb9dd438000f760a81bc2bb6ad2ea6b56e40b99d7119"},
        {"r": 9102, "s": 0, "crit": [C2],
         "k": "ae41dfc163c78d4431d2fd5ea31ef8166d9858dcb494510356094e271c6fc5ae"},
    ],
    Run.Mode.GROUPED: [
        {"r": 9101, "s": 0, "crit": [C1, C2],
         "keys": ["0cef0832aa61b44472eb5389db99aea965b0db21ad202ca3ed26a1c629c825c3",
                  "b8f16ad18acf524b0c168b152008b476b06d9f76ef767995959c5a6a6b9bcd33"]},
        {"r": 9102, "s": 0, "crit": [C1, C2],
         "keys": ["44ef07642f46e04b02eeba8296138e9a6d1d516c0e89e0be160c54bd79dc8a94",
                  "0b5af3cf21567503c3613806ffc7654bfdc72c2c6921a7a1aab8ba4229f4a044"]},
    ],
    Run.Mode.HOLISTIC: [
        {"r": 9101, "s": 0, "crit": [C1, C2],
         "keys": ["5841d573e73ec2bf0dccd3f17de3ebf2f71304153d2d19b7036da12431e81075"]},
        {"r": 9102, "s": 0, "crit": [C1, C2],
         "keys": ["02a2a2319542a03dbefc450f3682f9c2a58955e962dae9f7ec336c2028f1aef6"]},
    ],
    Run.Mode.PAIRWISE: [
        {"r": 9101, "o": 9102, "pair": [9101, 9102], "order": "ab", "s": 0, "crit": [C1, C2],
         "k": "1c568ecb57b51bd6b18fc8ad88deb183f13495fdfbad793427db34fe3579ff2a"},
        {"r": 9102, "o": 9101, "pair": [9101, 9102], "order": "ba", "s": 0, "crit": [C1, C2],
         "k": "7e87418d54d15e5eb9c3d64a93a471238c224588e6834241c5751f21d7e9e4fd"},
    ],
}  # fmt: skip
EXPECTED_LOCAL = {
    Run.Mode.PER_CRITERION: [
        "7ab1a31c3bc51a4528eaf39a7978d17384a55764a3c69365fc18e584df0ffd1a",
        "ed3ae6fb4bdaf4de5103b91cc94b48b584f2087e9d45b496a7d0912b5e6db986",
        "a8605ce5a505a632add40684eab019a52354ff1a24ebe477affeb74dcf148881",
        "a50408082eff768acd8c10af6a2bc20e02a2fd1095c9cb59dd59ac2955b75aa8",
    ],
    Run.Mode.PAIRWISE: [
        "ec1966c90b8c9697f880b45c8514bac82aa62ada831b72014abafdfe3c5dce63",
        "795d7274e1f33c74dc863de3247397d425ca6566a6cdeb6a81099ea4cdf93e6a",
    ],
}
# (input tokens, output tokens) of the preview, as before.
EXPECTED_TOKENS = {
    Run.Mode.PER_CRITERION: (1411, 480),
    Run.Mode.GROUPED: (810, 1200),
    Run.Mode.HOLISTIC: (760, 300),
    Run.Mode.PAIRWISE: (904, 400),
}


@pytest.fixture
def data(project):  # type: ignore[no-untyped-def]
    """One prompt, two responses and a two-criterion rubric with fixed ids and keys, and
    an LLM endpoint and a local one."""
    prompt = Prompt.objects.create(project=project, external_id="q1", messages=MESSAGES)
    Response.objects.create(id=9101, prompt=prompt, source="a", content="Yes.")
    Response.objects.create(id=9102, prompt=prompt, source="b", content="No.")
    rubric = Rubric.objects.create(project=project, title="R")
    version = RubricVersion.objects.create(id=9201, rubric=rubric, number=1)
    for i, c in enumerate((C1, C2)):
        Criterion.objects.create(version=version, position=i, text=c["text"],
                                 points=c["points"], key=uuid.UUID(c["key"]))  # fmt: skip
    rubric.current_version = version
    rubric.save(update_fields=["current_version"])
    remote = JudgeEndpoint.objects.create(
        project=project, name="r", base_url="http://judge.test/v1", model="m"
    )
    local = JudgeEndpoint.objects.create(
        project=project, name="l", backend="local", model_path="/models/judge"
    )
    return remote, local


def _plan(project, endpoint, mode):  # type: ignore[no-untyped-def]
    return planning.plan_units(
        project=project, endpoint=endpoint, mode=mode, sources=[], prompt_ids=[],
        versions=Run.Versions.LATEST, samples=1, temperature=None,
        pair_plan=mode_for(mode).pair_plan_for(""),
    )  # fmt: skip


def test_every_run_mode_has_its_class():
    assert set(MODES) == set(Run.Mode.values)
    for value, judging_mode in MODES.items():
        assert isinstance(judging_mode, JudgingMode) and judging_mode.value == value
        assert mode_for(value) is judging_mode
    with pytest.raises(ApplicationError, match="Unknown mode “best-of”"):
        mode_for("best-of")


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_stored_units_are_byte_for_byte_what_runs_stored(project, editor, data, mode):  # type: ignore[no-untyped-def]
    remote, _ = data
    expected = json.dumps(EXPECTED[mode])
    plan = _plan(project, remote, mode)
    assert json.dumps([u.to_stored() for u in plan.units]) == expected
    assert [Unit.from_stored(u) for u in EXPECTED[mode]] == plan.units

    run = run_services.run_create(project=project, actor=editor, endpoint=remote, mode=mode)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT units FROM {RunChunk._meta.db_table} WHERE run_id = %s",  # noqa: S608 (the model's table)
            [run.pk],
        )
        (stored,) = cursor.fetchall()
    if connection.vendor == "sqlite":  # the column's text is what json.dumps wrote
        assert stored[0] == expected
    else:  # jsonb keeps no text: the same value
        assert (json.loads(stored[0]) if isinstance(stored[0], str) else stored[0]) == (
            EXPECTED[mode]
        )
    assert RunChunk.objects.get(run=run).units == EXPECTED[mode]
    preview = planning.preview(plan, endpoint=remote, mode=mode)
    assert (preview.input_tokens, preview.output_tokens) == EXPECTED_TOKENS[mode]


@pytest.mark.parametrize("mode", list(EXPECTED_LOCAL))
def test_a_local_judges_keys_are_unchanged(project, data, mode):  # type: ignore[no-untyped-def]
    _, local = data
    plan = _plan(project, local, mode)
    assert [k for u in plan.units for k in u.keys] == EXPECTED_LOCAL[mode]
    stored = [u.to_stored() for u in plan.units]
    assert [{**u, "k": ""} for u in stored] == [{**u, "k": ""} for u in EXPECTED[mode]]


def test_a_judgment_key_is_the_hash_of_what_decides_it(project, data):  # type: ignore[no-untyped-def]
    """Computed by hand: the response (id, content hash, conversation), what the judge is
    shown of the criterion, the judge, the template version and the sample."""

    def sha(value: object) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()

    remote, _ = data
    content_hash = Response.objects.get(pk=9101).content_hash
    seen = sha([9101, content_hash, MESSAGES])
    judge = sha({"base_url": "http://judge.test/v1", "model": "m", "temperature": 0.0,
                 "max_tokens": 2048})  # fmt: skip
    key = sha(["per_criterion", seen, ["Says yes", 5.0, ""], judge, "judge-criterion-v1", 0])
    assert key == EXPECTED[Run.Mode.PER_CRITERION][0]["k"]
    assert _plan(project, remote, Run.Mode.PER_CRITERION).units[0].keys == (key,)


def test_units_read_back_from_any_key_order_store_the_same():
    """PostgreSQL's jsonb gives the keys back in its own order."""
    for stored in [u for units in EXPECTED.values() for u in units]:
        shuffled = dict(reversed(list(stored.items())))
        unit = Unit.from_stored(shuffled)
        assert json.dumps(unit.to_stored()) == json.dumps(stored)
        assert unit.identity == "|".join(stored.get("keys", [stored.get("k")]))


def test_local_chunks_and_embeddings_go_to_the_gpu_queue_by_name():
    def queue(name: str) -> str:
        return app.amqp.router.route({}, name)["queue"].name

    assert queue(run_tasks.score_chunk_local.name) == "gpu"
    assert queue(analytics_tasks.embed_rubric_texts.name) == "gpu"
    assert queue(run_tasks.score_chunk.name) == "default"
    # Messages queued under the old names still find their task.
    for name in ("scoring.tasks.score_chunk", "scoring.tasks.embed_rubric_texts"):
        assert name in app.tasks


def test_both_chunk_tasks_run_the_same_service(monkeypatch):  # type: ignore[no-untyped-def]
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(
        run_chunks, "chunk_run", lambda run_id, index: calls.append((run_id, index))
    )
    run_tasks.score_chunk.apply((1, 0))
    run_tasks.score_chunk_local.apply((1, 1))
    assert calls == [(1, 0), (1, 1)]
