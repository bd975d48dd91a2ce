"""The rubric editor's writes: per-person drafts, saving a draft as a version (merging
with a version someone else saved meanwhile), and starting a rubric.

A draft is the person's working copy of the criteria. Every edit is stored at once, so
unsaved work survives a reload; saving makes an immutable RubricVersion and drops the
draft. Nothing here overwrites another person's version: a save on a stale base merges
changes to different criteria and stops on criteria both people changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from annotation.errors import ApplicationError, StaleVersionError, check_text
from annotation.projects.models import Project
from annotation.projects.services import audit
from annotation.prompts.importers.single_rubric import RubricJsonError, parse_rubric_json
from annotation.prompts.models import Prompt
from annotation.rubrics import edits
from annotation.rubrics.logic import CriterionSnapshot, merge_criteria, normalise
from annotation.rubrics.models import Rubric, RubricDraft, RubricVersion
from annotation.rubrics.selectors import version_dicts
from annotation.rubrics.services import CriterionInput, rubric_version_create
from annotation.rubrics.workflow import status_after_edit

OPS = ("add", "update", "delete", "duplicate", "move", "reorder", "paste", "import")
MAX_JSON_CHARS = 2_000_000


def _snapshot(c: Mapping[str, Any]) -> CriterionSnapshot:
    return CriterionSnapshot(
        c["key"], c["text"].strip(), float(c["points"]), c["category"], c["kind"], tuple(c["tags"])
    )


def _input(c: Mapping[str, Any]) -> CriterionInput:
    return CriterionInput(
        text=c["text"],
        points=float(c["points"]),
        category=c["category"],
        kind=c["kind"],
        tags=list(c["tags"]),
        provenance=c["provenance"],
        provenance_model=c["provenance_model"],
        key=c["key"],
    )


@transaction.atomic
def rubric_start(
    *, project: Project, actor: User, prompt: Prompt | None = None, title: str = ""
) -> Rubric:
    """A prompt's rubric (the existing one if it has one), or a new project-wide rubric.
    It has no version until its first save."""
    if prompt is not None:
        if prompt.project_id != project.pk:
            raise ApplicationError("The prompt belongs to another project.")
        existing = Rubric.objects.filter(prompt=prompt).first()
        if existing is not None:
            return existing
    title = check_text(title, "The title").strip() or (
        f"Rubric for {prompt.external_id}" if prompt else ""
    )
    if not title:
        raise ApplicationError("A project-wide rubric needs a title.")
    try:
        with transaction.atomic():
            rubric = Rubric.objects.create(project=project, prompt=prompt, title=title[:300])
    except IntegrityError:  # someone started this prompt's rubric at the same moment
        return Rubric.objects.get(prompt=prompt)
    audit(project=project, actor=actor, action="rubric.create", target=str(rubric.pk))
    return rubric


def _locked_draft(rubric: Rubric, user: User) -> RubricDraft | None:
    return RubricDraft.objects.select_for_update().filter(rubric=rubric, user=user).first()


def _open_draft(rubric: Rubric, user: User, base: int | None) -> RubricDraft:
    """The person's draft, locked. Without one, a new draft holding version ``base`` (the
    version the person's page showed), or the current version when ``base`` is unknown:
    an edit made on a page that went stale is then merged at save, never applied over a
    version saved since."""
    draft = _locked_draft(rubric, user)
    if draft is not None:
        return draft
    version = rubric.current_version
    if base is not None and (version is None or base != version.number):
        version = RubricVersion.objects.filter(rubric=rubric, number=base).first() or version
    try:
        with transaction.atomic():
            return RubricDraft.objects.create(
                rubric=rubric,
                user=user,
                base_number=version.number if version else None,
                criteria=version_dicts(version.pk if version else None),
            )
    except IntegrityError:  # the same person's other tab created it first
        return RubricDraft.objects.select_for_update().get(rubric=rubric, user=user)


def _keep_or_drop(draft: RubricDraft, rubric: Rubric) -> RubricDraft | None:
    """Store the draft, or delete it when it no longer differs from the current version."""
    current = rubric.current_version
    unchanged = (
        not draft.conflicts
        and draft.base_number == (current.number if current else None)
        and edits.same_content(draft.criteria, version_dicts(rubric.current_version_id))
    )
    if unchanged:
        draft.delete()
        return None
    draft.save()
    return draft


def _imported(data: Mapping[str, Any], old: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Criteria from a rubric JSON file; one whose text matches an existing criterion keeps
    that criterion's key, so history and scoring can follow it."""
    text = str(data.get("json", ""))
    if len(text) > MAX_JSON_CHARS:
        raise ApplicationError(f"The JSON is larger than {MAX_JSON_CHARS:,} characters.")
    try:
        parsed = parse_rubric_json(text, name=str(data.get("name") or "JSON"))
    except RubricJsonError as exc:
        raise ApplicationError(f"Nothing was imported. {exc}") from None
    keys = {normalise(c["text"]): c["key"] for c in old}
    out = []
    for p in parsed:
        fields = edits.clean_fields(vars(p))
        item = edits.new_criterion(fields)
        item["key"] = keys.pop(normalise(p.text), item["key"])
        out.append(item)
    return out


