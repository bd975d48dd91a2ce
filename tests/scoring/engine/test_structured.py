"""structured.py: finding JSON in model answers, schema errors that name the place, repair turns."""

from __future__ import annotations

import pytest

from scoring.engine.structured import (
    StructuredOutputError,
    extract_json,
    format_path,
    repair_messages,
    validate,
)

RUBRIC = {
    "type": "object",
    "required": ["criteria"],
    "properties": {
        "criteria": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["text", "points"],
                "properties": {"text": {"type": "string"}, "points": {"type": "number"}},
                "additionalProperties": False,
            },
        }
    },
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ("  \n[1, 2, 3]\n ", [1, 2, 3]),
        ("42", 42),
        ('Here you go:\n```json\n{"a": [1, 2]}\n```\nAnything else?', {"a": [1, 2]}),
        ('```JSON\n{"a": 1}\n```', {"a": 1}),
        ('```\n{"plain": true}\n```', {"plain": True}),
        # a json-labelled block wins over an earlier unlabelled one
        ('```\nnot json\n```\n```json\n{"b": 2}\n```', {"b": 2}),
        (
            'Sure! {"a": {"b": "a } inside a string"}} Hope that helps.',
            {"a": {"b": "a } inside a string"}},
        ),
        ('I weighed [some options] first. Result: {"k": 2}', {"k": 2}),
        ('Mismatched (see [a} note) then {"k": 3}', {"k": 3}),
        ('{"a": 1} and then a stray {', {"a": 1}),
        ('The list: [{"x": 1}, {"x": 2}] done', [{"x": 1}, {"x": 2}]),
    ],
)
def test_extract_json_accepts(text, expected):
    assert extract_json(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("No JSON here, sorry.", "no JSON object or array"),
        ('{"a": NaN}', "NaN is not valid JSON"),
        ('{"a": Infinity}', "Infinity is not valid JSON"),
        ("[1, -Infinity]", "-Infinity is not valid JSON"),
        ('Result: {"a": NaN}', "NaN is not valid JSON"),
        ('```json\n{"a": NaN}\n```', "NaN is not valid JSON"),
        ('```json\n{"a": 1,}\n```', "invalid JSON in the fenced block"),
        ('{"a": 1,}', "Expecting property name"),
        ('Here: {"a": [1, 2,]} ok', "invalid JSON"),
        # cut off mid-document: the complete inner object must not be returned as the answer
        ('{"criteria": [{"text": "a", "points": 1}, {"text": "b', "cut off"),
    ],
)
def test_extract_json_rejects_with_a_reason(text, reason):
    with pytest.raises(StructuredOutputError) as info:
        extract_json(text)
    assert reason in info.value.message
    assert str(info.value) == info.value.message


def test_validate_names_path_and_problem():
    value = {"criteria": [{"text": "a", "points": 1}, {"text": "b", "points": 2}]}
    value["criteria"].append({"text": "c", "points": "five"})
    with pytest.raises(StructuredOutputError) as info:
        validate(value, RUBRIC)
    assert info.value.message == "criteria[2].points: 'five' is not of type 'number'"


def test_validate_reports_a_few_problems_and_counts_the_rest():
    value = {"criteria": [{"text": 1}, {"points": "x"}, {"text": "ok", "points": 1, "extra": 0}]}
    with pytest.raises(StructuredOutputError) as info:
        validate(value, RUBRIC)
    message = info.value.message
    assert message.count("; ") == 3 and message.endswith("and 2 more problem(s)")
    assert "criteria[0]: 'points' is a required property" in message


def test_validate_root_and_success():
    validate({"criteria": []}, RUBRIC)
    with pytest.raises(StructuredOutputError, match=r"^\(root\): 'criteria' is a required"):
        validate({}, RUBRIC)
    with pytest.raises(StructuredOutputError, match=r"^\(root\): \[\] is not of type 'object'"):
        validate([], RUBRIC)


def test_validate_uses_draft_2020_12():
    schema = {"type": "array", "prefixItems": [{"type": "integer"}], "items": False}
    validate([1], schema)
    with pytest.raises(StructuredOutputError, match="Expected at most 1 item"):
        validate([1, 2], schema)


def test_format_path():
    assert format_path(["criteria", 2, "points"]) == "criteria[2].points"
    assert format_path([0, "a"]) == "[0].a"
    assert format_path([]) == "(root)"


def test_repair_messages_appends_answer_and_reason():
    original = [{"role": "system", "content": "Grade."}, {"role": "user", "content": "Q"}]
    error = StructuredOutputError("criteria[0].points: 'x' is not of type 'number'")
    out = repair_messages(original, '{"criteria": [{"points": "x"}]}', error)
    assert out[:2] == original and len(original) == 2  # the input is not modified
    assert out[2] == {"role": "assistant", "content": '{"criteria": [{"points": "x"}]}'}
    assert out[3]["role"] == "user"
    assert "criteria[0].points: 'x' is not of type 'number'" in out[3]["content"]
    assert "only the corrected JSON" in out[3]["content"]
    assert "schema" in out[3]["content"]
    assert repair_messages(original, "bad", "plain reason")[3]["content"].count("plain reason") == 1
