"""A whole project as one JSON Lines file that restores losslessly into another database,
and whose backup after a restore is byte-identical to the one restored.

The file::

    {"counts": {...}, "excluded": {...}, "format": "rubricstudio-project-backup",
     "project": "alpha", "sha256": "<of every line after this one>", "studio_version": "0.1.0",
     "version": 1}
    {"fields": {...}, "model": "auth.User", "ref": "user:alice"}
    {"fields": {...}, "model": "annotation.Project", "ref": "project"}
    ...

One record a line, models in ``SPECS`` order (a record only names records above it, except
the three links filled in at the end: a rubric's current and approved versions, a version's
parent), records of a model sorted by reference; JSON with sorted keys and compact
separators, ASCII only, floats as Python's shortest exact repr, timestamps in ISO 8601 UTC.

No database id is written anywhere. A record's ``ref`` is its stable name, and a foreign key
holds the ref of the record it points to: users by username, prompts by external id,
responses by (prompt, source, content hash), rubric versions by (rubric, number), criteria
by (version, key), judgments by their key, and rows without a natural key by their ordinal
in order of creation (``run:3``). Ids hidden inside JSON and integer fields (a run's prompt
ids, a chunk's units, a pairwise judgment's pair, a queue's source run, a co-authoring
job's prompts and labels, audit targets…) are written as refs as well, and an id whose row
is gone is written as null (``"(not in backup)"`` for an audit target).

Not backed up: embeddings (derived from texts, recomputed on demand), export snapshots
(files on disk; make them again), API tokens and passwords (credentials: a restored user
who did not exist gets an unusable password), and ``Prompt.search_text`` and
``Response.content_hash`` (derived, recomputed on restore; the hash is part of a response's
ref, so the restore checks it).

Judgment keys are kept as they are. They hash the response's database id (see
``scoring.runs.services.plan_units``), so a restore into the database the backup came from
while its project is still there is refused (the keys are unique); and in another database
a re-run of a restored project judges afresh instead of reusing the restored judgments.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F
from django.db.models.functions import Collate

from annotation.errors import ApplicationError
from annotation.projects.models import AuditEvent, Membership, Project
from annotation.projects.services import audit
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
from scoring.datasets.models import Export
from scoring.judges.models import JudgeEndpoint
from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment

FORMAT = "rubricstudio-project-backup"
FORMAT_VERSION = 1
STUDIO_VERSION = "0.1.0"  # when the package is not installed (pyproject.toml's version)
EXCLUDED = {
    "scoring.Embedding": "derived from texts; recomputed on demand",
    "scoring.Export": "snapshot files on disk; export again",
    "annotation.ImportJob": "a record of uploads being imported; the data they wrote is backed up",
    "authtoken.Token": "a credential",
    "auth.User.password": "a credential; users created on restore get an unusable password",
    "scoring.LLMProvider": "the site's, with its key: restored endpoints have no provider and "
    "send no key",
}
GONE = "(not in backup)"  # an audit target whose row is not part of the backup
BATCH = 1000
SPOOL_BYTES = 32 * 1024 * 1024

User = get_user_model()
USER_LABEL = "auth.User"
USER_FIELDS = ("email", "first_name", "last_name", "username")


class BackupError(ApplicationError):
    """A backup that cannot be made, or a file that cannot be restored. Nothing changed."""


def studio_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rubricstudio")
    except PackageNotFoundError:
        return STUDIO_VERSION


# --- references -----------------------------------------------------------------------------


def _q(value: object) -> str:
    """One component of a ref: percent-encoded, so "/" and ":" only ever separate."""
    return quote(str(value), safe="")


def _tail(ref: str) -> str:
    return ref.split(":", 1)[1]


_DIGITS = re.compile(r"(\d+)")


def natural(ref: str) -> tuple[Any, ...]:
    """Sort order of refs: digit runs as numbers (``run:2`` before ``run:10``), then the
    ref itself as a tie-break (``a07`` and ``a7``)."""
    parts = _DIGITS.split(ref)
    return (tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), ref)


Fields = dict[str, Any]


def _user_ref(f: Fields, _: int) -> str:
    return f"user:{_q(f['username'])}"


# --- ids inside JSON and integer fields -------------------------------------------------------


class _Out:
    """Backup side: database ids to refs."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.refs: dict[type[models.Model], dict[int, str]] = {Project: {project.pk: "project"}}
        self.users: dict[int, str] = {}

    def ref(self, model: type[models.Model], pk: int, where: str) -> str:
        if model is User:
            return self.user(pk)
        found = self.refs.get(model, {}).get(pk)
        if found is None:
            raise BackupError(
                f"{where} points to {model._meta.label} {pk}, which is not part of project "
                f"“{self.project.slug}”: the backup would not restore."
            )
        return found

    def ref_or_none(self, model: type[models.Model], pk: object) -> str | None:
        """An id kept inside a JSON or integer field: its ref, or None when its row is gone."""
        if not isinstance(pk, int) or isinstance(pk, bool):
            return None
        return self.refs.get(model, {}).get(pk)

    def user(self, pk: int) -> str:
        if pk not in self.users:
            username = User.objects.filter(pk=pk).values_list("username", flat=True).first()
            if username is None:
                raise BackupError(f"User {pk} does not exist.")
            self.users[pk] = username
        return f"user:{_q(self.users[pk])}"


