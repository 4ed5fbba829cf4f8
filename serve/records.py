"""What the taggers write for each text, built once for every adapter (file, HTTP, Ray).

`tag_records` runs the one batch-tagging function (`Tagger.tag_batch`) and returns one record
per text: for `jsonl` (`entities` over HTTP) the dict `{"text", "entities": [...]}`, for
`bmeo` the line of space-separated tags, for `conll` the `字 TAG` lines with their blank line.
`render` writes records as output lines; `blocks` cuts a stream of texts into the pieces that
are tagged together; `write_records` writes a whole file of records (JSON lines or Parquet).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from data.files import atomic_path, atomic_text

FORMATS = ("jsonl", "bmeo", "conll")
REQUEST_FORMATS = {"entities": "jsonl", "bmeo": "bmeo"}  # HTTP `format` -> record format
BLOCK_CHARS = 32_768  # characters tagged together: enough to batch well, small enough to
BLOCK_LINES = 1024  # spread over worker processes and keep memory bounded


@dataclass(frozen=True)
class TagOptions:
    """How records are made, the same for every adapter."""
    output_format: str = "jsonl"
    batch_size: int = 64
    scores: bool = True
    min_score: float | None = None


def tag_records(tagger, texts: list[str], options: TagOptions) -> list:
    tagged = tagger.tag_batch(texts, options.batch_size,
                              options.scores or options.min_score is not None)
    tagged = tagged.keep(options.min_score)
    if not options.scores:
        tagged.span_score = None
    if options.output_format == "jsonl":
        return [{"text": text, "entities": [e.to_dict() for e in entities]}
                for text, entities in zip(texts, tagger.entities(tagged))]
    records = []
    for text, tags in zip(texts, tagger.tag_names(tagged)):
        if options.output_format == "bmeo":
            records.append(" ".join(tags))
        else:  # conll
            records.append("".join(f"{char} {tag}\n" for char, tag in zip(text, tags)))
    return records


def blocks(texts: Iterable[str], block_chars: int = BLOCK_CHARS,
           block_lines: int = BLOCK_LINES) -> Iterator[list[str]]:
    """Consecutive texts in lists of about block_chars characters (or block_lines texts)."""
    block, size = [], 0
    for text in texts:
        block.append(text)
        size += len(text)
        if size >= block_chars or len(block) >= block_lines:
            yield block
            block, size = [], 0
    if block:
        yield block


# One encoder for every record: json.dumps(..., ensure_ascii=False) builds a new one per call.
# Same output as json.dumps (same separators).
_JSON_LINE = json.JSONEncoder(ensure_ascii=False)


def render(records: list, output_format: str) -> str:
    if output_format == "jsonl":
        return "".join(_JSON_LINE.encode(record) + "\n" for record in records)
    return "".join(record + "\n" for record in records)


def write_records(path: Path, records: list[dict], output_format: str,
                  scores: bool = True) -> None:
    """A whole file of JSON records, as JSON lines or Parquet, written atomically (scores:
    whether entities carry `score`, a column of every Parquet file then)."""
    if output_format != "parquet":
        with atomic_text(path) as handle:
            handle.write(render(records, "jsonl"))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [("type", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
              ("text", pa.string())]
    if scores:
        fields.append(("score", pa.float64()))
    schema = pa.schema([("path", pa.string()), ("line", pa.int64()), ("text", pa.string()),
                        ("entities", pa.list_(pa.struct(fields)))])
    with atomic_path(path) as partial:
        pq.write_table(pa.Table.from_pylist(records, schema=schema), partial)
