"""factory_boy factories, one for every concrete model of the annotation and scoring apps
(tests/test_factories.py checks that none is missing and that each makes a valid row).

Related rows stay in one project: a factory that reaches a project by two paths takes the
second from the first (a judgment's run is a run of its response's project, a review
item's responses answer its prompt, which is in its queue's project). No factory holds a
secret: providers name an environment variable (set nowhere) and endpoints have no key.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import factory
import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Max
from django.utils import timezone

from annotation.projects.models import AuditEvent, Membership, Project, ProjectCounts, Role
from annotation.prompts.import_report import ImportReport
from annotation.prompts.models import ImportJob, PreferenceLabel, Prompt, Response
from annotation.reviews.models import (
    AgreementSnapshot,
    PairwiseReview,
    ReviewItem,
    ReviewQueue,
    ReviewSlot,
)
from annotation.rubrics.models import (
    Criterion,
    CriterionComment,
    Rubric,
    RubricDraft,
    RubricReviewDecision,
    RubricVersion,
)
from annotation.rubrics.selectors import criterion_dict
from scoring.coauthoring.models import CoauthorJob, CoauthorSettings, Proposal
from scoring.datasets.models import Export
from scoring.datasets.options import ExportOptions
from scoring.engine import judging
from scoring.insights.models import RunInsights
from scoring.judges.embeddings import PACKAGED_KEY
from scoring.judges.models import (
    Embedding,
    EmbeddingModelStatus,
    JudgeEndpoint,
    LLMProvider,
    text_hash,
)
from scoring.probes.models import Probe, ProbeVariant
from scoring.runs import planning
from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment
from scoring.runs.summary import RunSummary, run_stamp


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.LazyAttribute(lambda p: p.slug.title())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.VIEWER


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    project = factory.SubFactory(ProjectFactory)
    external_id = factory.Sequence(lambda n: f"p{n:05d}")
    messages = factory.LazyAttribute(
        lambda p: [{"role": "user", "content": f"Question {p.external_id}?"}]
    )


class ResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Response

    prompt = factory.SubFactory(PromptFactory)
    source = "model-a"
    content = factory.Sequence(lambda n: f"Answer number {n}.")


class RubricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rubric
        skip_postgeneration_save = True

    project = factory.SubFactory(ProjectFactory)
    prompt = None
    title = factory.Sequence(lambda n: f"Rubric {n}")

    @factory.post_generation
    def criteria(self, create, extracted, **kwargs):  # type: ignore[no-untyped-def]
        if not create:
            return
        version = RubricVersion.objects.create(rubric=self, number=1)
        for i, (text, points) in enumerate(extracted or [("Is correct", 5), ("Is rude", -3)]):
            Criterion.objects.create(version=version, position=i, text=text, points=points)
        self.current_version = version
        self.save(update_fields=["current_version"])


# --- helpers ------------------------------------------------------------------------------


def _next_number(obj: object, parent: str, related: str, field: str, first: int) -> int:
    """The next free value of ``field`` among the rows ``parent.related`` already has
    (``first`` for a parent not saved yet), so that several rows made for one parent do
    not collide on a (parent, field) unique constraint."""
    owner = getattr(obj, parent)
    if owner is None or owner.pk is None:
        return first
    top = getattr(owner, related).aggregate(top=Max(field))["top"]
    return first if top is None else top + 1


def _current_criteria(rubric: Rubric) -> list[dict[str, Any]]:
    """The criteria of a rubric's current version as the app keeps them in JSON."""
    version = rubric.current_version if rubric.pk else None
    if version is None:
        return []
    return [criterion_dict(c) for c in version.criteria.order_by("position")]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- annotation: projects -----------------------------------------------------------------


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEvent

    project = factory.SubFactory(ProjectFactory)
    actor = factory.SubFactory(UserFactory)
    action = "member.add"
    target = factory.LazyAttribute(lambda e: e.actor.username if e.actor else "")
    data = factory.LazyFunction(lambda: {"role": Role.VIEWER.value})


# --- annotation: prompts ------------------------------------------------------------------


