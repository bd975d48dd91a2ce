"""Reading a project backup back into a database: the file's header and checksum checked
first, then every record checked against its model's spec, its references resolved to the
new ids, and the records created in batches, the links named ahead of their records last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction

from annotation.projects.models import Project
from scoring.datasets.backup.refs import (
    BATCH,
    FORMAT,
    FORMAT_VERSION,
    SPOOL_BYTES,
    USER_FIELDS,
    USER_LABEL,
    BackupError,
    Fields,
    User,
    _user_ref,
)
from scoring.datasets.backup.specs import (
    BY_LABEL,
    ORDER,
    Spec,
    _fields,
    _is_project_link,
    _related_model,
)
from scoring.runs.models import Judgment

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
            yield copy


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
                    value = None if value is None else self.ctx.resolve(_related_model(f), value)
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
            project = self.project
            assert project is not None  # `_admit` lets no record come before the project
            for f in spec.model._meta.concrete_fields:
                if _is_project_link(f, spec):
                    setattr(obj, f.attname, project.pk)
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
                spec.model._default_manager.bulk_create(objs)
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
        present = [f for f in stamped if all(f.name in fields for _, fields in rows)]
        for obj, fields in rows:
            for f in present:
                setattr(obj, f.name, f.to_python(fields[f.name]))
        if present:
            names = [f.name for f in present]
            spec.model._default_manager.bulk_update([obj for obj, _ in rows], names, batch_size=500)

    def _links(self) -> None:
        """The links written ahead of the records they name."""
        updates: dict[tuple[str, str], list[Any]] = {}
        for spec, created, name, ref, line in self.deferred:
            self.ctx.line = line
            target = _related_model(spec.model._meta.get_field(name))
            obj = spec.model(pk=created.pk)
            setattr(obj, f"{name}_id", self.ctx.resolve(target, ref))
            updates.setdefault((spec.label, name), []).append(obj)
        for (label, name), objs in updates.items():
            BY_LABEL[label].model._default_manager.bulk_update(objs, [name], batch_size=500)
