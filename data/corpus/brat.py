"""Brat standoff: a folder of `NAME.txt` + `NAME.ann` pairs, one document per pair.

`.ann` lines: `T1<TAB>TYPE START END[;START END...]<TAB>TEXT` is an entity; its fragments
are character offsets into `NAME.txt` (end exclusive). Fragments that touch or are separated
by whitespace only make one span; a span with other text between its fragments is
discontinuous: refused, or read as its outer extent with `discontinuous="outer"`. Relations,
events, attributes, normalisations, notes and equivalences (`R`, `E`, `A`/`M`, `N`, `#`, `*`)
are ignored and counted. The text column is checked against the text at the offsets.

Documents are read in file-name order with numbers compared as numbers (`2.ann` before
`10.ann`). Writing makes one pair per sentence, `00001.txt`/`00001.ann`, T lines in order.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from data.files import DataError, decode_file
from data.corpus.sentences import Sentence

SUFFIX = ".ann"
DISCONTINUOUS = ("refuse", "outer")
IGNORED_KINDS = ("R", "E", "A", "M", "N", "#", "*")
_FRAGMENT = re.compile(r"^(\d+) (\d+)$")
_NUMBER = re.compile(r"(\d+)")


def is_brat(path: str | Path) -> bool:
    """A `.ann` file, or a folder that holds at least one."""
    path = Path(path)
    if path.is_dir():
        return any(path.glob(f"*{SUFFIX}"))
    return path.suffix == SUFFIX


def documents(path: str | Path) -> list[Path]:
    """The `.ann` files of a folder (natural name order), or the `.ann` file itself."""
    path = Path(path)
    if not path.is_dir():
        if path.suffix != SUFFIX:
            raise DataError(path, None, f"brat input is a folder of pairs or a {SUFFIX} file")
        return [path]
    found = sorted(path.glob(f"*{SUFFIX}"),
                   key=lambda p: [int(part) if part.isdigit() else part
                                  for part in _NUMBER.split(p.name)])
    if not found:
        raise DataError(path, None, f"no {SUFFIX} files in this folder")
    return found


def read_text(path: Path) -> str:
    """A document's text exactly as stored (offsets count its every character)."""
    return decode_file(path, strip_bom=False)


