"""A tagged sentence: what every corpus form reads into."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Sentence:
    text: str
    tags: list[str]
    line: int  # line of the first character in the source file, for messages
    inline: bool = False  # inline form: the whole sentence stands on `line`
    source: str | None = None  # the file it came from when not the corpus's own (brat)