Resolve = Callable[[type[models.Model], object], int]


def _ids_out(model: type[models.Model]) -> Callable[[Any, Any, _Out], Any]:
    def out(value: Any, obj: Any, ctx: _Out) -> Any:
        if not isinstance(value, list):
            return value
        return [ctx.ref_or_none(model, pk) for pk in value]

    return out


def _ids_in(model: type[models.Model]) -> Callable[[Any, Fields, Resolve], Any]:
    def into(value: Any, fields: Fields, resolve: Resolve) -> Any:
        if not isinstance(value, list):
            return value
        return [None if ref is None else resolve(model, ref) for ref in value]

    return into


def _keys_out(mapping: dict[str, type[models.Model]]) -> Callable[[Any, Any, _Out], Any]:
    """A JSON object some of whose keys hold an id or a list of ids."""

    def out(value: Any, obj: Any, ctx: _Out) -> Any:
        if not isinstance(value, dict):
            return value
        value = dict(value)
        for key, model in mapping.items():
            if key in value:
                found = value[key]
                value[key] = (
                    [ctx.ref_or_none(model, pk) for pk in found]
                    if isinstance(found, list)
                    else ctx.ref_or_none(model, found)
                )
        return value

    return out


def _keys_in(mapping: dict[str, type[models.Model]]) -> Callable[[Any, Fields, Resolve], Any]:
    def into(value: Any, fields: Fields, resolve: Resolve) -> Any:
        if not isinstance(value, dict):
            return value
        value = dict(value)
        for key, model in mapping.items():
            if key in value:
                found = value[key]
                value[key] = (
                    [None if ref is None else resolve(model, ref) for ref in found]
                    if isinstance(found, list)
                    else None
                    if found is None
                    else resolve(model, found)
                )
        return value

    return into


def _one_out(model: type[models.Model]) -> Callable[[Any, Any, _Out], Any]:
    return lambda value, obj, ctx: ctx.ref_or_none(model, value)


def _one_in(model: type[models.Model]) -> Callable[[Any, Fields, Resolve], Any]:
    return lambda value, fields, resolve: None if value is None else resolve(model, value)


_UNIT = {"r": Response, "o": Response, "pair": Response}


def _units_out(value: Any, obj: Any, ctx: _Out) -> Any:
    """A chunk's units: response ids ``r``, ``o`` and ``pair``; each criterion's source
    ``version`` (see ``scoring.runs.services.plan_units``)."""
    if not isinstance(value, list):
        return value
    out = []
    for unit in value:
        unit = _keys_out(_UNIT)(unit, obj, ctx)
        if isinstance(unit, dict) and isinstance(unit.get("crit"), list):
            unit["crit"] = [
                _keys_out({"version": RubricVersion})(c, obj, ctx) for c in unit["crit"]
            ]
        out.append(unit)
    return out


