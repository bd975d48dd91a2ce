"""Draft edits and bulk paste (plain Python), and single-rubric JSON in both shapes."""

from __future__ import annotations

import json

import pytest

from annotation.prompts.importers.parsers import parse_healthbench, parse_rar
from annotation.prompts.importers.single_rubric import (
    RubricJsonError,
    parse_rubric_json,
    to_healthbench,
    to_rar,
)
from annotation.rubrics import edits


def draft(*texts: str) -> list[dict]:
    return [edits.new_criterion(edits.clean_fields({"text": t, "points": 2})) for t in texts]


def texts(criteria: list[dict]) -> list[str]:
    return [c["text"] for c in criteria]


def test_add_update_delete_duplicate_move_reorder():
    d = draft("a", "b", "c")
    keys = [c["key"] for c in d]
    d2 = edits.add(d, edits.clean_fields({"text": " new ", "points": "-3", "tags": "x, y, x"}))
    assert texts(d2) == ["a", "b", "c", "new"] and texts(d) == ["a", "b", "c"]  # input kept
    assert d2[3]["points"] == -3.0 and d2[3]["tags"] == ["x", "y"]
    assert texts(edits.add(d, {"text": "after a", "points": 1}, after=keys[0]))[1] == "after a"
    d3 = edits.update(d2, keys[1], edits.clean_fields({"text": "B!"}, partial=True))
    assert d3[1]["text"] == "B!" and d3[1]["points"] == 2.0 and d3[1]["key"] == keys[1]
    assert texts(edits.delete(d3, keys[0])) == ["B!", "c", "new"]
    dup = edits.duplicate(d, keys[1])
    assert texts(dup) == ["a", "b", "b", "c"] and dup[2]["key"] not in keys
    assert texts(edits.move(d, keys[2], -1)) == ["a", "c", "b"]
    assert texts(edits.move(d, keys[0], -1)) == ["a", "b", "c"]  # already first
    assert texts(edits.reorder(d, [keys[2], keys[0], keys[1]])) == ["c", "a", "b"]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"text": "  ", "points": 1}, "needs some text"),
        ({"text": "x", "points": "lots"}, "must be a number, not “lots”"),
        ({"text": "x", "points": "nan"}, "finite"),
        ({"text": "x", "points": 1, "category": "vital"}, "Unknown category “vital”"),
        ({"text": "x", "points": 1, "kind": "rule"}, "Unknown kind “rule”"),
        ({"text": "x" * 5001, "points": 1}, "at most 5000"),
    ],
)
def test_bad_fields_are_refused_with_a_reason(fields, message):
    with pytest.raises(edits.EditError, match=message):
        edits.clean_fields(fields)


def test_stale_keys_and_orders_are_refused():
    d = draft("a", "b")
    with pytest.raises(edits.EditError, match="no longer in the draft"):
        edits.delete(d, "not-a-key")
    with pytest.raises(edits.EditError, match="does not match"):
        edits.reorder(d, [d[0]["key"]])
    with pytest.raises(edits.EditError, match="does not match"):
        edits.reorder(d, [d[0]["key"], d[0]["key"]])


def test_paste_reads_points_bullets_and_pitfalls():
    parsed = edits.parse_paste(
        "[5] Advises calling emergency services\n\n- [-3] Suggests an antacid\n"
        "2. Asks how long the pain lasted\n[ 2.5 ]Mentions aspirin\n[−1] Uses jargon"
    )
    assert [(p["text"], p["points"], p["category"]) for p in parsed] == [
        ("Advises calling emergency services", 5.0, ""),
        ("Suggests an antacid", -3.0, "pitfall"),
        ("Asks how long the pain lasted", 1.0, ""),
        ("Mentions aspirin", 2.5, ""),
        ("Uses jargon", -1.0, "pitfall"),
    ]


def test_paste_with_a_bad_line_adds_nothing_and_names_the_lines():
    with pytest.raises(edits.EditError) as exc:
        edits.parse_paste("[5] fine\n[five] not a number\n[2]\nok")
    message = str(exc.value)
    assert message.startswith("Nothing was added.")
    assert "Line 2: the points must be a number, not “five”" in message
    assert "Line 3: there is no criterion text" in message
    with pytest.raises(edits.EditError, match="has no criteria"):
        edits.parse_paste("\n  \n")


def test_same_content_ignores_provenance_but_not_order():
    d = draft("a", "b")
    assert edits.same_content(d, [{**c, "provenance": "llm"} for c in d])
    assert not edits.same_content(d, list(reversed(d)))
    assert not edits.same_content(d, [d[0], {**d[1], "points": 3}])


