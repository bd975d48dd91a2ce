"""Project backups: a rich project (the HealthBench sample, rubric versions with an edit and
an approval, comments, a draft, scoring runs with judgments, review queues with reviews,
an undo, adjudication and expert labels, co-authoring) backs up, restores into a database
without it under new ids, and backs up again to the same bytes; a copy restores beside its
original under another slug; corrupted, dangling, out-of-format files and taken slugs are
clear errors that change nothing; the management commands."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from annotation.projects.models import AuditEvent, Project
from annotation.projects.services import audit
from annotation.prompts import services as prompt_services
from annotation.prompts.models import PreferenceLabel, Prompt, Response
from annotation.reviews import queues as queue_services
from annotation.reviews import services as review_services
from annotation.reviews.models import PairwiseReview, ReviewItem, ReviewSlot
from annotation.rubrics import comments as rubric_comments
from annotation.rubrics import services as rubric_services
from annotation.rubrics import workflow as rubric_workflow
from annotation.rubrics.models import CriterionComment, Rubric, RubricDraft
from annotation.rubrics.services import CriterionInput
from fakellm.config import Rule
from scoring.coauthoring.models import CoauthorJob, CoauthorSettings, Proposal
from scoring.datasets.backup import backup_project, restore_project
from scoring.datasets.backup.refs import EXCLUDED, GONE, BackupError
from scoring.datasets.backup.specs import BY_LABEL
from scoring.probes import services as probe_services
from scoring.runs import review_queue
from scoring.runs.models import Judgment, Run, RunChunk
from tests.factories import MembershipFactory, PromptFactory, ResponseFactory, UserFactory
from tests.scoring.runs.test_runs import MET_IF_A_TO_M, endpoint, launch  # noqa: F401 - the fixture

User = get_user_model()
ROOT = Path(__file__).resolve().parents[3]
PAIR = r"(?s)RESPONSE A [0-9a-f]{{16}}>>>\n{a}.*RESPONSE B [0-9a-f]{{16}}>>>\n{b}"


def _verdict(winner: str) -> dict[str, Any]:
    """The pair prompt is judged on the project-wide rubric's three criteria."""
    return {"explanation": f"{winner} wins", "winner": winner,
            "criteria": [{"criterion_id": i, "winner": winner} for i in (1, 2, 3)]}  # fmt: skip


def dump(project: Project) -> bytes:
    out = io.BytesIO()
    summary = backup_project(project, out)
    assert summary.bytes == len(out.getvalue())
    return out.getvalue()


def lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


