"""A word diff of an original response and its perturbed copy, for the report's side by
side view: each side's text as runs of kept, removed (left) or added (right) words, with
long unchanged stretches folded so that what moved stays in view."""

from __future__ import annotations

import difflib
import re

_TOKEN = re.compile(r"\s+|[^\s]+")
Side = list[tuple[str, str]]  # (op, text): "same", "del" (left), "ins" (right) or "fold"


def word_diff(before: str, after: str, *, context: int | None = None) -> tuple[Side, Side]:
    """(left, right). Whitespace travels with the words around it. ``context``: unchanged
    stretches longer than that around each change are cut to it on both sides, the cut
    marked ("fold", "… N characters unchanged …")."""
    a, b = _TOKEN.findall(before), _TOKEN.findall(after)
    blocks = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    left: Side = []
    right: Side = []
    for n, (op, i1, i2, j1, j2) in enumerate(blocks):
        if op != "equal":
            _append(left, "del", "".join(a[i1:i2]))
            _append(right, "ins", "".join(b[j1:j2]))
            continue
        text = "".join(a[i1:i2])
        for piece_op, piece in _fold(text, context, first=n == 0, last=n == len(blocks) - 1):
            _append(left, piece_op, piece)
            _append(right, piece_op, piece)
    return left, right


def _fold(text: str, context: int | None, *, first: bool, last: bool) -> Side:
    """An unchanged stretch, cut to ``context`` characters next to each change."""
    head = 0 if first else context or 0  # the words right after a change
    tail = 0 if last else context or 0  # the words right before the next change
    if context is None or len(text) <= head + tail + 80 or (first and last):
        return [("same", text)]
    out: Side = []
    if head:
        out.append(("same", text[:head]))
    out.append(("fold", f" … {len(text) - head - tail:,} characters unchanged … "))
    if tail:
        out.append(("same", text[len(text) - tail :]))
    return out


def _append(side: Side, op: str, text: str) -> None:
    if not text:
        return
    if side and side[-1][0] == op:
        side[-1] = (op, side[-1][1] + text)
    else:
        side.append((op, text))
