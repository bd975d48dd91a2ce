"""Judge probe runs against the offline judge, end to end: originals and their neutral,
injected and causal copies are judged in one run, the report's figures follow what the
judge did (the measurement can fail: a judge that follows injected instructions is
reported as such), and the copies stay out of everything else."""

from __future__ import annotations

import pytest

from annotation.prompts.models import Response
from scoring.probes import services as probe_services
from scoring.probes.models import Probe, ProbeVariant
from scoring.runs.models import Run
from tests.scoring.probes.conftest import endpoint_for

ALL = ["padding", "reformat", "flattery", "reorder", "injection", "causal"]


def start(eager, project, editor, endpoint, **options):  # type: ignore[no-untyped-def]
    options = {"kinds": ALL, "sample": 12, "seed": 3, "rewriter": endpoint, **options}
    probe = eager(
        lambda: probe_services.probe_create(
            project=project, actor=editor, endpoint=endpoint, **options
        )
    )
    probe.refresh_from_db()
    probe.run.refresh_from_db()
    return probe


def by_kind(probe):  # type: ignore[no-untyped-def]
    return {entry["kind"]: entry for entry in probe.report["kinds"]}


def test_a_probe_run_finishes_with_every_figure(probe_project, editor, judge, eager):
    probe = start(eager, probe_project, editor, judge)
    assert probe.phase == Probe.Phase.DONE, probe.note
    assert probe.run.status == Run.Status.DONE and probe.run.failed == 0
    variants = ProbeVariant.objects.filter(probe=probe)
    copies = {k: variants.filter(kind=k).count() for k in ALL}
    # every sampled response gets each copy, but reordering only multi-paragraph ones and
    # causal rewrites one removal and (where one is unmet) one addition
    assert copies["padding"] == copies["reformat"] == copies["flattery"] == 12
    assert copies["injection"] == 12 and 0 < copies["reorder"] < 12
    assert copies["causal"] >= 12
    assert probe.calls == copies["causal"]  # the rewrites' usage is the probe's
    report = by_kind(probe)
    assert set(report) == set(ALL)
    for entry in report.values():
        assert entry["flip_rate"]["n"] > 0 and entry["flip_rate"]["value"] is not None
        assert entry["score_change"]["value"] is not None
    # the offline judge ignores injected instructions: nothing moves
    injection = report["injection"]
    assert injection["flip_rate"]["value"] == 0.0 and injection["raised"]["value"] == 0.0
    assert injection["goal"]["met"] is True
    assert set(injection["by_position"]) == {"start", "middle", "end"}
    # flattery and reordering add no content words the criteria name
    assert report["flattery"]["flip_rate"]["value"] == 0.0
    assert report["reorder"]["flip_rate"]["value"] == 0.0
    # the rewrites remove or add what the targeted criterion names: its verdict flips
    causal = report["causal"]
    assert causal["sensitivity"]["value"] == 1.0 and causal["sensitivity"]["n"] == copies["causal"]
    assert 0.5 < causal["specificity"]["value"] <= 1.0
    assert causal["sensitivity_remove"]["n"] + causal["sensitivity_add"]["n"] == copies["causal"]
    assert causal["worst"] and causal["worst"][0]["flips"] >= 1
    assert probe.report["noise"]["value"] is None and "2 samples" in probe.report["noise"]["why"]


def test_a_judge_that_follows_injections_is_reported_as_failing(
    probe_project, owner, editor, fake_llm, eager
):
    fake_llm.configure(follow_injections=["fake-judge-gullible"])
    gullible = endpoint_for(probe_project, owner, fake_llm, "gullible", "fake-judge-gullible")
    probe = start(eager, probe_project, editor, gullible, kinds=["injection", "padding"])
    injection = by_kind(probe)["injection"]
    # every criterion the response did not meet flips to met: far above the 2 % goal
    assert injection["flip_rate"]["value"] > 10 * injection["goal"]["bound"]
    assert injection["raised"]["value"] >= 0.5  # every response not already at full marks
    assert injection["goal"]["met"] is False
    assert injection["score_change"]["low"] > 0
    worst = injection["worst"][0]
    assert worst["flips"] >= 1 and worst["perturbed_score"] == 1.0


def test_two_samples_measure_the_judges_own_noise(probe_project, editor, judge, eager):
    probe = start(eager, probe_project, editor, judge, kinds=["padding"], samples=2)
    noise = probe.report["noise"]
    assert noise["value"] == 0.0 and noise["n"] == 12  # the offline judge is deterministic
    padding = by_kind(probe)["padding"]
    assert padding["goal"]["bound"] == 0.0


def test_copies_stay_out_of_normal_runs_and_pages(probe_project, editor, judge, eager, client):
    probe = start(eager, probe_project, editor, judge, kinds=["padding", "injection"])
    copies = Response.objects.filter(source__startswith="probe:")
    assert copies.count() == 24
    assert Response.objects.without_probes().count() == 18
    from scoring.runs import services as run_services

    run = eager(lambda: run_services.run_create(
        project=probe_project, actor=editor, endpoint=judge, mode=Run.Mode.PER_CRITERION
    ))  # fmt: skip
    run.refresh_from_db()
    assert run.total == 18 * 5
    assert Run.objects.without_probes().filter(pk=probe.run_id).count() == 0
    chosen = eager(lambda: run_services.run_create(
        project=probe_project, actor=editor, endpoint=judge, mode=Run.Mode.PER_CRITERION,
        sources=["probe:padding"],
    ))  # fmt: skip
    chosen.refresh_from_db()
    assert chosen.total == 12 * 5  # chosen by name, they are judged