def _units_in(value: Any, fields: Fields, resolve: Resolve) -> Any:
    if not isinstance(value, list):
        return value
    out = []
    for unit in value:
        unit = _keys_in(_UNIT)(unit, fields, resolve)
        if isinstance(unit, dict) and isinstance(unit.get("crit"), list):
            unit["crit"] = [
                _keys_in({"version": RubricVersion})(c, fields, resolve) for c in unit["crit"]
            ]
        out.append(unit)
    return out


# An audit event's target is the id of a row for these actions (first match wins), and
# some keep ids in their data (see the ``audit(...)`` calls in the services).
_AUDIT_TARGETS: tuple[tuple[str, type[models.Model]], ...] = (
    ("review.undo", ReviewSlot),
    ("review_item.", ReviewItem),
    ("review_queue.", ReviewQueue),
    ("rubric.", Rubric),
    ("run.", Run),
    ("coauthor.settings", Project),
    ("coauthor.", CoauthorJob),
    ("proposal.", Proposal),
    ("endpoint.", JudgeEndpoint),
    ("export.", Export),
)
_AUDIT_DATA: dict[str, dict[str, type[models.Model]]] = {
    "rubric.comment": {"comment": CriterionComment},
    "rubric.comment_resolve": {"comment": CriterionComment},
    "rubric.comment_reopen": {"comment": CriterionComment},
    "review.undo": {"item": ReviewItem},
}


def _audit_model(action: str) -> type[models.Model] | None:
    return next((m for prefix, m in _AUDIT_TARGETS if action.startswith(prefix)), None)


def _target_out(value: Any, obj: AuditEvent, ctx: _Out) -> Any:
    model = _audit_model(obj.action)
    if model is None or not value.isdigit():
        return value
    ref = ctx.ref_or_none(model, int(value))
    return {"ref": ref} if ref else GONE


def _target_in(value: Any, fields: Fields, resolve: Resolve) -> Any:
    if not isinstance(value, dict):
        return value
    model = _audit_model(str(fields.get("action", "")))
    if model is None or set(value) != {"ref"}:
        raise BackupError(f"an audit target {value!r} for action {fields.get('action')!r}")
    return str(resolve(model, value["ref"]))


def _data_out(value: Any, obj: AuditEvent, ctx: _Out) -> Any:
    return _keys_out(_AUDIT_DATA.get(obj.action, {}))(value, obj, ctx)


def _data_in(value: Any, fields: Fields, resolve: Resolve) -> Any:
    return _keys_in(_AUDIT_DATA.get(str(fields.get("action", "")), {}))(value, fields, resolve)


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


def _is_project_link(f: models.Field[Any, Any], spec: Spec) -> bool:
    return f.is_relation and f.related_model is Project and spec.model is not Project


# --- writing ------------------------------------------------------------------------------------


def _dump(record: dict[str, Any]) -> bytes:
    return (
        json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"
    ).encode("ascii")