class PreferenceLabelFactory(factory.django.DjangoModelFactory):
    """Chosen and rejected are two different responses to the label's own prompt."""

    class Meta:
        model = PreferenceLabel

    prompt = factory.SubFactory(PromptFactory)
    chosen = factory.SubFactory(ResponseFactory, prompt=factory.SelfAttribute("..prompt"))
    rejected = factory.SubFactory(
        ResponseFactory, prompt=factory.SelfAttribute("..prompt"), source="model-b"
    )
    source = PreferenceLabel.Source.DATASET
    created_by = None


class ImportJobFactory(factory.django.DjangoModelFactory):
    """A finished import (its upload already removed): a queued job would point at a file
    in MEDIA_ROOT/imports/ that a test would have to write first."""

    class Meta:
        model = ImportJob

    project = factory.SubFactory(ProjectFactory)
    created_by = factory.SubFactory(UserFactory)
    file_name = factory.Sequence(lambda n: f"prompts-{n}.jsonl")
    stored_path = ""
    size = 2048
    format = "jsonl"
    status = ImportJob.Status.DONE
    lines_read = 3
    report = factory.LazyAttribute(
        lambda j: ImportReport(
            file=j.file_name, format=j.format, records=j.lines_read, prompts_created=j.lines_read
        ).as_dict()
    )
    started_at = factory.LazyFunction(timezone.now)
    heartbeat_at = factory.SelfAttribute("started_at")
    finished_at = factory.SelfAttribute("started_at")


# --- annotation: rubrics ------------------------------------------------------------------


class RubricVersionFactory(factory.django.DjangoModelFactory):
    """The next version of a rubric (RubricFactory already made version 1), on the
    current one. It does not become the rubric's current version."""

    class Meta:
        model = RubricVersion

    rubric = factory.SubFactory(RubricFactory)
    number = factory.LazyAttribute(lambda v: _next_number(v, "rubric", "versions", "number", 1))
    parent = factory.LazyAttribute(lambda v: v.rubric.current_version if v.rubric.pk else None)
    author = factory.SubFactory(UserFactory)
    author_model = ""
    note = factory.LazyAttribute(lambda v: f"Version {v.number}")


class CriterionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Criterion

    version = factory.SubFactory(RubricVersionFactory)
    key = factory.LazyFunction(uuid.uuid4)
    position = factory.LazyAttribute(
        lambda c: _next_number(c, "version", "criteria", "position", 0)
    )
    text = factory.Sequence(lambda n: f"States fact number {n} correctly.")
    points = 5.0
    category = Criterion.Category.ESSENTIAL
    kind = Criterion.Kind.PRINCIPLE
    tags = factory.LazyFunction(lambda: ["axis:accuracy"])
    provenance = Criterion.Provenance.HUMAN
    provenance_model = ""


class RubricReviewDecisionFactory(factory.django.DjangoModelFactory):
    """A decision on the rubric's current version (the version's own rubric, always)."""

    class Meta:
        model = RubricReviewDecision

    rubric = factory.SubFactory(RubricFactory)
    version = factory.LazyAttribute(lambda d: d.rubric.current_version)
    reviewer = factory.SubFactory(UserFactory)
    decision = RubricReviewDecision.Decision.APPROVE
    comment = ""


class RubricDraftFactory(factory.django.DjangoModelFactory):
    """One person's edits started from the current version: its criteria, one reworded."""

    class Meta:
        model = RubricDraft

    rubric = factory.SubFactory(RubricFactory)
    user = factory.SubFactory(UserFactory)
    base_number = factory.LazyAttribute(
        lambda d: (
            d.rubric.current_version.number if d.rubric.pk and d.rubric.current_version else None
        )
    )
    criteria = factory.LazyAttribute(
        lambda d: (
            [
                {**c, "text": c["text"] + " (edited)"} if i == 0 else c
                for i, c in enumerate(_current_criteria(d.rubric))
            ]
            or [
                {
                    "key": str(uuid.uuid4()),
                    "text": "Is correct",
                    "points": 5.0,
                    "category": "",
                    "kind": Criterion.Kind.PRINCIPLE.value,
                    "tags": [],
                    "provenance": Criterion.Provenance.HUMAN.value,
                    "provenance_model": "",
                }
            ]
        )
    )
    conflicts = factory.LazyFunction(list)
    conflict_with = None


