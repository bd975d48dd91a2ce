"""What an import keeps: texts byte for byte (through later rubric versions too), the
fields no column holds (in prompt.metadata), and every record of real-shaped hh-rlhf files."""

from __future__ import annotations

import json
from pathlib import Path

from annotation.prompts import services as prompt_services
from annotation.prompts.models import PreferenceLabel, Prompt, Response
from annotation.rubrics import drafts as rubric_drafts
from annotation.rubrics import services as rubric_services
from annotation.rubrics.models import Criterion, Rubric

HH_SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "hh_rlhf_sample.jsonl"


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def criteria_of(prompt: Prompt, version: int | None = None) -> list[Criterion]:
    rubric = Rubric.objects.get(prompt=prompt)
    number = version or rubric.current_version.number
    return list(
        Criterion.objects.filter(version__rubric=rubric, version__number=number).order_by(
            "position"
        )
    )


# --- byte-exact text ------------------------------------------------------------------


def test_healthbench_criterion_text_is_stored_byte_for_byte(project, healthbench_path):
    report = prompt_services.data_import(project=project, path=healthbench_path)
    assert report.ok and report.criteria_created == 2955
    padded = 0
    with healthbench_path.open(encoding="utf-8") as handle:
        for line in handle:
            source = json.loads(line)
            prompt = Prompt.objects.get(project=project, external_id=source["prompt_id"])
            assert prompt.messages == source["prompt"]
            stored = [c.text.encode("utf-8") for c in criteria_of(prompt)]
            expected = [item["criterion"].encode("utf-8") for item in source["rubrics"]]
            assert stored == expected, source["prompt_id"]
            padded += sum(text != text.strip() for text in expected)
    assert padded > 0  # the sample has texts with leading or trailing whitespace


HB_PADDED = {
    "prompt_id": "padded",
    "prompt": [{"role": "user", "content": "  Is 38.5C a fever?\n"}],
    "rubrics": [
        {"criterion": "  Says yes, it is a fever.\n", "points": 5, "tags": []},
        {"criterion": "Suggests antibiotics. ", "points": -4, "tags": []},
    ],
}


def test_imported_text_stays_exact_through_later_versions(project, editor, tmp_path):
    path = write_jsonl(tmp_path / "padded.jsonl", [HB_PADDED])
    assert prompt_services.data_import(project=project, path=path, actor=editor).ok
    prompt = Prompt.objects.get(external_id="padded")
    assert prompt.messages == HB_PADDED["prompt"]
    first, second = criteria_of(prompt)
    assert [first.text, second.text] == ["  Says yes, it is a fever.\n", "Suggests antibiotics. "]

    # A person edits the second criterion's points in the editor and saves: the first
    # criterion's text, which nobody touched, is carried over exactly.
    rubric = Rubric.objects.get(prompt=prompt)
    rubric_drafts.draft_edit(
        rubric=rubric,
        user=editor,
        op="update",
        data={"key": str(second.key), "points": "-5", "base": "1"},
    )
    rubric_drafts.draft_save(rubric=rubric, user=editor, note="stricter")
    rubric.refresh_from_db()
    assert rubric.current_version.number == 2
    assert [(c.text, c.points) for c in criteria_of(prompt)] == [
        ("  Says yes, it is a fever.\n", 5.0),
        ("Suggests antibiotics. ", -5.0),
    ]
    rubric_services.rubric_version_restore(rubric=rubric, number=1, author=editor)
    assert [c.text for c in criteria_of(prompt)] == [first.text, second.text]


def test_a_criterion_of_only_whitespace_is_still_an_error(project, tmp_path):
    row = {**HB_PADDED, "rubrics": [{"criterion": " \n\t", "points": 1, "tags": []}]}
    report = prompt_services.data_import(
        project=project, path=write_jsonl(tmp_path / "ws.jsonl", [row])
    )
    assert not report.committed
    assert report.errors == [{"line": 1, "reason": "rubrics[0].criterion must not be empty"}]
    assert Prompt.objects.count() == 0


# --- fields kept in prompt.metadata -----------------------------------------------------


