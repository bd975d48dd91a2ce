"""Dataset exports as background jobs: the ``Export`` row, the job that writes its files,
downloads and deletion.

An export is an immutable snapshot. Its files are written once into
``MEDIA_ROOT/exports/<id>/`` and each file's sha256 is recorded; nothing changes them
afterwards (there is no edit: a different export is a new one). The same options over
unchanged data give byte-identical files: nothing that differs between two exports (their
id, the time) goes into the files or the dataset card.

The job is claimed with a status-guarded update, so a redelivered task finds the export
no longer queued and does nothing. A worker that dies mid-export leaves it ``running``;
an owner deletes it and starts another.

pyarrow is imported by ``scoring.datasets.rows`` and ``writers``, which this module imports
only inside ``export_run``: the web process never loads them.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from annotation.errors import ApplicationError, check_text
from annotation.projects.models import Project, Role
from annotation.projects.selectors import role_at_least
from annotation.projects.services import audit
from scoring.datasets import rows, writers
from scoring.datasets.card import export_notes, render_card
from scoring.datasets.kinds.registry import KINDS, export_kind
from scoring.datasets.models import Export
from scoring.datasets.options import DEFAULT_ORIGINS as DEFAULT_ORIGINS
from scoring.datasets.options import ExportOptions
from scoring.datasets.tasks import export_dataset

if TYPE_CHECKING:
    from scoring.datasets.kinds.base import Notes

logger = logging.getLogger(__name__)

# Recorded on every export and written into its dataset card (pyproject.toml's version).
STUDIO_VERSION = "0.1.0"
# Progress is written at most once a second, and at least every PROGRESS_ROWS rows.
PROGRESS_SECONDS = 1.0
PROGRESS_ROWS = 5_000
MAX_ERROR = 2_000


def export_directory(export_id: int) -> Path:
    return Path(settings.MEDIA_ROOT) / "exports" / str(export_id)


# --- reads (scoped by the project a view already checked access to) -------------------------


def exports_of(*, project: Project) -> QuerySet[Export]:
    return Export.objects.filter(project=project).select_related("project", "created_by")


def export_get(*, project: Project, export_id: int) -> Export:
    export = exports_of(project=project).filter(pk=export_id).first()
    if export is None:
        raise Http404("No such export.")
    return export


def export_file(export: Export, name: str) -> Path:
    """The path of one of a finished export's files. 404 unless ``name`` is exactly one
    of the names recorded on the export (so no ``..`` or absolute path gets through) and
    the file is still on disk."""
    names = {f["name"] for f in export.files} if export.status == Export.Status.DONE else set()
    if name not in names:
        raise Http404("No such file in this export.")
    directory = export_directory(export.pk).resolve()
    path = (directory / name).resolve()
    if not path.is_relative_to(directory) or not path.is_file():
        raise Http404("No such file in this export.")
    return path


# Kinds whose rows are an LLM judge's per-item verdicts (judge distillation).
JUDGE_VERDICT_KINDS = frozenset({"judge_sft", "pairwise_sft"})


def export_reveals_judge(export: Export) -> bool:
    """Whether the export's files carry the judge's verdict on single items: the judge
    distillation kinds, and preference pairs with the rubric judge among their label
    origins. Reviewers judge pairs blind (commit, then reveal), so only editors and owners
    download these; everyone in the project still sees that they exist."""
    if export.kind in JUDGE_VERDICT_KINDS:
        return True
    origins = (export.options or {}).get("origins") or DEFAULT_ORIGINS
    return export.kind == "preferences" and "judge" in origins


def export_may_download(*, export: Export, role: Role | str | None) -> bool:
    return not export_reveals_judge(export) or role_at_least(role, Role.EDITOR)


def export_check_download(*, export: Export, role: Role | str | None) -> None:
    """403 for a member below editor asking for the files of an export with verdicts."""
    if not export_may_download(export=export, role=role):
        raise PermissionDenied(
            "This export holds the judge's verdicts: editors and owners download it."
        )


def download_name(export: Export, name: str) -> str:
    """``alpha-export-7-train.jsonl``: several exports' files can share a folder."""
    return f"{export.project.slug}-export-{export.pk}-{name.replace('/', '-')}"