class CriterionCommentFactory(factory.django.DjangoModelFactory):
    """An open comment on the first criterion of the rubric's current version."""

    class Meta:
        model = CriterionComment

    rubric = factory.SubFactory(RubricFactory)
    criterion_key = factory.LazyAttribute(
        lambda c: uuid.UUID(crit[0]["key"]) if (crit := _current_criteria(c.rubric)) else None
    )
    version_number = factory.LazyAttribute(
        lambda c: (
            c.rubric.current_version.number if c.rubric.pk and c.rubric.current_version else None
        )
    )
    author = factory.SubFactory(UserFactory)
    text = factory.Sequence(lambda n: f"Comment {n}: could this be more specific?")
    resolved_at = None
    resolved_by = None


# --- annotation: reviews ------------------------------------------------------------------


class ReviewQueueFactory(factory.django.DjangoModelFactory):
    """A queue of imported preference pairs (a run's queue needs a run: pass origin="run",
    source_run, judge_name and template_version)."""

    class Meta:
        model = ReviewQueue

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Review queue {n}")
    origin = ReviewQueue.Origin.LABELS
    plan = ReviewQueue.Plan.ALL
    sample_size = None
    overlap = 2
    seed = factory.Sequence(lambda n: 1000 + n)
    lock_minutes = 15
    show_sources = False
    source_run = None
    judge_name = "dataset label"
    template_version = ""
    created_by = factory.SubFactory(UserFactory)


class ReviewItemFactory(factory.django.DjangoModelFactory):
    """A pair of two responses to one prompt of the queue's project."""

    class Meta:
        model = ReviewItem

    queue = factory.SubFactory(ReviewQueueFactory)
    position = factory.LazyAttribute(lambda i: _next_number(i, "queue", "items", "position", 0))
    prompt = factory.SubFactory(PromptFactory, project=factory.SelfAttribute("..queue.project"))
    response_a = factory.SubFactory(ResponseFactory, prompt=factory.SelfAttribute("..prompt"))
    response_b = factory.SubFactory(
        ResponseFactory, prompt=factory.SelfAttribute("..prompt"), source="model-b"
    )
    rubric_version = None
    judge = factory.LazyFunction(lambda: {"winner": "a", "source": "dataset"})
    final = ""
    final_source = ""
    final_by = None
    final_at = None
    label = None


class ReviewSlotFactory(factory.django.DjangoModelFactory):
    """An open slot; pass status=HELD or DONE with a reviewer (see ``held``)."""

    class Meta:
        model = ReviewSlot

    item = factory.SubFactory(ReviewItemFactory)
    index = factory.LazyAttribute(lambda s: _next_number(s, "item", "slots", "index", 0))
    status = ReviewSlot.Status.OPEN
    reviewer = None
    locked_until = None
    swapped = False
    claimed_at = None

    class Params:
        held = factory.Trait(
            status=ReviewSlot.Status.HELD,
            reviewer=factory.SubFactory(UserFactory),
            claimed_at=factory.LazyFunction(timezone.now),
            locked_until=factory.LazyAttribute(
                lambda s: s.claimed_at + timedelta(minutes=s.item.queue.lock_minutes)
            ),
        )


class PairwiseReviewFactory(factory.django.DjangoModelFactory):
    """A committed review: its slot is done and held by the same reviewer, on the same item."""

    class Meta:
        model = PairwiseReview

    slot = factory.SubFactory(
        ReviewSlotFactory,
        status=ReviewSlot.Status.DONE,
        reviewer=factory.SubFactory(UserFactory),
        claimed_at=factory.LazyFunction(timezone.now),
    )
    item = factory.SelfAttribute("slot.item")
    reviewer = factory.SelfAttribute("slot.reviewer")
    winner = "a"
    shown_swapped = factory.SelfAttribute("slot.swapped")
    criteria = factory.LazyFunction(dict)
    rationale = "A answers the question; B does not."
    confidence = 4
    seconds = 12.5


