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

from data.files import DataError, check_input_file, check_output, text_lines, write_text_atomic
from data.quiet import stderr_filtered
from serve.arguments import (add_errors_argument, add_model_argument, add_score_arguments,
                             add_word_list_arguments, positive)
from serve.records import BLOCK_CHARS, blocks

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
    """The shard's lines as text, read as serve.tag reads them, or DataError naming FILE:LINE
    for invalid UTF-8."""
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # the newline ending the shard's last line
    return list(text_lines(shard.path, raw_lines, errors, shard.first_line))


class ShardTagger:
    """A Ray Data actor: loads the model once, then tags whole shards into files.

    Configured through the class (see `shard_tagger_class`), not constructor arguments: Ray
    keeps constructor arguments in its object store and warns that a restarted actor may not
    find them there."""
    SETTINGS: dict = {}

    def __init__(self):
        from serve.records import TagOptions
        from serve.tagger import Tagger

        settings = self.SETTINGS
        self.tagger = Tagger.load(settings["model"], "cpu", settings["threads"],
                                  settings["words"], settings["force_words"])
        self.out, self.output_format = Path(settings["out"]), settings["output_format"]
        self.errors, self.batch_chars = settings["errors"], settings["batch_chars"]
        self.options = TagOptions("jsonl", scores=settings["scores"],
                                  min_score=settings["min_score"])
        self.calls = 0

    def __call__(self, batch: dict) -> dict:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        summaries = [self.tag_shard(Shard(**{k: _plain(v) for k, v in row.items()}))
                     for row in rows]
        return {key: [summary[key] for summary in summaries] for key in summaries[0]}

    def tag_shard(self, shard: Shard) -> dict:
        from serve.records import write_records

        self._maybe_fail()
        with open(shard.path, "rb") as stream:
            stream.seek(shard.start)
            data = stream.read(shard.end - shard.start)
        try:
            texts = shard_lines(data, shard, self.errors)
        except DataError as error:
            return {"shard": shard.output_name(self.output_format), "records": 0, "chars": 0,
                    "error": str(error)}
        records = self.tag_texts(texts)
        for offset, record in enumerate(records):
            record["path"], record["line"] = shard.path, shard.first_line + offset
        name = shard.output_name(self.output_format)
        write_records(self.out / name, records, self.output_format, self.options.scores)
        chars = sum(map(len, texts))
        done = {"shard": asdict(shard), "records": len(records), "chars": chars,
                "settings": self.SETTINGS["settings"]}
        (self.out / DONE_DIR).mkdir(exist_ok=True)
        write_text_atomic(self.out / DONE_DIR / f"{name}.json", json.dumps(done))
        return {"shard": name, "records": len(records), "chars": chars, "error": ""}

    def tag_texts(self, texts: list[str]) -> list[dict]:
        """Blocks of about batch_chars characters through serve.tag's own tagging."""
        from serve.records import tag_records

        return [{"path": None, "line": None, **record}
                for block in blocks(texts, self.batch_chars, len(texts) + 1)
                for record in tag_records(self.tagger, block, self.options)]

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


def finished(out: Path, shard: Shard, output_format: str, settings: dict) -> dict | None:
    """The done marker of a shard tagged by an earlier run of the same job, if any."""
    name = shard.output_name(output_format)
    marker = out / DONE_DIR / f"{name}.json"
    if not (marker.exists() and (out / name).exists()):
        return None
    done = json.loads(marker.read_text(encoding="utf-8"))
    same = done["shard"] == asdict(shard) and done.get("settings") == settings
    return done if same else None


