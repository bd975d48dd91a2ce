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
``scoring.runs.planning.plan_units``), so a restore into the database the backup came from
while its project is still there is refused (the keys are unique); and in another database
a re-run of a restored project judges afresh instead of reusing the restored judgments.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import IO

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction

from annotation.projects.models import Project
from annotation.projects.services import audit
from scoring.datasets.backup.refs import (
    EXCLUDED,
    FORMAT,
    FORMAT_VERSION,
    SPOOL_BYTES,
    USER_FIELDS,
    USER_LABEL,
    BackupError,
    User,
    _Out,
    _user_ref,
    natural,
    studio_version,
)
from scoring.datasets.backup.restoring import _check_digest, _header, _Restorer, _source
from scoring.datasets.backup.specs import ORDER, SPECS
from scoring.datasets.backup.writing import _dump, _records, _sink, _snapshot


@dataclass(frozen=True)
class BackupSummary:
    slug: str
    counts: dict[str, int]
    sha256: str
    bytes: int


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
