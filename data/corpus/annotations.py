"""Entity spans over raw text, as annotation tools export them, read into BMES sentences.

Forms (detected per file, or named with `format`):
  * `doccano`: JSON lines `{"text", "label": [[start, end, "TYPE"], ...]}` (`labels` or
    `entities` as the key; items may also be `{"start_offset", "end_offset", "label"}`);
  * `jsonl`: our own serve.tag output, `{"text", "entities": [{"type", "start", "end", "text"}]}`;
  * `spacy`: JSON lines `{"text", "spans" | "ents": [{"start", "end", "label"}]}`;
  * `label-studio`: one JSON list of tasks, `data.text` and `annotations[].result[].value`
    with `start`, `end`, `text`, `labels` (the first annotation not marked `was_cancelled`).
    A task with `predictions` but no annotation is not reviewed yet: refused, read with its
    first prediction's spans, or skipped, as `unreviewed` says.
Offsets are characters (Python string indices), end exclusive. A sentence may hold any
character, newlines included. BMES from spans: S- for one character, B-/M-/E- otherwise.
A span whose text begins or ends with whitespace is trimmed to its non-space extent (no tag
sequence makes a space part of a name usefully); one that is all whitespace is dropped. Both
are counted, and refused with `strict`.

Every problem is a DataError naming FILE:LINE (a JSON list: the task's line, and its index).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from data.files import DataError
from data.corpus.sentences import Sentence

FORMS = ("doccano", "jsonl", "spacy", "label-studio")
OVERLAPS = ("refuse", "keep-longest", "keep-first")
UNREVIEWED = ("refuse", "predictions", "skip")
SPAN_KEYS = {"doccano": ("label", "labels", "entities"), "jsonl": ("entities",),
             "spacy": ("spans", "ents")}
_LABEL = re.compile(r"^[^\s]+$")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str
    where: str  # "line 7" or "task 3 (line 40)": for messages
    line: int | None = None  # its own line, where spans of one record stand on several (brat)


@dataclass
class SpanReading:
    sentences: list[Sentence]
    form: str
    overlaps_resolved: int = 0  # spans dropped by --overlaps keep-longest / keep-first
    unreviewed: int = 0  # Label Studio tasks with predictions only (read or skipped)
    trimmed: int = 0  # spans trimmed of surrounding whitespace (or dropped: all whitespace)
    ignored: int = 0  # brat lines of other kinds (relations, attributes, notes...)


def read_spans(path: str | Path, text: str, form: str | None = None,
               overlaps: str = "refuse", labels: set[str] | None = None,
               unreviewed: str = "refuse", strict: bool = False) -> SpanReading:
    """Sentences and BMES tags from a span file's text (already decoded)."""
    if overlaps not in OVERLAPS:
        raise ValueError(f"overlaps {overlaps!r}: expected one of {', '.join(OVERLAPS)}")
    if unreviewed not in UNREVIEWED:
        raise ValueError(f"unreviewed {unreviewed!r}: expected one of {', '.join(UNREVIEWED)}")
    records = list(_records(path, text, form))
    form = form or _detect_form(path, records)
    reading = SpanReading([], form)
    for line, where, record in records:
        if form == "label-studio" and _only_predictions(record):
            reading.unreviewed += 1
            if unreviewed == "refuse":
                raise DataError(path, line, f"{where}: not reviewed yet (predictions only): "
                                            "review it, or pass --unreviewed predictions to "
                                            "train on the model's entities, or --unreviewed skip")
            if unreviewed == "skip":
                continue
            record = {**record, "annotations": record["predictions"][:1]}
        text_value, spans = _text_and_spans(path, line, where, record, form)
        for span in spans:
            check_span(path, line, span, text_value, labels)
        spans = trimmed_spans(path, line, spans, text_value, strict, reading)
        kept, dropped = resolve_overlaps(path, line, spans, overlaps)
        reading.overlaps_resolved += dropped
        reading.sentences.append(Sentence(text_value, bmes_tags(len(text_value), kept), line,
                                          inline=True))
    return reading


