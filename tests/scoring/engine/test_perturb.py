"""The probes' neutral and injection perturbations: deterministic by seed, and the neutral
ones keep every sentence of the original (padding, reformatting, reordering)."""

from __future__ import annotations

import pytest

from scoring.engine import perturb

PROSE = (
    "Call emergency services now. Chest pain that spreads to the arm can be a heart attack.\n\n"
    "Chew an aspirin while you wait, unless you are allergic to it. Do not drive yourself.\n\n"
    "Sit down and keep calm until help arrives."
)
BULLETS = (
    "- Call emergency services now.\n- Chew an aspirin unless allergic.\n- Do not drive yourself."
)
STEPS = "First, call emergency services.\n\nThen chew an aspirin.\n\nFinally, unlock the door."
TEXTS = [PROSE, BULLETS, "A single sentence answer.", "Short. Two sentences!"]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("kind", ["padding", "reformat", "flattery", "reorder", "injection"])
def test_each_transform_is_deterministic_by_seed(text, kind):
    transform = perturb.TRANSFORMS[kind]
    assert transform(text, 7) == transform(text, 7)


def test_different_seeds_give_different_texts():
    assert len({perturb.pad(PROSE, seed) for seed in range(6)}) > 1
    assert len({perturb.inject(PROSE, seed) for seed in range(12)}) > 1
    assert len({perturb.reorder(PROSE, seed) for seed in range(6)}) > 1


def _in_order(needles: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("seed", range(5))
def test_padding_adds_about_half_and_keeps_every_sentence_in_order(text, seed):
    padded = perturb.pad(text, seed)
    original = perturb.sentences(text)
    assert _in_order(original, perturb.sentences(padded))
    growth = len(" ".join(perturb.sentences(padded))) / len(" ".join(original))
    assert growth >= 1.4
    if len(text) >= 80:  # a sentence of filler is a lot for a one-line answer
        assert growth <= 1.8


@pytest.mark.parametrize("text", [PROSE, BULLETS, STEPS])
@pytest.mark.parametrize("seed", range(3))
def test_reformatting_keeps_every_sentence_in_order_and_switches_the_form(text, seed):
    changed = perturb.reformat(text, seed)
    assert perturb.sentences(changed) == perturb.sentences(text)
    if text == BULLETS:
        assert "- " not in changed and "\n\n" in changed  # bullets → paragraphs
    else:
        assert changed.startswith("## ") and "\n- " in changed  # prose → header and bullets


@pytest.mark.parametrize("seed", range(5))
def test_reordering_keeps_every_sentence_and_changes_the_order(seed):
    changed = perturb.reorder(PROSE, seed)
    assert changed is not None and changed != PROSE
    assert sorted(perturb.sentences(changed)) == sorted(perturb.sentences(PROSE))
    assert sorted(perturb.paragraphs(changed)) == sorted(perturb.paragraphs(PROSE))


def test_reordering_does_not_apply_to_one_paragraph_or_a_procedure():
    assert perturb.reorder("One paragraph. Two sentences.", 1) is None
    assert perturb.reorder(STEPS, 1) is None
    assert [p.kind for p in perturb.perturbations(STEPS, 1)] == [
        "padding",
        "reformat",
        "flattery",
        "injection",
    ]


def test_flattery_wraps_the_unchanged_response():
    flattered = perturb.flatter(PROSE, 2)
    opener, rest = flattered.split("\n\n", 1)
    assert opener in perturb.OPENERS and rest.rsplit("\n\n", 1)[0] == PROSE
    assert rest.rsplit("\n\n", 1)[1] in perturb.CLOSERS


@pytest.mark.parametrize("position", perturb.POSITIONS)
@pytest.mark.parametrize("phrasing", range(len(perturb.INJECTIONS)))
def test_injection_embeds_the_instruction_where_asked_and_keeps_the_response(position, phrasing):
    line = perturb.INJECTIONS[phrasing]
    injected = perturb.inject(PROSE, 0, phrasing=phrasing, position=position)
    assert line in injected
    without = [s for s in perturb.sentences(injected) if s not in perturb.sentences(line)]
    assert without == perturb.sentences(PROSE)
    if position == "start":
        assert injected.startswith(line)
    elif position == "end":
        assert injected.endswith(line)
    else:
        assert not injected.startswith(line) and not injected.endswith(line)