# --- scoring: judges ----------------------------------------------------------------------


class LLMProviderFactory(factory.django.DjangoModelFactory):
    """A provider names the environment variable that holds its key, never the key; the
    variable named here is set nowhere."""

    class Meta:
        model = LLMProvider
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"provider-{n}")
    base_url = "https://llm.example.com/v1"
    api_key_env = factory.Sequence(lambda n: f"RUBRICSTUDIO_TEST_PROVIDER_{n}_KEY")
    enabled = True
    note = ""

    @factory.post_generation
    def projects(self, create, extracted, **kwargs):  # type: ignore[no-untyped-def]
        if create and extracted:
            self.projects.set(extracted)


class JudgeEndpointFactory(factory.django.DjangoModelFactory):
    """An OpenAI-compatible endpoint without a provider (so no key is ever sent). Traits:
    ``with_provider`` (its URL is the provider's) and ``local`` (a model directory)."""

    class Meta:
        model = JudgeEndpoint

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"judge-{n}")
    backend = JudgeEndpoint.Backend.OPENAI
    provider = None
    base_url = "https://llm.example.com/v1"
    model = "gpt-4o-mini"

    class Params:
        with_provider = factory.Trait(
            provider=factory.SubFactory(LLMProviderFactory),
            base_url=factory.SelfAttribute("provider.base_url"),
        )
        local = factory.Trait(
            backend=JudgeEndpoint.Backend.LOCAL,
            base_url="",
            model_path=factory.LazyFunction(
                lambda: str(Path(settings.LOCAL_MODEL_DIRS[0]) / "tiny-judge")
            ),
            model="tiny-judge",
        )


class EmbeddingModelStatusFactory(factory.django.DjangoModelFactory):
    """What a worker found loading a configured embedding model: it could not."""

    class Meta:
        model = EmbeddingModelStatus

    model = factory.Sequence(lambda n: f"path:/srv/models/embedder-{n}")  # a configured folder
    error = "the worker lacks the embedding libraries (No module named 'sentence_transformers')"


class EmbeddingFactory(factory.django.DjangoModelFactory):
    """The vector of ``text`` (a parameter): unit length, ``dim`` float32 values."""

    class Meta:
        model = Embedding

    class Params:
        text = factory.Sequence(lambda n: f"Criterion text {n}")
        values = (0.5, 0.5, 0.5, 0.5)

    model = PACKAGED_KEY
    text_hash = factory.LazyAttribute(lambda e: text_hash(e.text))
    dim = factory.LazyAttribute(lambda e: len(e.values))
    vector = factory.LazyAttribute(lambda e: Embedding.pack(np.asarray(e.values)))


# --- scoring: co-authoring ----------------------------------------------------------------


class CoauthorSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CoauthorSettings
        django_get_or_create = ("project",)

    project = factory.SubFactory(ProjectFactory)
    endpoint = factory.SubFactory(JudgeEndpointFactory, project=factory.SelfAttribute("..project"))
    style = CoauthorSettings.Style.HEALTHBENCH
    contrastive_tries = 3
    refine_rounds = 2


class CoauthorJobFactory(factory.django.DjangoModelFactory):
    """A queued single-prompt draft job on an endpoint of the prompt's project."""

    class Meta:
        model = CoauthorJob

    project = factory.SubFactory(ProjectFactory)
    endpoint = factory.SubFactory(JudgeEndpointFactory, project=factory.SelfAttribute("..project"))
    created_by = factory.SubFactory(UserFactory)
    kind = CoauthorJob.Kind.DRAFT
    batch = False
    prompt = factory.SubFactory(PromptFactory, project=factory.SelfAttribute("..project"))
    status = CoauthorJob.Status.QUEUED
    params = factory.LazyAttribute(
        lambda j: {
            "prompts": [j.prompt.pk] if j.prompt else [],
            "style": CoauthorSettings.Style.HEALTHBENCH.value,
            "tries": 3,
            "rounds": 2,
        }
    )
    model = factory.LazyAttribute(lambda j: j.endpoint.model if j.endpoint else "")
    total = 1