CRITERIA = [
    {"key": "1", "text": "Advises calling emergency services", "points": 10.0,
     "category": "essential", "kind": "hard_rule", "tags": ["axis:accuracy"]},
    {"key": "2", "text": "Asks about pain radiating to the arm or jaw", "points": 2.5,
     "category": "", "kind": "principle", "tags": []},
    {"key": "3", "text": "Suggests an antacid first", "points": -4.0,
     "category": "pitfall", "kind": "principle", "tags": ["title:Antacid"]},
]  # fmt: skip


def test_healthbench_export_is_a_record_the_dataset_importer_reads():
    messages = [{"role": "user", "content": "My chest hurts"}]
    record = to_healthbench(CRITERIA, prompt_id="p1", messages=messages)
    assert record["rubrics"][0] == {
        "criterion": "Advises calling emergency services",
        "points": 10,
        "tags": ["axis:accuracy"],
    }
    parsed = parse_healthbench(json.loads(json.dumps(record)), 1)
    assert parsed.external_id == "p1" and parsed.messages == messages
    assert [(c.text, c.points, c.tags) for c in parsed.criteria] == [
        (c["text"], c["points"], c["tags"]) for c in CRITERIA
    ]
    again = parse_rubric_json(json.dumps(record))
    assert [(c.text, c.points, c.category) for c in again] == [
        (c["text"], c["points"], "pitfall" if c["points"] < 0 else "") for c in CRITERIA
    ]


def test_rar_export_keeps_categories_and_titles():
    record = to_rar(CRITERIA, prompt_id="p1", question="My chest hurts", reference_answer="Call")
    assert record["rubric"][0]["description"] == (
        "Essential Criteria: Advises calling emergency services"
    )
    assert record["rubric"][1]["description"] == "Asks about pain radiating to the arm or jaw"
    assert record["rubric"][2]["title"] == "Antacid"
    parsed = parse_rar(record, 1)
    assert parsed.reference_answer == "Call"
    again = parse_rubric_json(json.dumps(record))
    assert [(c.text, c.points, c.category) for c in again] == [
        (c["text"], c["points"], c["category"]) for c in CRITERIA
    ]
    assert [c.tags for c in again] == [[], [], ["title:Antacid"]]  # derived titles dropped


def test_rubric_json_accepts_bare_lists_of_either_shape():
    hb = parse_rubric_json('[{"criterion": "Is kind", "points": 2}]')
    rar = parse_rubric_json(
        '[{"title": "t", "description": "Pitfall Criteria: Lies", "weight": -1}]'
    )
    assert (hb[0].text, hb[0].points) == ("Is kind", 2)
    assert (rar[0].text, rar[0].category) == ("Lies", "pitfall")


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '{"rubrics": [\n  {"criterion": "x", "points": 1},\n  oops]}',
            "rubric.json, line 3 column 3",
        ),
        (
            '{"rubrics": [{"criterion": "x", "points": "5"}]}',
            r"rubrics\[0\]\.points must be a number",
        ),
        ('{"rubrics": [{"criterion": "x", "points": NaN}]}', "NaN is not a number JSON allows"),
        ('{"rubrics": []}', "rubrics"),
        ('{"title": "no items"}', "expected a HealthBench record"),
        ('[{"description": "Essential Criteria: ", "weight": 1}]', "no text after its prefix"),
    ],
)
def test_bad_rubric_json_names_the_file_and_the_place(text, message):
    with pytest.raises(RubricJsonError, match=message) as exc:
        parse_rubric_json(text, name="rubric.json")
    assert str(exc.value).startswith("rubric.json")


def test_editing_a_copy_of_a_model_criterion_makes_it_hybrid():
    d = [{**draft("Warns about interactions")[0], "provenance": "llm", "provenance_model": "m"}]
    copy = edits.duplicate(d, d[0]["key"])[1]
    assert copy["provenance"] == "llm"  # a plain copy is still the model's text
    edited = edits.update([copy], copy["key"], {"text": "Warns about drug interactions"})[0]
    assert (edited["provenance"], edited["provenance_model"]) == ("hybrid", "m")
    same = edits.update([copy], copy["key"], {"text": copy["text"]})[0]
    assert same["provenance"] == "llm"


def test_sizes_and_nul_characters_are_refused():
    with pytest.raises(edits.EditError, match="at most 300 criteria"):
        edits.check_size(draft(*(f"c{i}" for i in range(301))))
    with pytest.raises(edits.EditError, match="at most 50 tags"):
        edits.parse_tags(",".join(f"t{i}" for i in range(51)))
    with pytest.raises(edits.EditError, match="NUL"):
        edits.clean_fields({"text": "a\x00b", "points": 1})
    with pytest.raises(edits.EditError, match="Line 2: contains a NUL"):
        edits.parse_paste("ok\nbad\x00")