def _plain(f: models.Field[Any, Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        raise BackupError(f"{f.model._meta.label}.{f.name}: binary fields are not backed up.")
    return value


def _serialize(spec: Spec, obj: Any, ctx: _Out) -> Fields:
    fields: Fields = {}
    for f in _fields(spec):
        if _is_project_link(f, spec):
            continue
        if f.name in spec.fk_out:
            fields[f.name] = spec.fk_out[f.name](obj)
        elif f.is_relation:
            pk = getattr(obj, f.attname)
            where = f"{spec.label} {obj.pk} ({f.name})"
            fields[f.name] = None if pk is None else ctx.ref(f.related_model, pk, where)
        elif f.name in spec.out:
            fields[f.name] = spec.out[f.name](getattr(obj, f.attname), obj, ctx)
        else:
            fields[f.name] = _plain(f, getattr(obj, f.attname))
    return fields


def _records(spec: Spec, project: Project, ctx: _Out) -> Iterator[tuple[str, Fields]]:
    """The model's records in file order."""
    rows = spec.rows(project)
    if spec.stream:
        last = None
        for obj in rows.iterator(chunk_size=2000):
            fields = _serialize(spec, obj, ctx)
            ref = spec.ref(fields, 0)
            key = spec.sort_key(ref, fields)
            if last is not None and key <= last:
                raise BackupError(f"{spec.label}: the database returned {ref} out of order.")
            last = key
            yield ref, fields
        return
    found = []
    memo = ctx.refs.setdefault(spec.model, {})
    primed = dict(memo) if spec.prime else None
    for n, obj in enumerate(rows.order_by("pk"), start=1):
        fields = _serialize(spec, obj, ctx)
        ref = spec.ref(fields, n)
        if primed is not None and primed.get(obj.pk) != ref:
            raise BackupError(f"{spec.label} {obj.pk}: primed as {primed.get(obj.pk)}, is {ref}.")
        if spec.remember:
            memo[obj.pk] = ref
        found.append((spec.sort_key(ref, fields), ref, fields))
    found.sort(key=lambda t: t[0])
    for i in range(1, len(found)):
        if found[i][0] == found[i - 1][0]:
            raise BackupError(f"{spec.label}: two records named {found[i][1]}.")
    yield from ((ref, fields) for _, ref, fields in found)


@dataclass(frozen=True)
class BackupSummary:
    slug: str
    counts: dict[str, int]
    sha256: str
    bytes: int


@contextmanager
def _snapshot() -> Iterator[None]:
    """One consistent view of the project: on PostgreSQL a repeatable-read transaction
    (when this is the outermost one); on SQLite the settings' IMMEDIATE transactions, which
    hold writers off until the backup is written (a second or so for the HealthBench
    sample)."""
    with transaction.atomic():
        if connection.vendor == "postgresql" and connection.savepoint_ids == []:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def backup_project(project: Project, out: IO[bytes] | str | os.PathLike[str]) -> BackupSummary:
    """Write ``project`` to ``out`` (a binary file, or a path to create). Read-only; the
    same data gives the same bytes."""
    counts = dict.fromkeys(ORDER, 0)
    ctx = _Out(project)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as rest, _snapshot():
        for spec in SPECS:
            if spec.prime:
                ctx.refs[spec.model] = spec.prime(project, ctx)
        for spec in SPECS:
            for ref, fields in _records(spec, project, ctx):
                rest.write(_dump({"model": spec.label, "ref": ref, "fields": fields}))
                counts[spec.label] += 1
        people = User.objects.filter(pk__in=ctx.users).order_by("pk")
        users = sorted(
            ({name: getattr(u, name) for name in USER_FIELDS} for u in people),
            key=lambda f: natural(_user_ref(f, 0)),
        )
        head = b"".join(
            _dump({"model": USER_LABEL, "ref": _user_ref(f, 0), "fields": f}) for f in users
        )
        counts[USER_LABEL] = len(users)
        digest = hashlib.sha256(head)
        rest.seek(0)
        for block in iter(lambda: rest.read(1 << 20), b""):
            digest.update(block)
        header = _dump(
            {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "studio_version": studio_version(),
                "project": project.slug,
                "counts": counts,
                "excluded": EXCLUDED,
                "sha256": digest.hexdigest(),
            }
        )
        size = len(header) + len(head) + rest.tell()
        rest.seek(0)
        with _sink(out) as sink:
            sink.write(header)
            sink.write(head)
            shutil.copyfileobj(rest, sink, 1 << 20)
    return BackupSummary(project.slug, counts, digest.hexdigest(), size)


@contextmanager
def _sink(out: IO[bytes] | str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    if isinstance(out, str | os.PathLike):
        path = Path(out)
        partial = path.with_name(path.name + ".partial")
        with partial.open("wb") as f:
            yield f
        partial.replace(path)
    else:
        yield out


# --- reading ------------------------------------------------------------------------------------


@contextmanager
def _source(file: IO[bytes] | str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """The backup as a seekable binary file (a stream is copied to a temporary file)."""
    if isinstance(file, str | os.PathLike):
        with Path(file).open("rb") as f:
            yield f
    else:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as copy:
            shutil.copyfileobj(file, copy, 1 << 20)
            copy.seek(0)
            yield copy  # type: ignore[misc]


def _header(f: IO[bytes]) -> dict[str, Any]:
    line = f.readline()
    try:
        header = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupError("line 1: this is not a RubricStudio project backup.")
    if header.get("version") != FORMAT_VERSION:
        raise BackupError(
            f"line 1: backup format version {header.get('version')!r} is not supported "
            f"(this studio reads version {FORMAT_VERSION})."
        )
    for key, kind in (("project", str), ("sha256", str), ("counts", dict)):
        if not isinstance(header.get(key), kind):
            raise BackupError(f"line 1: the header has no valid “{key}”.")
    return header


def _check_digest(f: IO[bytes], header: dict[str, Any]) -> int:
    """Lines in the file; the body must hash to the header's sha256."""
    digest, lines, last = hashlib.sha256(), 1, b"\n"
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
        lines += block.count(b"\n")
        last = block[-1:]
    if digest.hexdigest() != header["sha256"]:
        raise BackupError(
            f"The file is corrupted: lines 2–{lines} do not match the sha256 in its header "
            "(line 1). Nothing was restored."
        )
    if last != b"\n":
        raise BackupError(f"line {lines + 1}: the last line is incomplete.")
    return lines


class _In:
    """Restore side: refs to the new database ids."""

    def __init__(self) -> None:
        self.pks: dict[str, dict[str, int]] = {label: {} for label in ORDER}
        self.line = 0

    def resolve(self, model: type[models.Model], ref: object) -> int:
        label = USER_LABEL if model is User else model._meta.label
        if not isinstance(ref, str):
            raise BackupError(f"line {self.line}: {ref!r} is not a reference to {label}.")
        pk = self.pks.get(label, {}).get(ref)
        if pk is None:
            raise BackupError(
                f"line {self.line}: “{ref}” names no {label} above it in the backup "
                "(a dangling reference)."
            )
        return pk


@dataclass
class _Pending:
    spec: Spec
    items: list[tuple[int, str, Any, dict[str, Any]]] = field(default_factory=list)


def restore_project(
    file: IO[bytes] | str | os.PathLike[str], *, slug: str | None = None, users: str = "create"
) -> Project:
    """Restore a backup as a new project, all or nothing, into a database that may hold
    other projects (not one with the same slug). ``users``: "create" makes the users it
    names that do not exist (with unusable passwords), "require" refuses if any is
    missing. Bad input raises ``BackupError`` naming the line; nothing is changed."""
    if users not in ("create", "require"):
        raise BackupError("users is “create” or “require”.")
    with _source(file) as f:
        header = _header(f)
        body_start = f.tell()
        _check_digest(f, header)
        slug = slug or header["project"]
        try:
            validate_slug(slug)
        except ValidationError as exc:
            raise BackupError(f"“{slug}” is not a valid project slug.") from exc
        f.seek(body_start)
        with transaction.atomic():
            if Project.objects.filter(slug=slug).exists():
                raise BackupError(f"A project “{slug}” already exists: restore under another slug.")
            project = _Restorer(slug, users, header).run(f)
            audit(
                project=None, actor=None, action="project.restore", target=slug,
                sha256=header["sha256"], source=header["project"],
            )  # fmt: skip
    return project


class _Restorer:
    def __init__(self, slug: str, users: str, header: dict[str, Any]) -> None:
        self.slug, self.users, self.header = slug, users, header
        self.ctx = _In()
        self.project: Project | None = None
        self.counts = dict.fromkeys(ORDER, 0)
        self.deferred: list[tuple[Spec, Any, str, object, int]] = []
        self.pending: _Pending | None = None
        self.position = 0
        self.last_ordinal = 0

    def run(self, f: Iterable[bytes]) -> Project:
        for n, raw in enumerate(f, start=2):
            self.ctx.line = n
            label, ref, fields = self._parse(raw)
            self._admit(label)
            self.counts[label] += 1
            if label == USER_LABEL:
                self._user(ref, fields)
            elif label == "annotation.Project":
                self._project(ref, fields)
            else:
                self._record(BY_LABEL[label], ref, fields)
        self._flush()
        if self.project is None:
            raise BackupError("The backup holds no project record.")
        self._links()
        for label in sorted(set(self.header["counts"]) | set(self.counts)):
            expected, found = self.header["counts"].get(label, 0), self.counts.get(label, 0)
            if expected != found:
                raise BackupError(
                    f"line 1: the header counts {expected} {label} records, the file holds {found}."
                )
        return self.project

    def _parse(self, raw: bytes) -> tuple[str, str, Fields]:
        line = self.ctx.line
        try:
            record = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BackupError(f"line {line}: not a JSON record ({exc}).") from exc
        if not isinstance(record, dict) or set(record) != {"model", "ref", "fields"}:
            raise BackupError(f"line {line}: a record has exactly “model”, “ref” and “fields”.")
        label, ref, fields = record["model"], record["ref"], record["fields"]
        if label not in ORDER:
            raise BackupError(f"line {line}: unknown model “{label}”.")
        if not isinstance(ref, str) or not isinstance(fields, dict):
            raise BackupError(f"line {line}: “ref” is a string and “fields” an object.")
        return label, ref, fields

    def _admit(self, label: str) -> None:
        position = ORDER.index(label)
        if position < self.position:
            raise BackupError(
                f"line {self.ctx.line}: a {label} record after {ORDER[self.position]} records "
                "(records are in model order)."
            )
        if position > self.position:
            self._flush()
            self.position, self.last_ordinal = position, 0
        if position > ORDER.index("annotation.Project") and self.project is None:
            raise BackupError(f"line {self.ctx.line}: a {label} record before the project.")

    def _user(self, ref: str, fields: Fields) -> None:
        line = self.ctx.line
        if set(fields) - set(USER_FIELDS) or not isinstance(fields.get("username"), str):
            raise BackupError(f"line {line}: a user has a username, email and names only.")
        if ref != _user_ref(fields, 0):
            raise BackupError(f"line {line}: “{ref}” does not match the user's username.")
        user = User.objects.filter(username=fields["username"]).first()
        if user is None:
            if self.users == "require":
                raise BackupError(
                    f"line {line}: no user “{fields['username']}” in this database "
                    "(create it, or restore with users=create)."
                )
            user = User.objects.create_user(
                username=fields["username"],
                email=fields.get("email", ""),
                password=None,
                first_name=fields.get("first_name", ""),
                last_name=fields.get("last_name", ""),
            )
        self.ctx.pks[USER_LABEL][ref] = user.pk

    def _project(self, ref: str, fields: Fields) -> None:
        spec = BY_LABEL["annotation.Project"]
        if self.project is not None or ref != "project":
            raise BackupError(f"line {self.ctx.line}: a backup holds one project, “project”.")
        obj = self._build(spec, ref, fields, None)
        obj.slug = self.slug
        obj.save()
        self._stamp(spec, [(obj, fields)])
        self.project = obj
        self.ctx.pks[spec.label][ref] = obj.pk

    def _record(self, spec: Spec, ref: str, fields: Fields) -> None:
        ordinal = None
        if spec.ordinal:
            prefix, _, number = ref.partition(":")
            if not number.isdigit() or int(number) <= self.last_ordinal:
                raise BackupError(
                    f"line {self.ctx.line}: “{ref}” is not the next {spec.label} in order of "
                    "creation."
                )
            ordinal = self.last_ordinal = int(number)
        obj = self._build(spec, ref, fields, ordinal)
        if self.pending is None:
            self.pending = _Pending(spec)
        self.pending.items.append((self.ctx.line, ref, obj, fields))
        if len(self.pending.items) >= BATCH:
            self._flush()

    def _build(self, spec: Spec, ref: str, fields: Fields, ordinal: int | None) -> Any:
        line = self.ctx.line
        known = {f.name: f for f in _fields(spec) if not _is_project_link(f, spec)}
        unknown = set(fields) - set(known) - set(spec.legacy)
        if unknown:
            raise BackupError(f"line {line}: {spec.label} has no field {sorted(unknown)[0]!r}.")
        try:
            expected = spec.ref(fields, ordinal or 0)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise BackupError(f"line {line}: {spec.label} needs the field {exc}.") from exc
        if expected != ref:
            raise BackupError(f"line {line}: “{ref}” does not match its fields ({expected}).")
        obj = spec.model()
        for name, f in known.items():
            if name not in fields or name in spec.deferred:
                if name in spec.deferred and fields.get(name) is not None:
                    self.deferred.append((spec, obj, name, fields[name], line))
                continue
            value = fields[name]
            try:
                if f.is_relation:
                    value = None if value is None else self.ctx.resolve(f.related_model, value)
                elif name in spec.into:
                    value = spec.into[name](value, fields, self.ctx.resolve)
                else:
                    value = f.to_python(value)
            except ValidationError as exc:
                raise BackupError(f"line {line}: {spec.label}.{name}: {exc.messages[0]}") from exc
            except BackupError as exc:
                if exc.message.startswith("line "):
                    raise
                raise BackupError(f"line {line}: {spec.label}.{name}: {exc.message}") from exc
            setattr(obj, f.attname, value)
        if spec.model is not Project:
            for f in spec.model._meta.concrete_fields:
                if _is_project_link(f, spec):
                    setattr(obj, f.attname, self.project.pk)  # type: ignore[union-attr]
        if spec.prepare:
            try:
                spec.prepare(obj)
            except (AttributeError, TypeError) as exc:
                raise BackupError(f"line {line}: {spec.label}: malformed fields ({exc}).") from exc
        return obj

    def _flush(self) -> None:
        pending, self.pending = self.pending, None
        if pending is None or not pending.items:
            return
        spec = pending.spec
        objs = [obj for _, _, obj, _ in pending.items]
        first, last = pending.items[0][0], pending.items[-1][0]
        if spec.model is Judgment:
            self._free_keys(pending)
        try:
            with transaction.atomic():
                spec.model.objects.bulk_create(objs)
        except IntegrityError as exc:
            raise BackupError(
                f"lines {first}–{last}: the database refused these {spec.label} records ({exc})."
            ) from exc
        self._stamp(spec, [(obj, fields) for _, _, obj, fields in pending.items])
        memo = self.ctx.pks[spec.label]
        for line, ref, obj, _ in pending.items:
            if ref in memo:
                raise BackupError(f"line {line}: a second record named “{ref}”.")
            memo[ref] = obj.pk

    def _free_keys(self, pending: _Pending) -> None:
        keys = {obj.key: line for line, _, obj, _ in pending.items}
        taken = (
            Judgment.objects.filter(key__in=list(keys))
            .values_list("key", "response__prompt__project__slug")
            .first()
        )
        if taken is not None:
            key, owner = taken
            raise BackupError(
                f"line {keys[key]}: judgment {key[:12]}… already exists in this database, in "
                f"project “{owner}”. Judgment keys hash the database ids of the responses they "
                "judge, so a project's judgments restore only into a database that does not "
                f"hold them: delete “{owner}” first, or restore into another database."
            )

    def _stamp(self, spec: Spec, rows: list[tuple[Any, Fields]]) -> None:
        """auto_now and auto_now_add fields take the backup's values (creation set them
        to now)."""
        stamped = [
            f
            for f in _fields(spec)
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
        ]
        if not stamped:
            return
        names = [f.name for f in stamped if all(f.name in fields for _, fields in rows)]
        for obj, fields in rows:
            for name in names:
                setattr(obj, name, spec.model._meta.get_field(name).to_python(fields[name]))
        if names:
            spec.model.objects.bulk_update([obj for obj, _ in rows], names, batch_size=500)

    def _links(self) -> None:
        """The links written ahead of the records they name."""
        updates: dict[tuple[str, str], list[Any]] = {}
        for spec, created, name, ref, line in self.deferred:
            self.ctx.line = line
            target = spec.model._meta.get_field(name).related_model
            obj = spec.model(pk=created.pk)
            setattr(obj, f"{name}_id", self.ctx.resolve(target, ref))
            updates.setdefault((spec.label, name), []).append(obj)
        for (label, name), objs in updates.items():
            BY_LABEL[label].model.objects.bulk_update(objs, [name], batch_size=500)
