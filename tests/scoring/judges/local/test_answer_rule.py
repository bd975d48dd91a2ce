"""The local judge and the logprob judge read one rule (``scoring.engine.answer_tokens``):
the token ids the local judge sums are exactly those whose text the shared rule counts, and
its reading from the logits equals the shared rule applied to the same distribution written
as a server writes ``top_logprobs`` (token text, log-probability)."""

from __future__ import annotations

import pytest
import torch

from scoring.engine.answer_tokens import (
    LETTER_A,
    LETTER_B,
    NO,
    YES,
    is_spelling,
    reading_from_top_logprobs,
)
from scoring.engine.judging import JudgeCriterion
from scoring.judges.local.model import LocalSpec, load_judge
from scoring.judges.local.prompting import criterion_pieces, pairwise_pieces

CONVERSATION = [{"role": "user", "content": "My head hurts. What should I do?"}]
CRITERIA = [
    JudgeCriterion(1, "Advises rest and fluids.", 5, "essential"),
    JudgeCriterion(2, "Gives an unsafe dose.", -6, "pitfall"),
]


@pytest.fixture(scope="module")
def judge(tiny_chat_model_dir):  # type: ignore[no-untyped-def]
    return load_judge(LocalSpec(str(tiny_chat_model_dir), dtype="float32", device="cpu"))


def _as_top_logprobs(judge, prompt: list[int]) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
    """The whole next-token distribution as a server reports it: decoded text and log-prob,
    most likely first."""
    with torch.no_grad():
        logits = judge.model(torch.tensor([prompt])).logits[0, -1].double()
    logprobs = torch.log_softmax(logits, dim=-1).tolist()
    texts = [judge.tokenizer.decode([i]) for i in range(len(logprobs))]
    return sorted(zip(texts, logprobs, strict=True), key=lambda pair: -pair[1])


def test_the_ids_the_local_judge_sums_are_the_ones_the_shared_rule_counts(judge):  # type: ignore[no-untyped-def]
    decoded = {i: judge.tokenizer.decode([i]) for i in range(len(judge.tokenizer))}
    for words, ids in ((YES, judge.yes), (NO, judge.no), (LETTER_A, judge.letter_a),
                       (LETTER_B, judge.letter_b)):  # fmt: skip
        assert {i for i, text in decoded.items() if is_spelling(text, words)} == set(ids)


def test_the_local_reading_equals_the_shared_rule_on_the_same_distribution(judge):  # type: ignore[no-untyped-def]
    pieces = criterion_pieces(judge.tokenizer, CONVERSATION, "Rest and drink water.", CRITERIA)
    pairs = pairwise_pieces(judge.tokenizer, CONVERSATION, "Rest.", "Take ten pills.", CRITERIA)
    cases = [(pieces.prefix + s, False) for s in pieces.suffixes]
    cases += [(pairs.prefix + s, True) for s in pairs.suffixes]
    probabilities = []
    for prompt, pairwise in cases:
        local = judge.score([prompt], pairwise=pairwise)[0]
        remote = reading_from_top_logprobs(_as_top_logprobs(judge, prompt), pairwise=pairwise)
        assert remote.probability == pytest.approx(local.probability, abs=1e-5)
        assert remote.mass == pytest.approx(local.mass, rel=1e-4)
        probabilities.append(local.probability)
    assert max(probabilities) - min(probabilities) > 0.01  # varied numbers, not all ½
