"""The vocabulary of a project backup: its format name and version, what it leaves out,
the error it raises, and the references that stand in for database ids. A record's ref is
its stable name; the helpers here turn the ids kept inside JSON and integer fields (a run's
prompts, a chunk's units, an audit event's target…) into refs when a project is backed up,
and back into the new database's ids when it is restored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from django.contrib.auth import get_user_model
from django.db import models

from annotation.errors import ApplicationError
from annotation.projects.models import AuditEvent, Project
from annotation.prompts.models import Response
from annotation.reviews.models import ReviewItem, ReviewQueue, ReviewSlot
from annotation.rubrics.models import CriterionComment, Rubric, RubricVersion
from scoring.coauthoring.models import CoauthorJob, Proposal
from scoring.datasets.models import Export
from scoring.judges.models import JudgeEndpoint
from scoring.runs.models import Run

FORMAT = "rubricstudio-project-backup"
FORMAT_VERSION = 1
STUDIO_VERSION = "0.1.0"  # when the package is not installed (pyproject.toml's version)
EXCLUDED = {
    "scoring.Embedding": "derived from texts; recomputed on demand",
    "scoring.EmbeddingModelStatus": "what a worker last found when loading the model; found again",
    "scoring.RunInsights": "derived from a run's judgments; computed again when asked",
    "scoring.RunSummary": "derived from a run's judgments; computed again when its page asks",
    "annotation.ProjectCounts": "counts of a large project's rows; counted again",
    "annotation.AgreementSnapshot": "a stored agreement report; computed again",
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


def _keys_out(mapping: Mapping[str, type[models.Model]]) -> Callable[[Any, Any, _Out], Any]:
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


def _keys_in(mapping: Mapping[str, type[models.Model]]) -> Callable[[Any, Fields, Resolve], Any]:
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
    ``version`` (see ``scoring.runs.planning.plan_units``)."""
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
