"""The demo project's responses and preference pairs, built offline and deterministically.

Why: a new user must be able to grade, compare, review and export without importing
anything, and HealthBench ships conversations and rubrics but no responses. For the first
HealthBench conversations with enough rubric items, three *synthetic* responses are written
from the rubric itself (one covering every positive item, one covering about half, one
covering a quarter and making the rubric's pitfalls), so that a competent judge ranks them
in that order. For the MT-Bench questions that have one, GPT-4's real reference answer is a
response (and the prompt's reference answer), beside two synthetic ones (a truncated answer
and an evasive one). Every synthetic response says so in its source name and metadata.

Plain Python (no Django): ``demo_records`` yields generic-format import records, which the
demo command imports through the ordinary importer.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["DEMO_PROMPTS", "demo_records", "healthbench_records", "mtbench_records"]

DEMO_PROMPTS = 30  # conversations of each dataset that get responses
SYNTHETIC = {"synthetic": True, "generator": "rubricstudio demo (offline, deterministic)"}

_LEAD = re.compile(
    r"^(?:(?:correctly|clearly|explicitly|appropriately|briefly|accurately)\s+)?"
    r"(?:advises|recommends|suggests|states|mentions|explains|notes|includes|provides|"
    r"asks(?:\s+about)?|encourages|emphasi[sz]es|describes|identifies|informs|tells|lists|"
    r"gives|offers|warns(?:\s+about)?|highlights|acknowledges|clarifies|specifies|"
    r"indicates|proposes|discusses|addresses|claims|says|reminds|urges|cautions|instructs|directs)\s+"
    r"(?:that\s+|the\s+user\s+(?:to\s+|that\s+|about\s+)?|the\s+patient\s+(?:to\s+|that\s+)?)?",
    re.IGNORECASE,
)
_NEGATED = re.compile(r"^(?:fails|does not|doesn't|omits|neglects|misses|lacks)\b", re.I)


def _rng(*parts: str) -> random.Random:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - demo text, not secrets


def _statement(criterion: str) -> str:
    """A rubric item turned into a plain sentence of a response."""
    text = _LEAD.sub("", criterion.strip(), count=1).strip()
    text = re.sub(r"\s*\((?:e\.g\.|for example|such as)[^)]*\)", "", text).rstrip(" .;:")
    return (text[:1].upper() + text[1:] + ".") if text else ""


def _last_user_turn(messages: list[dict[str, str]]) -> str:
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return users[-1] if users else ""


def _response(opening: str, statements: list[str], closing: str) -> str:
    body = "\n".join(f"- {s}" for s in statements if s)
    return "\n\n".join(part for part in (opening, body, closing) if part)


def _healthbench_responses(record: dict[str, Any]) -> list[dict[str, Any]]:
    # Cluster-level items are generic grading instructions, not content to write.
    items = [i for i in record["rubrics"] if "level:cluster" not in i.get("tags", [])]
    positive = [i["criterion"] for i in items if i["points"] > 0]
    pitfalls = [
        i["criterion"] for i in items if i["points"] < 0 and not _NEGATED.match(i["criterion"])
    ]
    rng = _rng("healthbench", record["prompt_id"])
    shuffled = positive[:]
    rng.shuffle(shuffled)
    half, quarter = shuffled[: max(1, len(positive) // 2)], shuffled[: max(1, len(positive) // 4)]
    opening = "Thanks for asking; here is what matters for your situation."
    plans = [
        ("synthetic-thorough", [_statement(c) for c in positive], "covers every positive item"),
        ("synthetic-partial", [_statement(c) for c in half], "covers about half the items"),
        (
            "synthetic-careless",
            [_statement(c) for c in quarter] + [_statement(c) for c in pitfalls],
            "covers a quarter of the items and makes the pitfalls",
        ),
    ]
    return [
        {
            "source": source,
            "content": _response(opening, statements, "I hope this helps."),
            "metadata": {**SYNTHETIC, "written_from": "the rubric", "plan": plan},
        }
        for source, statements, plan in plans
    ]


def healthbench_records(path: Path, limit: int = DEMO_PROMPTS) -> Iterator[dict[str, Any]]:
    """Generic records adding synthetic responses to the first ``limit`` conversations that
    have at least four positive example-level rubric items; every other one prefers thorough to careless."""
    made = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if made >= limit:
                return
            if not line.strip():
                continue
            record = json.loads(line)
            example_items = [
                i for i in record["rubrics"] if "level:cluster" not in i.get("tags", [])
            ]
            if sum(1 for i in example_items if i["points"] > 0) < 4:
                continue
            out: dict[str, Any] = {
                "id": record["prompt_id"],
                "messages": record["prompt"],
                "responses": _healthbench_responses(record),
            }
            if made % 2 == 0:
                out["preference"] = [0, 2]
            made += 1
            yield out


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def mtbench_records(
    questions: Path, references: Path | None, limit: int = DEMO_PROMPTS
) -> Iterator[dict[str, Any]]:
    """Every MT-Bench question as a generic record (first turn as the prompt, category and
    second turn in metadata); the first ``limit`` with a GPT-4 reference answer also get that
    answer as a response and as the reference, a truncated and an evasive synthetic
    response, and (every other one) the preference GPT-4 over evasive."""
    answers: dict[int, str] = {}
    if references is not None and references.is_file():
        with references.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    item = json.loads(line)
                    answers[item["question_id"]] = item["choices"][0]["turns"][0]
    made = 0
    with questions.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            q = json.loads(line)
            turns = q["turns"]
            out: dict[str, Any] = {
                "id": f"mtbench-{q['question_id']}",
                "prompt": turns[0],
                "metadata": {
                    "dataset": "mt-bench",
                    "category": q.get("category", ""),
                    "second_turn": turns[1] if len(turns) > 1 else "",
                },
            }
            answer = answers.get(q["question_id"])
            if answer is not None and made < limit:
                sentences = _sentences(answer)
                brief = " ".join(sentences[: max(1, len(sentences) // 3)])
                topic = " ".join(turns[0].split()[:8]).rstrip(".?!,")
                evasive = (
                    f"That is an interesting question ({topic}…). It depends on many factors, "
                    "and different people would answer it differently, so I would rather not "
                    "commit to a specific answer here."
                )
                out["reference_answer"] = answer
                out["responses"] = [
                    {"source": "gpt-4", "content": answer, "metadata": {"reference": True}},
                    {
                        "source": "synthetic-brief",
                        "content": brief,
                        "metadata": {**SYNTHETIC, "plan": "the first third of GPT-4's answer"},
                    },
                    {
                        "source": "synthetic-evasive",
                        "content": evasive,
                        "metadata": {**SYNTHETIC, "plan": "declines to answer"},
                    },
                ]
                if made % 2 == 0:
                    out["preference"] = [0, 2]
                made += 1
            yield out


def demo_records(data_dir: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """(file name, generic records) for each demo file whose source data is present."""
    files = []
    healthbench = data_dir / "healthbench" / "healthbench_sample_250.jsonl"
    if healthbench.is_file():
        files.append(("demo_healthbench_responses.jsonl", list(healthbench_records(healthbench))))
    questions = data_dir / "mtbench" / "question.jsonl"
    if questions.is_file():
        references = data_dir / "mtbench" / "reference_answer_gpt-4.jsonl"
        files.append(("demo_mtbench.jsonl", list(mtbench_records(questions, references))))
    return files