def file_digest(model: Path) -> str:
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
    add_model_argument(parser)
    add_word_list_arguments(parser)
    add_score_arguments(parser)
    parser.add_argument("--address", help="Ray cluster address (`auto`, host:port); default "
                        "$RAY_ADDRESS, else a local Ray on this machine")
    parser.add_argument("--actors", type=positive,
                        help="tagging actors (default: CPUs / threads)")
    parser.add_argument("--threads-per-actor", type=positive, default=1,
                        help="CPUs, and ONNX Runtime threads, per actor (default 1)")
    parser.add_argument("--batch-chars", type=positive, default=BLOCK_CHARS,
                        help=f"characters tagged together inside an actor (default {BLOCK_CHARS})")
    parser.add_argument("--shard-bytes", type=positive, default=SHARD_BYTES,
                        help=f"bytes per shard (default {SHARD_BYTES})")
    parser.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    add_errors_argument(parser)
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def default_actors(cpus: int, threads: int) -> int:
    # Each actor reads and writes its own shard, so every CPU can tag (docs/performance.md,
    # "Layouts": one thread an actor measured faster)
    return max(1, cpus // max(1, threads))


def main(argv=None) -> int:
    from serve.providers import DeviceError
    from serve.tagger import ModelError, checked_model_path

    args = parse_args(argv)
    try:  # before Ray starts
        for path in args.inputs:
            check_input_file(path)
        check_output(args.out, create_parent=True, folder=True)
        model = checked_model_path(args.model, args.words, args.force_words)
    except (DataError, DeviceError, ModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / MANIFEST).unlink(missing_ok=True)  # a job under way is not a finished one
    try:
        return run(args, model)
    except KeyboardInterrupt:
        print("interrupted: no manifest written (rerun to finish; done shards are kept)",
              file=sys.stderr)
        return 130


def tagging_settings(args) -> dict:
    """What decides the records besides the model: kept in each shard's done marker (a rerun
    with other settings tags the shard again) and in the manifest."""
    return {"scores": args.scores, "min_score": args.min_score,
            "words": word_list_provenance(args.words),
            "force_words": word_list_provenance(args.force_words)}


def word_list_provenance(path: Path | None) -> dict | None:
    if path is None:
        return None
    return {"path": str(path), "sha256": file_digest(path),
            "words": sum(1 for line in path.read_text(encoding="utf-8").splitlines()
                         if line.split() and not line.split()[0].startswith("#"))}


def run(args, model: Path) -> int:
    import ray

    started = time.perf_counter()
    shards = plan_shards([str(Path(p)) for p in args.inputs], args.shard_bytes)
    settings = tagging_settings(args)
    done = {s: finished(args.out, s, args.format, settings) for s in shards}
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
        results = tag_shards(args, model, todo, actors, settings) if todo else []
    finally:
        ray.shutdown()
    errors = [r["error"] for r in results if r["error"]]
    if errors:
        print(f"error: {sorted(errors)[0]}", file=sys.stderr)
        return 2
    write_manifest(args, model, shards, settings, time.perf_counter() - started)
    return 0


def tag_shards(args, model: Path, shards: list[Shard], actors: int,
               settings: dict) -> list[dict]:
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
        output_format=args.format, errors=args.errors, batch_chars=args.batch_chars,
        words=args.words and str(args.words), force_words=args.force_words and
        str(args.force_words), scores=args.scores, min_score=args.min_score, settings=settings)
    tagged = dataset.map_batches(tagger_class, batch_size=1, num_cpus=args.threads_per_actor,
                                 compute=ray.data.ActorPoolStrategy(size=actors))
    results = []
    for row in tagged.iter_rows():
        results.append(row)
        if row["error"] and args.errors == "strict":
            break  # stop the job: the manifest will not be written
    return results


def write_manifest(args, model: Path, shards: list[Shard], settings: dict,
                   seconds: float) -> None:
    inputs = {}
    for shard in shards:
        done = finished(args.out, shard, args.format, settings)
        entry = inputs.setdefault(shard.path, {"path": shard.path, "bytes": 0, "records": 0,
                                               "chars": 0, "shards": []})
        entry["bytes"] += shard.end - shard.start
        entry["records"] += done["records"]
        entry["chars"] += done["chars"]
        entry["shards"].append(shard.output_name(args.format))
    manifest = {"model": str(model), "model_sha256": file_digest(model),
                "format": args.format, **settings, "inputs": list(inputs.values()),
                "records": sum(e["records"] for e in inputs.values()),
                "chars": sum(e["chars"] for e in inputs.values()),
                "seconds": round(seconds, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_text_atomic(args.out / MANIFEST,
                      json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    if not args.quiet:
        print(f"tagged {manifest['records']} lines, {manifest['chars']} characters in "
              f"{seconds:.1f}s ({manifest['chars'] / max(seconds, 1e-9):,.0f} chars/s); "
              f"{args.out / MANIFEST}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
