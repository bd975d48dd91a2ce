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


# --- the compiled check: never says "valid" where jsonschema would not -----------------------

ODD_VALUES = [None, True, False, 0, 1, -1, 1.0, 1.5, 10**6, "", "x", "tie", "A", "y" * 5000, [], {}]


def _instance(schema):
    """A valid instance of one of the studio's schemas (the keywords ``_compile`` knows)."""
    kind = schema["type"]
    if kind == "object":
        return {name: _instance(sub) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        count = min(max(schema.get("minItems", 1), 1), schema.get("maxItems", 1 << 30))
        return [_instance(schema["items"]) for _ in range(count)]
    if kind == "string":
        return schema["enum"][0] if "enum" in schema else "fine"
    if kind == "boolean":
        return True
    return schema.get("minimum", 0)


def _mutations(value):
    """The value with one node replaced by each odd value, one key added or taken away, or
    one list grown or shrunk, anywhere in it."""
    yield from ODD_VALUES
    if isinstance(value, dict):
        yield {**value, "extra": 1}
        for key in value:
            yield {k: v for k, v in value.items() if k != key}
            for inner in _mutations(value[key]):
                yield {**value, key: inner}
    if isinstance(value, list):
        yield value[:-1]
        yield [*value, value[0]] if value else [1]
        for i, item in enumerate(value):
            for inner in _mutations(item):
                yield [*value[:i], inner, *value[i + 1 :]]


def _studio_schemas():
    from scoring.engine import coauthor, judging

    return {
        "criterion": judging.CRITERION_SCHEMA,
        "holistic": judging.HOLISTIC_SCHEMA,
        "grouped": judging.grouped_schema(3),
        "pairwise": judging.pairwise_schema(3),
        "pairwise-overall": judging.pairwise_schema(0),
        "draft": coauthor.DRAFT_SCHEMA,
        "contrastive": coauthor.CONTRASTIVE_SCHEMA,
        "nuggets": coauthor.NUGGETS_SCHEMA,
        "grade": coauthor.grade_schema(3),
        "critique": coauthor.critique_schema(2),
        "refine": coauthor.refine_schema(2),
    }


@pytest.mark.parametrize("name", list(_studio_schemas()))
def test_compiled_check_agrees_with_jsonschema(name):
    from jsonschema import Draft202012Validator

    from scoring.engine.structured import _compile

    schema = _studio_schemas()[name]
    fast = _compile(schema)
    if name in ("criterion", "holistic", "grouped", "pairwise", "pairwise-overall"):
        assert fast is not None, "the judge's schemas are checked by the compiled check"
    if fast is None:
        return
    reference = Draft202012Validator(schema)
    valid = _instance(schema)
    assert reference.is_valid(valid) and fast(valid)
    mutated = list(_mutations(valid))
    assert len(mutated) > 20
    rejected = 0
    for value in mutated:
        if fast(value):
            assert reference.is_valid(value), value
            validate(value, schema)
        else:
            rejected += 1
    assert rejected > len(mutated) // 2  # the mutations mostly break the schema


def test_compiled_check_leaves_unknown_keywords_to_jsonschema():
    from scoring.engine.structured import _compile

    assert _compile({"type": "string", "pattern": "^a"}) is None
    assert (
        _compile({"type": "object", "properties": {"a": {"type": "string", "format": "x"}}}) is None
    )
    assert _compile({"type": "array", "prefixItems": [{"type": "string"}]}) is None
    assert _compile({"type": ["string", "null"]}) is None
    assert _compile({"enum": [1, 2]}) is None
    with pytest.raises(StructuredOutputError, match="does not match"):
        validate("b", {"type": "string", "pattern": "^a"})


def test_compiled_check_sends_doubtful_values_to_jsonschema():
    """A float integer is valid for "integer" (Draft 2020-12); the compiled check does not
    accept it and jsonschema does; a bool is never an integer."""
    from scoring.engine.structured import _compile

    schema = {"type": "integer", "minimum": 1, "maximum": 3}
    fast = _compile(schema)
    assert fast is not None and fast(2) and not fast(2.0) and not fast(True)
    validate(2.0, schema)
    with pytest.raises(StructuredOutputError):
        validate(True, schema)
    with pytest.raises(StructuredOutputError, match="less than the minimum"):
        validate(0, schema)
