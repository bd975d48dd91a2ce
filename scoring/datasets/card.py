"""The dataset card (``README.md``) of an export: YAML front matter that the Hugging Face
``datasets`` library reads (the ``configs`` naming each split's file) and a Markdown body for
people (what the rows are, counts, sources, rubric statistics, license, provenance).

Deterministic: the same arguments give the same bytes. Nothing here reads a clock or the
environment; mappings are rendered with sorted keys, so the card of an unchanged export is
byte-identical and its sha256 is stable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from scoring.datasets.kinds.base import SPLITS
from scoring.datasets.kinds.registry import REGISTRY, export_kind

# The file extension of each format's split files.
EXTENSIONS = {"jsonl": "jsonl", "parquet": "parquet", "hf": "parquet"}

# Hugging Face `size_categories` buckets: (upper bound, label).
_SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)

# A license identifier as the Hub spells them ("cc-by-4.0", "apache-2.0", "mit", "other").
_LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")


def export_notes(
    kind: str,
    *,
    format: str,
    whole_points: bool = True,
    fractional: float | None = None,
    margins: bool = False,
    pairs_folded: int = 0,
    pairs_without_margin: int = 0,
) -> list[str]:
    """What a consumer of ``kind`` must know about the rows' conventions, as Markdown
    paragraphs for the card's Notes: the type of the points, where verl rewards read the
    rubric, where the source records' other fields went, how pairs were made one per
    pair and how TRL uses ``margin``. Only the arguments decide the text."""
    spec = export_kind(kind)
    notes = []
    if spec.pointed:
        if whole_points:
            notes.append(
                "Rubric points are whole numbers and are written as integers (`10`, not "
                "`10.0`; int64 in Parquet): every criterion of the rubric versions this "
                "export draws from has whole points."
            )
        else:
            notes.append(
                "Rubric points are written as floating-point numbers (float64 in Parquet, "
                "`10.0` in JSON) for the whole export, because a criterion of the rubric "
                f"versions it draws from has fractional points ({_number(fractional or 0.0)})."
                " An export whose points are all whole numbers writes them as integers."
            )
        notes.append("Criterion text is written exactly as stored (no trimming or normalisation).")
    notes.extend(
        spec.notes(
            format=format,
            margins=margins,
            pairs_folded=pairs_folded,
            pairs_without_margin=pairs_without_margin,
        )
    )
    return notes


def data_files(fmt: str, counts: Mapping[str, int]) -> list[dict[str, str]]:
    """``[{"split": …, "path": …}]`` for the splits with rows, in the order of ``SPLITS``."""
    ext = EXTENSIONS[fmt]
    return [{"split": s, "path": f"{s}.{ext}"} for s in _present(counts)]


def front_matter(
    *, fmt: str, counts: Mapping[str, int], title: str = "", kind: str = "", license: str = ""
) -> str:
    """The card's YAML block, ``---`` lines included. ``configs`` lists exactly the splits
    with rows: a split named there whose file is missing makes ``datasets`` fail."""
    meta: dict[str, Any] = {}
    if license:
        if _LICENSE_ID.match(license):
            meta["license"] = license
        else:
            meta["license"] = "other"
            meta["license_name"] = _slug(license) or "custom"
    if title:
        meta["pretty_name"] = title
    total = sum(counts[s] for s in _present(counts))
    meta["size_categories"] = [_size_category(total)]
    meta["tags"] = ["rubricstudio", "rubrics", *([kind] if kind else [])]
    files = data_files(fmt, counts)
    if files:
        meta["configs"] = [{"config_name": "default", "data_files": files}]
    body = yaml.safe_dump(
        meta, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000
    )
    return f"---\n{body}---\n"


def render_card(
    *,
    title: str,
    kind: str,
    kind_label: str,
    fmt: str,
    counts: dict[str, int],
    sources: list[str],
    rubric_stats: dict[str, float | int],
    license: str,
    provenance: dict[str, Any],
    notes: Sequence[str] = (),
) -> str:
    """The whole ``README.md``. ``counts`` is ``{split: rows}`` as ``write_export`` passes it
    (splits without rows may be absent or 0). ``provenance`` is any JSON-able mapping, e.g.
    ``{"studio_version": …, "judges": [{"endpoint": …, "model": …}], "templates": {…},
    "options": ExportOptions.as_dict()}``; scalar entries are listed, the others rendered as
    JSON. ``notes`` (``export_notes``) become a Notes section, one item each. Must not hold
    anything that varies between two exports of the same data (export ids, dates) if the
    card is to stay byte-identical."""
    present = _present(counts)
    total = sum(counts[s] for s in present)
    out = [front_matter(fmt=fmt, counts=counts, title=title, kind=kind, license=license)]
    out.append(f"\n# {_line(title) or 'RubricStudio export'}\n")
    out.append(f"\n**{_line(kind_label)}** (`{kind}`), exported by RubricStudio.\n")
    if kind in REGISTRY:
        out.append(f"\n{REGISTRY[kind].description}\n")
    if notes:
        out.append("\n## Notes\n\n")
        out.extend(f"- {_line(note)}\n" for note in notes)

    out.append("\n## Loading\n\n```python\nfrom datasets import load_dataset\n\n")
    if EXTENSIONS[fmt] == "parquet":
        out.append('ds = load_dataset("parquet", data_dir="path/to/this/folder")\n')
    else:
        files = ", ".join(f'"{f["split"]}": "{f["path"]}"' for f in data_files(fmt, counts))
        out.append(f'ds = load_dataset("json", data_files={{{files}}})\n')
    out.append("```\n")

    out.append("\n## Splits\n\n| split | rows |\n|---|---:|\n")
    for s in present:
        out.append(f"| {s} | {counts[s]:,} |\n")
    out.append(f"| **total** | **{total:,}** |\n")

    out.append("\n## Sources\n\n")
    if sources:
        out.extend(f"- {_line(s)}\n" for s in sorted(set(sources)))
    else:
        out.append("No response sources (rows carry prompts and rubrics only).\n")

    out.append("\n## Rubric statistics\n\n")
    if rubric_stats:
        out.append("| statistic | value |\n|---|---:|\n")
        for key in sorted(rubric_stats):
            out.append(f"| {_cell(key)} | {_number(rubric_stats[key])} |\n")
    else:
        out.append("None recorded.\n")

    out.append("\n## License\n\n")
    out.append(f"{_line(license)}\n" if license else "Not specified.\n")

    out.append("\n## Provenance\n\n")
    scalars = {k: v for k, v in provenance.items() if not isinstance(v, Mapping | list | tuple)}
    nested = {k: v for k, v in provenance.items() if k not in scalars}
    out.extend(f"- **{_line(str(k))}**: {_line(_scalar(scalars[k]))}\n" for k in sorted(scalars))
    for key in sorted(nested):
        text = json.dumps(nested[key], ensure_ascii=False, sort_keys=True, indent=2, default=str)
        out.append(f"\n### {_line(str(key))}\n\n```json\n{text}\n```\n")
    if not provenance:
        out.append("None recorded.\n")
    return "".join(out)


def _present(counts: Mapping[str, int]) -> list[str]:
    known = [s for s in SPLITS if counts.get(s)]
    return known + sorted(s for s in counts if s not in SPLITS and counts[s])


def _size_category(n: int) -> str:
    return next((label for bound, label in _SIZE_CATEGORIES if n < bound), "n>1B")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")


def _line(text: str) -> str:
    """One line of Markdown: newlines folded to spaces."""
    return " ".join(str(text).split())


def _cell(text: str) -> str:
    return _line(text).replace("|", "\\|")


def _number(value: float | int) -> str:
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        return _number(value)
    return "—" if value is None or value == "" else str(value)