# --- options from people --------------------------------------------------------------------


def parse_lines(text: str) -> tuple[str, ...]:
    """One entry a line (an exclusion list, pasted): blank lines dropped, order kept,
    duplicates once."""
    seen: dict[str, None] = {}
    for line in text.splitlines():
        line = line.strip()
        if line:
            seen.setdefault(line, None)
    return tuple(seen)


def parse_list(text: str) -> tuple[str, ...]:
    """Comma-separated names (tags, sources)."""
    return parse_lines(text.replace(",", "\n"))


def parse_ratios(text: str) -> tuple[float, float, float]:
    """``0.8,0.1,0.1`` (train, validation, test)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        ratios = tuple(float(p) for p in parts)
    except ValueError:
        raise ApplicationError(
            f"The split “{text}” is three numbers separated by commas, as 0.8,0.1,0.1."
        ) from None
    if len(ratios) != 3:
        raise ApplicationError(
            f"The split “{text}” has {len(ratios)} part(s): give train, validation and test, "
            "as 0.8,0.1,0.1."
        )
    return ratios


def _checked(options: ExportOptions) -> ExportOptions:
    """The options' own checks, and what they leave to the writer: dates that parse, in
    order, and text that PostgreSQL can store."""
    options = options.checked()
    for name in ("since", "until"):
        value = getattr(options, name)
        if value:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ApplicationError(
                    f"“{value}” is not a date: write it as YYYY-MM-DD ({name})."
                ) from None
    if options.since and options.until and options.since > options.until:
        raise ApplicationError(
            f"The dates are in the wrong order: {options.since} is after {options.until}."
        )
    for name in ("tags", "sources", "exclude"):
        check_text("\n".join(getattr(options, name)), name.capitalize())
    check_text(options.license, "The license")
    return options


# --- writes ---------------------------------------------------------------------------------


@transaction.atomic
def export_create(
    *,
    project: Project,
    actor: User | AnonymousUser | None,
    options: ExportOptions,
    enqueue: bool = True,
) -> Export:
    """Record an export and queue its job (after the transaction commits). ``enqueue=False``
    is for a caller that runs ``export_run`` itself (the ``export_dataset`` command)."""
    options = _checked(options)
    export = Export.objects.create(
        project=project,
        created_by=actor if actor is not None and actor.is_authenticated else None,
        kind=options.kind,
        format=options.format,
        options=options.as_dict(),
        studio_version=STUDIO_VERSION,
    )
    audit(
        project=project,
        actor=actor,
        action="export.create",
        target=str(export.pk),
        kind=options.kind,
        format=options.format,
    )
    if enqueue:
        _enqueue(export)
    return export


def _enqueue(export: Export) -> None:

    export_id = export.pk
    transaction.on_commit(
        lambda: export_dataset.apply_async((export_id,), queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    )


@transaction.atomic
def export_delete(*, export: Export, actor: User | AnonymousUser | None) -> None:
    """Delete an export and, once that commits, its files. A running export's job notices
    that its row is gone when it finishes and removes what it wrote."""
    audit(project=export.project, actor=actor, action="export.delete", target=str(export.pk))
    directory = export_directory(export.pk)
    export.delete()
    transaction.on_commit(lambda: shutil.rmtree(directory, ignore_errors=True))


class _Progress:
    """``rows_done`` written at most every PROGRESS_SECONDS, and at least every
    PROGRESS_ROWS rows."""

    def __init__(self, export_id: int) -> None:
        self.export_id = export_id
        self.written = 0
        self.at = time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if done - self.written >= PROGRESS_ROWS or now - self.at >= PROGRESS_SECONDS:
            Export.objects.filter(pk=self.export_id, status=Export.Status.RUNNING).update(
                rows_done=done
            )
            self.written, self.at = done, now


def export_run(export_id: int) -> None:
    """The job: write the export's files. Runs outside a transaction (progress is seen as it
    happens). Claims the export with a status-guarded update: a redelivered or repeated
    call finds it no longer queued and changes nothing. Any error fails the export with its
    message and removes whatever was written."""
    claimed = Export.objects.filter(pk=export_id, status=Export.Status.QUEUED).update(
        status=Export.Status.RUNNING, started_at=timezone.now()
    )
    if claimed != 1:
        return
    export = Export.objects.select_related("project").get(pk=export_id)
    directory = export_directory(export_id)
    try:
        files, rows_total = _write(export, directory)
    except Exception as exc:
        shutil.rmtree(directory, ignore_errors=True)
        if isinstance(exc, ApplicationError):
            message = exc.message
        else:
            logger.exception("Export %s failed", export_id)
            message = f"{type(exc).__name__}: {exc}"
        Export.objects.filter(pk=export_id, status=Export.Status.RUNNING).update(
            status=Export.Status.FAILED,
            error=message[:MAX_ERROR],
            files=[],
            finished_at=timezone.now(),
        )
        return
    finished = Export.objects.filter(pk=export_id, status=Export.Status.RUNNING).update(
        status=Export.Status.DONE,
        files=files,
        rows_total=rows_total,
        rows_done=rows_total,
        studio_version=STUDIO_VERSION,
        finished_at=timezone.now(),
    )
    if finished != 1:  # deleted while it ran: its files go with it
        shutil.rmtree(directory, ignore_errors=True)


def _write(export: Export, directory: Path) -> tuple[list[dict[str, Any]], int]:

    project = export.project
    options = _checked(ExportOptions.from_dict(export.options))
    Export.objects.filter(pk=export.pk).update(rows_total=rows.count(project, options))
    facts = rows.card_facts(project, options)
    prepared = rows.prepare(project, options)
    shutil.rmtree(directory, ignore_errors=True)  # what a crashed earlier attempt left
    infos = writers.write_export(
        directory,
        prepared.rows,
        prepared.schema,
        options.format,
        card=_card(project, options, facts, prepared.notes),
        progress=_Progress(export.pk),
        spread=prepared.spread,
    )
    files: list[dict[str, Any]] = [
        {"name": f.name, "sha256": f.sha256, "bytes": f.bytes, "rows": f.rows} for f in infos
    ]
    total = sum(f.rows for f in infos)
    if total == 0:
        raise ApplicationError(f"Nothing to export: {export_kind(options.kind).empty_hint}")
    return files, total


def card_options(options: ExportOptions) -> dict[str, Any]:
    """The options as the card states them. The exclusion list is there to keep benchmark
    prompts out of training data, so the card names only its size and a hash of it (the
    texts themselves would put the benchmark back into the dataset folder)."""
    shown = {k: v for k, v in options.as_dict().items() if k not in ("exclude", "extra")}
    listed = "\n".join(sorted(options.exclude)).encode("utf-8")
    shown["exclusions"] = len(options.exclude)
    if options.exclude:
        shown["exclusions_sha256"] = hashlib.sha256(listed).hexdigest()
    return shown


def _card(
    project: Project, options: ExportOptions, facts: dict[str, Any], notes: Notes
) -> Callable[[dict[str, int]], str]:
    """The dataset card, given the rows per split once they are known (and ``notes``, the
    ``Notes`` filled while they streamed). Only what the data and the options
    determine goes in (no export id, no time), so that the same export of unchanged data
    is byte-identical, card included."""
    provenance = {
        **facts.get("provenance", {}),
        "studio_version": STUDIO_VERSION,
        "options": card_options(options),
    }

    def render(counts: dict[str, int]) -> str:
        return render_card(
            title=f"{project.name}: {KINDS[options.kind]}",
            kind=options.kind,
            kind_label=KINDS[options.kind],
            fmt=options.format,
            counts=counts,
            sources=facts.get("sources", []),
            rubric_stats=facts.get("rubric_stats", {}),
            license=options.license,
            provenance=provenance,
            notes=export_notes(
                options.kind,
                format=options.format,
                whole_points=notes.whole_points,
                fractional=notes.fractional,
                margins=options.margins,
                pairs_folded=notes.pairs_folded,
                pairs_without_margin=notes.pairs_without_margin,
            ),
        )

    return render