def test_researchqa_and_healthbench_fields_land_in_prompt_metadata(project, tmp_path):
    cited = {"title": "Attention is all you need", "year": 2017, "authors": ["A. Vaswani"]}
    rqa = tmp_path / "rqa.json"
    rqa.write_text(
        json.dumps(
            [
                {
                    "id": "rqa-1",
                    "query": "Why did transformers replace RNNs?",
                    "general_domain": "Computer Science",
                    "citation_metadata": {"survey": "A survey"},
                    "rubric": [
                        {"rubric_item": "Mentions parallelism.", "type": "explanation"},
                        {
                            "rubric_item": "Cites the transformer paper.",
                            "type": "citation",
                            "citation_metadata": cited,
                        },
                    ],
                }
            ]
        ),
        encoding="utf-8",
    )
    hb = {
        **HB_PADDED,
        "prompt_id": "hb-ids",
        "example_id": "ex-42",
        "rubrics": [
            {"criterion": "First.", "points": 1, "tags": [], "id": "c-1"},
            {"criterion": "Second.", "points": 2, "tags": [], "id": "c-2"},
        ],
    }
    assert prompt_services.data_import(project=project, path=rqa).ok
    assert prompt_services.data_import(
        project=project, path=write_jsonl(tmp_path / "hb.jsonl", [hb])
    ).ok

    prompt = Prompt.objects.get(external_id="rqa-1")
    assert prompt.metadata == {
        "general_domain": "Computer Science",
        "citation_metadata": {"survey": "A survey"},
        "rubric_items": [{}, {"citation_metadata": cited}],
    }
    # rubric_items[i] belongs to the criterion at position i of the imported version
    texts = [c.text for c in criteria_of(prompt, version=1)]
    assert texts[1] == "Cites the transformer paper."

    prompt = Prompt.objects.get(external_id="hb-ids")
    assert prompt.metadata == {
        "example_id": "ex-42",
        "rubric_items": [{"id": "c-1"}, {"id": "c-2"}],
    }


def test_rubric_items_go_with_a_rubric_made_for_an_existing_prompt(project, tmp_path):
    plain = write_jsonl(tmp_path / "plain.jsonl", [{"id": "q1", "prompt": "Hi", "topic": "x"}])
    assert prompt_services.data_import(project=project, path=plain).ok
    hb = {
        "prompt_id": "q1",
        "prompt": [{"role": "user", "content": "Hi"}],
        "rubrics": [{"criterion": "Greets back.", "points": 1, "tags": [], "id": "c-9"}],
    }
    report = prompt_services.data_import(
        project=project, path=write_jsonl(tmp_path / "hb.jsonl", [hb])
    )
    assert report.ok and report.prompts_unchanged == 1 and report.rubrics_created == 1
    prompt = Prompt.objects.get(external_id="q1")
    assert prompt.metadata == {"topic": "x", "rubric_items": [{"id": "c-9"}]}


# --- hh-rlhf --------------------------------------------------------------------------


def test_hh_rlhf_sample_imports_every_record(project):
    """Atomic (the default) and the whole file goes in, records whose transcripts differ
    before the final Assistant turn included."""
    report = prompt_services.data_import(project=project, path=HH_SAMPLE)
    assert report.ok and report.format == "hh-rlhf" and report.records == 8
    # record 8 asks record 1's question again: one prompt, two pairs of responses
    assert (report.prompts_created, report.prompts_unchanged) == (7, 1)
    assert report.responses_created == 16 and report.preference_labels_created == 8

    prompt = Prompt.objects.get(
        project=project,
        messages=[{"role": "user", "content": "Can you suggest a name for a grey kitten?"}],
    )
    divergence = {"diverged_at_turn": 2, "prompt_turns": 1}
    assert prompt.metadata == {"hh_rlhf": divergence}
    label = PreferenceLabel.objects.get(prompt=prompt)
    assert label.chosen.content == (
        "How about Pebble, Smokey or Ash?\n\nHuman: Something less common?"
        "\n\nAssistant: Maybe Nimbus, Flint or Pewter."
    )
    assert label.rejected.content.startswith("Grey kittens are usually called Smokey.\n\nHuman:")
    assert label.chosen.metadata == label.rejected.metadata == {"hh_rlhf": divergence}

    lines = HH_SAMPLE.read_text(encoding="utf-8").splitlines()
    for label in PreferenceLabel.objects.select_related("prompt", "chosen", "rejected"):
        transcript = "".join(
            ("\n\nHuman: " if m["role"] == "user" else "\n\nAssistant: ") + m["content"]
            for m in label.prompt.messages
        )
        pair = {
            "chosen": transcript + "\n\nAssistant: " + label.chosen.content,
            "rejected": transcript + "\n\nAssistant: " + label.rejected.content,
        }
        assert json.dumps(pair, ensure_ascii=False) in lines  # byte for byte, both sides

    again = prompt_services.data_import(project=project, path=HH_SAMPLE)
    assert again.ok and not again.changed and again.preference_labels_unchanged == 8
    assert Response.objects.count() == 16