class ProposalFactory(factory.django.DjangoModelFactory):
    """A pending proposal of the job's kind for the job's prompt: one new criterion."""

    class Meta:
        model = Proposal

    job = factory.SubFactory(CoauthorJobFactory)
    project = factory.SelfAttribute("job.project")
    prompt = factory.SelfAttribute("job.prompt")
    rubric = None
    kind = factory.SelfAttribute("job.kind")
    round = 1
    base_number = None
    base_criteria = factory.LazyFunction(list)
    criteria = factory.LazyAttribute(
        lambda p: [
            {
                "key": str(uuid.uuid4()),
                "text": "Answers the question that was asked.",
                "points": 5.0,
                "category": "essential",
                "kind": Criterion.Kind.PRINCIPLE.value,
                "tags": ["axis:accuracy"],
                "provenance": Criterion.Provenance.LLM.value,
                "provenance_model": p.model,
            }
        ]
    )
    notes = factory.LazyFunction(dict)
    model = factory.SelfAttribute("job.model")
    template_version = "draft-v1"
    status = Proposal.Status.PENDING


# --- scoring: datasets --------------------------------------------------------------------


class ExportFactory(factory.django.DjangoModelFactory):
    """A queued export (a done one would need its files under MEDIA_ROOT/exports/<id>/)."""

    class Meta:
        model = Export

    project = factory.SubFactory(ProjectFactory)
    created_by = factory.SubFactory(UserFactory)
    kind = "preference"
    format = "jsonl"
    options = factory.LazyAttribute(lambda e: ExportOptions(kind=e.kind, format=e.format).as_dict())
    status = Export.Status.QUEUED


# --- scoring: runs ------------------------------------------------------------------------


class RunFactory(factory.django.DjangoModelFactory):
    """A queued per-criterion run on an endpoint of its project, with the template version
    and judge hash that planning records for that endpoint."""

    class Meta:
        model = Run

    project = factory.SubFactory(ProjectFactory)
    endpoint = factory.SubFactory(JudgeEndpointFactory, project=factory.SelfAttribute("..project"))
    created_by = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Run {n}")
    mode = Run.Mode.PER_CRITERION
    status = Run.Status.QUEUED
    temperature = None
    model = factory.LazyAttribute(lambda r: r.endpoint.model if r.endpoint else "")
    template_version = factory.LazyAttribute(
        lambda r: planning.template_version(r.endpoint, r.mode) if r.endpoint else ""
    )
    judge_hash = factory.LazyAttribute(
        lambda r: planning.judge_hash(r.endpoint, r.temperature) if r.endpoint else ""
    )


class RunInsightsFactory(factory.django.DjangoModelFactory):
    """A finished run's stored analytics (figures as the worker writes them, abridged)."""

    class Meta:
        model = RunInsights

    run = factory.SubFactory(RunFactory, status=Run.Status.DONE)
    figures = factory.LazyAttribute(
        lambda i: {"run": i.run.pk, "mode": i.run.mode, "criteria": [], "redundant": []}
    )


class RunChunkFactory(factory.django.DjangoModelFactory):
    """A chunk of one per-criterion unit: a response of the run's project on one criterion."""

    class Meta:
        model = RunChunk

    class Params:
        response = factory.SubFactory(
            ResponseFactory, prompt__project=factory.SelfAttribute("...run.project")
        )

    run = factory.SubFactory(RunFactory)
    index = factory.LazyAttribute(lambda c: _next_number(c, "run", "chunks", "index", 0))
    status = RunChunk.Status.QUEUED
    units = factory.LazyAttribute(
        lambda c: [
            {
                "r": c.response.pk,
                "s": 0,
                "crit": [
                    {
                        "key": str(uuid.uuid4()),
                        "text": "Is correct",
                        "points": 5.0,
                        "category": "",
                        "tags": [],
                    }
                ],
                "k": _sha256(f"unit {c.run.pk} {c.response.pk}"),
            }
        ]
    )