def trimmed_spans(path, line, spans: list[Span], text: str, strict: bool,
                  reading: SpanReading) -> list[Span]:
    """`spans` trimmed to their non-space extent (counted in `reading`; DataError if strict)."""
    kept = []
    for span in spans:
        start, end = span.start, span.end
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if (start, end) == (span.start, span.end):
            kept.append(span)
            continue
        if strict:
            raise DataError(path, line, f"{span.where}: span [{span.start}, {span.end}) "
                                        f"{span.label} {text[span.start:span.end]!r:.40} begins "
                                        "or ends with whitespace (--strict)")
        reading.trimmed += 1
        if start < end:
            kept.append(Span(start, end, span.label, span.where, span.line))
    return kept


def bmes_tags(length: int, spans: list[Span]) -> list[str]:
    tags = ["O"] * length
    for span in spans:
        if span.end - span.start == 1:
            tags[span.start] = f"S-{span.label}"
            continue
        tags[span.start] = f"B-{span.label}"
        for index in range(span.start + 1, span.end - 1):
            tags[index] = f"M-{span.label}"
        tags[span.end - 1] = f"E-{span.label}"
    return tags


# -- records ------------------------------------------------------------------------------------
def _records(path, text: str, form: str | None):
    """(line, where, record) for each JSON record: JSON lines, or one JSON list."""
    text = text.lstrip("\ufeff")
    if form == "label-studio" or (form is None and text.lstrip().startswith("[")):
        yield from _list_records(path, text)
        return
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(path, number, f"malformed JSON: {error.msg} (column {error.colno})") \
                from None
        if not isinstance(record, dict):
            raise DataError(path, number, "expected a JSON object on each line")
        yield number, f"line {number}", record


def _list_records(path, text: str):
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(path, error.lineno, f"malformed JSON: {error.msg} (column {error.colno})") \
            from None
    if not isinstance(tasks, list):
        raise DataError(path, 1, "expected a JSON list of tasks")
    lines = _task_lines(text, len(tasks))
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise DataError(path, lines[index], f"task {index}: expected a JSON object")
        yield lines[index], f"task {index}", task


def _task_lines(text: str, count: int) -> list[int]:
    """The line on which each top-level element of a JSON list starts (for messages)."""
    decoder = json.JSONDecoder()
    lines, position = [], text.index("[") + 1
    for _ in range(count):
        while text[position] in " \t\r\n,":
            position += 1
        lines.append(text.count("\n", 0, position) + 1)
        _, position = decoder.raw_decode(text, position)
    return lines


def _only_predictions(task: dict) -> bool:
    reviewed = [a for a in task.get("annotations") or []
                if isinstance(a, dict) and not a.get("was_cancelled")]
    predictions = task.get("predictions")
    return not reviewed and isinstance(predictions, list) and bool(predictions)


def _detect_form(path, records) -> str:
    if not records:
        raise DataError(path, None, "empty file: no records")
    line, _, first = records[0]
    if "data" in first and ("annotations" in first or "predictions" in first):
        return "label-studio"
    for form in ("jsonl", "spacy", "doccano"):
        if any(key in first for key in SPAN_KEYS[form]):
            if form == "jsonl":  # doccano also says `entities`: tell them by the items
                items = next((r["entities"] for _, _, r in records if r.get("entities")), [])
                return "doccano" if _is_doccano_item_list(items) else "jsonl"
            return form
    if "text" in first:
        return "doccano"  # a text with no spans at all
    raise DataError(path, line, "unknown record form: expected `text` with `label`, `entities`, "
                                "`spans` or `ents`, or a Label Studio task")


def _is_doccano_item_list(items) -> bool:
    return isinstance(items, list) and any(isinstance(item, list) or
                                           (isinstance(item, dict) and "start_offset" in item)
                                           for item in items)


def _text_and_spans(path, line, where, record, form) -> tuple[str, list[Span]]:
    if form == "label-studio":
        return _label_studio(path, line, where, record)
    text = record.get("text")
    if not isinstance(text, str):
        raise DataError(path, line, f"{where}: missing `text` (a string)")
    key = next((k for k in SPAN_KEYS[form] if k in record), None)
    items = record.get(key, []) if key else []
    if not isinstance(items, list):
        raise DataError(path, line, f"{where}: `{key}` must be a list")
    return text, [_span_item(path, line, where, item, text) for item in items]


