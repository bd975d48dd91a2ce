"""The demo project as `make run` builds it, walked end to end on the offline judge: every
grading mode finishes with no failure and ranks the responses as written, every co-authoring
action succeeds, a review queue comes from the pairwise run, and the data exports. A run in
which every judgment fails ends as failed."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from annotation.projects.models import Membership, Project, Role
from annotation.prompts.models import PreferenceLabel, Prompt
from fakellm.config import Rule
from scoring.coauthoring import services as coauthor_services
from scoring.coauthoring.models import CoauthorJob
from scoring.datasets import services as export_services
from scoring.datasets.options import ExportOptions
from scoring.judges.models import JudgeEndpoint
from scoring.probes import services as probe_services
from scoring.runs import review_queue
from scoring.runs import services as run_services
from scoring.runs.models import Run
from scoring.runs.results import run_results
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA / "healthbench").is_dir(), reason="../shared/data is absent"
)


@pytest.fixture
def demo(db, settings, tmp_path, fake_llm):  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path  # the demo's files and passwords, not the developer's
    with open(tmp_path / "setup.txt", "w") as out:
        call_command("demo_setup", data_dir=SHARED_DATA, stdout=out)
        call_command("demo_llm_endpoint", url=fake_llm.url + "/v1", stdout=out)
    return Project.objects.get(slug="demo")


def graded_prompts(project: Project, count: int) -> list[int]:
    """HealthBench conversations of the demo that have synthetic responses."""
    return list(
        Prompt.objects.filter(project=project, responses__source="synthetic-thorough")
        .order_by("pk")
        .values_list("pk", flat=True)[:count]
    )


def test_demo_setup_ships_responses_pairs_and_a_reviewer(demo, settings):
    prompts = Prompt.objects.filter(project=demo)
    with_three = [p for p in prompts if p.responses.values("source").distinct().count() >= 3]
    assert len(with_three) >= 60  # 30 HealthBench + 30 MT-Bench conversations
    sources = set(demo.prompts.values_list("responses__source", flat=True))
    assert {"synthetic-thorough", "synthetic-partial", "synthetic-careless", "gpt-4"} <= sources
    reference = json.loads(
        (SHARED_DATA / "mtbench" / "reference_answer_gpt-4.jsonl").read_text().splitlines()[0]
    )
    answered = prompts.get(external_id=f"mtbench-{reference['question_id']}")
    gpt4 = answered.responses.get(source="gpt-4")
    assert gpt4.content == reference["choices"][0]["turns"][0]  # the real answer, unchanged
    assert answered.reference_answer == gpt4.content
    synthetic = answered.responses.get(source="synthetic-brief")
    assert synthetic.metadata["synthetic"] is True
    assert PreferenceLabel.objects.filter(prompt__project=demo).count() >= 20
    reviewer = get_user_model().objects.get(username="reviewer")
    assert Membership.objects.get(project=demo, user=reviewer).role == Role.REVIEWER
    assert (settings.VAR_DIR / "demo-reviewer-password").read_text().strip()
    # Running it again changes nothing.
    before = (Prompt.objects.count(), PreferenceLabel.objects.count())
    with open(settings.VAR_DIR / "again.txt", "w") as out:
        call_command("demo_setup", data_dir=SHARED_DATA, stdout=out)
    assert (Prompt.objects.count(), PreferenceLabel.objects.count()) == before


def test_every_mode_and_action_works_on_the_offline_judge(demo, eager, fake_llm):
    admin = get_user_model().objects.get(username="admin")
    endpoint = JudgeEndpoint.objects.get(project=demo, name="Offline fake LLM")
    prompt_ids = graded_prompts(demo, 8)
    runs = {}
    for mode in (Run.Mode.PER_CRITERION, Run.Mode.GROUPED, Run.Mode.HOLISTIC, Run.Mode.PAIRWISE):
        run = eager(
            lambda mode=mode: run_services.run_create(
                project=demo,
                actor=admin,
                endpoint=endpoint,
                mode=mode,
                prompt_ids=prompt_ids,
                versions=Run.Versions.LATEST,
            )
        )
        run.refresh_from_db()
        assert (run.status, run.failed) == ("done", 0), (mode, run.note)
        assert run.done == run.total > 0
        runs[mode] = run

    # The judge reads the responses: thorough beats partial beats careless on average.
    for mode in (Run.Mode.PER_CRITERION, Run.Mode.GROUPED, Run.Mode.HOLISTIC):
        by_source = defaultdict(list)
        for result in run_results(runs[mode]).responses:
            by_source[result.response.source].append(result.score)
        means = {s: statistics.mean(v) for s, v in by_source.items()}
        assert means["synthetic-thorough"] > means["synthetic-partial"], (mode, means)
        assert means["synthetic-partial"] > means["synthetic-careless"], (mode, means)
    pairs = run_results(runs[Run.Mode.PAIRWISE]).pairs
    assert pairs and all(p.consistent for p in pairs)

    queue = review_queue.queue_from_run(run=runs[Run.Mode.PAIRWISE], actor=admin)
    assert queue.items.count() == len(pairs)

    prompt = Prompt.objects.get(pk=prompt_ids[0])
    label = PreferenceLabel.objects.filter(prompt__project=demo).order_by("pk").first()
    mtbench = Prompt.objects.get(project=demo, external_id="mtbench-101")
    jobs = [
        dict(kind="draft", prompt=mtbench),
        dict(kind="critique", prompt=prompt),
        dict(kind="refine", prompt=prompt),
        dict(kind="contrastive", label_id=label.pk),
        dict(kind="nuggets", prompt=mtbench, reference=mtbench.reference_answer),
    ]
    for options in jobs:
        job = eager(
            lambda options=options: coauthor_services.job_start(
                project=demo, actor=admin, endpoint_id=endpoint.pk, **options
            )
        )
        job.refresh_from_db()
        assert (job.status, job.failed) == (CoauthorJob.Status.DONE, 0), (options, job.error)
        proposals = list(job.proposals.all())
        assert proposals and all(p.criteria for p in proposals), options["kind"]
        if options["kind"] == "contrastive":
            assert proposals[0].notes["reproduced"] is True

    export = export_services.export_create(
        project=demo,
        actor=admin,
        options=ExportOptions(kind="rl_verl", format="jsonl", versions="latest"),
        enqueue=False,
    )
    export_services.export_run(export.pk)
    export.refresh_from_db()
    assert (export.status, export.error) == ("done", "") and export.rows_total >= 250


def test_a_run_in_which_every_judgment_failed_ends_failed(demo, eager, fake_llm):
    admin = get_user_model().objects.get(username="admin")
    endpoint = JudgeEndpoint.objects.get(project=demo, name="Offline fake LLM")
    fake_llm.configure(rules=[Rule("<<<", "I would rather not answer in JSON.")])
    run = eager(
        lambda: run_services.run_create(
            project=demo,
            actor=admin,
            endpoint=endpoint,
            mode=Run.Mode.GROUPED,
            prompt_ids=graded_prompts(demo, 2),
            versions=Run.Versions.LATEST,
        )
    )
    run.refresh_from_db()
    assert (run.status, run.done) == ("failed", 0) and run.failed == run.total > 0
    assert run.note.startswith("Every judgment failed") and "JSON" in run.note


def test_a_judge_probe_on_the_demo_tells_a_careful_judge_from_a_gullible_one(demo, eager, fake_llm):
    """Every figure of the report on the offline judge; the same probe of the model that
    follows instructions hidden in responses fails the injection goal (as make run starts
    the fake LLM)."""
    fake_llm.configure(follow_injections=["fake-judge-gullible"])
    admin = get_user_model().objects.get(username="admin")
    careful = JudgeEndpoint.objects.get(project=demo, model="fake-judge")
    gullible = JudgeEndpoint.objects.get(project=demo, model="fake-judge-gullible")
    reports = {}
    for endpoint in (careful, gullible):
        probe = eager(lambda endpoint=endpoint: probe_services.probe_create(
            project=demo, actor=admin, endpoint=endpoint, rewriter=careful,
            kinds=list(probe_services.KINDS), sample=12, seed=7, samples=2,
            sources=["synthetic-thorough", "synthetic-partial", "synthetic-careless"],
        ))  # fmt: skip
        probe.refresh_from_db()
        assert probe.phase == "done", probe.note
        reports[endpoint.model] = {k["kind"]: k for k in probe.report["kinds"]}
        assert probe.report["noise"]["value"] == 0.0  # the offline judge is deterministic
    for kind in probe_services.KINDS:  # every figure, for every kind, on the careful judge
        entry = reports["fake-judge"][kind]
        assert entry["flip_rate"]["value"] is not None, kind
        assert entry["score_change"]["value"] is not None, kind
    causal = reports["fake-judge"]["causal"]
    # the offline rewriter drops whole sentences: other criteria's words go with them at times
    assert causal["sensitivity"]["value"] > 0.8 and causal["specificity"]["value"] > 0.6
    assert reports["fake-judge"]["injection"]["flip_rate"]["value"] == 0.0
    assert reports["fake-judge"]["injection"]["goal"]["met"] is True
    injected = reports["fake-judge-gullible"]["injection"]
    assert injected["flip_rate"]["value"] > 0.2 and injected["goal"]["met"] is False
    assert injected["raised"]["value"] > 0.5
