"""Reading and writing tagged character data.

Accepted input, detected per file from its first non-blank line:
  * column form: one `字 TAG` or `字<TAB>TAG` per line, a blank line between sentences;
  * inline form: one sentence per line, `华\\B_ORG 东\\M_ORG 师\\M_ORG`.
Tags are BMES (or BIO, detected over the whole file and converted), with `-` or `_`,
`I-` read as `M-`. UTF-8 with or without BOM, LF or CRLF, trailing whitespace ignored.

Every problem is a DataError naming the file and line, for the CLIs to print without a traceback.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from data.files import DataError, check_input_file, decode_file
from data.corpus.sentences import Sentence
from data.corpus.tags import TagShapeError, bio_to_bmes, invalid_transitions, is_bio, normalize_tag

INLINE_SEPARATOR = "\\"


@dataclass
class Corpus:
    path: str
    sentences: list[Sentence]
    converted_from_bio: bool = False
    # (line, reason) of each broken BMES transition, in file order
    transition_problems: list[tuple[int, str]] = field(default_factory=list)
    form: str = "columns"  # columns | inline | doccano | jsonl | spacy | label-studio
    overlaps_resolved: int = 0  # overlapping spans dropped by --overlaps keep-*
    unreviewed: int = 0  # Label Studio tasks holding only a model's predictions
    ignored: int = 0  # brat annotation lines of other kinds (relations, attributes, notes)
    trimmed: int = 0  # spans trimmed of surrounding whitespace (dropped if all whitespace)


def read_lines(path: str | Path, errors: str = "strict") -> list[str]:
    """Decode a whole file as UTF-8 (BOM allowed), naming the line of the first bad byte."""
    return split_lines(decode_file(path, errors))


def split_lines(text: str) -> list[str]:
    """Lines at "\n" with any "\r" before it dropped; splitlines() would also split on U+2028
    and friends, which may be characters to tag."""
    return [line.rstrip("\r") for line in text.split("\n")]


FORMS = ("columns", "inline", "doccano", "jsonl", "spacy", "label-studio", "brat")
# A span file opens with `{"` or a `[` standing alone or before `{`/`]`; a column file that
# starts with the character `{` or `[` has a tag after it (`{ O`), so it never looks like that.
_SPAN_FILE_START = re.compile(r'^\s*(\{\s*"|\[\s*(\{|\]|$))')


def check_corpus_path(path: str | Path) -> None:
    """DataError unless path is a readable file or a folder of brat pairs."""
    from data.corpus.brat import is_brat

    if Path(path).is_dir():
        if not is_brat(path):
            raise DataError(path, None, "is a folder, not a file (nor a folder of brat "
                                        ".txt/.ann pairs)")
        return
    check_input_file(path)


def read_corpus(path: str | Path, strict: bool = False, form: str | None = None,
                overlaps: str = "refuse", labels: set[str] | None = None,
                unreviewed: str = "refuse", discontinuous: str = "refuse") -> Corpus:
    """Any accepted form (detected from the first non-blank line, or named by `form`; a
    folder or a `.ann` file is brat)."""
    if form is not None and form not in FORMS:
        raise ValueError(f"format {form!r}: expected one of {', '.join(FORMS)}")
    from data.corpus.brat import is_brat, read_brat

    if form == "brat" or (form is None and is_brat(path)):
        return _checked(_corpus_of(path, read_brat(path, overlaps, labels, strict,
                                                   discontinuous)), strict)
    lines = read_lines(path)
    first = next(((number, line) for number, line in enumerate(lines, 1) if line.strip()), None)
    if first is None:
        raise DataError(path, None, "empty file: no sentences")
    if form is None:
        if _SPAN_FILE_START.match(first[1].lstrip("\ufeff")):
            form = "spans"
        else:
            form = "inline" if _looks_inline(first[1]) else "columns"
    if form not in ("columns", "inline"):
        from data.corpus.annotations import read_spans
        corpus = _corpus_of(path, read_spans(path, "\n".join(lines),
                                             None if form == "spans" else form, overlaps,
                                             labels, unreviewed, strict))
    else:
        parse = _parse_inline if form == "inline" else _parse_columns
        corpus = Corpus(str(path), parse(path, lines), form=form)
    return _checked(corpus, strict)


def _corpus_of(path, reading) -> Corpus:
    """A Corpus of a span reading (annotations.SpanReading), with what reading it counted."""
    return Corpus(str(path), reading.sentences, form=reading.form,
                  overlaps_resolved=reading.overlaps_resolved, unreviewed=reading.unreviewed,
                  trimmed=reading.trimmed, ignored=reading.ignored)


def _checked(corpus: Corpus, strict: bool) -> Corpus:
    """BIO converted to BMES, invalid transitions found (refused if strict)."""
    path, sentences = corpus.path, corpus.sentences
    has_entities = any(tag != "O" for sentence in sentences for tag in sentence.tags)
    if has_entities and is_bio(sentence.tags for sentence in sentences):
        corpus.converted_from_bio = True
        for sentence in sentences:
            sentence.tags = bio_to_bmes(sentence.tags)
    for sentence in sentences:
        for index, reason in invalid_transitions(sentence.tags):
            corpus.transition_problems.append((_line_of(sentence, index), reason))
    if strict and corpus.transition_problems:
        line, reason = corpus.transition_problems[0]
        raise DataError(path, line, f"invalid tag transition: {reason} "
                                    f"({len(corpus.transition_problems)} in the file; --strict)")
    return corpus


def _line_of(sentence: Sentence, index: int) -> int:
    # Column form has one character a line; inline form has the whole sentence on one.
    return sentence.line if sentence.inline else sentence.line + index


def _looks_inline(line: str) -> bool:
    tokens = line.split()
    if len(tokens) == 2 and _is_tag(tokens[1]):
        return False  # `字 TAG`
    return any(_is_tag(token.rpartition(INLINE_SEPARATOR)[2]) and INLINE_SEPARATOR in token[1:]
               for token in tokens)


def _is_tag(text: str) -> bool:
    try:
        normalize_tag(text)
    except TagShapeError:
        return False
    return True


def _parse_tag(path, number: int, raw: str) -> str:
    try:
        return normalize_tag(raw)
    except TagShapeError as error:
        raise DataError(path, number, str(error)) from None


def _parse_columns(path, lines: list[str]) -> list[Sentence]:
    sentences: list[Sentence] = []
    chars: list[str] = []
    tags: list[str] = []
    start = 0
    for number, line in enumerate(lines, 1):
        line = line.rstrip()
        if not line:
            if chars:
                sentences.append(Sentence("".join(chars), tags, start))
                chars, tags = [], []
            continue
        fields = line.split()
        if len(fields) == 1 and not line[0].isspace():
            raise DataError(path, number, f"no tag: expected `character TAG`, got {line!r}")
        # A whitespace character (e.g. U+3000) may itself be the token: `　 O`.
        if len(fields) == 1:
            char, raw_tag = line[0], fields[0]
        elif len(fields) == 2:
            char, raw_tag = fields
        else:
            raise DataError(path, number,
                            f"{len(fields)} fields: expected `character TAG`, got {line!r}")
        if len(char) != 1:
            raise DataError(path, number, f"token {char!r} is not a single character")
        if not chars:
            start = number
        chars.append(char)
        tags.append(_parse_tag(path, number, raw_tag))
    if chars:
        sentences.append(Sentence("".join(chars), tags, start))
    return sentences


def _parse_inline(path, lines: list[str]) -> list[Sentence]:
    sentences = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        chars, tags = [], []
        for token in line.split():
            char, separator, raw_tag = token.rpartition(INLINE_SEPARATOR)
            if not separator or not char:
                raise DataError(path, number, f"token {token!r} has no tag: expected `字\\TAG`")
            if len(char) != 1:
                raise DataError(path, number, f"token {char!r} is not a single character")
            chars.append(char)
            tags.append(_parse_tag(path, number, raw_tag))
        sentences.append(Sentence("".join(chars), tags, number, inline=True))
    return sentences


def write_columns(sentences, out: io.TextIOBase) -> None:
    """The column form with LF line ends, a blank line after each sentence."""
    for sentence in sentences:
        for char, tag in zip(sentence.text, sentence.tags):
            out.write(f"{char} {tag}\n")
        out.write("\n")
