"""What goes into each export kind: rows built from the HealthBench sample match the
schemas, each RL row's rubric equals its approved version, splits are deterministic,
duplicates and excluded prompts are dropped, and preference pairs carry their origin."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pytest

from annotation.prompts import services as prompt_services
from annotation.prompts.models import PreferenceLabel, Prompt
from annotation.rubrics import services as rubric_services
from annotation.rubrics import workflow as rubric_workflow
from annotation.rubrics.models import Rubric
from annotation.rubrics.services import CriterionInput
from scoring.datasets import rows
from scoring.datasets.kinds.base import split_of
from scoring.datasets.options import ExportOptions
from scoring.judges import services as judge_services
from scoring.runs import services as run_services
from tests.factories import PromptFactory, ResponseFactory


@pytest.fixture
def healthbench(project, owner, reviewer, healthbench_path):  # type: ignore[no-untyped-def]
    prompt_services.data_import(project=project, path=healthbench_path)
    rubrics = list(Rubric.objects.filter(project=project).order_by("pk"))
    for rubric in rubrics[:40]:  # approve 40 of them
        rubric_workflow.rubric_submit_for_review(rubric=rubric, actor=owner)
        rubric_workflow.rubric_review(rubric=rubric, actor=reviewer, decision="approve")
    # An edit after approval: exports of approved versions must not see it.
    edited = rubrics[0]
    rubric_services.rubric_version_create(
        rubric=edited, author=owner, base_number=edited.current_version.number,
        criteria=[CriterionInput(text="A later, unapproved criterion", points=3)],
    )  # fmt: skip
    return rubrics


def _prepared(project, **options):  # type: ignore[no-untyped-def]
    """(rows, notes, schema) of an export, every row checked against the schema."""
    from scoring.datasets.row_checks import _row_checker

    prepared = rows.prepare(project, ExportOptions(**options).checked())
    out = list(prepared.rows)
    check = _row_checker(prepared.schema)
    for _, row in out:
        check(row)
    table = pa.Table.from_pylist([r for _, r in out], schema=prepared.schema)
    assert table.num_rows == len(out)
    return out, prepared.notes, prepared.schema


def _all(project, **options):  # type: ignore[no-untyped-def]
    return _prepared(project, **options)[0]


def test_verl_rows_carry_the_approved_rubric(project, healthbench):  # type: ignore[no-untyped-def]
    out = _all(project, kind="rl_verl")
    assert len(out) == 40
    by_id = {p.external_id: p for p in Prompt.objects.filter(project=project)}
    for split, row in out:
        assert split == "train" and row["extra_info"]["split"] == "train"
        prompt = by_id[row["extra_info"]["prompt_id"]]
        rubric = prompt.rubrics.get()
        approved = rubric.approved_version
        assert row["extra_info"]["rubric_version_ids"] == [approved.pk]
        expected = [
            {"criterion": c.text, "points": c.points, "tags": c.tags}
            for c in approved.criteria.order_by("position")
        ]
        assert row["reward_model"]["rubrics"] == expected
        assert row["reward_model"]["style"] == "rubric"
        assert row["prompt"] == [
            {"role": m["role"], "content": m["content"]} for m in prompt.messages
        ]
        assert json.loads(row["extra_info"]["rubric"])[0]["text"] == expected[0]["criterion"]
    assert "A later, unapproved criterion" not in json.dumps([r for _, r in out])
    latest = _all(project, kind="rl_verl", versions="latest")
    assert len(latest) == 250
    assert "A later, unapproved criterion" in json.dumps([r for _, r in latest])


def test_verl_rows_repeat_prompt_and_rubric_in_extra_info_with_whole_points(project, healthbench):  # type: ignore[no-untyped-def]
    from scoring.datasets.sinks import _ENCODE

    out, notes, schema = _prepared(project, kind="rl_verl")
    assert notes.whole_points and notes.fractional is None
    item = schema.field("reward_model").type.field("rubrics").type.value_type
    assert item.field("points").type == pa.int64()
    info_item = schema.field("extra_info").type.field("reward_model").type.field("rubrics")
    assert info_item.type.value_type.field("points").type == pa.int64()
    for _, row in out:
        info = row["extra_info"]
        # verl's loader pops the top-level prompt: rubric rewards read these copies
        assert info["prompt"] == row["prompt"] and info["reward_model"] == row["reward_model"]
        assert all(type(i["points"]) is int for i in row["reward_model"]["rubrics"])
        assert all(type(c["points"]) is int for c in json.loads(info["rubric"]))
        assert json.loads(info["metadata"]) == {}  # the sample's records have no other fields
        line = _ENCODE(row)
        assert re.search(r'"points":-?[0-9]+[,}]', line)
        assert not re.search(r'"points":-?[0-9]+\.', line)  # 10, never 10.0
    (_, hb), *_ = _all(project, kind="rl_healthbench")
    assert all(type(i["points"]) is int for i in hb["rubrics"])
    (_, rar), *_ = _all(project, kind="rl_rar")
    assert all(type(i["weight"]) is int for i in rar["rubric"])
    (_, sft), *_ = _all(project, kind="rubric_sft")
    answer = sft["messages"][1]["content"]
    assert all(type(c["points"]) is int for c in json.loads(answer))
    assert not re.search(r'"points": -?[0-9]+\.', answer)


def test_a_fractional_point_makes_every_point_of_the_export_a_float(project, healthbench, owner):  # type: ignore[no-untyped-def]
    rubric = Rubric.objects.get(pk=healthbench[1].pk)
    rubric_services.rubric_version_create(
        rubric=rubric, author=owner, base_number=rubric.current_version.number,
        criteria=[CriterionInput(text="Half credit", points=2.5),
                  CriterionInput(text="Whole credit", points=10)],
    )  # fmt: skip
    out, notes, schema = _prepared(project, kind="rl_verl", versions="latest")
    assert not notes.whole_points and notes.fractional == 2.5
    assert (
        schema.field("reward_model").type.field("rubrics").type.value_type.field("points").type
        == pa.float64()
    )
    points = [i["points"] for _, row in out for i in row["reward_model"]["rubrics"]]
    assert all(type(p) is float for p in points) and 2.5 in points and 10.0 in points
    assert all(type(i["weight"]) is float for _, r in _all(project, kind="rl_rar", versions="latest")
               for i in r["rubric"])  # fmt: skip
    # One type per export, decided on the versions it draws from before any filter.
    prompt_id = rubric.prompt.external_id
    excluded, notes, _ = _prepared(project, kind="rl_verl", versions="latest", exclude=(prompt_id,))
    assert prompt_id not in {r["extra_info"]["prompt_id"] for _, r in excluded}
    assert not notes.whole_points
    # The approved versions have whole points only: integers there.
    _, notes, _ = _prepared(project, kind="rl_verl")
    assert notes.whole_points


def test_points_that_change_to_fractional_while_exporting_are_an_error(project, healthbench):  # type: ignore[no-untyped-def]
    from annotation.errors import ApplicationError
    from annotation.rubrics.models import Criterion

    prepared = rows.prepare(project, ExportOptions(kind="rl_verl").checked())
    assert prepared.notes.whole_points
    approved = Rubric.objects.get(pk=healthbench[5].pk).approved_version
    Criterion.objects.filter(version=approved).update(points=1.5)
    with pytest.raises(ApplicationError, match="1.5 points appeared while the export ran"):
        list(prepared.rows)


def test_criterion_text_is_exported_exactly_as_stored(project, healthbench):  # type: ignore[no-untyped-def]
    from annotation.rubrics.models import Criterion

    text = "  Keeps its spaces,\ttabs and\u00a0no-break space \n"
    rubric = Rubric.objects.get(pk=healthbench[3].pk)
    criterion = Criterion.objects.filter(version=rubric.approved_version).first()
    Criterion.objects.filter(pk=criterion.pk).update(text=text)
    prompt_id = healthbench[3].prompt.external_id

    (row,) = [
        r for _, r in _all(project, kind="rl_verl") if r["extra_info"]["prompt_id"] == prompt_id
    ]
    assert text in [i["criterion"] for i in row["reward_model"]["rubrics"]]
    assert text in [i["criterion"] for i in row["extra_info"]["reward_model"]["rubrics"]]
    assert text in [c["text"] for c in json.loads(row["extra_info"]["rubric"])]
    (hb,) = [r for _, r in _all(project, kind="rl_healthbench") if r["prompt_id"] == prompt_id]
    assert text in [i["criterion"] for i in hb["rubrics"]]
    (rar,) = [r for _, r in _all(project, kind="rl_rar") if r["prompt_id"] == prompt_id]
    assert any(i["description"].endswith(text) for i in rar["rubric"])


def test_margins_need_the_judge_origin():  # type: ignore[no-untyped-def]
    from annotation.errors import ApplicationError

    with pytest.raises(ApplicationError, match="Margins come from the rubric judge"):
        ExportOptions(kind="preferences", margins=True).checked()
    assert ExportOptions(kind="preferences", margins=True, origins=("judge",)).checked()
    with pytest.raises(ApplicationError, match="Minimum margin"):
        ExportOptions(kind="preferences", min_margin=-1).checked()


def test_splits_are_by_a_hash_of_the_prompt_and_stable(project, healthbench):  # type: ignore[no-untyped-def]
    out = _all(project, kind="rl_healthbench", versions="latest", ratios=(0.8, 0.1, 0.1))
    counts = {s: sum(1 for split, _ in out if split == s) for s in ("train", "validation", "test")}
    assert sum(counts.values()) == 250 and counts["train"] > 150 and counts["test"] > 5
    for split, row in out:
        assert split == row["split"] == split_of(row["prompt_id"], (0.8, 0.1, 0.1))
    assert out == _all(project, kind="rl_healthbench", versions="latest", ratios=(0.8, 0.1, 0.1))


def test_duplicates_and_exclusions_are_dropped(project, healthbench):  # type: ignore[no-untyped-def]
    first = Prompt.objects.filter(project=project).order_by("pk").first()
    copy = PromptFactory(project=project, external_id="copy-of-first", messages=first.messages)
    rubric_services.rubric_create(
        project=project, title="c", author=None, prompt=copy,
        criteria=[CriterionInput(text="x", points=1)],
    )  # fmt: skip
    ids = [row["prompt_id"] for _, row in _all(project, kind="rl_rar", versions="latest")]
    assert "copy-of-first" not in ids and first.external_id in ids and len(ids) == 250
    second = Prompt.objects.filter(project=project).order_by("pk")[1]
    excluded = _all(
        project, kind="rl_rar", versions="latest",
        exclude=(first.external_id, "  " + second.last_user_message.upper() + " "),
    )  # fmt: skip
    kept = {row["prompt_id"] for _, row in excluded}
    assert first.external_id not in kept and second.external_id not in kept
    assert "copy-of-first" in kept  # the duplicate stands in once the first is excluded


def test_rar_and_healthbench_shapes(project, healthbench):  # type: ignore[no-untyped-def]
    (_, hb), *_ = _all(project, kind="rl_healthbench")
    assert set(hb) >= {"prompt_id", "prompt", "rubrics", "example_tags", "ideal_completion"}
    assert hb["example_tags"] == []  # the sample's records carry none
    assert all(isinstance(t, str) for r in hb["rubrics"] for t in r["tags"])
    (_, rar), *_ = _all(project, kind="rl_rar")
    assert rar["question"] and rar["rubric"][0]["weight"] == hb["rubrics"][0]["points"]
    negative = [
        item
        for _, row in _all(project, kind="rl_rar")
        for item in row["rubric"]
        if item["weight"] < 0
    ]
    assert negative and all(
        item["description"].startswith("Pitfall Criteria: ") for item in negative
    )


def test_tag_filter(project, healthbench):  # type: ignore[no-untyped-def]
    everything = _all(project, kind="rl_healthbench", versions="latest")
    from collections import Counter

    per_row = Counter(
        t for _, row in everything for t in {t for r in row["rubrics"] for t in r["tags"]}
    )
    tag = min(per_row, key=lambda t: (per_row[t], t))  # the rarest tag
    tagged = _all(project, kind="rl_healthbench", versions="latest", tags=(tag,))
    assert 0 < len(tagged) < len(everything)
    assert all(
        tag in row["example_tags"] or any(tag in r["tags"] for r in row["rubrics"])
        for _, row in tagged
    )


def test_rubric_sft_rows(project, healthbench):  # type: ignore[no-untyped-def]
    prompt = Prompt.objects.filter(project=project, rubrics__approved_version__isnull=False).first()
    a, b = (
        ResponseFactory(prompt=prompt, source=s, content=f"{s} answer") for s in ("good", "bad")
    )
    PreferenceLabel.objects.create(prompt=prompt, chosen=a, rejected=b)
    out = _all(project, kind="rubric_sft")
    assert {row["task"] for _, row in out} == {"draft", "contrastive"}
    contrastive = next(row for _, row in out if row["task"] == "contrastive")
    user, assistant = contrastive["messages"]
    assert (
        "[CHOSEN]\ngood answer" in user["content"] and "[REJECTED]\nbad answer" in user["content"]
    )
    criteria = json.loads(assistant["content"])
    approved = prompt.rubrics.get().approved_version
    assert [c["criterion"] for c in criteria] == list(
        approved.criteria.order_by("position").values_list("text", flat=True)
    )


def test_preference_pairs_are_one_row_per_pair_expert_first(project, editor):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(project=project, messages=[{"role": "user", "content": "Q?"}])
    a = ResponseFactory(prompt=prompt, source="m1", content="A1")
    b = ResponseFactory(prompt=prompt, source="m2", content="B1")
    same_as_a = ResponseFactory(prompt=prompt, source="m3", content="A1")  # same text
    PreferenceLabel.objects.create(prompt=prompt, chosen=a, rejected=b)
    PreferenceLabel.objects.create(prompt=prompt, chosen=a, rejected=b, source="expert")
    PreferenceLabel.objects.create(prompt=prompt, chosen=same_as_a, rejected=b)
    PreferenceLabel.objects.create(prompt=prompt, chosen=b, rejected=a)  # the opposite pair

    out, notes, schema = _prepared(project, kind="preferences", conversational=False)
    assert [(r["origin"], r["also_from"], r["chosen"], r["rejected"], r["chosen_source"])
            for _, r in out] == [("dataset", [], "B1", "A1", "m2"),
                                 ("expert", ["dataset"], "A1", "B1", "m1")]  # fmt: skip
    assert notes.pairs_folded == 2 and notes.pairs_without_margin == 0
    assert "margin" not in schema.names and all("margin" not in r for _, r in out)

    out, notes, _ = _prepared(project, kind="preferences", origins=("dataset",))
    assert [(r["origin"], r["also_from"], r["chosen_source"]) for _, r in out] == [
        ("dataset", [], "m1"),  # the earliest of the two dataset labels of A1 over B1
        ("dataset", [], "m2"),
    ]
    assert notes.pairs_folded == 1


def test_preference_pairs_conversational_and_plain(project, editor):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(project=project, messages=[{"role": "user", "content": "Q?"}])
    a = ResponseFactory(prompt=prompt, source="m1", content="A1")
    b = ResponseFactory(prompt=prompt, source="m2", content="B1")
    PreferenceLabel.objects.create(prompt=prompt, chosen=a, rejected=b)
    PreferenceLabel.objects.create(prompt=prompt, chosen=b, rejected=a, source="expert")
    (_, row), (_, expert) = _all(project, kind="preferences")
    assert row["prompt"] == [{"role": "user", "content": "Q?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "A1"}] and row["origin"] == "dataset"
    assert expert["origin"] == "expert" and expert["chosen"][0]["content"] == "B1"
    plain = _all(project, kind="preferences", conversational=False, origins=("dataset",))
    assert [(r["prompt"], r["chosen"], r["rejected"]) for _, r in plain] == [("Q?", "A1", "B1")]
    assert _all(project, kind="preferences", sources=("m9",)) == []


@pytest.fixture
def judged(project, editor, fake_llm, eager):  # type: ignore[no-untyped-def]
    """A per-criterion run (criteria starting A–M met) and a pairwise run on one prompt."""
    from tests.scoring.runs.test_runs import MET_IF_A_TO_M

    endpoint = judge_services.endpoint_save(
        project=project, actor=editor,
        data={"name": "judge", "base_url": fake_llm.url + "/v1", "model": "fake-judge"},
    )  # fmt: skip
    rubric_services.rubric_create(
        project=project, title="all", author=editor,
        criteria=[CriterionInput(text="Accurate", points=5), CriterionInput(text="Zany", points=3)],
    )  # fmt: skip
    prompt = PromptFactory(project=project)
    for source in ("m1", "m2", "m3"):
        ResponseFactory(prompt=prompt, source=source, content=f"{source} answer")
    fake_llm.configure(rules=MET_IF_A_TO_M)
    runs = []
    for mode in ("per_criterion", "pairwise"):
        run = eager(lambda mode=mode: run_services.run_create(
            project=project, actor=editor, endpoint=endpoint, mode=mode))  # fmt: skip
        run.refresh_from_db()
        assert run.status == "done"
        runs.append(run)
    return runs


def test_judge_distillation_rows(project, judged):  # type: ignore[no-untyped-def]
    per_criterion, pairwise_run = judged
    out = _all(project, kind="judge_sft", versions="latest")
    assert len(out) == per_criterion.done == 6  # 3 responses × 2 criteria
    assert {(r["criterion"], r["met"]) for _, r in out} == {("Accurate", True), ("Zany", False)}
    assert all(r["judge_model"] == "fake-judge" and r["explanation"] for _, r in out)
    pairs = _all(project, kind="pairwise_sft", versions="latest")
    assert len(pairs) == pairwise_run.done > 0  # one row per good judgment of an order
    assert all(r["winner"] in ("A", "B", "tie") and len(r["criteria"]) == 2 for _, r in pairs)


def test_judge_preference_pairs_need_a_score_margin(project, judged):  # type: ignore[no-untyped-def]
    from scoring.runs.results import run_results

    per_criterion, _ = judged
    scores = {r.score for r in run_results(per_criterion).responses}
    assert len(scores) == 1  # every response scores the same: no margin between any two
    out = _all(project, kind="preferences", origins=("judge",), versions="latest")
    assert all(r["origin"] == "judge" for _, r in out)
    # So every judge pair comes from the pairwise run (which records consistency).
    assert all(r["consistent"] is not None for _, r in out)
    # With margins, only pairs that a judge gave a margin, and never a null one.
    with_margins, notes, schema = _prepared(
        project, kind="preferences", origins=("judge",), versions="latest", margins=True
    )
    assert not schema.field("margin").nullable
    assert all(isinstance(r["margin"], float) for _, r in with_margins)
    assert len(with_margins) + notes.pairs_without_margin == len(out)


def test_judge_distillation_takes_each_good_judgment_once_with_what_the_judge_saw(
    project, judged, editor, eager
):  # type: ignore[no-untyped-def]
    from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment

    per_criterion, pairwise_run = judged
    again = eager(lambda: run_services.run_create(
        project=project, actor=editor, endpoint=per_criterion.endpoint, mode="per_criterion"))  # fmt: skip
    assert RunJudgment.objects.filter(run=again, reused=True).count() == 6  # all shared
    Run.objects.create(project=project, mode="per_criterion", status="queued", total=0)

    out = _all(project, kind="judge_sft", versions="latest")
    assert len(out) == 6  # shared judgments once; a queued run adds nothing
    for _, row in out:
        judgment = Judgment.objects.get(
            response__content=row["response"], criterion_key__isnull=False,
            mode="per_criterion", explanation=row["explanation"],
            response__prompt__external_id=row["prompt_id"],
        )  # fmt: skip
        assert row["met"] is judgment.met
        assert (row["criterion"], row["points"]) in {("Accurate", 5.0), ("Zany", 3.0)}
    assert [r["response"] for _, r in out] == sorted(r["response"] for _, r in out)

    failed = Judgment.objects.filter(mode="per_criterion").order_by("pk").first()
    Judgment.objects.filter(pk=failed.pk).update(error="timeout", met=None)
    RunChunk.objects.filter(run=again).update(retry=True)  # retry chunks are not read
    assert len(_all(project, kind="judge_sft", versions="latest")) == 5

    pairs = _all(project, kind="pairwise_sft", versions="latest")
    for _, row in pairs:
        judgment = Judgment.objects.get(
            mode="pairwise", response__content=row["response_a"],
            other__content=row["response_b"], explanation=row["explanation"],
        )  # fmt: skip
        assert row["winner"] == judgment.winner
        verdicts = judgment.detail.get("criteria") or {}
        assert [c["winner"] for c in row["criteria"]] == [
            str(verdicts.get(str(i), "")) for i in (1, 2)
        ]
    assert len(pairs) == pairwise_run.done


@pytest.mark.django_db(transaction=True)
def test_reading_ahead_on_postgresql_gives_the_same_rows(project, judged, monkeypatch):  # type: ignore[no-untyped-def]
    import threading

    from scoring.datasets import readahead
    from scoring.datasets.kinds import judged as judged_rows

    if not readahead.can_read_ahead():
        pytest.skip("the reader thread is used on PostgreSQL outside a transaction (CI)")
    spy = []
    real = readahead.read_ahead
    monkeypatch.setattr(
        judged_rows, "read_ahead", lambda batches, depth: spy.append(depth) or real(batches, depth)
    )
    for kind in ("judge_sft", "pairwise_sft"):
        ahead = _all(project, kind=kind, versions="latest")
        with monkeypatch.context() as m:
            m.setattr(judged_rows, "can_read_ahead", lambda: False)
            assert _all(project, kind=kind, versions="latest") == ahead
        assert ahead
    assert len(spy) == 2
    assert not [t for t in threading.enumerate() if t.name == "export-read-ahead"]


def test_read_ahead_keeps_order_raises_the_readers_error_and_stops_when_closed():  # type: ignore[no-untyped-def]
    import threading

    from scoring.datasets.readahead import read_ahead

    assert list(read_ahead(lambda: iter(range(50)), depth=3)) == list(range(50))

    def failing():  # type: ignore[no-untyped-def]
        yield 1
        raise RuntimeError("connection lost")

    got = []
    with pytest.raises(RuntimeError, match="connection lost"):
        for item in read_ahead(failing):
            got.append(item)
    assert got == [1]

    produced = []

    def endless():  # type: ignore[no-untyped-def]
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    stream = read_ahead(endless, depth=2)
    assert next(stream) == 0
    stream.close()  # the reader stops, at most a few items ahead
    assert not [t for t in threading.enumerate() if t.name == "export-read-ahead"]
    assert len(produced) <= 5
