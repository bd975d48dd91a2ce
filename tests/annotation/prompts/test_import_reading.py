"""Bounded reading of import files (plain Python, no database): JSON arrays streamed
element by element give exactly what ``json.loads`` gives, whatever the piece size; every
cap (bytes, line length, nesting, records, bad records) stops reading with a message that
names its setting; a line or CSV record over the cap is one bad record, not the end."""

from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from annotation.prompts.importers import json_reading
from annotation.prompts.importers.formats import detect_format, iter_records
from annotation.prompts.importers.json_reading import iter_array
from annotation.prompts.importers.reading import Limits, holds_at_most
from annotation.prompts.importers.records import ImportFormatError, ImportLimitError, RecordError


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(["num", "str", "bool", "null", "list", "dict"] if depth < 5 else ["str"])
    if kind == "num":
        return rng.choice([0, -7, 12345678901234567890, 3.25, -1e-300, 6.02e23])
    if kind == "str":
        return rng.choice(['a "quoted" ] } word', "back\\slash", "é ☃ 𝄞", "\\u0041", "", "[{,}]"])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "null":
        return None
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {f"k{i}": random_value(rng, depth + 1) for i in range(rng.randint(0, 4))}


def read_array(text: str, limits: Limits | None = None) -> list[Any]:
    items = list(iter_array(io.StringIO(text), limits or Limits()))
    return [item if isinstance(item, RecordError) else item[1] for item in items]


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 64, 65536])
def test_a_streamed_array_equals_json_loads_whatever_the_piece_size(monkeypatch, piece):
    monkeypatch.setattr(json_reading, "CHUNK", piece)
    rng = random.Random(piece)
    values = [random_value(rng) for _ in range(150)]
    for text in (
        json.dumps(values),
        json.dumps(values, indent=2, ensure_ascii=False),
        "\n \t[" + " ,\r\n".join(json.dumps(v) for v in values) + "]  \n",
    ):
        assert read_array(text) == json.loads(text) == values
    assert read_array("[]") == read_array(" [ \n ] ") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"a": 1} {"b": 2}]', "expected ',' or ']' after record 1"),
        ('[{"a": 1},]', "record 2: Expecting value"),
        ('[{"a": 1},', "the file ends where record 2 should be"),
        ('[{"a": 1}', "without a closing ']'"),
        ('[{"a": 1}] x', "text after its closing ']'"),
        ('[{"a": tru}]', "record 1: Expecting"),
        ('[{"a": "unterminated}]', "record 1: Unterminated string"),
        ("{}", "not a JSON array"),
        ('[{"a": 1}, {"a": NaN}]', "record 2: NaN is not a valid number"),
        ('[{"a": -Infinity}]', "record 1: -Infinity is not a valid number"),
        ('[{"a": ' + "7" * 5000 + "}]", "record 1: Exceeds the limit"),
    ],
)
def test_a_broken_array_is_a_whole_file_error(monkeypatch, text, message):
    monkeypatch.setattr(json_reading, "CHUNK", 3)
    with pytest.raises(ImportFormatError, match=message):
        read_array(text)


def test_array_elements_over_the_caps():
    limits = Limits(max_depth=3, max_line=40)
    deep = [{"a": [[1]]}, {"a": [[[1]]]}, {"fine": "x"}]
    out = read_array(json.dumps(deep), limits)
    assert out[0] == deep[0] and out[2] == deep[2]
    assert out[1] == RecordError(
        2, "nested more than 3 levels deep (the cap IMPORT_MAX_JSON_DEPTH)"
    )
    with pytest.raises(ImportLimitError, match="record 2 of the array is longer than 40"):
        read_array(json.dumps([{"a": 1}, {"a": "x" * 41}]), limits)
    # deeper than the decoder can recurse: refused, never a RecursionError
    with pytest.raises(ImportLimitError, match="IMPORT_MAX_JSON_DEPTH"):
        read_array("[" + "[" * 200_000 + "]" * 200_000 + "]")