def document_spans(ann: Path, text: str, discontinuous: str = "refuse"
                   ) -> tuple[list[tuple[int, int, str, int]], int]:
    """((start, end, type, line, id) of each entity, lines of other kinds ignored) of one
    `.ann`."""
    if discontinuous not in DISCONTINUOUS:
        raise ValueError(f"discontinuous {discontinuous!r}: expected one of "
                         f"{', '.join(DISCONTINUOUS)}")
    spans, ignored = [], 0
    for number, line in enumerate(read_text(ann).split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith("T"):
            spans.append(_entity(ann, number, line, text, discontinuous))
        elif line.startswith(IGNORED_KINDS):
            ignored += 1
        else:
            raise DataError(ann, number, f"unknown annotation line {line[:30]!r}: expected an "
                                         "entity (T) or one of R, E, A, M, N, #, *")
    return spans, ignored


def _entity(ann: Path, number: int, line: str, text: str, discontinuous: str):
    fields = line.split("\t", 2)
    if len(fields) < 2 or " " not in fields[1]:
        raise DataError(ann, number, "an entity line is `T1<TAB>TYPE START END<TAB>TEXT`")
    label, _, offsets = fields[1].partition(" ")
    fragments = []
    for part in offsets.split(";"):
        match = _FRAGMENT.match(part.strip())
        if not match:
            raise DataError(ann, number, f"{fields[0]}: fragment {part!r:.30} is not "
                                         "`START END`")
        fragments.append((int(match[1]), int(match[2])))
    for start, end in fragments:
        if not 0 <= start < end <= len(text):
            raise DataError(ann, number, f"{fields[0]}: offsets {start} {end} outside the text "
                                         f"(length {len(text)}) or start >= end")
    quoted = " ".join(text[start:end] for start, end in fragments)
    if len(fields) > 2 and fields[2] != quoted:
        raise DataError(ann, number, f"{fields[0]}: its text {fields[2]!r:.40} differs from "
                                     f"the text at those offsets {quoted!r:.40}")
    gaps = [text[end:start] for (_, end), (start, _) in zip(fragments, fragments[1:])]
    if any(gap.strip() for gap in gaps) and discontinuous == "refuse":
        raise DataError(ann, number, f"{fields[0]}: a discontinuous entity ({offsets}): pass "
                                     "--discontinuous outer to read its outer extent")
    return min(s for s, _ in fragments), max(e for _, e in fragments), label, number, fields[0]


def ann_text(sentence: Sentence) -> str:
    """The .ann content of one sentence; an entity holding a line break is written as the
    fragments between its breaks (brat's own way), which read back as one span."""
    from data.corpus.tags import entity_spans

    lines = []
    for number, (entity_type, start, end) in enumerate(entity_spans(sentence.tags), 1):
        fragments = [(m.start() + start, m.end() + start)
                     for m in re.finditer(r"[^\n]+", sentence.text[start:end])]
        offsets = ";".join(f"{s} {e}" for s, e in fragments)
        quoted = " ".join(sentence.text[s:e] for s, e in fragments)
        lines.append(f"T{number}\t{entity_type} {offsets}\t{quoted}\n")
    return "".join(lines)


def document_stems(count: int) -> list[str]:
    width = max(5, len(str(count)))
    return [str(number).zfill(width) for number in range(1, count + 1)]


def read_brat(path: str | Path, overlaps: str = "refuse", labels: set[str] | None = None,
              strict: bool = False, discontinuous: str = "refuse"):
    """A SpanReading of a folder of pairs (or one `.ann` file): a sentence per document."""
    from data.corpus.annotations import (Span, SpanReading, bmes_tags, check_span, resolve_overlaps,
                                  trimmed_spans)

    reading = SpanReading([], "brat")
    for ann in documents(path):
        source = ann.with_suffix(".txt")
        if not source.is_file():
            raise DataError(ann, None, f"no text beside it: expected {source.name}")
        text = read_text(source)
        found, ignored = document_spans(ann, text, discontinuous)
        reading.ignored += ignored
        spans = []
        for start, end, label, number, entity_id in found:
            span = Span(start, end, label, entity_id, number)
            check_span(ann, number, span, text, labels)
            spans += trimmed_spans(ann, number, [span], text, strict, reading)
        kept, dropped = resolve_overlaps(ann, None, spans, overlaps)
        reading.overlaps_resolved += dropped
        reading.sentences.append(Sentence(text, bmes_tags(len(text), kept), 1, inline=True,
                                          source=str(ann)))
    return reading


def check_brat_output(path: str | Path) -> None:
    """DataError unless `path` can become a new folder of pairs (absent, or an empty folder)."""
    from data.files import check_output

    check_output(path, folder=True)
    if Path(path).is_dir() and any(Path(path).iterdir()):
        raise DataError(path, None, "exists and is not empty: name a new folder for brat")


def write_brat(sentences: list[Sentence], folder: str | Path) -> None:
    """One `.txt`/`.ann` pair per sentence, written into a temporary folder beside `folder`
    and renamed to it whole."""
    import shutil
    import tempfile

    folder = Path(folder)
    partial = Path(tempfile.mkdtemp(dir=folder.parent if str(folder.parent) else ".",
                                    prefix=f".{folder.name}.", suffix=".partial"))
    try:
        for stem, sentence in zip(document_stems(len(sentences)), sentences):
            (partial / f"{stem}.txt").write_text(sentence.text, encoding="utf-8", newline="")
            (partial / f"{stem}.ann").write_text(ann_text(sentence), encoding="utf-8",
                                                 newline="\n")
        partial.chmod(0o777 & ~_umask())
        os.replace(partial, folder)
    finally:
        if partial.exists():
            shutil.rmtree(partial)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
