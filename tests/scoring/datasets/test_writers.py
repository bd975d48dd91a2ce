"""scoring.datasets.writers and card: rows to JSONL / Parquet / a Hugging Face folder,
byte-identical, validated, memory-bounded. No database."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scoring.datasets.card import render_card
from scoring.datasets.kinds.registry import REGISTRY
from scoring.datasets.writers import FileInfo, write_export

ROOT = Path(__file__).resolve().parents[3]

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
RUBRIC_ITEM = pa.struct(
    [("criterion", pa.string()), ("points", pa.float64()), ("tags", pa.list_(pa.string()))]
)
VERL = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(MESSAGE)),
        ("ability", pa.string()),
        (
            "reward_model",
            pa.struct(
                [
                    ("style", pa.string()),
                    ("rubrics", pa.list_(RUBRIC_ITEM)),
                    ("ground_truth", pa.string()),
                ]
            ),
        ),
        (
            "extra_info",
            pa.struct(
                [
                    ("prompt_id", pa.string()),
                    ("split", pa.string()),
                    ("index", pa.int64()),
                    ("rubric_version_id", pa.int64()),
                ]
            ),
        ),
    ]
)
N = 2_500


def split_for(i: int) -> str:
    return ("train", "train", "validation", "train", "test")[i % 5]


def verl_row(i: int) -> dict:
    split = split_for(i)
    return {
        "data_source": "healthbench",
        "prompt": [
            {"role": "system", "content": "Answer carefully."},
            {"role": "user", "content": f"Question {i}: what about ünïcode — 日本語?"},
        ][: 1 + i % 2 + (i % 3 == 0)],
        "ability": "medical",
        "reward_model": {
            "style": "rubric",
            "rubrics": [
                {"criterion": f"Mentions point {k}", "points": float(5 - 2 * k), "tags": [f"t{k}"]}
                for k in range(i % 4)
            ],
            "ground_truth": "" if i % 2 else f"ideal {i}",
        },
        "extra_info": {
            "prompt_id": f"p{i}",
            "split": split,
            "index": i,
            "rubric_version_id": 1000 + i,
        },
    }


def verl_rows(n: int = N) -> list[tuple[str, dict]]:
    return [(split_for(i), verl_row(i)) for i in range(n)]


def expected(split: str, n: int = N) -> list[dict]:
    return [row for s, row in verl_rows(n) if s == split]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def card_for(fmt: str):  # type: ignore[no-untyped-def]
    return lambda counts: render_card(
        title="Alpha rubrics",
        kind="rl_verl",
        kind_label="RL prompts with rubric rewards (verl)",
        fmt=fmt,
        counts=counts,
        sources=["model-b", "model-a", "model-a"],
        rubric_stats={"rubrics": 2500, "criteria_per_rubric_mean": 1.5, "negative_share": 1 / 3},
        license="CC BY 4.0 (see LICENSE)",
        provenance={
            "studio_version": "0.1.0",
            "judges": [{"endpoint": "https://judge.example/v1", "model": "j-1"}],
            "templates": {"criterion": "v3", "pairwise": "v2"},
            "options": {"kind": "rl_verl", "ratios": [0.6, 0.2, 0.2]},
        },
    )


@pytest.fixture(scope="module")
def hf_datasets(tmp_path_factory):  # type: ignore[no-untyped-def]
    """`datasets`, offline, with every cache under a temporary folder."""
    home = tmp_path_factory.mktemp("hf-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(home))
        mp.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        import datasets

        datasets.disable_progress_bars()
        yield datasets


def test_jsonl_round_trips(tmp_path):
    files = write_export(tmp_path, verl_rows(), VERL, "jsonl", row_group_rows=1000)

    assert [(f.name, f.rows) for f in files] == [
        ("train.jsonl", 1500),
        ("validation.jsonl", 500),
        ("test.jsonl", 500),
    ]
    for split in ("train", "validation", "test"):
        lines = (tmp_path / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == expected(split)
        assert lines[0] == json.dumps(
            expected(split)[0], ensure_ascii=False, sort_keys=True, separators=(",", ":")
        )
    assert "日本語" in (tmp_path / "train.jsonl").read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f.name for f in sorted(files, key=lambda f: f.name)
    ]


def test_parquet_reads_back_with_schema_and_row_groups(tmp_path):
    files = write_export(tmp_path, verl_rows(), VERL, "parquet", row_group_rows=1000)

    assert [f.name for f in files] == ["train.parquet", "validation.parquet", "test.parquet"]
    for split in ("train", "validation", "test"):
        table = pq.read_table(tmp_path / f"{split}.parquet")
        assert table.schema.equals(VERL)
        assert table.to_pylist() == expected(split)
    meta = pq.ParquetFile(tmp_path / "train.parquet").metadata
    assert meta.num_row_groups == 2
    assert [meta.row_group(i).num_rows for i in range(2)] == [1000, 500]
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert not (tmp_path / "README.md").exists()


def test_hf_folder_loads_with_datasets(tmp_path, hf_datasets):
    out = tmp_path / "export"
    files = write_export(out, verl_rows(), VERL, "hf", card=card_for("hf"), row_group_rows=1000)

    assert [f.name for f in files] == [
        "train.parquet",
        "validation.parquet",
        "test.parquet",
        "README.md",
    ]
    features = hf_datasets.Features.from_arrow_schema(VERL)
    for ds in (
        hf_datasets.load_dataset("parquet", data_dir=str(out), cache_dir=str(tmp_path / "c1")),
        hf_datasets.load_dataset(str(out), cache_dir=str(tmp_path / "c2")),
    ):
        assert {s: ds[s].num_rows for s in ds} == {"train": 1500, "validation": 500, "test": 500}
        assert ds["train"].features == features
        assert ds["validation"][0] == expected("validation")[0]


def test_hf_without_card_writes_a_minimal_one_that_loads(tmp_path, hf_datasets):
    rows = [r for r in verl_rows(300) if r[0] != "validation"]
    files = write_export(tmp_path / "e", rows, VERL, "hf")

    assert [(f.name, f.rows) for f in files] == [
        ("train.parquet", 180),
        ("test.parquet", 60),
        ("README.md", 0),
    ]
    ds = hf_datasets.load_dataset(str(tmp_path / "e"), cache_dir=str(tmp_path / "c"))
    assert {s: ds[s].num_rows for s in ds} == {"train": 180, "test": 60}


def test_jsonl_with_card_loads_as_a_folder(tmp_path, hf_datasets):
    write_export(tmp_path / "e", verl_rows(200), VERL, "jsonl", card=card_for("jsonl"))

    ds = hf_datasets.load_dataset(str(tmp_path / "e"), cache_dir=str(tmp_path / "c"))
    assert {s: ds[s].num_rows for s in ds} == {"train": 120, "validation": 40, "test": 40}


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_same_rows_give_identical_files(tmp_path, fmt):
    first = write_export(
        tmp_path / "a", verl_rows(), VERL, fmt, card=card_for(fmt), row_group_rows=1000
    )
    second = write_export(
        tmp_path / "b", verl_rows(), VERL, fmt, card=card_for(fmt), row_group_rows=1000
    )

    assert first == second
    for info in first:
        assert (tmp_path / "a" / info.name).read_bytes() == (
            tmp_path / "b" / info.name
        ).read_bytes()


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_file_info_matches_the_files(tmp_path, fmt):
    files = write_export(tmp_path, verl_rows(), VERL, fmt, card=card_for(fmt), row_group_rows=1000)

    assert all(isinstance(f, FileInfo) for f in files)
    for info in files:
        path = tmp_path / info.name
        assert info.sha256 == sha256(path)
        assert info.bytes == path.stat().st_size
    assert [f.rows for f in files] == [1500, 500, 500, 0]


def test_card_lists_counts_sources_stats_license_and_provenance(tmp_path):
    write_export(tmp_path, verl_rows(100), VERL, "hf", card=card_for("hf"))
    text = (tmp_path / "README.md").read_text(encoding="utf-8")

    assert text.startswith("---\nlicense: other\nlicense_name: cc-by-4.0-see-license\n")
    assert "path: validation.parquet" in text
    assert "| train | 60 |" in text and "| **total** | **100** |" in text
    assert text.index("- model-a") < text.index("- model-b") and text.count("- model-a") == 1
    assert "| negative_share | 0.3333 |" in text
    assert "CC BY 4.0 (see LICENSE)" in text
    assert "- **studio_version**: 0.1.0" in text
    assert '"endpoint": "https://judge.example/v1"' in text and '"criterion": "v3"' in text


def test_card_configs_name_only_present_splits():
    text = card_for("parquet")({"train": 3, "validation": 0, "test": 1})

    assert "path: train.parquet" in text and "path: test.parquet" in text
    assert "validation" not in text.split("---")[1]


BAD_ROWS = [
    (lambda r: r.pop("ability"), "field 'ability' is missing"),
    (lambda r: r.update(extra=1), "field 'extra' is not in the schema"),
    (lambda r: r["extra_info"].update(index="7"), "field 'extra_info.index' expected an integer"),
    (lambda r: r["extra_info"].update(index=7.5), "field 'extra_info.index' expected an integer"),
    (lambda r: r["prompt"].append("hi"), "field 'prompt[2]' expected a dict"),
    (lambda r: r["prompt"][0].pop("content"), "field 'prompt[0].content' is missing"),
    (
        lambda r: r["reward_model"]["rubrics"][1].update(points="5"),
        "field 'reward_model.rubrics[1].points' expected a number",
    ),
    (
        lambda r: r["reward_model"]["rubrics"][0].update(tags="safety"),
        "field 'reward_model.rubrics[0].tags' expected a list",
    ),
    (
        lambda r: r["reward_model"]["rubrics"][0].update(points=float("nan")),
        "field 'reward_model.rubrics[0].points' is nan",
    ),
]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
@pytest.mark.parametrize(("spoil", "message"), BAD_ROWS)
def test_bad_row_is_a_value_error_naming_split_row_and_field(tmp_path, fmt, spoil, message):
    rows = verl_rows(2000)
    validation = [row for s, row in rows if s == "validation"]
    # past the first row group: a validation row with 3 rubric items and 2 messages
    number = next(
        n
        for n, row in enumerate(validation, start=1)
        if n > 100 and len(row["reward_model"]["rubrics"]) == 3 and len(row["prompt"]) == 2
    )
    spoil(validation[number - 1])
    out = tmp_path / "export"

    with pytest.raises(ValueError) as info:
        write_export(out, rows, VERL, fmt, card=card_for(fmt), row_group_rows=100)

    assert str(info.value).startswith(f"Split 'validation', row {number}: {message}")
    assert not out.exists()


def test_failing_rows_iterator_leaves_nothing(tmp_path):
    (tmp_path / "keep.txt").write_text("not ours")

    def rows():  # type: ignore[no-untyped-def]
        yield from verl_rows(1500)
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="database went away"):
        write_export(tmp_path, rows(), VERL, "parquet", row_group_rows=100)

    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_unknown_split_and_existing_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="Unknown split 'dev'"):
        write_export(tmp_path, [("dev", verl_row(0))], VERL, "jsonl")
    write_export(tmp_path, verl_rows(10), VERL, "jsonl")

    with pytest.raises(FileExistsError, match="train.jsonl"):
        write_export(tmp_path, verl_rows(10), VERL, "jsonl")


def test_splits_without_rows_have_no_file(tmp_path):
    files = write_export(tmp_path, [("test", verl_row(0))], VERL, "parquet")

    assert [(f.name, f.rows) for f in files] == [("test.parquet", 1)]
    assert [p.name for p in tmp_path.iterdir()] == ["test.parquet"]


def test_progress_is_reported_and_ends_with_the_total(tmp_path):
    seen: list[int] = []

    write_export(tmp_path, verl_rows(), VERL, "parquet", progress=seen.append, row_group_rows=1000)

    assert seen == [1000, 2000, N]


def test_parquet_memory_is_bounded(tmp_path):
    schema = pa.schema([("id", pa.int64()), ("text", pa.string()), ("score", pa.float64())])
    total = 200_000

    def rows():  # type: ignore[no-untyped-def]
        for i in range(total):
            yield ("train" if i % 4 else "test"), {"id": i, "text": f"row {i} " * 4, "score": i / 7}

    tracemalloc.start()
    try:
        files = write_export(tmp_path, rows(), schema, "parquet", row_group_rows=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert sum(f.rows for f in files) == total
    # 200k such dicts held at once would be well over 100 MB; one row group per split is ~1 MB.
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    meta = pq.ParquetFile(tmp_path / "train.parquet").metadata
    assert meta.num_row_groups == 150 and meta.num_rows == 150_000


def test_writers_do_not_import_pyarrow_at_module_import():
    code = (
        "import os, sys, django;"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'rubricstudio.settings');"
        "django.setup();"
        "import scoring.datasets.writers, scoring.datasets.card, scoring.datasets.options;"
        "import scoring.datasets.kinds.registry;"
        "print('pyarrow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def _full_check_passes(check, row) -> bool:  # type: ignore[no-untyped-def]
    from scoring.datasets.row_checks import _Invalid

    try:
        check(row)
    except _Invalid:
        return False
    return True


def test_generated_row_check_agrees_with_the_full_checker():
    """The generated fast path may only say "valid" where the full checker does; rows it
    is unsure of (a tuple, a str subclass) go to the full checker, which decides."""
    import copy
    import random

    from scoring.datasets.row_checks import _checker, _fast_checker

    nullable = pa.schema([*VERL, ("score", pa.float64()), ("note", pa.string())])
    whole = pa.struct(list(nullable))
    fast, full = _fast_checker(whole), _checker(whole, nullable=False)
    assert fast is not None

    class Text(str):
        pass

    spoils = [
        *[spoil for spoil, _ in BAD_ROWS],
        lambda r: r.update(score=float("inf")),
        lambda r: r.update(score=float("-inf")),
        lambda r: r.update(score=True),
        lambda r: r.update(note=3),
        lambda r: r["extra_info"].update(index=2**63),
        lambda r: r["extra_info"].update(index=-(2**63) - 1),
        lambda r: r["extra_info"].update(index=False),
        lambda r: r["extra_info"].update(prompt_id=None),
        lambda r: r.update(prompt=None),
        lambda r: r["prompt"][0].update(role=None),
        lambda r: r["reward_model"]["rubrics"].append(None),
        lambda r: r["reward_model"].update(rubrics=tuple(r["reward_model"]["rubrics"])),
        lambda r: r.update(note=Text("subclass")),
        lambda r: r.update(score=7),
        lambda r: r.update(score=None, note=None),
    ]
    rng = random.Random(7)
    engaged = 0
    for i in range(400):
        row = {**verl_row(i), "score": rng.random(), "note": f"n{i}"}
        row = copy.deepcopy(row)
        if i % 2:
            with contextlib.suppress(IndexError):  # a spoil of an item this row lacks
                rng.choice(spoils)(row)
        said = fast(row)
        assert not said or _full_check_passes(full, row), row
        engaged += said
        if i % 2 == 0:
            assert said, row  # valid rows of plain types never need the full checker
    assert engaged > 200


@pytest.mark.parametrize("kind", list(REGISTRY))
def test_every_export_schema_has_the_generated_check(kind):
    from scoring.datasets.row_checks import _fast_checker
    from scoring.datasets.rows import schema

    for conversational in (True, False):
        for whole_points in (True, False):
            for margins in (True, False):
                shape = schema(kind, conversational, whole_points=whole_points, margins=margins)
                assert _fast_checker(pa.struct(list(shape))) is not None


# --- spreading a JSON object into JSONL lines ------------------------------------------------

SHAPED = pa.schema(
    [("prompt_id", pa.string()), ("example_tags", pa.list_(pa.string())),
     ("metadata", pa.string()), ("split", pa.string())]
)  # fmt: skip


def shaped(i: int, metadata: dict) -> tuple[str, dict]:
    return "train", {"prompt_id": f"p{i}", "example_tags": ["t"],
                     "metadata": json.dumps(metadata), "split": "train"}  # fmt: skip


def test_jsonl_spreads_the_named_json_object_into_top_level_fields(tmp_path):
    rows = [
        shaped(0, {}),
        shaped(1, {"canary": "x", "citation_metadata": {"doi": "10.1/2", "n": [1, 2.5]}}),
        shaped(2, {"example_tags": ["t"], "split": "other", "metadata": {"m": 1}}),
    ]
    write_export(tmp_path / "j", rows, SHAPED, "jsonl", spread=("metadata", "rubrics"))
    lines = [json.loads(x) for x in (tmp_path / "j" / "train.jsonl").read_text().splitlines()]
    assert lines[0] == {"prompt_id": "p0", "example_tags": ["t"], "split": "train"}
    assert lines[1] == {"prompt_id": "p1", "example_tags": ["t"], "split": "train",
                        "canary": "x", "citation_metadata": {"doi": "10.1/2", "n": [1, 2.5]}}  # fmt: skip
    # A member named like a field of the row: dropped when it holds the row's value, kept
    # under "metadata" when it differs (never overriding the row).
    assert lines[2] == {"prompt_id": "p2", "example_tags": ["t"], "split": "train",
                        "metadata": {"split": "other", "metadata": {"m": 1}}}  # fmt: skip

    write_export(tmp_path / "p", rows, SHAPED, "parquet", spread=("metadata", "rubrics"))
    table = pq.read_table(tmp_path / "p" / "train.parquet")
    assert table.schema.equals(SHAPED)
    assert table.column("metadata").to_pylist() == [r["metadata"] for _, r in rows]


ITEMS = pa.schema(
    [("prompt_id", pa.string()),
     ("rubrics", pa.list_(pa.struct([("criterion", pa.string()), ("points", pa.int64())]))),
     ("metadata", pa.string())]
)  # fmt: skip


def test_jsonl_puts_the_rubric_items_fields_back_into_their_items(tmp_path):
    items = [{"criterion": "a", "points": 1}, {"criterion": "b", "points": 2}]
    extras = [{"id": "i-1", "points": 9}, {}]  # an item's own field wins over its extra
    rows = [
        ("train", {"prompt_id": "p0", "rubrics": items,
                   "metadata": json.dumps({"rubric_items": extras, "canary": 1})}),
        ("train", {"prompt_id": "p1", "rubrics": items,  # misaligned: left as it was
                   "metadata": json.dumps({"rubric_items": [{"id": "x"}]})}),
    ]  # fmt: skip
    write_export(tmp_path / "j", rows, ITEMS, "jsonl", spread=("metadata", "rubrics"))
    lines = [json.loads(x) for x in (tmp_path / "j" / "train.jsonl").read_text().splitlines()]
    assert lines[0] == {"prompt_id": "p0", "canary": 1,
                        "rubrics": [{"criterion": "a", "points": 1, "id": "i-1"},
                                    {"criterion": "b", "points": 2}]}  # fmt: skip
    assert lines[1] == {"prompt_id": "p1", "rubrics": items, "rubric_items": [{"id": "x"}]}


@pytest.mark.parametrize("bad", ["[1, 2]", "not json", "3"])
def test_a_spread_field_that_is_not_a_json_object_is_refused(tmp_path, bad):
    rows = [shaped(0, {}), ("train", {**shaped(1, {})[1], "metadata": bad})]
    with pytest.raises(ValueError, match="row 2: field 'metadata' must hold a JSON object"):
        write_export(tmp_path / "e", rows, SHAPED, "jsonl", spread=("metadata", "rubrics"))
    assert not (tmp_path / "e").exists()
    with pytest.raises(ValueError, match="not a top-level string field"):
        write_export(tmp_path / "e", rows, SHAPED, "jsonl", spread=("example_tags", "rubrics"))


def test_export_notes_state_the_conventions_consumers_depend_on():
    from scoring.datasets.card import export_notes

    whole = " ".join(export_notes("rl_verl", format="parquet"))
    assert "written as integers (`10`, not `10.0`; int64" in whole
    assert 'extra_info["reward_model"]["rubrics"]' in whole and "`extra_info.metadata`" in whole
    assert "exactly as stored" in whole
    fractional = " ".join(
        export_notes("rl_healthbench", format="jsonl", whole_points=False, fractional=2.5)
    )
    assert "float64" in fractional and "(2.5)" in fractional
    assert "top-level fields of each line" in fractional
    parquet = " ".join(export_notes("rl_rar", format="hf"))
    assert "`metadata` is a JSON object" in parquet

    plain = " ".join(export_notes("preferences", format="jsonl", pairs_folded=3))
    assert "There is no `margin` column" in plain and "3 repeated pairs were folded" in plain
    assert "−log σ(r_chosen − r_rejected − margin)" in plain
    with_margins = " ".join(
        export_notes("preferences", format="jsonl", margins=True, pairs_without_margin=1)
    )
    assert "never null: 1 pair without a judge margin was left out" in with_margins
    assert export_notes("judge_sft", format="jsonl") == []

    card = render_card(
        title="t", kind="preferences", kind_label="Preference pairs", fmt="jsonl",
        counts={"train": 1}, sources=[], rubric_stats={}, license="", provenance={},
        notes=export_notes("preferences", format="jsonl"),
    )  # fmt: skip
    assert "\n## Notes\n\n- One row per (prompt, chosen text, rejected text)." in card
