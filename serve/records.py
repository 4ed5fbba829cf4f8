"""What the taggers write for each text, built once for every adapter (file, HTTP, Ray).

`tag_records` runs the one batch-tagging function (`Tagger.tag_flat`) and returns one record
per text: for `jsonl` (`entities` over HTTP) the dict `{"text", "entities": [...]}`, for
`bmeo` the line of space-separated tags, for `conll` the `字 TAG` lines with their blank line.
`render` writes records as serve.tag's output lines.
"""
from __future__ import annotations

import json

import numpy as np

FORMATS = ("jsonl", "bmeo", "conll")


def tag_records(tagger, texts: list[str], batch_size: int, output_format: str) -> list:
    flat, lengths = tagger.tag_flat(texts, batch_size)
    if output_format == "jsonl":
        return [{"text": text, "entities": [e.to_dict() for e in entities]}
                for text, entities in zip(texts, tagger.entities(texts, flat, lengths))]
    names = np.array(tagger.tags, dtype=object)[flat]
    offsets = np.cumsum(lengths) - lengths
    records = []
    for text, offset, length in zip(texts, offsets, lengths):
        tags = names[offset:offset + length]
        if output_format == "bmeo":
            records.append(" ".join(tags))
        else:  # conll
            records.append("".join(f"{char} {tag}\n" for char, tag in zip(text, tags)))
    return records


# One encoder for every record: json.dumps(..., ensure_ascii=False) builds a new one per call.
# Same output as json.dumps (same separators).
_JSON_LINE = json.JSONEncoder(ensure_ascii=False)


def render(records: list, output_format: str) -> str:
    if output_format == "jsonl":
        return "".join(_JSON_LINE.encode(record) + "\n" for record in records)
    return "".join(record + "\n" for record in records)