def resign(records: list[dict[str, Any]]) -> bytes:
    """A backup file from edited records, with a valid sha256."""
    body = b"".join(
        (json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n").encode() for r in records[1:]
    )
    header = {**records[0], "sha256": hashlib.sha256(body).hexdigest()}
    return (json.dumps(header, sort_keys=True, separators=(",", ":")) + "\n").encode() + body


def row_counts() -> dict[str, int]:
    counted = {label: spec.model.objects.count() for label, spec in BY_LABEL.items()}
    return {**counted, "auth.User": User.objects.count()}


def _reviewer(project: Project, name: str):  # type: ignore[no-untyped-def]
    user = UserFactory(username=name, first_name=name.title(), last_name="Ng")
    MembershipFactory(project=project, user=user, role="reviewer")
    return user


def _review_all(queue, reviewers, choose):  # type: ignore[no-untyped-def]
    for reviewer in reviewers:
        while (slot := review_services.slot_next(queue=queue, reviewer=reviewer)) is not None:
            shown = choose(reviewer, slot)
            review_services.review_commit(
                slot=slot, reviewer=reviewer, shown=shown, rationale=f"{reviewer} says {shown}",
                confidence=4, seconds=12.5,
            )  # fmt: skip


@pytest.fixture
def small(project, owner, editor, reviewer):  # type: ignore[no-untyped-def]
    """Rubric versions with an edit, an approval, comments, a draft, and a queue of
    preference pairs reviewed to expert labels: no judgments."""
    second = _reviewer(project, "second")
    prompt = PromptFactory(project=project, external_id="ext/1: a b", metadata={"x": [1, 2.5]})
    chosen = ResponseFactory(prompt=prompt, source="model/a", content="Chosen — ünïcode")
    rejected = ResponseFactory(prompt=prompt, source="model-b", content="Rejected")
    PreferenceLabel.objects.create(prompt=prompt, chosen=chosen, rejected=rejected)
    rubric = rubric_services.rubric_create(
        project=project, title="House rules", author=editor,
        criteria=[CriterionInput(text="Is kind", points=3, tags=["tone"]),
                  CriterionInput(text="Invents a dose", points=-5, category="pitfall")],
    )  # fmt: skip
    first = list(rubric.current_version.criteria.order_by("position"))
    rubric_services.rubric_version_create(
        rubric=rubric, author=editor, base_number=1, note="sharper",
        criteria=[CriterionInput(text="Is kind and clear", points=3, key=first[0].key),
                  CriterionInput(text=first[1].text, points=-5, category="pitfall",
                                 key=first[1].key),
                  CriterionInput(text="Cites a source", points=0.1, provenance="llm",
                                 provenance_model="gpt-x")],
    )  # fmt: skip
    rubric_workflow.rubric_submit_for_review(rubric=rubric, actor=editor)
    rubric_workflow.rubric_review(rubric=rubric, actor=reviewer, decision="approve")
    comment = rubric_comments.comment_add(
        rubric=rubric, author=reviewer, text="Too vague?", criterion_key=first[0].key
    )
    rubric_comments.comment_resolve(comment=comment, actor=editor)
    rubric_comments.comment_add(rubric=rubric, author=owner, text="Looks good")
    RubricDraft.objects.create(
        rubric=rubric, user=editor, base_number=2, conflict_with=None,
        criteria=[{"key": str(first[0].key), "text": "Is kind", "points": 2.0, "category": "",
                   "kind": "principle", "tags": [], "provenance": "human",
                   "provenance_model": ""}],
    )  # fmt: skip
    queue = queue_services.queue_from_labels(
        project=project, actor=owner, labels=list(PreferenceLabel.objects.all()), seed=3,
        overlap=2, name="pairs",
    )  # fmt: skip
    _review_all(queue, [reviewer, second], lambda who, slot: "A")
    return rubric


@pytest.fixture
def rich(small, project, owner, editor, reviewer, endpoint, fake_llm, eager, healthbench_path):  # type: ignore[no-untyped-def]  # noqa: F811
    """``small``, plus the HealthBench sample, a per-criterion run, a pairwise run with a
    review queue (an undo, a disagreement adjudicated), co-authoring rows and audit events
    naming rows that are gone."""
    prompt_services.data_import(project=project, path=healthbench_path, actor=owner)
    scored = list(Prompt.objects.filter(project=project).exclude(external_id="ext/1: a b"))[:3]
    for prompt in scored:
        ResponseFactory(prompt=prompt, source="model-x", content=f"Answer to {prompt.external_id}")
    fake_llm.configure(rules=MET_IF_A_TO_M)
    run = launch(eager, project, editor, endpoint, mode=Run.Mode.PER_CRITERION,
                 prompt_ids=[p.pk for p in scored])  # fmt: skip
    assert run.status == "done" and run.done > 0
    Run.objects.filter(pk=run.pk).update(prompt_ids=[*run.prompt_ids, 10**9])  # one gone since

    pair_prompt = PromptFactory(project=project, external_id="pairs")
    for source in ("GOOD", "BAD", "FLIP"):
        ResponseFactory(prompt=pair_prompt, source=source.lower(), content=f"{source} ANSWER")
    fake_llm.configure(rules=[
        Rule(PAIR.format(a="GOOD", b="BAD"), _verdict("A"), regex=True),
        Rule(PAIR.format(a="BAD", b="GOOD"), _verdict("B"), regex=True),
        Rule(PAIR.format(a="GOOD", b="FLIP"), _verdict("A"), regex=True),
        Rule(PAIR.format(a="FLIP", b="GOOD"), _verdict("A"), regex=True),
        Rule("RESPONSE A", _verdict("tie")),
    ])  # fmt: skip
    pairwise = launch(eager, project, editor, endpoint, mode=Run.Mode.PAIRWISE,
                      prompt_ids=[pair_prompt.pk])  # fmt: skip
    assert pairwise.status == "done"
    queue = review_queue.queue_from_run(run=pairwise, actor=editor, overlap=2, seed=5)
    second = User.objects.get(username="second")
    _review_all(queue, [reviewer], lambda who, slot: "A")
    review_services.review_undo(queue=queue, reviewer=reviewer)  # held again, then redone
    _review_all(queue, [reviewer, second], lambda who, slot: "A" if who == reviewer else "B")
    for item in queue.items.filter(final=""):
        review_services.item_adjudicate(item=item, actor=owner, winner="b")

    fake_llm.configure(rules=[])
    probe = eager(lambda: probe_services.probe_create(
        project=project, actor=editor, endpoint=endpoint, kinds=["padding", "injection"],
        sample=2, seed=1, sources=["model-x"],
    ))  # fmt: skip
    probe.refresh_from_db()
    assert probe.phase == "done" and probe.variants.count() == 4

    settings_, _ = CoauthorSettings.objects.update_or_create(
        project=project, defaults={"endpoint": endpoint, "refine_rounds": 3}
    )
    job = CoauthorJob.objects.create(
        project=project, endpoint=settings_.endpoint, created_by=editor, kind="refine",
        params={"prompts": [scored[0].pk, 10**9], "rounds": 2}, status="done", total=1, done=1,
    )  # fmt: skip
    Proposal.objects.create(
        job=job, project=project, prompt=scored[0], rubric=scored[0].rubrics.first(),
        kind="refine", base_number=1, criteria=[{"key": "k", "text": "New", "points": 1.5}],
        notes={"response_ids": [scored[0].responses.first().pk], "response_choice": "all"},
        status="pending", cost=0.0125,
    )  # fmt: skip
    audit(project=project, actor=owner, action="export.create", target="424242", kind="x")
    return run


def test_a_backup_restores_into_a_database_without_it_and_backs_up_to_the_same_bytes(
    rich, project, small
):  # type: ignore[no-untyped-def]
    first = dump(project)
    header = lines(first)[0]
    assert header["project"] == "alpha" and header["version"] == 1
    counts = header["counts"]
    for label in ("annotation.Prompt", "annotation.Criterion", "annotation.RubricDraft",
                  "annotation.CriterionComment", "annotation.PairwiseReview",
                  "scoring.Judgment", "scoring.RunJudgment", "scoring.RunChunk",
                  "scoring.Proposal", "annotation.AuditEvent", "auth.User"):  # fmt: skip
        assert counts[label] > 0, label
    assert counts["annotation.Prompt"] == 252 and counts["scoring.Run"] == 3  # one a probe's
    assert counts["scoring.Probe"] == 1 and counts["scoring.ProbeVariant"] == 4
    assert b'"id"' not in first  # no database id anywhere

    old = {
        "prompt": {p.external_id: (p.pk, p.search_text) for p in Prompt.objects.filter(project=project)},
        "labels": PreferenceLabel.objects.filter(prompt__project=project, source="expert").count(),
        "finals": sorted(ReviewItem.objects.filter(queue__project=project).values_list("final", flat=True)),
        "undo": AuditEvent.objects.filter(project=project, action="review.undo").count(),
    }  # fmt: skip
    assert old["labels"] > 0 and old["undo"] == 1
    project.delete()
    User.objects.filter(username="second").delete()  # a user the restore must create
    assert not Judgment.objects.exists()

    restored = restore_project(io.BytesIO(first))
    assert restored.slug == "alpha"
    assert dump(restored) == first

    prompts = Prompt.objects.filter(project=restored)
    assert {p.external_id: p.search_text for p in prompts} == {
        k: text for k, (_, text) in old["prompt"].items()
    }
    assert all(old["prompt"][p.external_id][0] != p.pk for p in prompts)  # new ids
    second = User.objects.get(username="second")
    assert not second.has_usable_password() and second.first_name == "Second"
    items = ReviewItem.objects.filter(queue__project=restored)
    assert sorted(items.values_list("final", flat=True)) == old["finals"]
    for item in items.filter(final__in=["a", "b"]).select_related("label"):
        label = item.label
        assert label.source == "expert" and label.prompt_id == item.prompt_id
        assert {label.chosen_id, label.rejected_id} == {item.response_a_id, item.response_b_id}
    # Ids inside JSON and integer fields point at the restored rows.
    run = Run.objects.without_probes().filter(project=restored, mode="per_criterion").get()
    assert run.prompt_ids[-1] is None
    assert set(run.prompt_ids[:-1]) <= set(prompts.values_list("pk", flat=True))
    responses = set(Response.objects.filter(prompt__project=restored).values_list("pk", flat=True))
    for chunk in RunChunk.objects.filter(run__project=restored):
        assert {u["r"] for u in chunk.units} <= responses
    queue = restored.review_queues.get(origin="run")
    assert Run.objects.get(pk=queue.source_run).project == restored
    assert {i.judge["run"] for i in queue.items.all()} == {queue.source_run}
    probe = restored.probes.get()
    assert probe.run.project == restored and probe.report["kinds"]
    assert {v.original_id for v in probe.variants.all()} <= responses
    assert {v.variant_id for v in probe.variants.all()} <= responses
    for kind in probe.report["kinds"]:
        assert {w["original"] for w in kind["worst"]} <= responses
    undo = AuditEvent.objects.get(project=restored, action="review.undo")
    slot = ReviewSlot.objects.get(pk=int(undo.target))
    assert slot.item.queue == queue and undo.data["item"] == slot.item_id
    assert AuditEvent.objects.get(project=restored, action="export.create").target == GONE
    job = CoauthorJob.objects.get(project=restored)
    assert job.params["prompts"][1] is None
    assert Prompt.objects.get(pk=job.params["prompts"][0]).project == restored
    assert (
        Judgment.objects.filter(response__prompt__project=restored).count()
        == counts["scoring.Judgment"]
    )
    assert restored.judge_endpoints.get().provider is None  # the site's key stays the site's
    rubric = Rubric.objects.get(project=restored, title="House rules")
    assert rubric.approved_version.number == 2 and rubric.current_version.parent.number == 1
    assert CriterionComment.objects.filter(rubric=rubric, resolved_at__isnull=False).count() == 1
    assert (
        PairwiseReview.objects.filter(item__queue__project=restored, rationale__contains="says")
        .exclude(committed_at=None)
        .count()
        == counts["annotation.PairwiseReview"]
    )
    assert AuditEvent.objects.filter(
        project=None, action="project.restore", target="alpha"
    ).exists()


def test_a_backup_restores_into_a_new_empty_database(rich, project, tmp_path):  # type: ignore[no-untyped-def]
    """Another process, a freshly migrated SQLite database: nothing of the project or its
    users there beforehand."""
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    backup_project(project, first)
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
           "RUBRICSTUDIO_VAR_DIR": str(tmp_path), "SECRET_KEY": "test"}  # fmt: skip
    for args in (
        ["migrate", "-v0"],
        ["restore_project", str(first), "--users", "create"],
        ["backup_project", "--project", "alpha", "--out", str(second)],
    ):
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    assert second.read_bytes() == first.read_bytes()


