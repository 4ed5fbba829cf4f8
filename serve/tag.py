"""`python -m serve.tag INPUT... [-o OUT]`: tag text files, one output record per input line.

Reads files (or stdin, or `-`) as UTF-8 (BOM and CRLF accepted) in a stream, so memory stays
bounded whatever the file size. An empty line gives an empty record; order is kept. With -o,
output goes to a temporary file renamed to OUT at the end: an interrupted run leaves no OUT.

Formats: jsonl (default; {"text", "entities": [{"type", "start", "end", "text", "score"}]},
offsets in characters, score the probability of exactly that entity), bmeo (one line of
space-separated tags per input line), conll (`字 TAG` lines, a blank line after each record).
"""
from __future__ import annotations

import argparse
import collections
import itertools
import os
import sys
import time
from pathlib import Path

from data.files import DataError, atomic_text, check_input_file, check_output, text_lines
from serve.arguments import (add_errors_argument, add_model_argument, add_score_arguments,
                             add_word_list_arguments, positive)
from serve.providers import DEVICES, DeviceError
from serve.records import (BLOCK_CHARS, BLOCK_LINES, FORMATS, TagOptions, blocks, render,
                           tag_records)
from serve.tagger import DEFAULT_BATCH_SIZE, ModelError, Tagger, load_tagger, model_path

IN_FLIGHT_PER_WORKER = 2  # blocks queued per worker: keeps them busy, bounds memory
AUTO_WORKERS_BLOCKS = 16  # more blocks than this holding more than this many blocks' worth
# of characters (~512k): a worker per CPU (many short lines alone do not count)


def open_inputs(paths: list[str]):
    for path in paths or ["-"]:
        if path == "-":
            yield "<stdin>", sys.stdin.buffer
        else:
            with open(path, "rb") as stream:
                yield path, stream


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m serve.tag", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="text files; none or - is stdin")
    parser.add_argument("-o", "--out", type=Path, help="output file (default stdout)")
    parser.add_argument("--format", choices=FORMATS, default="jsonl")
    add_model_argument(parser)
    add_word_list_arguments(parser)
    add_score_arguments(parser)
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--batch-size", type=positive, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--threads", type=positive,
                        help="ONNX Runtime intra-op threads per process (default: one per CPU "
                        "with one worker, else 1)")
    parser.add_argument("--workers", type=positive,
                        help="tagging processes (default: 1 for inputs up to "
                        f"{AUTO_WORKERS_BLOCKS} blocks of {BLOCK_CHARS:,} characters, else one "
                        "per CPU with one ORT thread each; inputs of one block are always "
                        "tagged in-process)")
    add_errors_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return parser.parse_args(argv)


def tag_options(args) -> TagOptions:
    return TagOptions(args.format, args.batch_size, args.scores, args.min_score)


_worker: dict = {}


def _start_worker(model: str, device: str, threads: int | None, words, force_words,
                  options: TagOptions) -> None:
    _worker["tagger"] = Tagger.load(model, device, threads, words, force_words)
    _worker["options"] = options


def _tag_block(block: list[str]) -> str:
    options = _worker["options"]
    return render(tag_records(_worker["tagger"], block, options), options.output_format)


def resolve_workers(requested: int | None, large_input: bool) -> int:
    """--workers, else one process for inputs of a few blocks (starting a process and loading
    the model there costs more than it saves), else one single-thread worker per CPU, the
    layout Ray's actors use too: on large inputs every stage (encoding, Viterbi, rendering,
    not only ONNX Runtime) then runs on every core (docs/performance.md)."""
    if requested:
        return requested
    return max(1, os.cpu_count() or 1) if large_input else 1


def tagged_blocks(args, tagger: Tagger, model: Path):
    """(block, formatted output) in input order; blocks go to worker processes when there is
    more than one block and more than one worker, else are tagged here."""
    import multiprocessing

    options = tag_options(args)
    records = (text for name, stream in open_inputs(args.inputs)
               for text in text_lines(name, stream, args.errors))
    pending_blocks = blocks(records, BLOCK_CHARS, BLOCK_LINES)
    # Read ahead far enough to know whether the input is large (bounded: AUTO_WORKERS_BLOCKS
    # blocks of at most BLOCK_CHARS characters or BLOCK_LINES lines).
    first = list(itertools.islice(pending_blocks, max(2, AUTO_WORKERS_BLOCKS + 1)))
    large_input = len(first) > AUTO_WORKERS_BLOCKS and \
        sum(len(text) for block in first for text in block) > AUTO_WORKERS_BLOCKS * BLOCK_CHARS
    workers = resolve_workers(args.workers, large_input)
    if workers == 1 or len(first) < 2:
        for block in itertools.chain(first, pending_blocks):
            yield block, render(tag_records(tagger, block, options), args.format)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start_worker,
                      initargs=(str(model), args.device, args.threads or 1, args.words,
                                args.force_words, options)) as pool:
        in_flight = collections.deque()
        for block in itertools.chain(first, pending_blocks):
            in_flight.append((block, pool.apply_async(_tag_block, (block,))))
            if len(in_flight) >= workers * IN_FLIGHT_PER_WORKER:
                done_block, result = in_flight.popleft()
                yield done_block, result.get()
        while in_flight:
            done_block, result = in_flight.popleft()
            yield done_block, result.get()


class _NoBar:
    def update(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(quiet: bool):
    """tqdm's bar on a terminal. Elsewhere (--quiet, or stderr not a terminal, where tqdm
    would hide its bar anyway) none, and tqdm is not imported (15 ms of start-up)."""
    if quiet or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(unit="char", unit_scale=True, file=sys.stderr, desc="tagging")


def run(args, tagger: Tagger, sink, model: Path) -> tuple[int, int]:
    lines = chars = 0
    bar = progress_bar(args.quiet)
    try:
        for block, formatted in tagged_blocks(args, tagger, model):
            sink.write(formatted)
            block_chars = sum(len(text) for text in block)
            lines += len(block)
            chars += block_chars
            bar.update(block_chars)
    finally:
        bar.close()
    return lines, chars


def check_paths(args) -> None:
    """Every input and the output, before the model loads (DataError if unusable)."""
    for path in args.inputs:
        if path != "-":
            check_input_file(path)
    if args.out:
        check_output(args.out, create_parent=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        check_paths(args)
        model = model_path(args.model)
        tagger = load_tagger(model, args.device, args.threads, args.words, args.force_words)
    except (DataError, DeviceError, ModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if tagger.notice and not args.quiet:
        print(tagger.notice, file=sys.stderr)
    started = time.perf_counter()
    try:
        if args.out:
            with atomic_text(args.out) as sink:
                lines, chars = run(args, tagger, sink, model)
        else:
            sys.stdout.reconfigure(encoding="utf-8", newline="\n")
            lines, chars = run(args, tagger, sys.stdout, model)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no output written" if args.out else "interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    seconds = time.perf_counter() - started
    if not args.quiet:
        print(f"tagged {lines} lines, {chars} characters in {seconds:.2f}s "
              f"({chars / max(seconds, 1e-9):,.0f} chars/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
