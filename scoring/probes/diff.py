"""A word diff of an original response and its perturbed copy, for the report's side by
side view: each side's text as runs of kept, removed (left) or added (right) words."""

from __future__ import annotations

import difflib
import re

_TOKEN = re.compile(r"\s+|[^\s]+")


def word_diff(before: str, after: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(left, right): each a list of (op, text), op "same", "del" (left) or "ins" (right);
    whitespace travels with the words around it."""
    a, b = _TOKEN.findall(before), _TOKEN.findall(after)
    left: list[tuple[str, str]] = []
    right: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            _append(left, "same", a[i1:i2])
            _append(right, "same", b[j1:j2])
        else:
            _append(left, "del", a[i1:i2])
            _append(right, "ins", b[j1:j2])
    return left, right


def _append(side: list[tuple[str, str]], op: str, tokens: list[str]) -> None:
    text = "".join(tokens)
    if not text:
        return
    if side and side[-1][0] == op:
        side[-1] = (op, side[-1][1] + text)
    else:
        side.append((op, text))
