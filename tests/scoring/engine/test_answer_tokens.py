"""The answer-token rule shared by the local judge and the logprob judge, on hand-made
top_logprobs: every spelling of an answer summed, normalised over the two answers, tokens
that spell nothing ignored, no answer at all an error (never "not met"), and the threshold
met at its boundary."""

from __future__ import annotations

import math

import pytest

from scoring.engine.answer_tokens import (
    NO,
    YES,
    NoAnswerError,
    is_met,
    is_spelling,
    reading,
    reading_from_top_logprobs,
    spellings,
)


def lp(p: float) -> float:
    return math.log(p)


def test_the_spellings_are_the_word_bare_and_after_one_space():
    assert [s for w in YES for s in spellings(w)] == ["yes", " yes", "Yes", " Yes", "YES", " YES"]
    assert all(is_spelling(s, NO) for s in ("no", " no", "No", " No", "NO", " NO"))
    for text in ("\nyes", "yes.", "yes ", "  yes", "yEs", "y", "▁yes", "Yes!", "noo", ""):
        assert not is_spelling(text, YES) and not is_spelling(text, NO), text


def test_every_spelling_is_summed_and_normalised_over_yes_and_no():
    top = [
        (" Yes", lp(0.40)),
        ("Yes", lp(0.20)),
        ("yes", lp(0.05)),
        (" No", lp(0.10)),
        ("NO", lp(0.05)),
        ("The", lp(0.15)),  # answers nothing
        ("\nYes", lp(0.03)),  # not a spelling the local judge counts either
    ]
    found = reading_from_top_logprobs(top)
    assert found.probability == pytest.approx(0.65 / (0.65 + 0.15), abs=1e-12)
    assert found.mass == pytest.approx(0.80, abs=1e-12)


def test_two_tokens_with_the_same_text_both_count():
    found = reading_from_top_logprobs([("Yes", lp(0.3)), ("Yes", lp(0.1)), ("no", lp(0.4))])
    assert found.probability == pytest.approx(0.4 / 0.8, abs=1e-12)


def test_pairwise_reads_the_letters():
    top = [(" A", lp(0.3)), ("A", lp(0.3)), (" B", lp(0.2)), ("Yes", lp(0.1))]
    found = reading_from_top_logprobs(top, pairwise=True)
    assert found.probability == pytest.approx(0.6 / 0.8, abs=1e-12)
    with pytest.raises(NoAnswerError):
        reading_from_top_logprobs([("Yes", lp(0.9))], pairwise=True)


def test_one_answer_missing_from_the_list_counts_for_nothing():
    assert reading_from_top_logprobs([("Yes", lp(0.7)), ("I", lp(0.2))]).probability == 1.0
    assert reading_from_top_logprobs([(" no", lp(0.7))]).probability == 0.0


def test_no_answer_among_the_tokens_is_an_error_naming_them():
    with pytest.raises(NoAnswerError, match=r"neither yes/no answer .* 'Sure', ' I'"):
        reading_from_top_logprobs([("Sure", lp(0.6)), (" I", lp(0.3))])
    with pytest.raises(NoAnswerError, match="among the 0 most likely"):
        reading_from_top_logprobs([])
    with pytest.raises(ValueError, match="NaN"):
        reading_from_top_logprobs([("Yes", math.nan), ("No", lp(0.5))])


def test_the_reading_is_the_logistic_of_the_difference_and_never_overflows():
    assert reading(lp(0.3), lp(0.1)).probability == pytest.approx(0.75, abs=1e-12)
    assert reading(0.0, -1000.0).probability == 1.0
    assert reading(-1000.0, 0.0).probability == 0.0
    assert reading(-800.0, -800.0).probability == 0.5
    with pytest.raises(NoAnswerError):
        reading(-math.inf, -math.inf)


@pytest.mark.parametrize("p_yes", [0.5, 0.3, 0.7, 0.123456789])
def test_met_at_the_threshold_and_not_just_below(p_yes):
    found = reading_from_top_logprobs([("Yes", lp(p_yes * 0.8)), ("No", lp((1 - p_yes) * 0.8))])
    assert found.probability == pytest.approx(p_yes, abs=1e-12)
    assert is_met(found.probability, found.probability)
    assert is_met(found.probability, math.nextafter(found.probability, 0.0))
    assert not is_met(found.probability, math.nextafter(found.probability, 1.0))
    assert is_met(0.5, 0.5) and not is_met(0.49999999, 0.5)