def _apply(
    criteria: list[dict[str, Any]], op: str, data: Mapping[str, Any]
) -> list[dict[str, Any]]:
    key = str(data.get("key", ""))
    if op == "add":
        return edits.add(criteria, edits.clean_fields(data), after=data.get("after") or None)
    if op == "update":
        return edits.update(criteria, key, edits.clean_fields(data, partial=True))
    if op == "delete":
        return edits.delete(criteria, key)
    if op == "duplicate":
        return edits.duplicate(criteria, key)
    if op == "move":
        return edits.move(criteria, key, -1 if data.get("direction") == "up" else 1)
    if op == "reorder":
        keys = data.get("keys", [])
        return edits.reorder(criteria, keys.split(",") if isinstance(keys, str) else list(keys))
    if op == "paste":
        return edits.paste(criteria, str(data.get("text", "")))
    if op == "import":
        return _imported(data, criteria)
    raise ApplicationError(f"Unknown edit '{op}'.")


def _base(value: object) -> int | None:
    text = str(value or "")
    return int(text) if text.isascii() and text.isdigit() else None


@transaction.atomic
def draft_edit(
    *, rubric: Rubric, user: User, op: str, data: Mapping[str, Any]
) -> RubricDraft | None:
    """Apply one edit to the person's draft and store it. ``data["base"]`` names the
    version the edit was made on (see ``_open_draft``). Returns the draft, or None when
    the edit brought the criteria back to the current version (nothing unsaved)."""
    status_after_edit(rubric.status)  # archived rubrics are read-only
    draft = _open_draft(rubric, user, _base(data.get("base")))
    if draft.conflicts:
        raise ApplicationError(
            "Settle the conflicting criteria first (keep yours or take theirs); then go on editing."
        )
    try:
        draft.criteria = edits.check_size(_apply(list(draft.criteria), op, data))
    except edits.EditError as exc:
        raise ApplicationError(str(exc)) from None
    return _keep_or_drop(draft, rubric)


@transaction.atomic
def draft_edit_new_rubric(
    *, project: Project, prompt: Prompt, user: User, op: str, data: Mapping[str, Any]
) -> Rubric:
    """A prompt's first edit: start its rubric and apply the edit, or neither."""
    rubric = rubric_start(project=project, prompt=prompt, actor=user)
    draft_edit(rubric=rubric, user=user, op=op, data=data)
    return rubric


@transaction.atomic
def draft_discard(*, rubric: Rubric, user: User) -> None:
    RubricDraft.objects.filter(rubric=rubric, user=user).delete()


@dataclass
class SaveOutcome:
    version: RubricVersion | None
    merged_with: int | None = None  # the version saved meanwhile that the draft merged with
    conflicts: int = 0
    error: str = ""  # the merged criteria fail a check; the draft now holds them to fix


def _conflict(
    key: str, sides: dict[str, dict[str, dict[str, Any]]], theirs_order: list[str]
) -> dict[str, Any]:
    return {
        "key": key,
        "base": sides["base"].get(key),
        "theirs": sides["theirs"].get(key),
        "mine": sides["mine"].get(key),
        "theirs_position": theirs_order.index(key) if key in theirs_order else None,
    }


