"""`python -m serve.distributed INPUT... --out DIR`: tag text files on Ray Data, one machine or
a cluster, every output record carrying the `path` and `line` it came from.

Inputs are cut into newline-aligned byte ranges (shards; a large file becomes several, and no
task reads a whole file), each knowing the line it starts at. A fixed pool of actors, each
loading the .onnx once (ONNX Runtime: intra-op threads = the actor's CPUs, inter-op 1), reads
its shard, tags it through the same batch-tagging function as serve.tag (length-sorted
batches), and writes one output file per shard with a deterministic name in DIR, then a
`.done` marker. `manifest.json` is written last (inputs, record and character counts, model,
time): a DIR without it is partial, and a rerun skips the shards already done.

Local by default (this machine's CPUs); `--address auto`, an address, or RAY_ADDRESS for a
running cluster (e.g. through `ray job submit`). A shard's actor that dies is restarted by Ray
and the shard is tagged again from its start, so every record appears exactly once.
Bad input: a missing INPUT exits 2 before Ray starts; invalid UTF-8 stops with FILE:LINE (or
--errors replace) and leaves no manifest; Ctrl-C exits 130 and leaves no manifest.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from data.quiet import stderr_filtered

SHARD_BYTES = 8 << 20  # ~2.7M Chinese characters: enough to batch well, many shards per GB
MANIFEST = "manifest.json"
DONE_DIR = ".done"
FAIL_ENV = "NER_DISTRIBUTED_FAIL_ONCE"  # fault injection for tests: "MARKER_FILE:N"
_RAY_CHATTER = re.compile(r"Set ray log level from environment variable|"
                          r"Started a local Ray instance")


@dataclass(frozen=True)
class Shard:
    path: str
    input_index: int
    index: int  # within its input
    start: int  # byte offset, at a line start
    end: int  # byte offset, after a newline or at the end of the file
    first_line: int  # 1-based line number of the shard's first line

    def output_name(self, output_format: str) -> str:
        stem = Path(self.path).name.replace(".", "_")[:60]
        return f"{self.input_index:04d}-{stem}-{self.index:05d}.{output_format}"


def plan_shards(paths: list[str], shard_bytes: int = SHARD_BYTES) -> list[Shard]:
    """Newline-aligned byte ranges of about shard_bytes, with the line each one starts at (one
    streaming pass over each file, counting newlines)."""
    shards = []
    for input_index, path in enumerate(paths):
        size = os.path.getsize(path)
        bounds = [0]
        with open(path, "rb") as stream:
            while bounds[-1] + shard_bytes < size:
                stream.seek(bounds[-1] + shard_bytes)
                stream.readline()  # to the end of the line the cut falls in
                position = stream.tell()
                if position >= size:
                    break
                bounds.append(position)
            bounds.append(size)
            line = 1
            stream.seek(0)
            for index, (start, end) in enumerate(zip(bounds, bounds[1:])):
                shards.append(Shard(path, input_index, index, start, end, line))
                line += _count_newlines(stream, start, end)
        if size == 0:
            shards.append(Shard(path, input_index, 0, 0, 0, 1))
    return shards


def _count_newlines(stream, start: int, end: int, chunk: int = 1 << 22) -> int:
    stream.seek(start)
    count, remaining = 0, end - start
    while remaining > 0:
        data = stream.read(min(chunk, remaining))
        count += data.count(b"\n")
        remaining -= len(data)
    return count


def shard_lines(data: bytes, shard: Shard, errors: str) -> list[str]:
    """The shard's lines as text, as serve.tag reads them (line ends and a first-line BOM
    dropped), or InputError naming FILE:LINE for invalid UTF-8."""
    from serve.tag import InputError

    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # the newline ending the shard's last line
    lines = []
    for offset, raw in enumerate(raw_lines):
        raw = raw.rstrip(b"\r")
        if shard.first_line + offset == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            lines.append(raw.decode("utf-8", errors=errors))
        except UnicodeDecodeError as error:
            raise InputError(shard.path, shard.first_line + offset,
                             f"invalid UTF-8 (byte 0x{raw[error.start]:02x} at byte "
                             f"{error.start + 1} of the line); the input must be UTF-8, or pass "
                             "--errors replace") from None
    return lines


class ShardTagger:
    """A Ray Data actor: loads the model once, then tags whole shards into files.

    Configured through the class (see `shard_tagger_class`), not constructor arguments: Ray
    keeps constructor arguments in its object store and warns that a restarted actor may not
    find them there."""
    SETTINGS: dict = {}

    def __init__(self):
        from serve.tagger import Tagger

        settings = self.SETTINGS
        self.tagger = Tagger.load(settings["model"], "cpu", settings["threads"])
        self.out, self.output_format = Path(settings["out"]), settings["output_format"]
        self.errors, self.batch_chars = settings["errors"], settings["batch_chars"]
        self.calls = 0

    def __call__(self, batch: dict) -> dict:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        summaries = [self.tag_shard(Shard(**{k: _plain(v) for k, v in row.items()}))
                     for row in rows]
        return {key: [summary[key] for summary in summaries] for key in summaries[0]}

    def tag_shard(self, shard: Shard) -> dict:
        from serve.tag import InputError

        self._maybe_fail()
        with open(shard.path, "rb") as stream:
            stream.seek(shard.start)
            data = stream.read(shard.end - shard.start)
        try:
            texts = shard_lines(data, shard, self.errors)
        except InputError as error:
            return {"shard": shard.output_name(self.output_format), "records": 0, "chars": 0,
                    "error": str(error)}
        records = self.tag_texts(texts)
        for offset, record in enumerate(records):
            record["path"], record["line"] = shard.path, shard.first_line + offset
        name = shard.output_name(self.output_format)
        write_records(self.out / name, records, self.output_format)
        chars = sum(map(len, texts))
        done = {"shard": asdict(shard), "records": len(records), "chars": chars}
        _write_atomic(self.out / DONE_DIR / f"{name}.json", json.dumps(done))
        return {"shard": name, "records": len(records), "chars": chars, "error": ""}

    def tag_texts(self, texts: list[str]) -> list[dict]:
        """Blocks of about batch_chars characters through serve.tag's own tagging."""
        records, block, size = [], [], 0
        for text in texts:
            block.append(text)
            size += len(text)
            if size >= self.batch_chars:
                records += self._records(block)
                block, size = [], 0
        return records + (self._records(block) if block else [])

    def _records(self, texts: list[str]) -> list[dict]:
        from serve.records import tag_records

        return [{"path": None, "line": None, **record}
                for record in tag_records(self.tagger, texts, 64, "jsonl")]

    def _maybe_fail(self) -> None:
        """Fault injection: with NER_DISTRIBUTED_FAIL_ONCE=MARKER:N, the first actor to reach
        its N-th shard while MARKER does not exist creates MARKER and dies at once."""
        self.calls += 1
        marker, _, nth = os.environ.get(FAIL_ENV, "").partition(":")
        if marker and self.calls == int(nth or 1) and not os.path.exists(marker):
            Path(marker).touch()
            os._exit(17)


