"""What every export kind is made of: the ``ExportKind`` record that the registry holds
(its pyarrow schema, its rows, the upper bound of its rows for progress, whether its rubric
points follow the whole-number rule and whether its JSONL lines spread the prompt's
metadata), the ``Notes`` its rows leave for the dataset card, the column types the kinds'
schemas share, and small helpers for streaming rows batch by batch.

pyarrow is imported inside the schema functions, never at module import."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from annotation.errors import ApplicationError
from annotation.prompts.models import PROBE_SOURCE_PREFIX

if TYPE_CHECKING:
    from annotation.projects.models import Project

Row = tuple[str, dict[str, Any]]  # (split, row)
SPLITS = ("train", "validation", "test")

# What an empty export of a kind built from rubrics says (by default only approved versions).
RUBRIC_HINT = (
    "no prompt with a rubric matched these options (by default only approved rubric "
    "versions go in: choose the latest versions to export drafts)."
)

if TYPE_CHECKING:
    from scoring.datasets.options import ExportOptions


def probe_copy(source: str, chosen: set[str]) -> bool:
    """A judge probe's perturbed copy (source ``probe:<kind>``), which an export carries
    only when its source is chosen by name."""
    return source.startswith(PROBE_SOURCE_PREFIX) and source not in chosen


def no_notes(**facts: Any) -> list[str]:
    return []


@dataclass(frozen=True)
class ExportKind:
    """One export kind, as the registry holds it: everything the studio says and does
    about the kind is here.

    ``label``: its name in the export form, the API's choices and the card's title.
    ``description``: the card's paragraph on what the rows are. ``empty_hint``: what an
    export with no rows says. ``schema(conversational=, whole_points=, margins=)``: the
    pyarrow schema of its rows (``whole_points``: rubric points are int64, else float64;
    ``conversational`` and ``margins``: the preference pairs' options). ``rows(project,
    options, notes)``: its ``(split, row)`` pairs, streamed once, in a deterministic order.
    ``count(project, options)``: an upper bound of the rows, for progress. ``notes(format=,
    margins=, pairs_folded=, pairs_without_margin=)``: the card's notes on the kind's own
    conventions (the points' type is noted for every ``pointed`` kind)."""

    name: str
    label: str
    description: str
    empty_hint: str
    schema: Callable[..., Any]
    rows: Callable[[Project, ExportOptions, Notes], Iterator[Row]]
    count: Callable[[Project, ExportOptions], int]
    notes: Callable[..., list[str]] = no_notes
    # The kinds whose rubric points follow the whole-number rule (judge distillation rows keep
    # the points each judge was shown, as float64).
    pointed: bool = False
    # Kinds in a source format's shape: in JSONL, the prompt's metadata comes back as the
    # record's own top-level fields (``writers.write_export``'s ``spread``).
    # (the field holding the metadata, the field listing the rubric items that the metadata's
    # ``rubric_items`` go back into).
    spread: tuple[str, str] | None = None


def split_of(external_id: str, ratios: tuple[float, float, float]) -> str:
    """The split of a prompt: its external id hashed to a number in [0, 1), against the
    cumulative ratios. The same prompt always lands in the same split."""
    digest = hashlib.sha256(external_id.encode("utf-8")).digest()
    x = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    for name, ratio in zip(SPLITS, ratios, strict=True):
        cumulative += ratio
        if x < cumulative:
            return name
    return next(
        name for name, ratio in reversed(list(zip(SPLITS, ratios, strict=True))) if ratio > 0
    )


def spread_notes(*, format: str, **facts: Any) -> list[str]:
    """The card's note for kinds in a source format's shape (``spread``)."""
    if format == "jsonl":
        return [
            "The source record's fields that have no column of their own (the prompt's "
            "metadata) are top-level fields of each line, as in the source file. One "
            "named like a column of this export, with a different value, stays under "
            "`metadata`."
        ]
    return [
        "`metadata` is a JSON object, as a string, of the source record's fields that "
        "have no column of their own; `{}` when there are none. (JSONL exports write "
        "them as top-level fields, as in the source file.)"
    ]


# --- column types the schemas share ----------------------------------------------------------


def messages_type() -> Any:
    """A conversation: a list of ``{role, content}``."""
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.list_(message)


def points_type(whole_points: bool) -> Any:
    """Rubric points (RaR weights): int64 when every criterion the export draws from has
    whole points (``Notes.whole_points``), else float64."""
    import pyarrow as pa

    return pa.int64() if whole_points else pa.float64()


def rubric_item_type(whole_points: bool) -> Any:
    """A HealthBench / verl rubric item."""
    import pyarrow as pa

    return pa.struct(
        [
            ("criterion", pa.string()),
            ("points", points_type(whole_points)),
            ("tags", pa.list_(pa.string())),
        ]
    )


def versions_field() -> tuple[str, Any]:
    import pyarrow as pa

    return ("rubric_version_ids", pa.list_(pa.int64()))


def metadata_field() -> tuple[str, Any]:
    import pyarrow as pa

    return ("metadata", pa.string())  # the prompt's metadata, a JSON object


# --- points: whole numbers stay integers -----------------------------------------------------

# Rubric text and points are shown to the policy in scaffolded rollouts ("worth 10 points"),
# so a whole number is written as an integer (10, not 10.0). One type per export, so that
# the Parquet schema is fixed before the first row: int64 when every criterion of the rubric
# versions the export draws from has whole points, else float64 for every point value.
MAX_EXACT = 2**53  # beyond this a float no longer holds every whole number


def _is_whole(points: float) -> bool:
    return float(points).is_integer() and abs(points) <= MAX_EXACT


class _Numbers(dict[float, int | float]):
    """Point values as written, each worked out by ``convert`` on its first lookup."""

    def __init__(self, convert: Callable[[float], int | float]) -> None:
        super().__init__()
        self.convert = convert

    def __missing__(self, points: float) -> int | float:
        if points != points or points == 0:  # NaN is never found again; 0.0 == -0.0
            return self.convert(points)
        written = self[points] = self.convert(points)
        return written


@dataclass
class Notes:
    """What the dataset card says about the rows beyond their counts. ``whole_points`` is
    decided before the first row; the pair counts are complete once the last row is taken."""

    whole_points: bool = True
    fractional: float | None = None  # a point value that made points float64
    pairs_folded: int = 0  # labels folded into an exported row with the same pair
    pairs_without_margin: int = 0  # pairs left out because no judge gave them a margin
    # Each point value as written, worked out once per distinct value (a rubric has few).
    _numbers: dict[bool, _Numbers] = field(default_factory=dict, repr=False, compare=False)

    def number(self, points: float) -> int | float:
        """A point value as this export writes it."""
        return self.numbers[points]

    @property
    def numbers(self) -> _Numbers:
        """``number`` as a mapping (point value → as written), for rows' inner loops."""
        numbers = self._numbers.get(self.whole_points)
        if numbers is None:
            numbers = self._numbers[self.whole_points] = _Numbers(self._number)
        return numbers

    def _number(self, points: float) -> int | float:
        if not self.whole_points:
            return float(points)
        if not _is_whole(points):  # a criterion saved after the export looked
            raise ApplicationError(
                f"A criterion with {points:g} points appeared while the export ran (its "
                "points were checked to be whole numbers first): run the export again."
            )
        return int(points)


def _batched(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