def _span_item(path, line, where, item, text) -> Span:
    """[start, end, label], {start_offset, end_offset, label}, {start, end, label|type[, text]}."""
    if isinstance(item, list) and len(item) == 3:
        start, end, label, quoted = item[0], item[1], item[2], None
    elif isinstance(item, dict):
        start = item.get("start", item.get("start_offset"))
        end = item.get("end", item.get("end_offset"))
        label = item.get("label", item.get("type"))
        quoted = item.get("text")
    else:
        raise DataError(path, line, f"{where}: span {item!r:.60} is not [start, end, label] or "
                                    "an object with start, end and label")
    return _make_span(path, line, where, start, end, label, quoted, text)


def _label_studio(path, line, where, task) -> tuple[str, list[Span]]:
    data = task.get("data")
    text = data.get("text") if isinstance(data, dict) else None
    if not isinstance(text, str):
        raise DataError(path, line, f"{where}: missing `data.text` (a string)")
    annotations = [a for a in task.get("annotations") or []
                   if isinstance(a, dict) and not a.get("was_cancelled")]
    if not annotations:
        return text, []
    spans = []
    for result in annotations[0].get("result") or []:
        value = result.get("value") if isinstance(result, dict) else None
        if not isinstance(value, dict) or "start" not in value:
            continue  # other result kinds (choices, relations) carry no span
        labels = value.get("labels")
        if not isinstance(labels, list) or len(labels) != 1:
            raise DataError(path, line, f"{where}: a span needs exactly one label, got "
                                        f"{labels!r:.60}")
        spans.append(_make_span(path, line, where, value.get("start"), value.get("end"),
                                labels[0], value.get("text"), text))
    return text, spans


def _make_span(path, line, where, start, end, label, quoted, text) -> Span:
    if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool) \
            or isinstance(end, bool):
        raise DataError(path, line, f"{where}: span offsets must be integers, got "
                                    f"{start!r:.20}, {end!r:.20}")
    if not isinstance(label, str) or not label.strip():
        raise DataError(path, line, f"{where}: span [{start}, {end}) has an empty label")
    span = Span(start, end, label, where)
    if quoted is not None and 0 <= start < end <= len(text) and text[start:end] != quoted:
        raise DataError(path, line, f"{where}: span [{start}, {end}) {label}: its text "
                                    f"{quoted!r:.40} differs from the text at those offsets "
                                    f"{text[start:end]!r:.40}")
    return span


def check_span(path, line, span: Span, text: str, labels: set[str] | None) -> None:
    name = f"{span.where}: span [{span.start}, {span.end}) {span.label}"
    if not 0 <= span.start < span.end <= len(text):
        raise DataError(path, line, f"{name}: offsets outside the text (length {len(text)}) "
                                    "or start >= end")
    if not _LABEL.match(span.label):
        raise DataError(path, line, f"{name}: a label may not contain whitespace")
    if labels is not None and span.label not in labels:
        raise DataError(path, line, f"{name}: unknown label (expected one of "
                                    f"{', '.join(sorted(labels))})")


def resolve_overlaps(path, line, spans: list[Span], overlaps: str) -> tuple[list[Span], int]:
    """Spans that do not overlap; refused with both spans named, or resolved (dropped count)."""
    if overlaps == "keep-longest":
        candidates = sorted(spans, key=lambda s: (-(s.end - s.start), s.start))
    else:
        candidates = list(spans)
    kept: list[Span] = []
    for span in candidates:
        clash = next((k for k in kept if span.start < k.end and k.start < span.end), None)
        if clash is None:
            kept.append(span)
        elif overlaps == "refuse":
            first, second = sorted([clash, span], key=lambda s: (s.start, s.end))
            raise DataError(path, span.line or line, f"{span.where}: spans [{first.start}, {first.end}) "
                                        f"{first.label} and [{second.start}, {second.end}) "
                                        f"{second.label} overlap (pass --overlaps keep-longest "
                                        "or keep-first to resolve)")
    return sorted(kept, key=lambda s: s.start), len(spans) - len(kept)


# -- writing ------------------------------------------------------------------------------------
def entity_records(sentences) -> list[dict]:
    """Our jsonl form (serve.tag's output) of BMES sentences."""
    from data.corpus.tags import entity_spans

    return [{"text": s.text, "entities": [
        {"type": entity_type, "start": start, "end": end, "text": s.text[start:end]}
        for entity_type, start, end in entity_spans(s.tags)]} for s in sentences]