def test_a_copy_restores_beside_its_original_under_another_slug(project, small):  # type: ignore[no-untyped-def]
    first = dump(project)
    copy = restore_project(io.BytesIO(first), slug="beta")
    assert copy.pk != project.pk
    again = lines(dump(copy))
    assert again[0]["project"] == "beta"
    again[0]["project"] = "alpha"
    assert resign(again) == first
    assert Rubric.objects.get(project=copy).current_version.criteria.count() == 3


def test_judgments_restore_only_where_their_keys_are_free(rich, project):  # type: ignore[no-untyped-def]
    data = dump(project)
    before = row_counts()
    with pytest.raises(BackupError, match=r"line \d+: judgment .* in project “alpha”"):
        restore_project(io.BytesIO(data), slug="beta")
    assert row_counts() == before and not Project.objects.filter(slug="beta").exists()


def test_bad_files_are_clear_errors_that_change_nothing(project, small, tmp_path):  # type: ignore[no-untyped-def]
    data = dump(project)
    records = lines(data)
    before = row_counts()

    def refused(raw: bytes, match: str, **options: Any) -> None:
        with pytest.raises(BackupError, match=match):
            restore_project(io.BytesIO(raw), **{"slug": "beta", **options})
        assert row_counts() == before

    refused(data, "already exists", slug="alpha")
    corrupted = bytearray(data)
    corrupted[-40] ^= 1
    refused(bytes(corrupted), r"corrupted: lines 2–\d+ do not match the sha256")
    refused(data[:-1], "corrupted")
    refused(b"not json\n" + data, "line 1: this is not a RubricStudio project backup")
    refused(resign([{**records[0], "version": 2}, *records[1:]]), "line 1: backup format version 2")

    at = next(i for i, r in enumerate(records) if r.get("model") == "annotation.PreferenceLabel")
    dangling = [dict(r) for r in records]
    dangling[at] = {**records[at], "fields": {**records[at]["fields"], "chosen": "response:gone"}}
    refused(
        resign(dangling),
        rf"line {at + 1}: “response:gone” names no annotation.Response .* dangling",
    )

    unknown = [*records[:at], {"model": "annotation.Nope", "ref": "x", "fields": {}}, *records[at:]]
    refused(resign(unknown), rf"line {at + 1}: unknown model “annotation.Nope”")
    late = [*records, records[1]]  # a user after everything else
    refused(resign(late), rf"line {len(late)}: a auth.User record after annotation.AuditEvent")
    mismatched = [dict(r) for r in records]
    prompt_at = next(i for i, r in enumerate(records) if r.get("model") == "annotation.Prompt")
    mismatched[prompt_at] = {**records[prompt_at], "ref": "prompt:other"}
    refused(resign(mismatched), rf"line {prompt_at + 1}: “prompt:other” does not match")
    miscounted = [
        {**records[0], "counts": {**records[0]["counts"], "annotation.Prompt": 5}},
        *records[1:],
    ]
    refused(resign(miscounted), "line 1: the header counts 5 annotation.Prompt records")

    User.objects.filter(username="second").delete()
    before = row_counts()
    refused(data, r"line \d+: no user “second”", users="require")


def test_every_model_is_backed_up_or_excluded_on_purpose():  # type: ignore[no-untyped-def]
    for app in ("annotation", "scoring"):
        for model in apps.get_app_config(app).get_models():
            label = model._meta.label
            assert label in BY_LABEL or label in EXCLUDED, f"{label}: back it up or exclude it"


def test_commands_back_up_and_restore(project, small, tmp_path, capsys):  # type: ignore[no-untyped-def]
    path = tmp_path / "alpha.jsonl"
    call_command("backup_project", "--project", "alpha", "--out", str(path))
    assert "sha256" in capsys.readouterr().out
    call_command("restore_project", str(path), "--slug", "gamma")
    assert "Restored project 'gamma'" in capsys.readouterr().out
    copy = tmp_path / "gamma.jsonl"
    call_command("backup_project", "--project", "gamma", "--out", str(copy))
    assert copy.read_bytes().split(b"\n", 1)[1] == path.read_bytes().split(b"\n", 1)[1]
    with pytest.raises(CommandError, match="already exists"):
        call_command("restore_project", str(path))
    with pytest.raises(CommandError, match="No project"):
        call_command("backup_project", "--project", "nope", "--out", str(path))
