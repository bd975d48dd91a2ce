"""What a project backup holds, model by model: each model's ``Spec`` (which rows are the
project's, how a record is named, which fields are left out, set late or converted), in the
order records are written, and the fields a record of each model carries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, models
from django.db.models import F
from django.db.models.functions import Collate

from annotation.projects.models import AuditEvent, Membership, Project
from annotation.prompts.models import PreferenceLabel, Prompt, Response, content_hash
from annotation.reviews.models import PairwiseReview, ReviewItem, ReviewQueue, ReviewSlot
from annotation.rubrics.models import (
    Criterion,
    CriterionComment,
    Rubric,
    RubricDraft,
    RubricReviewDecision,
    RubricVersion,
)
from scoring.coauthoring.models import CoauthorJob, CoauthorSettings, Proposal
from scoring.datasets.backup.refs import (
    USER_LABEL,
    Fields,
    Resolve,
    _data_in,
    _data_out,
    _ids_in,
    _ids_out,
    _keys_in,
    _keys_out,
    _one_in,
    _one_out,
    _Out,
    _q,
    _tail,
    _target_in,
    _target_out,
    _units_in,
    _units_out,
    natural,
)
from scoring.judges.models import JudgeEndpoint
from scoring.probes.models import Probe, ProbeVariant
from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment

# --- what is backed up, model by model ----------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """How one model is written and read back.

    ``rows`` selects the project's rows; ``ref`` names a record from its written fields
    (and its ordinal among the project's rows of the model, in order of creation, for
    ``ordinal`` models). ``exclude``: fields not written; ``deferred``: links set after
    every record is in; ``out``/``into``: fields holding ids inside; ``stream``: rows
    written in database order (``order``) as they come, without holding them in memory;
    ``prime``: the refs of every row, known before any record is written, for the deferred
    links that name rows further down (checked against ``ref`` as the rows are written).
    ``legacy``: fields that backups made by earlier versions have, read and ignored.
    """

    model: type[models.Model]
    rows: Callable[[Project], models.QuerySet[Any]]
    ref: Callable[[Fields, int], str]
    ordinal: bool = False
    exclude: tuple[str, ...] = ()
    deferred: tuple[str, ...] = ()
    out: dict[str, Callable[[Any, Any, _Out], Any]] = field(default_factory=dict)
    into: dict[str, Callable[[Any, Fields, Resolve], Any]] = field(default_factory=dict)
    fk_out: dict[str, Callable[[Any], str]] = field(default_factory=dict)
    stream: bool = False
    order: Callable[[str, Fields], Any] | None = None
    remember: bool = True
    prepare: Callable[[Any], None] | None = None
    prime: Callable[[Project, _Out], dict[int, str]] | None = None
    legacy: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.model._meta.label

    def sort_key(self, ref: str, fields: Fields) -> Any:
        return self.order(ref, fields) if self.order else natural(ref)


def _ordinal(prefix: str) -> Callable[[Fields, int], str]:
    return lambda f, n: f"{prefix}:{n}"


def _report_out(value: Any, obj: Any, ctx: _Out) -> Any:
    """A probe report's worst examples name responses by id."""
    return _report_map(value, lambda pk: ctx.ref_or_none(Response, pk))


def _report_in(value: Any, fields: Fields, resolve: Resolve) -> Any:
    return _report_map(value, lambda ref: None if ref is None else resolve(Response, ref))


def _report_map(value: Any, convert: Callable[[Any], Any]) -> Any:
    if not isinstance(value, dict) or not isinstance(value.get("kinds"), list):
        return value
    kinds = []
    for kind in value["kinds"]:
        worst = [
            {**w, "original": convert(w.get("original")), "variant": convert(w.get("variant"))}
            for w in kind.get("worst", [])
        ]
        kinds.append({**kind, "worst": worst})
    return {**value, "kinds": kinds}


def _binary(expression: str) -> Collate | F:
    """Byte order for hex keys, whatever the database's collation."""
    if connection.vendor == "postgresql":
        return Collate(F(expression), "C")
    if connection.vendor == "sqlite":
        return Collate(F(expression), "BINARY")
    return F(expression)


def _search_text(prompt: Prompt) -> None:
    # As Prompt.save (bulk_create does not call it).
    prompt.search_text = "\n".join(str(m.get("content", "")) for m in prompt.messages)


def _hash(response: Response) -> None:
    response.content_hash = content_hash(response.content)


def _rubric_refs(project: Project, ctx: _Out) -> dict[int, str]:
    pks = Rubric.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)
    return {pk: f"rubric:{n}" for n, pk in enumerate(pks, start=1)}


def _version_refs(project: Project, ctx: _Out) -> dict[int, str]:
    rubrics = ctx.refs[Rubric]
    rows = RubricVersion.objects.filter(rubric__project=project)
    return {
        pk: f"version:{_tail(rubrics[rubric])}/{number}"
        for pk, rubric, number in rows.values_list("pk", "rubric_id", "number")
    }


