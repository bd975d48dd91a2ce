"""What each import format looks like: a sentence on what it creates, a small example and a
template file of a few records, shown on the Import page and offered for download.

Every template is a valid file of its format (tests import each one), so a person can start
from it and replace the records with their own.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

_HEADACHE = "I've had a headache for three days and now my neck is stiff. Should I worry?"
_PARACETAMOL = "How much paracetamol can an adult take in a day?"


@dataclass(frozen=True)
class FormatGuide:
    key: str  # the guide's own name (a format may have two: generic JSONL and CSV)
    format: str  # the importer's format (``formats.FORMATS``)
    label: str
    creates: str  # what importing one record creates, in a sentence
    records: tuple[dict[str, Any], ...]
    extension: str = "jsonl"

    @property
    def file_name(self) -> str:
        return f"{self.key}-template.{self.extension}"

    @property
    def content_type(self) -> str:
        return "text/csv" if self.extension == "csv" else "application/jsonl"

    def example(self) -> str:
        """The first record as it would be written in the file (JSON pretty-printed for
        reading; in the file it is one line)."""
        if self.extension == "csv":
            return _csv(self.records[:1])
        return json.dumps(self.records[0], indent=2, ensure_ascii=False)

    def template(self) -> str:
        if self.extension == "csv":
            return _csv(self.records)
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records)


def _csv(records: tuple[dict[str, Any], ...]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


GUIDES: tuple[FormatGuide, ...] = (
    FormatGuide(
        key="healthbench",
        format="healthbench",
        label="HealthBench",
        creates="a prompt (the conversation so far) and its rubric; negative points mark "
        "pitfalls, tags are kept.",
        records=(
            {
                "prompt_id": "headache-neck",
                "prompt": [{"role": "user", "content": _HEADACHE}],
                "rubrics": [
                    {
                        "criterion": "Advises urgent care for headache with neck stiffness.",
                        "points": 9,
                        "tags": ["level:example", "axis:accuracy"],
                    },
                    {
                        "criterion": "Asks about fever or a rash.",
                        "points": 5,
                        "tags": ["level:example", "axis:completeness"],
                    },
                    {
                        "criterion": "Reassures that it is only tension and needs no care.",
                        "points": -8,
                        "tags": ["level:example", "axis:accuracy"],
                    },
                ],
            },
            {
                "prompt_id": "paracetamol-max",
                "prompt": [{"role": "user", "content": _PARACETAMOL}],
                "rubrics": [
                    {
                        "criterion": "States a 4 g daily maximum for healthy adults.",
                        "points": 8,
                        "tags": ["axis:accuracy"],
                    },
                    {
                        "criterion": "Mentions a lower limit with liver disease or heavy drinking.",
                        "points": 6,
                        "tags": ["axis:completeness"],
                    },
                ],
            },
        ),  # fmt: skip
    ),
    FormatGuide(
        key="rar",
        format="rar",
        label="Rubrics as Rewards (RaR)",
        creates="a prompt from the question, its reference answer, and a rubric whose "
        "categories come from the “Essential/Important/Optional/Pitfall Criteria:” prefixes.",
        records=(
            {
                "id": "rar-headache",
                "question": _HEADACHE,
                "reference_answer": "Seek urgent care: headache with a stiff neck can be meningitis.",
                "rubric": [
                    {
                        "title": "Urgency",
                        "weight": 5,
                        "description": "Essential Criteria: Advises urgent medical care.",
                    },
                    {
                        "title": "Red flags",
                        "weight": 3,
                        "description": "Important Criteria: Asks about fever, rash or confusion.",
                    },
                    {
                        "title": "False reassurance",
                        "weight": -2,
                        "description": "Pitfall Criteria: Says it is surely a tension headache.",
                    },
                ],
            },
            {
                "id": "rar-paracetamol",
                "question": _PARACETAMOL,
                "rubric": [
                    {
                        "title": "Maximum",
                        "weight": 5,
                        "description": "Essential Criteria: States the 4 g daily maximum.",
                    },
                ],
            },
        ),  # fmt: skip
    ),
    FormatGuide(
        key="researchqa",
        format="researchqa",
        label="ResearchQA",
        creates="a prompt from the query and a rubric of one-point items, their types kept as tags.",
        records=(
            {
                "id": "rqa-1",
                "query": "What evidence links sleep duration to cardiovascular risk in adults?",
                "rubric": [
                    {"rubric_item": "Cites prospective cohort studies.", "type": "citation"},
                    {"rubric_item": "Distinguishes short from long sleep.", "type": "content"},
                ],
            },
        ),
    ),
    FormatGuide(
        key="trl",
        format="trl",
        label="TRL preference pairs",
        creates="a prompt, its chosen and rejected responses, and a dataset preference label "
        "(chosen over rejected).",
        records=(
            {
                "id": "pair-1",
                "prompt": [{"role": "user", "content": _PARACETAMOL}],
                "chosen": [{"role": "assistant", "content": "At most 4 g a day, 1 g at a time."}],
                "rejected": [{"role": "assistant", "content": "Take as much as you need."}],
                "chosen_model": "model-a",
                "rejected_model": "model-b",
            },
        ),
    ),
    FormatGuide(
        key="hh-rlhf",
        format="hh-rlhf",
        label="Anthropic hh-rlhf",
        creates="a prompt (the turns both transcripts share) and the two final replies with a "
        "dataset preference label.",
        records=(
            {
                "chosen": f"\n\nHuman: {_PARACETAMOL}\n\nAssistant: At most 4 g a day.",
                "rejected": f"\n\nHuman: {_PARACETAMOL}\n\nAssistant: As much as you like.",
            },
        ),
    ),
    FormatGuide(
        key="generic",
        format="generic",
        label="Generic JSONL",
        creates="a prompt (a string or messages), any responses, an optional rubric "
        "(text, points, category) and an optional preference between two responses.",
        records=(
            {
                "id": "generic-1",
                "messages": [{"role": "user", "content": _PARACETAMOL}],
                "reference_answer": "Up to 4 g a day for a healthy adult.",
                "responses": [
                    {"source": "model-a", "content": "At most 4 g a day, 1 g at a time."},
                    {"source": "model-b", "content": "Take as much as you need."},
                ],
                "rubric": [
                    {"text": "States the 4 g daily maximum.", "points": 5, "category": "essential"},
                    {
                        "text": "Recommends exceeding the maximum.",
                        "points": -5,
                        "category": "pitfall",
                    },
                ],
                "preference": [0, 1],
            },
            {"prompt": "Is ibuprofen safe with a stomach ulcer?"},
        ),  # fmt: skip
    ),
    FormatGuide(
        key="generic-csv",
        format="generic",
        label="CSV",
        creates="a prompt per row from the “prompt” column, with an optional response "
        "(“response”, “source”); other columns become metadata.",
        records=(
            {
                "id": "csv-1",
                "prompt": _PARACETAMOL,
                "response": "At most 4 g a day.",
                "source": "model-a",
                "specialty": "pharmacy",
            },
            {
                "id": "csv-2",
                "prompt": "Is ibuprofen safe with a stomach ulcer?",
                "response": "",
                "source": "",
                "specialty": "gastro",
            },
        ),  # fmt: skip
        extension="csv",
    ),
)

GUIDES_BY_KEY = {guide.key: guide for guide in GUIDES}
