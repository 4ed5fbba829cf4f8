"""`python -m serve.tag INPUT... [-o OUT]`: tag text files, one output record per input line.

Reads files (or stdin, or `-`) as UTF-8 (BOM and CRLF accepted) in a stream, so memory stays
bounded whatever the file size. An empty line gives an empty record; order is kept. With -o,
output goes to a temporary file renamed to OUT at the end: an interrupted run leaves no OUT.

Formats: jsonl (default; {"text", "entities": [{"type", "start", "end", "text"}]}, offsets in
characters), bmeo (one line of space-separated tags per input line), conll (`字 TAG` lines,
a blank line after each record).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from serve.arguments import positive
from serve.providers import DEVICES, DeviceError
import numpy as np

from serve.records import FORMATS, render, tag_records
from serve.tagger import DEFAULT_BATCH_SIZE, Tagger, default_model_path

BLOCK_CHARS = 32_768  # characters tagged together: enough to batch well, small enough to
BLOCK_LINES = 1024  # spread over worker processes and keep memory bounded
IN_FLIGHT_PER_WORKER = 2  # blocks queued per worker: keeps them busy, bounds memory
AUTO_WORKERS_BLOCKS = 16  # more blocks than this holding more than this many blocks' worth
# of characters (~512k): a worker per CPU (many short lines alone do not count)


class InputError(Exception):
    def __init__(self, name: str, line: int, message: str):
        super().__init__(f"{name}:{line}: {message}")


def read_records(name: str, stream, errors: str) -> Iterator[str]:
    """Lines of a binary stream as text, without their line ends."""
    for number, raw in enumerate(stream, 1):
        raw = raw.rstrip(b"\n").rstrip(b"\r")
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield raw.decode("utf-8", errors=errors)
        except UnicodeDecodeError as error:
            raise InputError(name, number, f"invalid UTF-8 (byte 0x{raw[error.start]:02x} at "
                                           f"byte {error.start + 1} of the line); the input must "
                                           "be UTF-8, or pass --errors replace") from None


def blocks(records: Iterator[str]) -> Iterator[list[str]]:
    block, size = [], 0
    for text in records:
        block.append(text)
        size += len(text)
        if size >= BLOCK_CHARS or len(block) >= BLOCK_LINES:
            yield block
            block, size = [], 0
    if block:
        yield block


def format_block(tagger: Tagger, texts: list[str], batch_size: int, output_format: str) -> str:
    """Tag a block and render it, one record per text."""
    return render(tag_records(tagger, texts, batch_size, output_format), output_format)


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
    parser.add_argument("--model", type=Path,
                        help="exported .onnx (default $NER_MODEL or the newest models/*.onnx)")
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
    parser.add_argument("--errors", choices=["strict", "replace"], default="strict",
                        help="invalid UTF-8: stop with an error (default) or use U+FFFD")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return parser.parse_args(argv)


_worker_tagger: Tagger | None = None


def _start_worker(model: str, device: str, threads: int | None) -> None:
    global _worker_tagger
    _worker_tagger = Tagger.load(model, device, threads)


def _tag_block(block: list[str], batch_size: int, output_format: str) -> str:
    return format_block(_worker_tagger, block, batch_size, output_format)


def resolve_workers(requested: int | None, large_input: bool) -> int:
    """--workers, else one process for inputs of a few blocks (starting a process and
    loading the model there costs more than it saves: one process with 2 ORT threads tagged
    the MSRA test text 1.3x faster than two single-thread workers), else one single-thread
    worker per CPU, the layout Ray's actors use too: on large inputs every stage (encoding,
    Viterbi, rendering, not only ONNX Runtime) then runs on every core (README, "Tagging":
    2.1M characters 1.2x faster for the default model; 378k still faster in one process)."""
    if requested:
        return requested
    return max(1, os.cpu_count() or 1) if large_input else 1


def tagged_blocks(args, tagger: Tagger, model: Path):
    """(block, formatted output) in input order; blocks go to worker processes when there is
    more than one block and more than one worker, else are tagged here."""
    import collections
    import itertools
    import multiprocessing

    records = (text for name, stream in open_inputs(args.inputs)
               for text in read_records(name, stream, args.errors))
    pending_blocks = blocks(records)
    # Read ahead far enough to know whether the input is large (bounded: AUTO_WORKERS_BLOCKS
    # blocks of at most BLOCK_CHARS characters or BLOCK_LINES lines).
    first = list(itertools.islice(pending_blocks, max(2, AUTO_WORKERS_BLOCKS + 1)))
    large_input = len(first) > AUTO_WORKERS_BLOCKS and \
        sum(len(text) for block in first for text in block) > AUTO_WORKERS_BLOCKS * BLOCK_CHARS
    workers = resolve_workers(args.workers, large_input)
    if workers == 1 or len(first) < 2:
        for block in itertools.chain(first, pending_blocks):
            yield block, format_block(tagger, block, args.batch_size, args.format)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start_worker,
                      initargs=(str(model), args.device, args.threads or 1)) as pool:
        in_flight = collections.deque()
        for block in itertools.chain(first, pending_blocks):
            in_flight.append((block, pool.apply_async(_tag_block, (block, args.batch_size,
                                                                   args.format))))
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
    would hide its bar anyway) none, and tqdm is not imported: 15 ms of start-up, measured."""
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


def output_mode(path: Path) -> int:
    """OUT's permissions: those of the file it replaces, else what open() would give.
    mkstemp makes its file private (0600), which the rename would otherwise hand on."""
    if path.exists():
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def main(argv=None) -> int:
    args = parse_args(argv)
    model = args.model or default_model_path()
    if model is None:
        print("error: no model: pass --model PATH.onnx (export one with python -m export.to_onnx)",
              file=sys.stderr)
        return 2
    for path in args.inputs:
        if path != "-" and not Path(path).is_file():
            print(f"error: {path}: no such file", file=sys.stderr)
            return 2
    try:
        tagger = Tagger.load(model, args.device, args.threads)
    except (DeviceError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if tagger.notice and not args.quiet:
        print(tagger.notice, file=sys.stderr)
    started = time.perf_counter()
    partial = None
    try:
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            handle, partial = tempfile.mkstemp(dir=args.out.parent, prefix=f".{args.out.name}.",
                                               suffix=".partial")
            os.chmod(partial, output_mode(args.out))
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as sink:
                lines, chars = run(args, tagger, sink, model)
            os.replace(partial, args.out)
            partial = None
        else:
            sys.stdout.reconfigure(encoding="utf-8", newline="\n")
            lines, chars = run(args, tagger, sys.stdout, model)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no output written" if args.out else "interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    finally:
        if partial and os.path.exists(partial):
            os.unlink(partial)
    seconds = time.perf_counter() - started
    if not args.quiet:
        print(f"tagged {lines} lines, {chars} characters in {seconds:.2f}s "
              f"({chars / max(seconds, 1e-9):,.0f} chars/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