def test_nul_characters_are_bad_records_without_false_alarms():
    out = read_array(json.dumps([{"a": "x\x00y"}, {"a\x00": 1}, {"a": "\\u0000 is text"}]))
    assert out[:2] == [
        RecordError(1, json_reading.NUL_REASON),
        RecordError(2, json_reading.NUL_REASON),
    ]
    assert out[2] == {"a": "\\u0000 is text"}  # an escaped backslash, not a NUL


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def test_a_long_jsonl_line_is_one_bad_record_and_reading_goes_on(tmp_path):
    path = write(
        tmp_path / "g.jsonl.gz",
        b'{"prompt": "one"}\n{"prompt": "' + b"x" * 5000 + b'"}\n{"prompt": "three"}\n',
    )
    items = list(iter_records(path, "generic", limits=Limits(max_line=1000)))
    assert [type(i).__name__ for i in items] == ["ParsedRecord", "RecordError", "ParsedRecord"]
    assert items[1] == RecordError(
        2, "the line is longer than 1,000 characters (the cap IMPORT_MAX_LINE_LENGTH)"
    )
    assert items[2].messages[0]["content"] == "three" and items[2].line == 3


def test_jsonl_nesting_is_capped_and_recursion_is_caught(tmp_path):
    nested = lambda n: "[" * n + "]" * n  # noqa: E731
    path = write(
        tmp_path / "n.jsonl",
        (
            json.dumps({"prompt": "ok", "metadata": {"x": json.loads(nested(60))}})
            + "\n"
            + '{"prompt": "deep", "metadata": {"x": '
            + nested(70)
            + "}}\n"
            + nested(200_000)
            + "\n"
        ).encode(),
    )
    items = list(iter_records(path, "generic", limits=Limits(max_depth=64)))
    assert not isinstance(items[0], RecordError)
    assert items[1] == RecordError(
        2, "nested more than 64 levels deep (the cap IMPORT_MAX_JSON_DEPTH)"
    )
    assert items[2] == RecordError(
        3, "nested more than 64 levels deep (the cap IMPORT_MAX_JSON_DEPTH)"
    )


def test_a_long_csv_record_is_one_bad_record(tmp_path):
    path = write(
        tmp_path / "t.csv",
        b'id,prompt\n1,short\n2,"' + b"y" * 300 + b'"\n3,"two\nlines"\n4,fine\n',
    )
    items = list(iter_records(path, limits=Limits(max_line=100)))
    assert [i.line for i in items] == [2, 3, 4, 6]
    assert items[1] == RecordError(
        3, "the record is longer than 100 characters (the cap IMPORT_MAX_LINE_LENGTH)"
    )
    assert items[2].messages[0]["content"] == "two\nlines"
    assert items[3].external_id == "4"


def test_the_data_cap_stops_decompression(tmp_path):
    path = write(tmp_path / "many.jsonl.gz", b'{"prompt": "p"}\n' * 10_000)  # 160,000 bytes
    with pytest.raises(ImportLimitError, match=r"more than 97.7 KiB .*IMPORT_MAX_DECOMPRESSED"):
        list(iter_records(path, "generic", limits=Limits(max_bytes=100_000)))
    assert len(list(iter_records(path, "generic", limits=Limits(max_bytes=160_000)))) == 10_000
    assert holds_at_most(path, 160_000) and not holds_at_most(path, 159_999)


def test_record_and_error_caps(tmp_path):
    good = write(tmp_path / "good.jsonl", b'{"prompt": "p"}\n' * 11)
    with pytest.raises(ImportLimitError, match="more than 10 records .*IMPORT_MAX_RECORDS"):
        list(iter_records(good, limits=Limits(max_records=10)))
    assert len(list(iter_records(good, limits=Limits(max_records=11)))) == 11
    bad = write(tmp_path / "bad.jsonl", b'{"prompt": "p"}\n' + b"{}\n" * 10)
    with pytest.raises(ImportLimitError, match="more than 9 bad records .* stopped at line 11"):
        list(iter_records(bad, "generic", limits=Limits(max_errors=9)))


def test_detection_reads_only_the_first_record(tmp_path):
    """A first line over the cap is refused at once: the rest of it is never read."""
    path = tmp_path / "big.jsonl"
    path.write_bytes(b'{"prompt": "' + b"z" * 3_000_000 + b'"}\n')
    with pytest.raises(ImportFormatError, match="line 1: the line is longer than 1,000"):
        detect_format(path, limits=Limits(max_line=1000, max_bytes=1_000_000))
