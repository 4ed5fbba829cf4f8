"""Cutting texts longer than a model's maximum into pieces, the same way everywhere (serving,
and teacher-tagging raw text for distillation), so that every character lands in one piece.
"""
from __future__ import annotations

import re

# Where a long text is best cut: after sentence-final punctuation, else after a clause break.
_SENTENCE_END = re.compile(r"[。！？；!?;…\n]")
_CLAUSE_END = re.compile(r"[，、,：:\s]")


def split_points(text: str, max_len: int) -> list[int]:
    """Start offsets of pieces of at most max_len characters covering the whole text.

    Cuts after sentence-final punctuation in the window's second half when there is one, else
    after a clause break there, else exactly at max_len: every character lands in one piece.
    """
    starts = [0]
    while len(text) - starts[-1] > max_len:
        start = starts[-1]
        window = text[start + max_len // 2:start + max_len]
        cut = start + max_len
        for pattern in (_SENTENCE_END, _CLAUSE_END):
            matches = list(pattern.finditer(window))
            if matches:
                cut = start + max_len // 2 + matches[-1].end()
                break
        starts.append(cut)
    return starts


def piece_bounds(text: str, max_len: int) -> list[tuple[int, int]]:
    """(start, end) of each piece of the text (the whole text when it fits)."""
    if len(text) <= max_len:
        return [(0, len(text))]
    starts = split_points(text, max_len)
    return list(zip(starts, starts[1:] + [len(text)]))
