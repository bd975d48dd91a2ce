"""coauthor_contrastive.py, without a database or a server: contrastive generation resamples
a rubric from a preference pair until grading both responses with it reproduces the label
(and says so when no sample does), refinement grades the responses each round, contrasts
the two best and chains its rounds, and ``apply_changes`` merges add / rewrite / split /
delete changes keeping keys. A scripted chat client stands in for the gateway: it checks
every answer against the schema the engine sent, as the gateway does, and records each
call."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest

from scoring.engine import prompts
from scoring.engine.coauthor import (
    CONTRASTIVE_SCHEMA,
    PromptContext,
    grade_schema,
    numbered,
    refine_schema,
    score,
)
from scoring.engine.coauthor_contrastive import apply_changes, contrastive, refine
from scoring.engine.gateway_types import CallResult, GatewayError, Usage

SECRET = b"coauthor-engine-test-secret"
CTX = PromptContext(messages=[{"role": "user", "content": "My child has a fever of 39C."}])
CHOSEN = "Give paracetamol by weight and see a doctor if it lasts over three days."
REJECTED = "Fevers are fine, ignore it."
CURRENT = [
    {"key": "k-acc", "text": "Gives a correct dose.", "points": 5.0, "category": "essential"},
    {"key": "k-esc", "text": "Says when to see a doctor.", "points": 3.0, "category": "important"},
]
CALL_USAGE = Usage(prompt_tokens=100, completion_tokens=20, cached_tokens=10, cost=0.5, calls=1)


def _item(text: str, points: float = 4.0, category: str = "important", **extra: Any) -> dict:
    return {"text": text, "points": points, "category": category, **extra}


def _block(content: str, label: str) -> str:
    """The text of a marked block of a rendered message."""
    match = re.search(
        rf"<<<{label} ([0-9a-f]{{16}})>>>\n(.*?)\n<<<END {label} \1>>>", content, re.DOTALL
    )
    assert match, f"no {label} block in {content!r}"
    return match.group(2)


@dataclass
class Call:
    messages: list[dict[str, str]]
    schema: dict[str, Any] | None
    schema_name: str
    template_version: str
    temperature: float | None


Answer = dict[str, Any] | GatewayError


class ScriptedClient:
    """Answers by schema name. ``samples`` and ``changes`` are consumed in order; grading is
    answered by ``grade(response_text, criteria_count)`` -> list of verdicts (bools), or an
    answer dict / GatewayError to return as is."""

    def __init__(
        self,
        *,
        samples: Sequence[Answer] = (),
        changes: Sequence[Answer] = (),
        grade: Callable[[str, int], list[bool] | Answer] | None = None,
    ) -> None:
        self.samples = list(samples)
        self.changes = list(changes)
        self.grade = grade
        self.calls: list[Call] = []

    def named(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.schema_name == name]

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict[str, Any] | None = None,
        schema_name: str = "answer",
        template_version: str = "",
        temperature: float | None = None,
    ) -> CallResult:
        self.calls.append(Call(messages, schema, schema_name, template_version, temperature))
        if schema_name == "contrastive_rubric":
            answer = self.samples.pop(0)
        elif schema_name == "rubric_changes":
            answer = self.changes.pop(0)
        elif schema_name == "verdicts":
            assert self.grade is not None, "unexpected grading call"
            count = int(re.search(r"criterion 1 to (\d+)", messages[1]["content"]).group(1))
            result = self.grade(_block(messages[1]["content"], "RESPONSE"), count)
            answer = (
                {"verdicts": [{"criterion_id": i, "met": m} for i, m in enumerate(result, 1)]}
                if isinstance(result, list)
                else result
            )
        else:
            raise AssertionError(f"unexpected schema {schema_name}")
        if isinstance(answer, GatewayError):
            raise answer
        jsonschema.validate(answer, schema)  # the gateway only hands back valid answers
        return CallResult("{}", answer, Usage().add(CALL_USAGE), 1, False, 0.01, "", "m")


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _contrastive(client: ScriptedClient, *, tries: int = 3, current=CURRENT) -> Any:  # type: ignore[no-untyped-def]
    return _run(
        contrastive(
            client,
            CTX,
            current,
            chosen=CHOSEN,
            rejected=REJECTED,
            tries=tries,
            style="healthbench",
            secret=SECRET,
        )
    )


def _by_response(chosen: list[bool], rejected: list[bool]) -> Callable[[str, int], list[bool]]:
    def grade(response: str, count: int) -> list[bool]:
        verdicts = {CHOSEN: chosen, REJECTED: rejected}[response]
        assert len(verdicts) == count
        return verdicts

    return grade


SAMPLE = {
    "hard_rules": [_item("Gives a dose based on the child's weight.", 5, "essential")],
    "principles": [
        _item("Says when to see a doctor!", 3),  # the current criterion, differently spelt
        _item("Does not dismiss the fever.", -4, "pitfall", tags=["axis:safety"]),
    ],
}


# --- contrastive: the first sample ----------------------------------------------------------


def test_a_sample_that_reproduces_the_label_is_proposed_at_once():
    # chosen meets the dose rule only, rejected makes the pitfall: 5/8 against -4/8.
    client = ScriptedClient(
        samples=[SAMPLE], grade=_by_response([True, False, False], [False, False, True])
    )
    result = _contrastive(client)

    assert result.error == ""
    assert result.notes == {
        "reproduced": True,
        "tries": 1,
        "attempts": [{"attempt": 1, "score_chosen": 5 / 8, "score_rejected": -4 / 8}],
    }
    # The current criteria stay first and unchanged; the restated one is not added again;
    # hard rules come before principles, each with its kind, and new ones have no key yet.
    assert result.criteria[:2] == CURRENT
    assert [(c["text"], c["kind"], c["key"]) for c in result.criteria[2:]] == [
        ("Gives a dose based on the child's weight.", "hard_rule", None),
        ("Does not dismiss the fever.", "principle", None),
    ]
    assert result.criteria[3]["points"] == -4.0 and result.criteria[3]["tags"] == ["axis:safety"]
    assert result.template_version == prompts.load("contrastive").version
    # One sample at the endpoint's own temperature, then chosen and rejected graded.
    assert [c.schema_name for c in client.calls] == ["contrastive_rubric", "verdicts", "verdicts"]
    assert client.calls[0].temperature is None
    assert client.calls[0].schema == CONTRASTIVE_SCHEMA
    graded = [_block(c.messages[1]["content"], "RESPONSE") for c in client.named("verdicts")]
    assert graded == [CHOSEN, REJECTED]
    assert all(c.schema == grade_schema(3) for c in client.named("verdicts"))
    assert result.usage.calls == 3 and result.usage.cost == pytest.approx(1.5)
    assert result.usage.prompt_tokens == 300 and result.usage.cached_tokens == 30


def test_the_sample_prompt_keeps_the_pair_inside_its_markers():
    client = ScriptedClient(
        samples=[SAMPLE], grade=_by_response([True, False, False], [False, False, True])
    )
    _contrastive(client)
    user = client.calls[0].messages[1]["content"]
    assert _block(user, "CHOSEN") == CHOSEN
    assert _block(user, "REJECTED") == REJECTED
    assert CTX.messages[0]["content"] in _block(user, "CONVERSATION")
    grading = client.named("verdicts")[0].messages[1]["content"]
    assert _block(grading, "RUBRIC") == numbered(
        [{"text": t, "points": p} for t, p in [(SAMPLE["hard_rules"][0]["text"], 5)]]
        + [{"text": i["text"], "points": i["points"]} for i in SAMPLE["principles"]]
    )


def test_the_same_pair_renders_the_same_messages_and_another_secret_does_not():
    """The boundary key is an HMAC of the inputs: identical requests (so cached answers are
    found again), unguessable without the secret."""

    def messages(secret: bytes) -> list[list[dict[str, str]]]:
        client = ScriptedClient(
            samples=[SAMPLE], grade=_by_response([True, False, False], [False, False, True])
        )
        _run(
            contrastive(
                client,
                CTX,
                CURRENT,
                chosen=CHOSEN,
                rejected=REJECTED,
                tries=3,
                style="rar",
                secret=secret,
            )
        )
        return [c.messages for c in client.calls]

    first, again, other = messages(SECRET), messages(SECRET), messages(b"another secret")
    assert first == again
    assert first[0] != other[0]
    assert "essential 5" in first[0][0]["content"]  # the RaR style's instructions


# --- contrastive: resampling ----------------------------------------------------------------


def test_a_sample_that_fails_the_label_is_resampled_hotter_and_distinct():
    weak = {"hard_rules": [], "principles": [_item("Is polite.", 2, "optional")]}
    grades = iter(
        [[True], [True], [True, False], [False, True]]  # sample 1: a tie; sample 2: chosen wins
    )
    client = ScriptedClient(
        samples=[weak, {"hard_rules": [_item("Gives a dose.", 5)], "principles": [_item("Calm.")]}],
        grade=lambda response, count: next(grades),
    )
    result = _contrastive(client, tries=3)

    assert result.notes["reproduced"] is True and result.notes["tries"] == 2
    assert result.notes["attempts"] == [
        {"attempt": 1, "score_chosen": 1.0, "score_rejected": 1.0},
        {"attempt": 2, "score_chosen": 5 / 9, "score_rejected": 4 / 9},
    ]
    # The second sample is proposed, not the first.
    assert [c["text"] for c in result.criteria[2:]] == ["Gives a dose.", "Calm."]
    samples = client.named("contrastive_rubric")
    assert [c.temperature for c in samples] == [None, 0.8]
    first, second = (c.messages[1]["content"] for c in samples)
    assert "Attempt" not in first
    assert second == first + "\n(Attempt 2 of 3: propose afresh.)"
    assert samples[0].messages[0] == samples[1].messages[0]  # same system prompt
    assert result.usage.calls == 6


def test_when_no_sample_reproduces_the_label_the_last_is_proposed_unconfirmed():
    samples = [
        {"hard_rules": [_item(f"Rule from sample {n}.", 3)], "principles": []} for n in (1, 2, 3)
    ]
    # The rejected response always scores at least as well.
    client = ScriptedClient(samples=samples, grade=_by_response([False], [True]))
    result = _contrastive(client, tries=3)

    assert result.error == ""
    assert result.notes["reproduced"] is False and result.notes["tries"] == 3
    assert [a["score_chosen"] for a in result.notes["attempts"]] == [0.0, 0.0, 0.0]
    assert [a["score_rejected"] for a in result.notes["attempts"]] == [1.0, 1.0, 1.0]
    assert [c["text"] for c in result.criteria] == [
        *(c["text"] for c in CURRENT),
        "Rule from sample 3.",
    ]
    assert len(client.named("contrastive_rubric")) == 3  # no fourth sample
    assert [c.temperature for c in client.named("contrastive_rubric")] == [None, 0.8, 0.8]


def test_a_rubric_without_positive_points_never_counts_as_reproducing():
    """score() is undefined (None) without positive points, so the label is not confirmed
    even though the rejected response makes every pitfall and the chosen one none."""
    pitfalls = {"hard_rules": [], "principles": [_item("Dismisses the fever.", -5, "pitfall")]}
    client = ScriptedClient(samples=[pitfalls] * 2, grade=_by_response([False], [True]))
    result = _contrastive(client, tries=2)
    assert result.notes["reproduced"] is False
    assert result.notes["attempts"][0] == {
        "attempt": 1,
        "score_chosen": None,
        "score_rejected": None,
    }


def test_failed_and_malformed_samples_are_recorded_and_resampled():
    client = ScriptedClient(
        samples=[
            GatewayError("timeout", "the endpoint timed out", usage=Usage(calls=1, cost=0.25)),
            {"hard_rules": [], "principles": []},  # parses, but proposes nothing
            SAMPLE,
        ],
        grade=_by_response([True, False, False], [False, False, True]),
    )
    result = _contrastive(client, tries=3)

    assert result.notes["reproduced"] is True and result.notes["tries"] == 3
    assert result.notes["attempts"][:2] == [
        {"attempt": 1, "error": "the endpoint timed out"},
        {"attempt": 2, "error": "no hard rules and no principles"},
    ]
    assert len(client.named("verdicts")) == 2  # only the third sample was graded
    # The failed call's billed answer counts too: 1 failed + 1 empty + 1 sample + 2 grades.
    assert result.usage.calls == 5 and result.usage.cost == pytest.approx(0.25 + 4 * 0.5)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"verdicts": [{"criterion_id": 1, "met": True}]}, "no verdict for criteria [2, 3]"),
        (
            {
                "verdicts": [
                    {"criterion_id": 1, "met": True},
                    {"criterion_id": 1, "met": False},
                    {"criterion_id": 3, "met": True},
                ]
            },
            "criterion 1 graded twice",
        ),
    ],
)
def test_an_incomplete_grading_fails_the_sample(answer, error):
    client = ScriptedClient(samples=[SAMPLE], grade=lambda response, count: answer)
    result = _contrastive(client, tries=1)
    assert result.criteria == []
    assert result.error == error
    assert result.notes == {"attempts": [{"attempt": 1, "error": error}]}
    assert len(client.named("verdicts")) == 1  # the rejected response is never graded


def test_when_every_sample_fails_nothing_is_proposed_and_each_error_is_kept():
    client = ScriptedClient(
        samples=[
            GatewayError("rate_limited", "slow down"),
            GatewayError("malformed", "not JSON"),
        ]
    )
    result = _contrastive(client, tries=2)
    assert result.criteria == []
    assert result.error == "slow down; not JSON"
    assert [a["attempt"] for a in result.notes["attempts"]] == [1, 2]


@pytest.mark.parametrize("tries", [0, -2, 1])
def test_at_least_one_sample_is_drawn(tries):
    client = ScriptedClient(samples=[SAMPLE], grade=_by_response([False] * 3, [False] * 3))
    result = _contrastive(client, tries=tries)
    assert len(client.named("contrastive_rubric")) == 1
    assert result.notes["reproduced"] is False and result.notes["tries"] == 1


# --- apply_changes ----------------------------------------------------------------------------

RUBRIC = [
    {"key": "k1", "text": "Gives a dose.", "points": 5.0, "category": "essential"},
    {"key": "k2", "text": "Is kind and brief.", "points": 2.0, "category": "optional"},
    {"key": "k3", "text": "Mentions aspirin.", "points": -5.0, "category": "pitfall"},
]


def _change(action: str, cid: int, *items: dict, reason: str = "") -> dict:
    return {"action": action, "criterion_id": cid, "criteria": list(items), "reason": reason}


def test_changes_keep_keys_and_positions():
    merged, skipped = apply_changes(
        RUBRIC,
        [
            _change("add", 0, _item("Asks the child's weight.", 3, kind="hard_rule")),
            _change(
                "split", 2, _item("Is kind.", 1, "optional"), _item("Is brief.", 1, "optional")
            ),
            _change("rewrite", 1, _item("Gives a dose in mg per kg.", 5, "essential")),
            _change("delete", 3),
        ],
    )
    assert skipped == []
    assert [(c["key"], c["text"]) for c in merged] == [
        ("k1", "Gives a dose in mg per kg."),  # rewritten in place, same key
        ("k2", "Is kind."),  # the first half of a split keeps the key
        (None, "Is brief."),  # the other half is new, right after it
        (None, "Asks the child's weight."),  # additions go last
    ]
    assert merged[3]["kind"] == "hard_rule" and merged[1]["kind"] == "principle"
    assert RUBRIC[0]["text"] == "Gives a dose."  # the input is not modified


def test_changes_that_cannot_apply_are_skipped_with_why():
    merged, skipped = apply_changes(
        RUBRIC,
        [
            _change("delete", 4),
            _change("rewrite", 0, _item("Something.")),
            _change("rewrite", 1, _item("Gives a dose per kg.")),
            _change("delete", 1),  # the same criterion again
            _change("rewrite", 2),  # no criterion to rewrite it to
            _change("split", 3, _item("Mentions aspirin for a child.", -5, "pitfall")),
            _change("add", 0),
        ],
    )
    assert skipped == [
        "delete of criterion 4: no such criterion, or changed twice",
        "rewrite of criterion 0: no such criterion, or changed twice",
        "delete of criterion 1: no such criterion, or changed twice",
        "rewrite of criterion 2 without the criteria it needs",
        "split of criterion 3 without the criteria it needs",
        "add without a criterion",
    ]
    # Only the first change of criterion 1 applied; 2 and 3 stand as they were.
    assert [c["text"] for c in merged] == ["Gives a dose per kg.", *(c["text"] for c in RUBRIC[1:])]


def test_additions_already_in_the_rubric_are_dropped():
    merged, skipped = apply_changes(
        RUBRIC,
        [
            _change("add", 0, _item("gives a DOSE")),  # criterion 1, spelt differently
            _change(
                "add",
                0,
                _item("Warns about Reye's syndrome."),
                _item("warns about reye s syndrome"),
            ),
        ],
    )
    assert skipped == []
    assert [c["text"] for c in merged][3:] == ["Warns about Reye's syndrome."]


# --- refine -----------------------------------------------------------------------------------

RESPONSES = ["Response zero.", "Response one.", "Response two."]


def _refine(client: ScriptedClient, *, rounds: int = 1, responses=RESPONSES, current=RUBRIC):  # type: ignore[no-untyped-def]
    return _run(
        refine(
            client,
            CTX,
            current,
            responses=responses,
            rounds=rounds,
            style="healthbench",
            secret=SECRET,
        )
    )


def _grades(table: dict[str, list[bool]]) -> Callable[[str, int], list[bool]]:
    def grade(response: str, count: int) -> list[bool]:
        assert len(table[response]) == count
        return table[response]

    return grade


def test_refine_contrasts_the_two_best_responses():
    # Scores over 7 positive points: zero 2/7, one 5/7, two 7/7.
    client = ScriptedClient(
        grade=_grades(
            {
                "Response zero.": [False, True, False],
                "Response one.": [True, False, False],
                "Response two.": [True, True, False],
            }
        ),
        changes=[
            {
                "changes": [
                    _change(
                        "rewrite",
                        2,
                        _item("Is kind.", 2, "optional", kind="principle"),
                        reason="vague",
                    )
                ]
            }
        ],
    )
    (result,) = _refine(client)

    ask = client.named("rubric_changes")[0]
    user = ask.messages[1]["content"]
    assert _block(user, "RESPONSE A") == "Response two."
    assert _block(user, "RESPONSE B") == "Response one."
    assert "(scores: A 1.00, B 0.71)" in user
    assert _block(user, "RUBRIC") == numbered(RUBRIC)
    assert ask.schema == refine_schema(3)
    graded = [_block(c.messages[1]["content"], "RESPONSE") for c in client.named("verdicts")]
    assert graded == RESPONSES  # every response graded once, in order
    assert result.error == ""
    assert result.notes == {
        "round": 1,
        "scores": [1.0, round(5 / 7, 4), round(2 / 7, 4)],
        "reasons": ["vague"],
        "skipped": [],
    }
    assert [(c["key"], c["text"]) for c in result.criteria] == [
        ("k1", "Gives a dose."),
        ("k2", "Is kind."),
        ("k3", "Mentions aspirin."),
    ]
    assert result.usage.calls == 4
    assert result.template_version == prompts.load("refine").version


def test_refine_breaks_ties_by_the_earlier_response():
    client = ScriptedClient(
        grade=_grades({r: [True, False, False] for r in RESPONSES}),
        changes=[{"changes": []}],
    )
    _refine(client)
    user = client.named("rubric_changes")[0].messages[1]["content"]
    assert (_block(user, "RESPONSE A"), _block(user, "RESPONSE B")) == (
        "Response zero.",
        "Response one.",
    )


def test_refine_rounds_build_on_the_round_before():
    rounds_seen: list[int] = []

    def grade(response: str, count: int) -> list[bool]:
        rounds_seen.append(count)
        good = response == "Response one."
        return [good] * (count - 1) + [False]

    client = ScriptedClient(
        grade=grade,
        changes=[
            {
                "changes": [
                    _change("add", 0, _item("Asks the child's weight.", 3, kind="hard_rule"))
                ]
            },
            {
                "changes": [
                    _change("rewrite", 4, _item("Asks the weight in kg.", 3, kind="hard_rule"))
                ]
            },
        ],
    )
    first, second = _refine(client, rounds=2, responses=RESPONSES[:2])

    # Round 1 grades with the three criteria; round 2 with round 1's four.
    assert rounds_seen == [3, 3, 4, 4]
    assert client.named("rubric_changes")[1].schema == refine_schema(4)
    assert _block(client.named("rubric_changes")[1].messages[1]["content"], "RUBRIC") == numbered(
        first.criteria
    )
    new = first.criteria[3]
    assert new["text"] == "Asks the child's weight." and new["provenance"] == "llm"
    assert new["key"] and new["key"] not in {"k1", "k2", "k3"}
    assert [c["key"] for c in first.criteria[:3]] == ["k1", "k2", "k3"]  # kept, no provenance
    assert "provenance" not in first.criteria[0]
    # Round 2 rewrote the new criterion and kept the key round 1 gave it.
    assert second.criteria[3]["key"] == new["key"]
    assert second.criteria[3]["text"] == "Asks the weight in kg."
    assert [first.notes["round"], second.notes["round"]] == [1, 2]
    assert first.usage.calls == second.usage.calls == 3  # each round bills its own calls


def test_refine_stops_at_the_first_failed_round():
    calls = {"n": 0}

    def grade(response: str, count: int) -> list[bool] | Answer:
        calls["n"] += 1
        if calls["n"] == 3:  # round 2's first grading
            return GatewayError("server_error", "HTTP 500", usage=Usage(calls=1))
        return [response == "Response one."] * count

    client = ScriptedClient(grade=grade, changes=[{"changes": []}, {"changes": []}])
    results = _refine(client, rounds=3, responses=RESPONSES[:2])

    assert [r.error for r in results] == ["", "HTTP 500"]
    assert results[1].criteria == [] and results[1].notes == {"round": 2}
    assert results[1].usage.calls == 1
    assert len(client.named("rubric_changes")) == 1  # no third round, no second ask
    assert [c["key"] for c in results[0].criteria] == ["k1", "k2", "k3"]


@pytest.mark.parametrize(
    ("responses", "current", "error"),
    [
        (["Only one."], RUBRIC, "refining needs at least two responses"),
        ([], RUBRIC, "refining needs at least two responses"),
        (RESPONSES, [], "refining needs a rubric to start from"),
    ],
)
def test_refine_refuses_what_it_cannot_refine_without_calling(responses, current, error):
    client = ScriptedClient()
    results = _refine(client, rounds=2, responses=responses, current=current)
    assert [(r.error, r.notes) for r in results] == [(error, {"round": 1})]
    assert client.calls == []


def test_refine_runs_at_least_one_round():
    client = ScriptedClient(
        grade=_grades({r: [True, True, False] for r in RESPONSES[:2]}), changes=[{"changes": []}]
    )
    assert len(_refine(client, rounds=0, responses=RESPONSES[:2])) == 1


def test_refine_skips_changes_that_cannot_apply_and_says_so():
    client = ScriptedClient(
        grade=_grades({r: [True, False, False] for r in RESPONSES[:2]}),
        changes=[
            {
                "changes": [
                    _change("delete", 3, reason="aspirin is covered elsewhere"),
                    _change("delete", 3, reason="again"),
                ]
            }
        ],
    )
    (result,) = _refine(client, responses=RESPONSES[:2])
    assert [c["key"] for c in result.criteria] == ["k1", "k2"]
    assert result.notes["skipped"] == ["delete of criterion 3: no such criterion, or changed twice"]
    assert result.notes["reasons"] == ["aspirin is covered elsewhere", "again"]


# --- score ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("points", "met", "expected"),
    [
        ([5, 3, -4], [True, False, False], 5 / 8),
        ([5, 3, -4], [True, True, True], 4 / 8),  # a pitfall met takes points away
        ([5, 3, -4], [False, False, True], -4 / 8),  # and can go below zero
        ([-1, -2], [False, False], None),  # no positive points: undefined
    ],
)
def test_score(points, met, expected):
    assert score(points, met) == (pytest.approx(expected) if expected is not None else None)


def test_score_needs_one_verdict_per_criterion():
    with pytest.raises(ValueError):
        score([5, 3], [True])
