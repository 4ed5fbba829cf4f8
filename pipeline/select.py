"""`python -m pipeline.select --model M.onnx --pool FILE... --n N -o OUT --format F`: the texts
worth labelling next, pre-annotated by the model.

Streams a pool of raw text (one text a line, any size: memory holds the N chosen texts, not
the pool) and keeps the N texts the model is least sure of (`uncertainty`: the lowest
length-normalised log-probability of the tagger's best tag path, i.e. the geometric mean of
its per-character probability) or N at random (`random`, reproducible with --seed). Exact
duplicates, empty lines and texts of --exclude files (already labelled: any format
data.check reads, or plain text) are left out. OUT holds the chosen texts with the model's
entities, ready to import:
  label-studio  one JSON list of tasks: `data.text` and `predictions` (model_version, the
                text's score, results with each entity's `score`); no `annotations` until
                a person reviews them
  doccano       JSON lines {"text", "label": [[start, end, "TYPE"], ...]}
  jsonl         serve.tag's records plus `uncertainty`
Most uncertain first.
"""
from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import sys
from pathlib import Path

import numpy as np

from data.files import (DataError, atomic_text, check_input_file, check_output, text_lines)
from serve.arguments import add_model_argument, positive
from serve.records import blocks
from serve.tagger import ModelError, load_tagger, model_path

STRATEGIES = ("uncertainty", "random")
OUTPUT_FORMATS = ("label-studio", "doccano", "jsonl")


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def excluded_keys(paths: list[Path]) -> set[bytes]:
    """The texts of already-labelled files: a corpus in any readable form, else plain lines."""
    from data.corpus.formats import read_corpus

    keys = set()
    for path in paths:
        try:
            texts = [s.text for s in read_corpus(path).sentences]
        except DataError:
            with open(path, "rb") as stream:
                texts = list(text_lines(str(path), stream))
        keys.update(text_key(text) for text in texts)
    return keys


class Chosen:
    """The best N (priority, order) seen so far, one per distinct text: a min-heap whose root
    is the first to go."""

    def __init__(self, size: int):
        self.size, self.heap, self.keys = size, [], set()

    def offer(self, priority: float, order: int, key: bytes, item) -> None:
        if key in self.keys:
            return
        entry = (priority, -order, key, item)
        if len(self.heap) < self.size:
            heapq.heappush(self.heap, entry)
        elif entry[:2] > self.heap[0][:2]:
            self.keys.discard(heapq.heapreplace(self.heap, entry)[2])
        else:
            return
        self.keys.add(key)

    def best_first(self) -> list:
        return [entry[3] for entry in sorted(self.heap, key=lambda e: e[:2], reverse=True)]


def uncertainty(tagged) -> np.ndarray:
    """1 − the geometric mean per character of the best path's probability."""
    lengths = np.maximum(tagged.lengths, 1)
    return 1.0 - np.exp(tagged.path_log_prob / lengths)


def select(tagger, pool: list[str], count: int, strategy: str, exclude: set[bytes],
           seed: int, errors: str = "strict", batch_size: int = 64,
           progress=lambda texts: None) -> list[dict]:
    """The chosen texts as records {"text", "entities", "uncertainty"}, most uncertain first."""
    chosen = Chosen(count)
    random = np.random.default_rng(seed)
    order = 0
    for block in blocks(_pool_texts(pool, errors)):
        block = [text for text in block if text.strip() and text_key(text) not in exclude]
        if not block:
            continue
        tagged = tagger.tag_batch(block, batch_size)
        doubt = uncertainty(tagged)
        priority = doubt if strategy == "uncertainty" else random.random(len(block))
        for text, entities, value, rank in zip(block, tagger.entities(tagged), doubt.tolist(),
                                               priority.tolist()):
            chosen.offer(rank, order, text_key(text), (text, entities, value))
            order += 1
        progress(len(block))
    return [{"text": text, "entities": [e.to_dict() for e in entities],
             "uncertainty": round(value, 6)} for text, entities, value in chosen.best_first()]


def _pool_texts(paths: list[str], errors: str):
    for path in paths:
        with open(path, "rb") as stream:
            yield from text_lines(path, stream, errors)


def label_studio_task(record: dict, model_version: str) -> dict:
    results = [{"id": f"e{index}", "from_name": "label", "to_name": "text", "type": "labels",
                "score": entity["score"],
                "value": {"start": entity["start"], "end": entity["end"],
                          "text": entity["text"], "labels": [entity["type"]]}}
               for index, entity in enumerate(record["entities"])]
    return {"data": {"text": record["text"]},
            "predictions": [{"model_version": model_version,
                             "score": round(1.0 - record["uncertainty"], 6),
                             "result": results}]}


def render(records: list[dict], output_format: str, model_version: str) -> str:
    if output_format == "label-studio":
        tasks = [label_studio_task(record, model_version) for record in records]
        return json.dumps(tasks, ensure_ascii=False, indent=1) + "\n"
    if output_format == "doccano":
        lines = [{"text": r["text"], "label": [[e["start"], e["end"], e["type"]]
                                                for e in r["entities"]]} for r in records]
    else:
        lines = records
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m pipeline.select", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_argument(parser)
    parser.add_argument("--pool", nargs="+", required=True, metavar="FILE",
                        help="raw text, one text a line")
    parser.add_argument("--n", type=positive, required=True, help="texts to choose")
    parser.add_argument("-o", "--out", type=Path, required=True, help="file to write")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, required=True)
    parser.add_argument("--strategy", choices=STRATEGIES, default="uncertainty")
    parser.add_argument("--exclude", nargs="*", default=[], type=Path, metavar="FILE",
                        help="texts already labelled (any data.check form, or plain lines)")
    parser.add_argument("--seed", type=int, default=0, help="for --strategy random")
    parser.add_argument("--errors", choices=["strict", "replace"], default="strict",
                        help="invalid UTF-8 in the pool: stop with FILE:LINE or use U+FFFD")
    parser.add_argument("--quiet", action="store_true", help="no progress or summary")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        for path in [*args.pool, *args.exclude]:
            check_input_file(path)
        check_output(args.out)
        tagger = load_tagger(args.model)
        exclude = excluded_keys(args.exclude)
        seen = [0]

        def progress(texts: int) -> None:
            seen[0] += texts
            if not args.quiet and sys.stderr.isatty():
                print(f"\rscored {seen[0]:,} texts", end="", file=sys.stderr)

        records = select(tagger, args.pool, args.n, args.strategy, exclude, args.seed,
                         args.errors, progress=progress)
    except (DataError, ModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no output written", file=sys.stderr)
        return 130
    model_version = model_path(args.model).name
    with atomic_text(args.out) as handle:
        handle.write(render(records, args.format, model_version))
    if not args.quiet:
        print(f"{'' if not sys.stderr.isatty() else chr(10)}chose {len(records)} of "
              f"{seen[0]:,} candidate texts ({args.strategy}) -> {args.out} "
              f"({args.format})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
