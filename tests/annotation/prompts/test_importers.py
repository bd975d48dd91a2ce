"""annotation.prompts.importers: format detection and parsing (plain Python, no database)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from annotation.prompts.importers.formats import FORMATS, detect_format, iter_records
from annotation.prompts.importers.reading import open_text
from annotation.prompts.importers.records import ImportFormatError, ParsedRecord, RecordError

HEALTHBENCH = (
    Path(__file__).resolve().parents[3].parent
    / "shared/data/healthbench/healthbench_sample_250.jsonl"
)
HH_SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "hh_rlhf_sample.jsonl"

HB_RECORD = {
    "prompt_id": "hb-1",
    "prompt": [
        {"role": "user", "content": "I have a headache."},
        {"role": "assistant", "content": "How long has it lasted?"},
        {"role": "user", "content": "Two days."},
    ],
    "rubrics": [
        {"criterion": "Asks about red flags.", "points": 7, "tags": ["axis:completeness"]},
        {"criterion": "Prescribes opioids.", "points": -9, "tags": ["axis:accuracy"]},
    ],
    "ideal_completions_data": {
        "ideal_completion": "See a doctor if ...",
        "ideal_completions_group": "group-a",
        "ideal_completions_ref_completions": ["Ref one", "Ref two"],
    },
    "example_tags": ["theme:emergency_referrals"],
}

RAR_RECORD = {
    "question": "What causes scurvy?",
    "reference_answer": "Vitamin C deficiency.",
    "question_source": "medqa",
    "rubric": [
        {
            "title": "Cause",
            "description": "Essential Criteria: Identifies vitamin C deficiency.",
            "weight": 5,
        },
        {
            "title": "Myth",
            "description": "Pitfall Criteria: Blames vitamin D.",
            "weight": -2,
        },
    ],
}

RQA_RECORD = {
    "id": "rqa-1",
    "query": "How do transformers scale?",
    "field": "Computer Science",
    "domain": "Machine learning",
    "rubric": [
        {"rubric_item": "Mentions scaling laws.", "type": ["citation", "depth"]},
        {"rubric_item": "Discusses compute.", "type": ["depth"]},
    ],
}

HH_CHOSEN = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant: Why..."
HH_REJECTED = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant: No."


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    else:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def parse(path: Path, fmt: str | None = None) -> list[ParsedRecord | RecordError]:
    return list(iter_records(path, fmt))


def only_record(path: Path, fmt: str | None = None) -> ParsedRecord:
    (item,) = parse(path, fmt)
    assert isinstance(item, ParsedRecord), item
    return item


def errors(items: list[ParsedRecord | RecordError]) -> list[RecordError]:
    return [item for item in items if isinstance(item, RecordError)]


# --- detection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (HB_RECORD, "healthbench"),
        (RAR_RECORD, "rar"),
        (RQA_RECORD, "researchqa"),
        ({"prompt": "p", "chosen": "a", "rejected": "b"}, "trl"),
        (
            {
                "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                "rejected": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "b"},
                ],
            },
            "trl",
        ),
        ({"chosen": HH_CHOSEN, "rejected": HH_REJECTED}, "hh-rlhf"),
        ({"prompt": "Hello"}, "generic"),
        ({"messages": [{"role": "user", "content": "Hello"}]}, "generic"),
    ],
)
def test_detect_format(tmp_path: Path, record: dict[str, Any], expected: str) -> None:
    assert expected in FORMATS
    assert detect_format(write_jsonl(tmp_path / "data.jsonl", ["", record])) == expected


def test_detect_gz_json_array_and_csv(tmp_path: Path) -> None:
    assert detect_format(write_jsonl(tmp_path / "hb.jsonl.gz", [HB_RECORD])) == "healthbench"
    array = tmp_path / "rqa.json"
    array.write_text(json.dumps([RQA_RECORD], indent=2), encoding="utf-8")
    assert detect_format(array) == "researchqa"
    table = tmp_path / "prompts.csv"
    table.write_text("id,prompt\n1,Hello\n", encoding="utf-8")
    assert detect_format(table) == "generic"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"foo": 1}\n', "match none of"),
        ("\n\n", "no records"),
        ("{not json\n", "invalid JSON"),
        ("[1, 2\n", "invalid JSON"),
    ],
)
def test_detect_format_errors_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "mystery.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ImportFormatError, match=message) as info:
        detect_format(path)
    assert "mystery.jsonl" in str(info.value)


def test_unreadable_files_raise_import_format_error(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="missing.jsonl"):
        detect_format(tmp_path / "missing.jsonl")
    bad_gz = tmp_path / "bad.jsonl.gz"
    bad_gz.write_bytes(b"not gzip at all")
    with pytest.raises(ImportFormatError, match="bad.jsonl.gz"):
        detect_format(bad_gz)
    with pytest.raises(ImportFormatError, match="bad.jsonl.gz"):
        parse(bad_gz, "generic")
    no_prompt = tmp_path / "no_prompt.csv"
    no_prompt.write_text("id,question\n1,x\n", encoding="utf-8")
    with pytest.raises(ImportFormatError, match="'prompt' column"):
        detect_format(no_prompt)


def test_unknown_format_is_rejected_at_call_time(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [{"prompt": "x"}])
    with pytest.raises(ImportFormatError, match="unknown format 'alpaca'"):
        iter_records(path, "alpaca")


def test_open_text_reads_gzip_and_plain(tmp_path: Path) -> None:
    plain = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "é"}])
    packed = write_jsonl(tmp_path / "a.jsonl.gz", [{"prompt": "é"}])
    with open_text(plain) as one, open_text(packed) as two:
        assert one.read() == two.read() == '{"prompt": "\\u00e9"}\n'


# --- healthbench ----------------------------------------------------------------------


def test_healthbench_record(tmp_path: Path) -> None:
    record = only_record(write_jsonl(tmp_path / "hb.jsonl.gz", [HB_RECORD]), "healthbench")
    assert record.line == 1
    assert record.external_id == "hb-1"
    assert record.messages == HB_RECORD["prompt"]
    assert record.reference_answer == "See a doctor if ..."
    assert [(r.source, r.content) for r in record.responses] == [
        ("reference", "Ref one"),
        ("reference", "Ref two"),
    ]
    assert [(c.text, c.points, c.category, c.kind) for c in record.criteria] == [
        ("Asks about red flags.", 7.0, "", "principle"),
        ("Prescribes opioids.", -9.0, "pitfall", "principle"),
    ]
    assert record.criteria[0].tags == ["axis:completeness"]
    assert record.metadata == {
        "example_tags": ["theme:emergency_referrals"],
        "ideal_completions_data": {"ideal_completions_group": "group-a"},
    }
    assert record.preference is None


def test_default_external_id_is_a_hash_of_the_messages(tmp_path: Path) -> None:
    row = {k: v for k, v in HB_RECORD.items() if k != "prompt_id"}
    record = only_record(write_jsonl(tmp_path / "hb.jsonl", [row]), "healthbench")
    canonical = json.dumps(HB_RECORD["prompt"], sort_keys=True, ensure_ascii=False)
    assert record.external_id == hashlib.sha1(canonical.encode()).hexdigest()[:16]  # noqa: S324


def test_malformed_lines_are_reported_and_iteration_continues(tmp_path: Path) -> None:
    bad_points = json.loads(json.dumps(HB_RECORD))
    bad_points["rubrics"][1]["points"] = "9"
    bad_role = json.loads(json.dumps(HB_RECORD))
    bad_role["prompt"][0]["role"] = "bot"
    bool_points = json.loads(json.dumps(HB_RECORD))
    bool_points["rubrics"][0]["points"] = True
    no_prompt = {k: v for k, v in HB_RECORD.items() if k != "prompt"}
    rows = [HB_RECORD, "", '{"prompt": [1, 2] "rubrics": []}', bad_points, no_prompt]
    rows += [bad_role, bool_points, "[1, 2]", '{"prompt": "unclosed?"', HB_RECORD]
    items = parse(write_jsonl(tmp_path / "hb.jsonl", rows), "healthbench")
    assert [(e.line, e.reason) for e in errors(items)] == [
        (3, "invalid JSON: Expecting ',' delimiter at column 19"),
        (4, "rubrics[1].points must be a number, got a string"),
        (5, "missing field 'prompt'"),
        (6, "prompt[0].role must be one of system, user, assistant, developer, tool, got 'bot'"),
        (7, "rubrics[0].points must be a number, got a boolean"),
        (8, "expected a JSON object, got a list"),
        (9, "invalid JSON: Expecting ',' delimiter at column 23"),  # where the '}' is missing
    ]
    assert [item.line for item in items if isinstance(item, ParsedRecord)] == [1, 10]


@pytest.mark.skipif(not HEALTHBENCH.exists(), reason="shared HealthBench sample not present")
def test_real_healthbench_sample() -> None:
    assert detect_format(HEALTHBENCH) == "healthbench"
    items = parse(HEALTHBENCH, "healthbench")
    assert errors(items) == []
    assert len(items) == 250
    criteria = [c for item in items for c in item.criteria]  # type: ignore[union-attr]
    assert len(criteria) == 2955
    assert sum(c.points < 0 for c in criteria) == 904
    assert all(c.category == "pitfall" for c in criteria if c.points < 0)
    assert len({item.external_id for item in items}) == 250  # type: ignore[union-attr]


# --- RaR -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "category", "text"),
    [
        ("Essential Criteria: Names the vitamin.", "essential", "Names the vitamin."),
        ("important criteria:Explains why.", "important", "Explains why."),
        ("  OPTIONAL   Criteria :  Gives sources. ", "optional", "Gives sources. "),
        ("Pitfall Criteria: Does not mention X.", "pitfall", "Does not mention X."),
        ("Mentions dosing.", "", "Mentions dosing."),
        (" Mentions dosing.\n", "", " Mentions dosing.\n"),
        ("Critical Criteria: Unknown prefix.", "", "Critical Criteria: Unknown prefix."),
    ],
)
def test_rar_prefix_parsing(tmp_path: Path, description: str, category: str, text: str) -> None:
    row = {"question": "Q?", "rubric": [{"title": "T", "description": description, "weight": 3}]}
    record = only_record(write_jsonl(tmp_path / "rar.jsonl", [row]), "rar")
    (criterion,) = record.criteria
    assert (criterion.category, criterion.text, criterion.points) == (category, text, 3.0)
    assert criterion.tags == ["title:T"]


def test_rar_record(tmp_path: Path) -> None:
    row = {**RAR_RECORD, "id": "rar-7"}
    record = only_record(write_jsonl(tmp_path / "rar.jsonl", [row]))
    assert record.external_id == "rar-7"
    assert record.messages == [{"role": "user", "content": "What causes scurvy?"}]
    assert record.reference_answer == "Vitamin C deficiency."
    assert [(c.category, c.points) for c in record.criteria] == [
        ("essential", 5.0),
        ("pitfall", -2.0),
    ]
    assert record.metadata == {"question_source": "medqa"}
    bad = {**RAR_RECORD, "rubric": [{"title": "T", "description": "Essential Criteria:  "}]}
    (error,) = parse(write_jsonl(tmp_path / "bad.jsonl", [bad]), "rar")
    assert error == RecordError(1, "rubric[0].description has no text after its prefix")


# --- ResearchQA ---------------------------------------------------------------------


def test_researchqa_json_array(tmp_path: Path) -> None:
    second = {**RQA_RECORD, "id": "rqa-2", "rubric": [{"rubric_item": "", "type": []}]}
    path = tmp_path / "researchqa.json"
    path.write_text(json.dumps([RQA_RECORD, second], indent=2), encoding="utf-8")
    first, error = parse(path)
    assert isinstance(first, ParsedRecord)
    assert first.line == 1
    assert first.external_id == "rqa-1"
    assert first.messages == [{"role": "user", "content": "How do transformers scale?"}]
    assert [(c.text, c.points, c.tags) for c in first.criteria] == [
        ("Mentions scaling laws.", 1.0, ["type:citation", "type:depth"]),
        ("Discusses compute.", 1.0, ["type:depth"]),
    ]
    assert first.metadata == {"field": "Computer Science", "domain": "Machine learning"}
    assert error == RecordError(2, "rubric[0].rubric_item must not be empty")


# --- unknown fields ------------------------------------------------------------------


def _one(tmp_path: Path, row: dict[str, Any], fmt: str) -> ParsedRecord:
    return only_record(write_jsonl(tmp_path / f"{fmt}.jsonl", [row]), fmt)


def test_unknown_fields_of_rubric_items_are_kept_aligned_by_position(tmp_path: Path) -> None:
    hb = json.loads(json.dumps(HB_RECORD))
    hb["example_id"] = "ex-9"
    hb["rubrics"][1].update({"id": "item-2", "consensus": {"agree": 3}})
    record = _one(tmp_path, hb, "healthbench")
    assert record.metadata["example_id"] == "ex-9"
    assert record.metadata["rubric_items"] == [{}, {"id": "item-2", "consensus": {"agree": 3}}]
    assert [c.text for c in record.criteria] == ["Asks about red flags.", "Prescribes opioids."]

    cited = {"title": "Scaling laws", "authors": ["A. B."], "year": 2020}
    rqa = {
        **RQA_RECORD,
        "citation_metadata": {"survey": "A survey of scaling"},
        "rubric": [
            {"rubric_item": "Cites scaling laws.", "type": "citation", "citation_metadata": cited},
            {"rubric_item": "Discusses compute.", "type": ["explanation"]},
        ],
    }
    record = _one(tmp_path, rqa, "researchqa")
    assert record.metadata == {
        "field": "Computer Science",
        "domain": "Machine learning",
        "citation_metadata": {"survey": "A survey of scaling"},
        "rubric_items": [{"citation_metadata": cited}, {}],
    }
    assert [c.tags for c in record.criteria] == [["type:citation"], ["type:explanation"]]

    rar = {**RAR_RECORD, "rubric": [{**RAR_RECORD["rubric"][0], "rater": "o3-mini"}]}
    record = _one(tmp_path, rar, "rar")
    assert record.metadata == {"question_source": "medqa", "rubric_items": [{"rater": "o3-mini"}]}

    generic = {"prompt": "p", "rubric": [{"criterion": "c", "points": 1, "id": "c1"}]}
    assert _one(tmp_path, generic, "generic").metadata == {"rubric_items": [{"id": "c1"}]}


def test_plain_rubric_items_add_no_metadata_and_a_clash_is_an_error(tmp_path: Path) -> None:
    plain = {"prompt": "p", "rubric_items": "mine", "rubric": [{"criterion": "c", "points": 1}]}
    assert _one(tmp_path, plain, "generic").metadata == {"rubric_items": "mine"}
    clash = {**plain, "rubric": [{"criterion": "c", "points": 1, "id": "c1"}]}
    (error,) = parse(write_jsonl(tmp_path / "clash.jsonl", [clash]), "generic")
    assert isinstance(error, RecordError) and error.line == 1
    assert error.reason.startswith("the record has a top-level field 'rubric_items'")


# --- TRL -----------------------------------------------------------------------------


def test_trl_plain_strings(tmp_path: Path) -> None:
    row = {"prompt": "Say hi", "chosen": "Hi!", "rejected": "No.", "chosen_model": "gpt-x"}
    record = only_record(write_jsonl(tmp_path / "trl.jsonl", [row]), "trl")
    assert record.messages == [{"role": "user", "content": "Say hi"}]
    assert [(r.source, r.content) for r in record.responses] == [
        ("gpt-x", "Hi!"),
        ("dataset-rejected", "No."),
    ]
    assert record.preference == (0, 1)


def test_trl_conversational(tmp_path: Path) -> None:
    system = {"role": "system", "content": "Be brief."}
    user = {"role": "user", "content": "Capital of France?"}
    explicit = {
        "prompt": [system, user],
        "chosen": [{"role": "assistant", "content": "Paris."}],
        "rejected": [{"role": "assistant", "content": "Lyon."}],
    }
    implicit = {
        "chosen": [system, user, {"role": "assistant", "content": "Paris."}],
        "rejected": [system, user, {"role": "assistant", "content": "Lyon."}],
    }
    mismatch = {**implicit, "rejected": [user, {"role": "assistant", "content": "Lyon."}]}
    items = parse(write_jsonl(tmp_path / "trl.jsonl", [explicit, implicit, mismatch]), "trl")
    one, two, error = items
    assert isinstance(one, ParsedRecord) and isinstance(two, ParsedRecord)
    for record in (one, two):
        assert record.messages == [system, user]
        assert [(r.source, r.content) for r in record.responses] == [
            ("dataset-chosen", "Paris."),
            ("dataset-rejected", "Lyon."),
        ]
        assert record.preference == (0, 1)
    assert one.external_id == two.external_id
    assert error == RecordError(3, "chosen and rejected conversations have different prompts")


# --- HH-RLHF ------------------------------------------------------------------------


def test_hh_rlhf(tmp_path: Path) -> None:
    good = {"chosen": HH_CHOSEN, "rejected": HH_REJECTED}
    no_common_prompt = {"chosen": HH_CHOSEN, "rejected": "\n\nHuman: Other\n\nAssistant: No."}
    human_last = {"chosen": HH_CHOSEN, "rejected": "\n\nHuman: Hi there"}
    no_label = {"chosen": "Hi there\n\nAssistant: Hello!", "rejected": HH_REJECTED}
    rows = [good, no_common_prompt, human_last, no_label]
    record, *errors_ = parse(write_jsonl(tmp_path / "hh.jsonl", rows))
    assert isinstance(record, ParsedRecord)
    assert record.messages == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke"},
    ]
    assert [(r.source, r.content, r.metadata) for r in record.responses] == [
        ("hh-chosen", "Why...", {}),
        ("hh-rejected", "No.", {}),
    ]
    assert record.preference == (0, 1)
    assert record.metadata == {}
    assert errors_ == [
        RecordError(
            2,
            "chosen and rejected transcripts share no Human turn that both answer, so they "
            "have no common prompt",
        ),
        RecordError(3, "rejected must end with an Assistant turn"),
        RecordError(4, "chosen must start with '\\n\\nHuman:'"),
    ]


def _hh(*turns: str) -> str:
    return "".join(
        ("\n\nHuman: " if i % 2 == 0 else "\n\nAssistant: ") + text for i, text in enumerate(turns)
    )


@pytest.mark.parametrize(
    ("chosen", "rejected", "prompt", "responses", "divergence"),
    [
        (  # an earlier Assistant turn differs (turn 2): the prompt is the first Human turn
            _hh("Name a grey kitten?", "Pebble.", "Less common?", "Nimbus."),
            _hh("Name a grey kitten?", "Smokey.", "Less common?", "Kitty."),
            ["Name a grey kitten?"],
            (
                "Pebble.\n\nHuman: Less common?\n\nAssistant: Nimbus.",
                "Smokey.\n\nHuman: Less common?\n\nAssistant: Kitty.",
            ),
            {"diverged_at_turn": 2, "prompt_turns": 1},
        ),
        (  # a Human turn differs (turn 3): the shared Assistant turn goes with the responses
            _hh("Boil an egg?", "Seven minutes.", "Soft yolk?", "Six."),
            _hh("Boil an egg?", "Seven minutes.", "Microwave?", "Never."),
            ["Boil an egg?"],
            (
                "Seven minutes.\n\nHuman: Soft yolk?\n\nAssistant: Six.",
                "Seven minutes.\n\nHuman: Microwave?\n\nAssistant: Never.",
            ),
            {"diverged_at_turn": 3, "prompt_turns": 1},
        ),
        (  # one transcript goes on after the other has ended
            _hh("Charge overnight?", "Yes."),
            _hh("Charge overnight?", "Yes.", "Cheap cable?", "Fine."),
            ["Charge overnight?"],
            ("Yes.", "Yes.\n\nHuman: Cheap cable?\n\nAssistant: Fine."),
            {"diverged_at_turn": 3, "prompt_turns": 1},
        ),
        (  # the longest shared prefix ending in a Human turn is kept (three turns here)
            _hh("A?", "B.", "C?", "D.", "E?", "F."),
            _hh("A?", "B.", "C?", "D!", "E?", "G."),
            ["A?", "B.", "C?"],
            ("D.\n\nHuman: E?\n\nAssistant: F.", "D!\n\nHuman: E?\n\nAssistant: G."),
            {"diverged_at_turn": 4, "prompt_turns": 3},
        ),
    ],
)
def test_hh_rlhf_transcripts_that_differ_before_the_final_turn(
    tmp_path: Path,
    chosen: str,
    rejected: str,
    prompt: list[str],
    responses: tuple[str, str],
    divergence: dict[str, int],
) -> None:
    row = {"chosen": chosen, "rejected": rejected}
    record = only_record(write_jsonl(tmp_path / "hh.jsonl", [row]), "hh-rlhf")
    assert [m["content"] for m in record.messages] == prompt
    assert [m["role"] for m in record.messages] == ["user", "assistant"] * (len(prompt) // 2) + [
        "user"
    ]
    assert [(r.source, r.content) for r in record.responses] == [
        ("hh-chosen", responses[0]),
        ("hh-rejected", responses[1]),
    ]
    # The prompt's messages followed by each response give the source transcript back.
    for transcript, response in zip((chosen, rejected), record.responses, strict=True):
        assert (
            _hh(*[m["content"] for m in record.messages]) + "\n\nAssistant: " + (response.content)
            == transcript
        )
    assert record.metadata == {"hh_rlhf": divergence}
    assert [r.metadata for r in record.responses] == [{"hh_rlhf": divergence}] * 2
    assert record.preference == (0, 1)


def test_hh_rlhf_text_is_kept_byte_for_byte(tmp_path: Path) -> None:
    chosen = "\n\nHuman:  two spaces, trailing too  \n\nAssistant:no space\n\nfirst\n\n"
    rejected = "\n\nHuman:  two spaces, trailing too  \n\nAssistant: "
    record = only_record(
        write_jsonl(tmp_path / "hh.jsonl", [{"chosen": chosen, "rejected": rejected}])
    )
    assert record.messages == [{"role": "user", "content": " two spaces, trailing too  "}]
    assert [r.content for r in record.responses] == ["no space\n\nfirst\n\n", ""]


def test_hh_rlhf_sample_fixture_parses_every_record() -> None:
    """tests/annotation/fixtures/hh_rlhf_sample.jsonl: records in the published files'
    shape, three of them with transcripts that differ before the final Assistant turn."""
    assert detect_format(HH_SAMPLE) == "hh-rlhf"
    items = parse(HH_SAMPLE)
    assert errors(items) == [] and len(items) == 8
    records = [item for item in items if isinstance(item, ParsedRecord)]
    diverged = {r.line: r.metadata["hh_rlhf"] for r in records if "hh_rlhf" in r.metadata}
    assert diverged == {
        3: {"diverged_at_turn": 2, "prompt_turns": 1},
        4: {"diverged_at_turn": 3, "prompt_turns": 1},
        5: {"diverged_at_turn": 3, "prompt_turns": 1},
    }
    lines = HH_SAMPLE.read_text(encoding="utf-8").splitlines()
    for record in records:
        source = json.loads(lines[record.line - 1])
        prompt = _hh(*[m["content"] for m in record.messages])
        for key, response in zip(("chosen", "rejected"), record.responses, strict=True):
            assert prompt + "\n\nAssistant: " + response.content == source[key]


# --- generic ------------------------------------------------------------------------


def test_generic_jsonl(tmp_path: Path) -> None:
    row = {
        "id": "g-1",
        "prompt": "Explain gravity.",
        "reference_answer": "Mass attracts mass.",
        "responses": ["Plain answer", {"source": "model-a", "content": "A", "metadata": {"t": 1}}],
        "rubric": [
            {"criterion": "Mentions mass.", "points": 2, "category": "essential"},
            {"text": "Never says magic.", "points": -1, "kind": "hard_rule", "tags": ["x"]},
        ],
        "metadata": {"split": "dev"},
        "difficulty": "easy",
        "preference": [1, 0],
    }
    messages_row = {"messages": [{"role": "user", "content": "Hi"}], "responses": []}
    bad_rubric = {"prompt": "x", "rubric": [{"criterion": "c", "points": 1, "category": "nice"}]}
    rows = [row, messages_row, bad_rubric, {"id": "no-prompt"}]
    record, second, bad, missing = parse(write_jsonl(tmp_path / "g.jsonl", rows), "generic")
    assert isinstance(record, ParsedRecord) and isinstance(second, ParsedRecord)
    assert record.external_id == "g-1"
    assert record.messages == [{"role": "user", "content": "Explain gravity."}]
    assert record.reference_answer == "Mass attracts mass."
    assert [(r.source, r.content, r.metadata) for r in record.responses] == [
        ("imported", "Plain answer", {}),
        ("model-a", "A", {"t": 1}),
    ]
    assert [(c.text, c.points, c.category, c.kind, c.tags) for c in record.criteria] == [
        ("Mentions mass.", 2.0, "essential", "principle", []),
        ("Never says magic.", -1.0, "", "hard_rule", ["x"]),
    ]
    assert record.metadata == {"split": "dev", "difficulty": "easy"}
    assert record.preference == (1, 0)
    assert second.messages == [{"role": "user", "content": "Hi"}]
    assert isinstance(bad, RecordError) and bad.reason.startswith("rubric[0].category must be")
    assert missing == RecordError(4, "missing field 'prompt' (or 'messages')")


def test_generic_csv(tmp_path: Path) -> None:
    path = tmp_path / "prompts.csv.gz"
    rows = [
        "id,prompt,reference_answer,response,source,topic",
        "p1,Hello?,Hi.,Hey there,model-b,greetings",
        '"p2","Line one',
        'line two",,,,',
        ",,,,,orphan",
        "p4,Extra,,,,,surplus",
        ",No id,,Answer,,",
    ]
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write("\r\n".join(rows) + "\r\n")
    assert detect_format(path) == "generic"
    first, second, missing, extra, last = parse(path)
    assert isinstance(first, ParsedRecord) and isinstance(second, ParsedRecord)
    assert (first.line, first.external_id, first.reference_answer) == (2, "p1", "Hi.")
    assert first.messages == [{"role": "user", "content": "Hello?"}]
    assert [(r.source, r.content) for r in first.responses] == [("model-b", "Hey there")]
    assert first.metadata == {"topic": "greetings"}
    assert (second.line, second.external_id, second.responses) == (3, "p2", [])
    assert second.messages == [{"role": "user", "content": "Line one\r\nline two"}]
    assert missing == RecordError(5, "missing field 'prompt'")
    assert extra == RecordError(6, "row has more fields than the header")
    assert isinstance(last, ParsedRecord)
    assert last.line == 7 and len(last.external_id) == 16
    assert [(r.source, r.content) for r in last.responses] == [("imported", "Answer")]


def test_csv_cells_are_kept_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "spaced.csv"
    path.write_text(
        "id,prompt,reference_answer,response,source,topic\n"
        ' p1 ,"  Hello?  ", Hi. , Hey there , model-b , greetings \n'
        "p2,Plain,  ,   ,  ,  \n",
        encoding="utf-8",
    )
    spaced, plain = parse(path)
    assert isinstance(spaced, ParsedRecord) and isinstance(plain, ParsedRecord)
    assert spaced.external_id == "p1"
    assert spaced.messages == [{"role": "user", "content": "  Hello?  "}]
    assert spaced.reference_answer == " Hi. "
    assert [(r.source, r.content) for r in spaced.responses] == [("model-b", " Hey there ")]
    assert spaced.metadata == {"topic": " greetings "}
    assert (plain.reference_answer, plain.responses, plain.metadata) == ("", [], {})


def test_csv_must_be_generic(tmp_path: Path) -> None:
    path = tmp_path / "prompts.csv"
    path.write_text("prompt\nHello\n", encoding="utf-8")
    with pytest.raises(ImportFormatError, match="only be imported as 'generic'"):
        iter_records(path, "rar")