def _merge(draft: RubricDraft, rubric: Rubric, note: str, user: User) -> SaveOutcome:
    """The draft's base is stale: merge it with the current version. A clean merge is saved
    at once; otherwise the draft is rebased on the current version with the conflicts kept
    for the person to decide. Caller holds the rubric row lock."""
    current = rubric.current_version
    if current is None:
        raise ApplicationError("This rubric has no saved version to merge with.")
    base_version = (
        RubricVersion.objects.filter(rubric=rubric, number=draft.base_number).first()
        if draft.base_number is not None
        else None
    )
    sides: dict[str, dict[str, dict[str, Any]]] = {
        "base": {c["key"]: c for c in version_dicts(base_version.pk if base_version else None)},
        "theirs": {c["key"]: c for c in version_dicts(current.pk)},
        "mine": {c["key"]: c for c in draft.criteria},
    }
    snaps = {name: [_snapshot(c) for c in side.values()] for name, side in sides.items()}
    result = merge_criteria(snaps["base"], snaps["theirs"], snaps["mine"])

    def source(s: CriterionSnapshot) -> dict[str, Any]:
        mine = sides["mine"].get(s.key)
        return mine if mine is not None and _snapshot(mine) == s else sides["theirs"][s.key]

    merged = [source(s) for s in result.criteria]
    if result.clean:
        try:
            with transaction.atomic():
                version = rubric_version_create(
                    rubric=rubric,
                    criteria=[_input(c) for c in merged],
                    author=user,
                    note=(f"{note} " if note else "") + f"(merged with v{current.number})",
                    base_number=current.number,
                    check_base=True,
                )
        except ApplicationError as exc:  # e.g. both sides added the same text
            draft.base_number, draft.criteria = current.number, merged
            draft.save()
            return SaveOutcome(None, merged_with=current.number, error=exc.message)
        draft.delete()
        return SaveOutcome(version, merged_with=current.number)
    theirs_order = list(sides["theirs"])
    draft.base_number = current.number
    draft.criteria = merged
    draft.conflicts = [_conflict(c.key, sides, theirs_order) for c in result.conflicts]
    draft.conflict_with = current.number
    draft.save()
    return SaveOutcome(None, merged_with=current.number, conflicts=len(result.conflicts))


@transaction.atomic
def draft_save(*, rubric: Rubric, user: User, note: str = "") -> SaveOutcome:
    """Save the person's draft as a new version on its base version; see ``_merge`` for a
    base that someone else's save made stale."""
    check_text(note, "The note")
    draft = _locked_draft(rubric, user)
    if draft is None:
        raise ApplicationError("There are no unsaved changes to save.")
    if draft.conflicts:
        raise ApplicationError("Choose a side for each conflicting criterion first.")
    try:
        version = rubric_version_create(
            rubric=rubric,
            criteria=[_input(c) for c in draft.criteria],
            author=user,
            note=note.strip(),
            base_number=draft.base_number,
            check_base=True,
        )
    except StaleVersionError:
        # Rolling back the failed save's savepoint released its row lock: take it again.
        rubric = (
            Rubric.objects.select_for_update(of=("self",))
            .select_related("current_version")
            .get(pk=rubric.pk)
        )
        return _merge(draft, rubric, note.strip(), user)
    draft.delete()
    return SaveOutcome(version)


def _put(
    criteria: list[dict[str, Any]], key: str, item: dict[str, Any] | None, position: int | None
) -> list[dict[str, Any]]:
    """Replace, insert (at ``position``) or remove (``item`` None) the criterion ``key``."""
    at = next((i for i, c in enumerate(criteria) if c["key"] == key), None)
    out = [c for c in criteria if c["key"] != key]
    if item is not None:
        where = at if at is not None else min(len(out) if position is None else position, len(out))
        out.insert(where, item)
    return out


@transaction.atomic
def draft_resolve(
    *, rubric: Rubric, user: User, choices: Mapping[str, object]
) -> RubricDraft | None:
    """Settle each conflicting criterion with ``"mine"`` or ``"theirs"`` (all at once)."""
    draft = _locked_draft(rubric, user)
    if draft is None or not draft.conflicts:
        raise ApplicationError("There is nothing to resolve.")
    missing = [c for c in draft.conflicts if choices.get(c["key"]) not in ("mine", "theirs")]
    if missing:
        raise ApplicationError(
            f"Choose yours or theirs for every conflicting criterion ({len(missing)} left)."
        )
    criteria = list(draft.criteria)
    for c in draft.conflicts:
        side = choices[c["key"]]
        criteria = _put(criteria, c["key"], c[side], c["theirs_position"])
    draft.criteria = criteria
    draft.conflicts = []
    draft.conflict_with = None
    return _keep_or_drop(draft, rubric)