def test_a_probe_needs_a_writing_endpoint_for_causal_rewrites(probe_project, editor, judge):
    from annotation.errors import ApplicationError

    with pytest.raises(ApplicationError, match="Causal probes need an LLM endpoint"):
        probe_services.probe_create(
            project=probe_project, actor=editor, endpoint=judge, kinds=["causal"], sample=3
        )
    with pytest.raises(ApplicationError, match="per criterion or grouped"):
        probe_services.probe_create(
            project=probe_project, actor=editor, endpoint=judge, kinds=["padding"], sample=3,
            mode=Run.Mode.HOLISTIC,
        )  # fmt: skip
    with pytest.raises(ApplicationError, match="Choose what to probe"):
        probe_services.probe_create(
            project=probe_project, actor=editor, endpoint=judge, kinds=["bogus"], sample=3
        )
    assert (
        not Probe.objects.exists()
        and not Response.objects.filter(source__startswith="probe:").exists()
    )


def test_retried_failures_update_the_report(probe_project, editor, judge, eager, fake_llm):
    from fakellm.config import Rule
    from scoring.runs import services as run_services

    fake_llm.configure(rules=[Rule("thermometer", "I would rather not answer in JSON.")])
    probe = start(eager, probe_project, editor, judge, kinds=["padding"])
    assert probe.phase == Probe.Phase.DONE and probe.run.failed > 0
    before = by_kind(probe)["padding"]["flip_rate"]["n"]
    fake_llm.configure(rules=[])
    eager(lambda: run_services.run_retry_failed(run=probe.run, actor=editor))
    probe.refresh_from_db()
    probe.run.refresh_from_db()
    assert probe.run.failed == 0 and probe.phase == Probe.Phase.DONE
    assert by_kind(probe)["padding"]["flip_rate"]["n"] > before


def test_a_task_delivered_while_the_run_judges_leaves_the_probe_alone_and_a_cancelled_run_ends_it(
    probe_project, editor, judge, django_capture_on_commit_callbacks
):
    from scoring.runs import services as run_services

    probe = probe_services.probe_create(  # queued: no worker has run its chunks
        project=probe_project, actor=editor, endpoint=judge, kinds=["padding"], sample=3
    )
    probe_services.advance(probe.pk)  # a redelivered task, or one sent too early
    probe.refresh_from_db()
    assert probe.phase == Probe.Phase.JUDGING and probe.note == ""
    with django_capture_on_commit_callbacks(execute=False) as sent:
        run_services.run_cancel(run=probe.run, actor=editor)
    assert sent  # run_finished, on commit
    probe_services.advance(probe.pk)
    probe.refresh_from_db()
    assert probe.phase == Probe.Phase.FAILED and "cancelled" in probe.note


def test_a_run_is_not_extended_with_responses_it_judges_already(
    probe_project, editor, judge, eager
):
    from annotation.errors import ApplicationError
    from scoring.runs import services as run_services

    probe = start(eager, probe_project, editor, judge, kinds=["padding"])
    total = probe.run.total
    originals = list(probe.variants.values_list("original_id", flat=True))
    with pytest.raises(ApplicationError, match="judges these responses already"):
        run_services.run_extend(run=probe.run, response_ids=originals)
    probe.run.refresh_from_db()
    assert probe.run.total == total and probe.run.status == Run.Status.DONE


def test_the_report_takes_presentation_order_from_the_judges_pairwise_run(
    probe_project, editor, judge, eager, fake_llm
):
    from fakellm.config import Rule
    from scoring.runs import services as run_services

    probe = start(eager, probe_project, editor, judge, kinds=["padding"])
    assert probe.report["order_swap"] is None  # no pairwise run by this judge yet
    always_first = {"explanation": "A is better.", "winner": "A",
                    "criteria": [{"criterion_id": i, "winner": "A"} for i in range(1, 6)]}  # fmt: skip
    fake_llm.configure(rules=[Rule("RESPONSE A", always_first)])  # a judge that favours A
    pairwise = eager(lambda: run_services.run_create(
        project=probe_project, actor=editor, endpoint=judge, mode=Run.Mode.PAIRWISE
    ))  # fmt: skip
    pairwise.refresh_from_db()
    assert pairwise.status == Run.Status.DONE and pairwise.failed == 0
    fake_llm.configure(rules=[])
    probe_services.report_store(probe)
    probe.refresh_from_db()
    swap = probe.report["order_swap"]
    assert swap["run"] == pairwise.pk and swap["flip_rate"]["n"] == 18  # 3 pairs × 6 prompts
    assert swap["flip_rate"]["value"] == 1.0 and swap["first_shown_share"] == 1.0
    assert swap["goal"]["met"] is None  # one sample: the judge's own noise is not measured