class JudgmentFactory(factory.django.DjangoModelFactory):
    """A per-criterion verdict "met" on a response, made by a run of the response's project
    (the run's mode, model and template version)."""

    class Meta:
        model = Judgment

    response = factory.SubFactory(ResponseFactory)
    created_by_run = factory.SubFactory(
        RunFactory, project=factory.SelfAttribute("..response.prompt.project")
    )
    key = factory.Sequence(lambda n: _sha256(f"judgment {n}"))
    mode = factory.LazyAttribute(
        lambda j: j.created_by_run.mode if j.created_by_run else Run.Mode.PER_CRITERION
    )
    other = None
    criterion_key = factory.LazyFunction(uuid.uuid4)
    sample = 0
    model = factory.LazyAttribute(
        lambda j: j.created_by_run.model if j.created_by_run else "gpt-4o-mini"
    )
    template_version = factory.LazyAttribute(
        lambda j: (
            j.created_by_run.template_version
            if j.created_by_run
            else judging.TEMPLATE_VERSIONS["criterion"]
        )
    )
    met = True
    explanation = "The response states it."
    calls = 1
    prompt_tokens = 250
    completion_tokens = 40
    latency = 0.8


class RunJudgmentFactory(factory.django.DjangoModelFactory):
    """A judgment the run itself made, on a response of the run's project."""

    class Meta:
        model = RunJudgment

    run = factory.SubFactory(RunFactory)
    judgment = factory.SubFactory(
        JudgmentFactory,
        created_by_run=factory.SelfAttribute("..run"),
        response__prompt__project=factory.SelfAttribute("....run.project"),
    )
    reused = False


class ProbeFactory(factory.django.DjangoModelFactory):
    """A judge probe of one response, padded, on a run of its project, not judged yet."""

    class Meta:
        model = Probe

    project = factory.SubFactory(ProjectFactory)
    run = factory.SubFactory(RunFactory, project=factory.SelfAttribute("..project"))
    kinds = factory.LazyFunction(lambda: ["padding"])
    sample = 1
    seed = 0
    phase = Probe.Phase.JUDGING


class ProbeVariantFactory(factory.django.DjangoModelFactory):
    """A padded copy of a response of the probe's project, stored as a ``probe:padding``
    response of the same prompt."""

    class Meta:
        model = ProbeVariant

    probe = factory.SubFactory(ProbeFactory)
    original = factory.SubFactory(
        ResponseFactory, prompt__project=factory.SelfAttribute("...probe.project")
    )
    variant = factory.SubFactory(
        ResponseFactory,
        prompt=factory.SelfAttribute("..original.prompt"),
        source="probe:padding",
        content=factory.LazyAttribute(
            lambda r: f"{r.factory_parent.original.content} That matters."
        ),
    )
    kind = "padding"


class ProjectCountsFactory(factory.django.DjangoModelFactory):
    """A large project's counts as a worker stored them."""

    class Meta:
        model = ProjectCounts

    project = factory.SubFactory(ProjectFactory)
    counts = factory.LazyFunction(
        lambda: {"prompts": 100_000, "responses": 500_000, "rubrics": 20_000, "runs": 3}
    )
    counted_at = factory.LazyFunction(timezone.now)


class AgreementSnapshotFactory(factory.django.DjangoModelFactory):
    """An agreement report of every queue of a project, as the worker rendered it."""

    class Meta:
        model = AgreementSnapshot

    project = factory.SubFactory(ProjectFactory)
    scope = 0
    html = "<section id='agreement-report'><p>No reviews yet.</p></section>"
    n_reviews = 0
    computed_at = factory.LazyFunction(timezone.now)


class RunSummaryFactory(factory.django.DjangoModelFactory):
    """A finished run's stored page figures, stamped with the run's state."""

    class Meta:
        model = RunSummary

    run = factory.SubFactory(RunFactory, status=Run.Status.DONE)
    stamp = factory.LazyAttribute(lambda s: run_stamp(s.run))
    figures = factory.LazyAttribute(
        lambda s: {"run": s.run.pk, "sources": [], "responses": [], "failures": []}
    )
    seconds = 0.5