def shard_tagger_class(**settings) -> type:
    return type("ShardTagger", (ShardTagger,), {"SETTINGS": settings})


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def write_records(path: Path, records: list[dict], output_format: str) -> None:
    partial = path.with_name(path.name + ".partial")
    if output_format == "jsonl":
        with open(partial, "w", encoding="utf-8", newline="\n") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        entity = pa.struct([("type", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
                            ("text", pa.string())])
        schema = pa.schema([("path", pa.string()), ("line", pa.int64()), ("text", pa.string()),
                            ("entities", pa.list_(entity))])
        pq.write_table(pa.Table.from_pylist(records, schema=schema), partial)
    os.replace(partial, path)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def finished(out: Path, shard: Shard, output_format: str) -> dict | None:
    """The done marker of a shard tagged by an earlier run of the same job, if any."""
    name = shard.output_name(output_format)
    marker = out / DONE_DIR / f"{name}.json"
    if not (marker.exists() and (out / name).exists()):
        return None
    done = json.loads(marker.read_text(encoding="utf-8"))
    return done if done["shard"] == asdict(shard) else None


def model_digest(model: Path) -> str:
    digest = hashlib.sha256()
    with open(model, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m serve.distributed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="text files, one text a line")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--model", type=Path,
                        help="exported .onnx (default $NER_MODEL or the newest models/*.onnx)")
    parser.add_argument("--address", help="Ray cluster address (`auto`, host:port); default "
                        "$RAY_ADDRESS, else a local Ray on this machine")
    parser.add_argument("--actors", type=int, help="tagging actors (default: CPUs / threads)")
    parser.add_argument("--threads-per-actor", type=int, default=1,
                        help="CPUs, and ONNX Runtime threads, per actor (default 1)")
    parser.add_argument("--batch-chars", type=int, default=32_768,
                        help="characters tagged together inside an actor (default 32768)")
    parser.add_argument("--shard-bytes", type=int, default=SHARD_BYTES,
                        help=f"bytes per shard (default {SHARD_BYTES})")
    parser.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    parser.add_argument("--errors", choices=["strict", "replace"], default="strict",
                        help="invalid UTF-8: stop with FILE:LINE (default) or use U+FFFD")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def default_actors(cpus: int, threads: int) -> int:
    # Each actor reads and writes its own shard, so every CPU can tag; on 2 CPUs, 2 actors x 1
    # thread and 1 actor x 2 threads are both measured in README ("Batch tagging on Ray").
    return max(1, cpus // max(1, threads))


def main(argv=None) -> int:
    from serve.tagger import ModelError, checked_model_path

    args = parse_args(argv)
    for path in args.inputs:
        if not Path(path).is_file():
            print(f"error: {path}: no such file", file=sys.stderr)
            return 2
    try:  # before Ray starts
        model = checked_model_path(args.model)
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out.exists() and not args.out.is_dir():
        print(f"error: {args.out}: exists and is not a folder", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / MANIFEST).unlink(missing_ok=True)  # a job under way is not a finished one
    try:
        return run(args, model)
    except KeyboardInterrupt:
        print("interrupted: no manifest written (rerun to finish; done shards are kept)",
              file=sys.stderr)
        return 130


def run(args, model: Path) -> int:
    import ray

    started = time.perf_counter()
    shards = plan_shards([str(Path(p)) for p in args.inputs], args.shard_bytes)
    done = {s: finished(args.out, s, args.format) for s in shards}
    todo = [s for s in shards if done[s] is None]
    address = args.address or os.environ.get("RAY_ADDRESS")
    # Ray's C++ core logs an error-level note for every Ray Data actor (its constructor
    # arguments live in the object store): advice for Ray Data's authors, not for our users;
    # at level fatal it still says so once, at start-up.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    with stderr_filtered(_RAY_CHATTER):
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR", configure_logging=True)
    try:
        cpus = int(ray.available_resources().get("CPU", os.cpu_count() or 1))
        actors = min(args.actors or default_actors(cpus, args.threads_per_actor),
                     max(1, len(todo)))
        if not args.quiet:
            print(f"{len(shards)} shards ({len(shards) - len(todo)} done before), {actors} "
                  f"actors x {args.threads_per_actor} threads on "
                  f"{'this machine' if not address else address}", file=sys.stderr)
        results = tag_shards(args, model, todo, actors) if todo else []
    finally:
        ray.shutdown()
    errors = [r["error"] for r in results if r["error"]]
    if errors:
        print(f"error: {sorted(errors)[0]}", file=sys.stderr)
        return 2
    write_manifest(args, model, shards, time.perf_counter() - started)
    return 0


def tag_shards(args, model: Path, shards: list[Shard], actors: int) -> list[dict]:
    import ray.data

    # Ray Data reports progress as log lines when stderr is no terminal: keep them for a
    # person watching (not --quiet) on a terminal only.
    logging.getLogger("ray.data").setLevel(logging.ERROR if args.quiet or
                                           not sys.stderr.isatty() else logging.INFO)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = not args.quiet and sys.stderr.isatty()
    context.execution_options.preserve_order = False
    dataset = ray.data.from_items([asdict(s) for s in shards],
                                  override_num_blocks=len(shards))
    tagger_class = shard_tagger_class(
        model=str(model), threads=args.threads_per_actor, out=str(args.out),
        output_format=args.format, errors=args.errors, batch_chars=args.batch_chars)
    tagged = dataset.map_batches(tagger_class, batch_size=1, num_cpus=args.threads_per_actor,
                                 compute=ray.data.ActorPoolStrategy(size=actors))
    results = []
    for row in tagged.iter_rows():
        results.append(row)
        if row["error"] and args.errors == "strict":
            break  # stop the job: the manifest will not be written
    return results


def write_manifest(args, model: Path, shards: list[Shard], seconds: float) -> None:
    inputs = {}
    for shard in shards:
        done = finished(args.out, shard, args.format)
        entry = inputs.setdefault(shard.path, {"path": shard.path, "bytes": 0, "records": 0,
                                               "chars": 0, "shards": []})
        entry["bytes"] += shard.end - shard.start
        entry["records"] += done["records"]
        entry["chars"] += done["chars"]
        entry["shards"].append(shard.output_name(args.format))
    manifest = {"model": str(model), "model_sha256": model_digest(model),
                "format": args.format, "inputs": list(inputs.values()),
                "records": sum(e["records"] for e in inputs.values()),
                "chars": sum(e["chars"] for e in inputs.values()),
                "seconds": round(seconds, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _write_atomic(args.out / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    if not args.quiet:
        print(f"tagged {manifest['records']} lines, {manifest['chars']} characters in "
              f"{seconds:.1f}s ({manifest['chars'] / max(seconds, 1e-9):,.0f} chars/s); "
              f"{args.out / MANIFEST}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
