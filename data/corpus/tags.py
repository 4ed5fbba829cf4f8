"""Tag schemes: BMES (our internal form), BIO (what seqeval scores), and entity spans.

Internal tags are always `O` or `<P>-<TYPE>` with P in B, M, E, S. Everything read from a
file goes through `normalize_tag` first, so the rest of the code sees one spelling.
"""
from __future__ import annotations

import re
from typing import Iterable, NamedTuple

import numpy as np

OUTSIDE = "O"
_TAG_SHAPE = re.compile(r"^([BMESI])[-_](\S+)$")


class TagShapeError(ValueError):
    """A tag that is neither `O` nor `<B|M|E|S|I><-|_><TYPE>`."""


class EntitySpan(NamedTuple):
    type: str
    start: int  # first character, inclusive
    end: int  # one past the last character


def normalize_tag(raw: str) -> str:
    """`B_ORG` -> `B-ORG`, `I-ORG` -> `M-ORG`; raises TagShapeError for any other shape."""
    if raw == OUTSIDE:
        return OUTSIDE
    match = _TAG_SHAPE.match(raw)
    if not match:
        raise TagShapeError(
            f"tag {raw!r} has an unknown shape: expected O or B-/M-/E-/S-/I- followed by a type"
        )
    prefix, entity_type = match.groups()
    return f"{'M' if prefix == 'I' else prefix}-{entity_type}"


def split_tag(tag: str) -> tuple[str, str | None]:
    if tag == OUTSIDE:
        return OUTSIDE, None
    return tag[0], tag[2:]


def is_bio(tag_sequences: Iterable[list[str]]) -> bool:
    """True when no E- or S- tag occurs anywhere: the data was written in plain BIO.

    Called on normalized tags, where BIO's I- already reads as M-.
    """
    for tags in tag_sequences:
        for tag in tags:
            if tag[0] in "ES":
                return False
    return True


def bio_to_bmes(tags: list[str]) -> list[str]:
    """Plain BIO (I- already read as M-) to BMES: single-character entities become S-, last M- becomes E-."""
    converted = [OUTSIDE] * len(tags)
    for entity_type, start, end in entity_spans(tags):
        for index in range(start, end):
            converted[index] = _bmes_tag(entity_type, start, end, index)
    return converted


def _bmes_tag(entity_type: str, start: int, end: int, index: int) -> str:
    if end - start == 1:
        return f"S-{entity_type}"
    if index == start:
        return f"B-{entity_type}"
    if index == end - 1:
        return f"E-{entity_type}"
    return f"M-{entity_type}"


def bmes_to_bio(tags: list[str]) -> list[str]:
    """BMES to the BIO that seqeval scores: B->B, S->B, M->I, E->I."""
    bio = []
    for tag in tags:
        prefix, entity_type = split_tag(tag)
        if prefix == OUTSIDE:
            bio.append(OUTSIDE)
        elif prefix in "BS":
            bio.append(f"B-{entity_type}")
        else:
            bio.append(f"I-{entity_type}")
    return bio


def entity_spans(tags: list[str]) -> list[EntitySpan]:
    """Entity spans of a BMES (or BIO-as-BM) tag sequence.

    Defined exactly as seqeval's default mode reads the BIO conversion, so that the spans a
    user gets and the F1 we report agree even on ill-formed sequences: B-/S- start an entity,
    M-/E- continue an open entity of the same type or else start one, O closes, and S- or E-
    do not close by themselves (a following M-/E- of the same type continues).
    """
    spans: list[EntitySpan] = []
    open_type: str | None = None
    open_start = 0
    for index, tag in enumerate(tags):
        prefix, entity_type = split_tag(tag)
        continues = prefix in "ME" and entity_type == open_type
        if continues:
            continue
        if open_type is not None:
            spans.append(EntitySpan(open_type, open_start, index))
        open_type, open_start = entity_type, index
    if open_type is not None:
        spans.append(EntitySpan(open_type, open_start, len(tags)))
    return spans


def invalid_transitions(tags: list[str]) -> list[tuple[int, str]]:
    """Positions where the BMES grammar is broken, with a short reason.

    Reported (or, with --strict, refused) on reading; training still works on such data.
    """
    problems: list[tuple[int, str]] = []
    open_type: str | None = None  # type of an entity begun by B-/M- and not yet closed by E-
    for index, tag in enumerate(tags):
        prefix, entity_type = split_tag(tag)
        if prefix in "ME" and open_type != entity_type:
            problems.append((index, f"{tag} without an open B-{entity_type}"))
        elif prefix in "BSO" and open_type is not None:
            problems.append((index, f"B-{open_type} not closed by E-{open_type} before {tag}"))
        open_type = entity_type if prefix in "BM" else None
    if open_type is not None:
        problems.append((len(tags), f"B-{open_type} not closed by E-{open_type} at end of sentence"))
    return problems


def tag_set(tag_sequences: Iterable[list[str]]) -> list[str]:
    """All tags seen, `O` first, then by entity type and B, M, E, S: a stable order for ids."""
    seen = {tag for tags in tag_sequences for tag in tags}
    seen.discard(OUTSIDE)
    order = {prefix: rank for rank, prefix in enumerate("BMES")}
    return [OUTSIDE] + sorted(seen, key=lambda tag: (tag[2:], order[tag[0]]))


class TagCodes:
    """Per tag id: does it continue an entity (M-/E-), and its type number (-1 for O).

    Lets `spans_of_ids` find entities with array operations instead of a loop per character.
    """

    def __init__(self, tags: list[str]):
        types = sorted({split_tag(tag)[1] for tag in tags} - {None})
        self.types = types
        self.type_ids = np.array([-1 if tag == OUTSIDE else types.index(split_tag(tag)[1])
                                  for tag in tags], dtype=np.int64)
        self.continues = np.array([split_tag(tag)[0] in ("M", "E") for tag in tags])


def spans_of_ids(codes: TagCodes, tag_ids: np.ndarray, lengths: np.ndarray):
    """Entity spans of many sequences given as one concatenated array of tag ids.

    Same result as `entity_spans` on each sequence. Returns arrays (sequence index, type
    number, start, end), start/end relative to each sequence, in order.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    types = codes.type_ids[tag_ids]
    sequence_starts = np.zeros(len(tag_ids), dtype=bool)
    sequence_starts[(np.cumsum(lengths) - lengths)[lengths > 0]] = True
    previous_types = np.concatenate([[-1], types[:-1]])
    continues = codes.continues[tag_ids] & (previous_types == types) & ~sequence_starts
    starts = np.flatnonzero((types >= 0) & ~continues)
    # An entity runs until the next position that does not continue it.
    breaks = np.flatnonzero(~continues)
    ends = np.append(breaks, len(tag_ids))[np.searchsorted(breaks, starts, side="right")]
    offsets = np.cumsum(lengths) - lengths
    sequence = np.searchsorted(np.cumsum(lengths), starts, side="right")
    return sequence, types[starts], starts - offsets[sequence], ends - offsets[sequence]