SPECS: tuple[Spec, ...] = (
    Spec(Project, lambda p: Project.objects.filter(pk=p.pk), lambda f, n: "project",
         exclude=("slug",)),
    Spec(Membership, lambda p: Membership.objects.filter(project=p),
         lambda f, n: f"member:{_tail(f['user'])}"),
    Spec(JudgeEndpoint, lambda p: JudgeEndpoint.objects.filter(project=p),
         lambda f, n: f"endpoint:{_q(f['name'])}", exclude=("provider",),
         legacy=("api_key_env",)),
    Spec(CoauthorSettings, lambda p: CoauthorSettings.objects.filter(project=p),
         lambda f, n: "coauthoring"),
    Spec(Prompt, lambda p: Prompt.objects.filter(project=p),
         lambda f, n: f"prompt:{_q(f['external_id'])}", exclude=("search_text",),
         prepare=_search_text),
    Spec(Response, lambda p: Response.objects.filter(prompt__project=p),
         lambda f, n: f"response:{_tail(f['prompt'])}/{_q(f['source'])}/"
                      f"{content_hash(str(f['content']))}",
         exclude=("content_hash",), prepare=_hash),
    Spec(PreferenceLabel, lambda p: PreferenceLabel.objects.filter(prompt__project=p),
         _ordinal("label"), ordinal=True),
    Spec(Rubric, lambda p: Rubric.objects.filter(project=p), _ordinal("rubric"),
         ordinal=True, deferred=("current_version", "approved_version"), prime=_rubric_refs),
    Spec(RubricVersion, lambda p: RubricVersion.objects.filter(rubric__project=p),
         lambda f, n: f"version:{_tail(f['rubric'])}/{f['number']}", deferred=("parent",),
         prime=_version_refs),
    Spec(Criterion, lambda p: Criterion.objects.filter(version__rubric__project=p),
         lambda f, n: f"criterion:{_tail(f['version'])}/{f['key']}"),
    Spec(RubricReviewDecision,
         lambda p: RubricReviewDecision.objects.filter(rubric__project=p),
         _ordinal("decision"), ordinal=True),
    Spec(CriterionComment, lambda p: CriterionComment.objects.filter(rubric__project=p),
         _ordinal("comment"), ordinal=True),
    Spec(RubricDraft, lambda p: RubricDraft.objects.filter(rubric__project=p),
         lambda f, n: f"draft:{_tail(f['rubric'])}/{_tail(f['user'])}"),
    Spec(CoauthorJob, lambda p: CoauthorJob.objects.filter(project=p), _ordinal("job"),
         ordinal=True, out={"params": _keys_out({"prompts": Prompt, "labels": PreferenceLabel})},
         into={"params": _keys_in({"prompts": Prompt, "labels": PreferenceLabel})}),
    Spec(Proposal, lambda p: Proposal.objects.filter(project=p), _ordinal("proposal"),
         ordinal=True, out={"notes": _keys_out({"response_ids": Response})},
         into={"notes": _keys_in({"response_ids": Response})}),
    Spec(Run, lambda p: Run.objects.filter(project=p), _ordinal("run"), ordinal=True,
         out={"prompt_ids": _ids_out(Prompt)}, into={"prompt_ids": _ids_in(Prompt)}),
    Spec(RunChunk, lambda p: RunChunk.objects.filter(run__project=p),
         lambda f, n: f"chunk:{_tail(f['run'])}/{f['index']}",
         out={"units": _units_out}, into={"units": _units_in}),
    Spec(Judgment,
         lambda p: Judgment.objects.filter(response__prompt__project=p).order_by(_binary("key")),
         lambda f, n: f"judgment:{f['key']}", stream=True, remember=False,
         order=lambda ref, f: f["key"],
         out={"detail": _keys_out({"pair": Response})},
         into={"detail": _keys_in({"pair": Response})}),
    Spec(RunJudgment,
         lambda p: RunJudgment.objects.filter(run__project=p)
         .annotate(judgment_key=F("judgment__key"))
         .order_by("run_id", _binary("judgment__key")),
         lambda f, n: f"run_judgment:{_tail(f['run'])}/{_tail(f['judgment'])}",
         stream=True, remember=False,
         order=lambda ref, f: (int(_tail(f["run"])), _tail(f["judgment"])),
         fk_out={"judgment": lambda obj: f"judgment:{obj.judgment_key}"}),
    Spec(Probe, lambda p: Probe.objects.filter(project=p), _ordinal("probe"), ordinal=True,
         out={"report": _report_out}, into={"report": _report_in}),
    Spec(ProbeVariant, lambda p: ProbeVariant.objects.filter(probe__project=p),
         _ordinal("probe_variant"), ordinal=True),
    Spec(ReviewQueue, lambda p: ReviewQueue.objects.filter(project=p), _ordinal("queue"),
         ordinal=True, out={"source_run": _one_out(Run)}, into={"source_run": _one_in(Run)}),
    Spec(ReviewItem, lambda p: ReviewItem.objects.filter(queue__project=p),
         lambda f, n: f"item:{_tail(f['queue'])}/{f['position']}",
         out={"judge": _keys_out({"run": Run})}, into={"judge": _keys_in({"run": Run})}),
    Spec(ReviewSlot, lambda p: ReviewSlot.objects.filter(item__queue__project=p),
         lambda f, n: f"slot:{_tail(f['item'])}/{f['index']}"),
    Spec(PairwiseReview, lambda p: PairwiseReview.objects.filter(item__queue__project=p),
         lambda f, n: f"review:{_tail(f['slot'])}"),
    Spec(AuditEvent, lambda p: AuditEvent.objects.filter(project=p), _ordinal("audit"),
         ordinal=True, out={"target": _target_out, "data": _data_out},
         into={"target": _target_in, "data": _data_in}),
)  # fmt: skip
BY_LABEL = {spec.label: spec for spec in SPECS}
ORDER = [USER_LABEL, *BY_LABEL]


def _fields(spec: Spec) -> list[models.Field[Any, Any]]:
    return [
        f
        for f in spec.model._meta.concrete_fields
        if not f.primary_key and f.name not in spec.exclude
    ]


def _related_model(f: models.Field[Any, Any] | models.ForeignObjectRel) -> type[models.Model]:
    """The model a relation field links to (every concrete relation names one)."""
    model = f.related_model
    assert model is not None, f"{f} is not a relation"
    return model


def _is_project_link(f: models.Field[Any, Any], spec: Spec) -> bool:
    return f.is_relation and f.related_model is Project and spec.model is not Project
