"""`python -m pipeline.bench --run runs/NAME`: every inference path measured in one run.

On the same trained model and text (default: the MSRA test sentences), each path runs in a
fresh worker process of its own (so peak RSS is its own), one after another:
  keras_predict   Keras `model.predict` + numpy Viterbi (where users start)
  tf_function     a compiled tf.function + numpy Viterbi
  ort_fp32        ONNX Runtime through `serve` (the deployed path)
  ort_int8        the same on the int8 dynamically quantized file
  ort_cuda        CUDAExecutionProvider, when onnxruntime has it (else skipped with a note)
  serve_tag_file  `python -m serve.tag` itself, text file in, JSONL out (default layout:
                  one process, one thread per CPU), and with two single-thread workers;
                  serve_tag_2_processes: two
                  single-thread processes, each tagging half the text
  serve_tag_big   with --big-chars N: serve.tag and serve.distributed (Ray) on one N-character
                  input, start-up included (serve.tag's default layout: over ~500k characters,
                  one single-thread worker process per CPU)
  --compare NAME=MODEL.onnx: the same paths for other models, rows `<path>[NAME]`, and a
                  Pareto view (test F1 against chars/s, fp32 and int8: pareto.md/png);
                  serve_tag_interleaved: serve.tag on the file for every model in turn,
                  --rounds times, so their ratio is measured under the same load (with
                  --big-chars also serve_tag_big_interleaved, --rounds / 3 rounds)
  --variant NAME=FLAGS: serve.tag with extra flags (--no-scores, --words FILE) on the same
                  model, interleaved with the plain command (serve_tag_variants): what an
                  option costs, measured under the same load
For each: end-to-end chars/s (text in, entity spans out), model-only chars/s, batch-1
latency p50/p99 for a 50-character sentence, peak RSS, entity F1. Also: the LSTM's achieved
GFLOP/s against a measured fp32 matmul peak, and ORT thread/process layouts.
Writes bench.json, bench.md and bench.png into --out.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

from data.files import DataError, check_output
from data.lexicon.words import WORD_LIST_CACHE
from pipeline.bench.paths import (LATENCY_RUNS, big_input, lexicon_width, load_texts,
                                  lstm_flops_per_char, matmul_peak_gflops, measure_command,
                                  measure_in_process, measure_two_processes,
                                  synthetic_name_list, synthetic_word_list, text_chars)
from pipeline.bench.report import machine_name, write_pareto, write_report


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/default"))
    parser.add_argument("--model", type=Path, help="fp32 .onnx (default models/<run>.onnx)")
    parser.add_argument("--data", type=Path, default=Path("data/msra/test.txt"),
                        help="tagged file: its text is tagged, its tags give F1")
    parser.add_argument("--out", type=Path, help="report folder (default bench/<run>)")
    parser.add_argument("--repeats", type=int, default=3, help="best of N timed passes")
    parser.add_argument("--paths", help="comma-separated subset of the paths to run")
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=MODEL.onnx",
                        help="also time another model through ort_fp32 (and int8 if beside it) "
                        "and serve.tag in the same run (rows `<path>[NAME]`; with --big-chars "
                        "also serve.tag on the big input), e.g. a student or a candidate default")
    parser.add_argument("--rounds", type=int, default=7,
                        help="with --compare: rounds of serve.tag on the file, the models in "
                        "alternation (row serve_tag_interleaved: ratios measured under the same "
                        "load; default 7)")
    parser.add_argument("--big-chars", type=int,
                        help="also time serve.tag and serve.distributed (Ray, 1x2 and 2x1) on "
                        "the data repeated to this many characters, start-up included "
                        "(e.g. 20000000)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                        help="serve.tag with these extra flags on the same model, interleaved "
                        "with the plain command (row serve_tag_variants), e.g. "
                        "no-scores=--no-scores or words='--words FILE'")
    parser.add_argument("--synthetic-words", type=int, metavar="N",
                        help="also time serve.tag with N added words (--words, row "
                        "serve_tag_variants): words-N, stretches of 2-4 characters of the "
                        "data's text that the model's lexicon lacks, typed at random, so "
                        "they match often (a worst case), as read again from the cache of "
                        "parsed lists and as read the first time (words-N-first-read); "
                        "names-N, made-up person names")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite bench.md and bench.png from an existing bench.json")
    return parser.parse_args(argv)


BIG_PATHS = ("serve_tag_big", "ray_1_actor_x_2_threads", "ray_2_actors_x_1_thread")


def base_plan(int8: Path, text_file: Path) -> dict:
    """Every path the benchmark knows on the main model, by name."""
    return {
        "keras_predict": {"kind": "keras", "path": "keras_predict"},
        "tf_function": {"kind": "keras", "path": "tf_function"},
        "ort_fp32_1thread": {"kind": "ort", "threads": 1},
        "ort_fp32": {"kind": "ort", "threads": 2},
        "ort_int8": {"kind": "ort", "threads": 2, "model": str(int8)},
        "ort_cuda": {"kind": "ort", "device": "cuda"},
        "serve_tag_file": {"kind": "file", "text_file": str(text_file)},
        "serve_tag_file_2_workers": {"kind": "file", "text_file": str(text_file), "workers": 2},
        "serve_tag_2_processes": {"kind": "pair"},
        # --big-chars: the Ray path against serve.tag on one large input
        "serve_tag_big": {"kind": "command", "command": "serve.tag"},
        "ray_1_actor_x_2_threads": {"kind": "command", "command": "ray", "actors": 1,
                                    "threads": 2},
        "ray_2_actors_x_1_thread": {"kind": "command", "command": "ray", "actors": 2,
                                    "threads": 1},
    }


def add_compared(args, plan: dict, chosen: list, text_file: Path) -> dict:
    """Rows for each --compare model; returns {name: model path}. ValueError if one is bad."""
    compared = {}
    for item in args.compare:
        name, _, other = item.partition("=")
        if not other or not Path(other).exists() or name in ("", "main"):
            raise ValueError(f"--compare {item}: expected NAME=MODEL.onnx of an existing file "
                             "(NAME not `main`: that is --model)")
        plan[f"ort_fp32[{name}]"] = {"kind": "ort", "threads": 2, "model": other}
        plan[f"serve_tag_file[{name}]"] = {"kind": "file", "text_file": str(text_file),
                                          "model": other}
        chosen += [f"ort_fp32[{name}]", f"serve_tag_file[{name}]"]
        other_int8 = Path(other).with_suffix(".int8.onnx")
        if other_int8.exists():
            plan[f"ort_int8[{name}]"] = {"kind": "ort", "threads": 2, "model": str(other_int8)}
            chosen.append(f"ort_int8[{name}]")
        if args.big_chars:  # the same on the big input, where start-up weighs little
            plan[f"serve_tag_big[{name}]"] = {"kind": "command", "command": "serve.tag",
                                              "model": other}
            chosen.append(f"serve_tag_big[{name}]")
        compared[name] = other
    return compared


def add_interleaved(args, plan: dict, chosen: list, models: dict, text_file: Path,
                    common: dict) -> None:
    """serve.tag on every model in turn, on the file (and the big input)."""
    plan["serve_tag_interleaved"] = {"kind": "interleaved", "text_file": str(text_file),
                                     "rounds": max(args.rounds, 1), "models": models}
    if args.compare and not args.paths:
        chosen.append("serve_tag_interleaved")
    if args.big_chars:  # the same on the big input: 2 rounds at least, minutes each
        plan["serve_tag_big_interleaved"] = {"kind": "interleaved",
                                             "text_file": common["big_file"],
                                             "text_chars": common["big_chars"],
                                             "rounds": max(args.rounds // 3, 2),
                                             "models": models}
        if args.compare and not args.paths:
            chosen.append("serve_tag_big_interleaved")


def add_variants(args, plan: dict, chosen: list, model: Path, text_file: Path,
                 common: dict) -> None:
    """serve.tag with each --variant's flags (and --synthetic-words) against the plain one."""
    if args.synthetic_words:
        count = args.synthetic_words
        words_file = synthetic_word_list(model, args.data, count, Path(common["out"]))
        names_file = synthetic_name_list(count, Path(common["out"]))
        # the lists as read again (from the cache of parsed lists), and as read the first time
        args.variant += [f"words-{count}=--words {words_file}",
                         f"words-{count}-first-read=--words {words_file}",
                         f"names-{count}=--words {names_file}"]
    if not args.variant:
        return
    variants = dict(item.partition("=")[::2] for item in args.variant)
    plan["serve_tag_variants"] = {
        "kind": "interleaved", "text_file": str(text_file), "rounds": max(args.rounds, 1),
        "models": {"main": str(model), **{name: str(model) for name in variants}},
        "flags": {name: flags.split() for name, flags in variants.items()},
        "env": {name: {WORD_LIST_CACHE: "off"} for name in variants
                if name.endswith("-first-read")}}
    if not args.paths:
        chosen.append("serve_tag_variants")
    if args.big_chars:  # the same on the big input, where start-up weighs little
        plan["serve_tag_big_variants"] = {
            **plan["serve_tag_variants"], "text_file": common["big_file"],
            "text_chars": common["big_chars"], "rounds": max(args.rounds // 3, 2)}
        if not args.paths:
            chosen.append("serve_tag_big_variants")


def measure(name: str, spec: dict, int8: Path) -> dict:
    """One path's figures, or why it was skipped."""
    import onnxruntime

    if name == "ort_int8" and not int8.exists():
        return {"skipped": f"no {int8} (export with --quantize int8)"}
    if name == "ort_cuda" and "CUDAExecutionProvider" not in \
            onnxruntime.get_available_providers():
        return {"skipped": "no CUDAExecutionProvider in this onnxruntime"}
    if spec["kind"] == "pair":
        return measure_two_processes(spec)
    if spec["kind"] != "command":
        return measure_in_process(spec)
    if "big_file" not in spec:
        return {"skipped": "needs --big-chars N"}
    if spec["command"] == "ray" and importlib.util.find_spec("ray") is None:
        return {"skipped": "ray is not installed (requirements-ray.txt)"}
    return measure_command(spec)


def hardware(run: Path, report: dict) -> dict:
    """The machine, its matmul peak, and what share of it the LSTM reaches in ort_fp32."""
    config = json.loads((run / "config.json").read_text())
    peak = matmul_peak_gflops()
    ort_model = report["paths"].get("ort_fp32", {}).get("model_chars_per_s", 0)
    flops_per_char = lstm_flops_per_char(config, lexicon_width(run, config))
    lstm_gflops = flops_per_char * ort_model / 1e9
    return {"machine": machine_name(), "cpus": os.cpu_count(), "matmul_peak_gflops": peak,
            "lstm_gflops": lstm_gflops, "lstm_share_of_peak": lstm_gflops / peak,
            "lstm_flops_per_char": flops_per_char}


def plan_paths(args, model: Path, texts: list[str], out: Path, common: dict
               ) -> tuple[dict, list, dict]:
    """(plan, chosen path names, report skeleton). ValueError for a bad --compare/--paths."""
    int8, text_file = model.with_suffix(".int8.onnx"), out / "input.txt"
    plan = base_plan(int8, text_file)
    if args.big_chars:
        big_file = big_input(texts, out, args.big_chars)
        # counted once here, not again for every command timed on it
        common["big_file"], common["big_chars"] = str(big_file), text_chars(big_file)
    chosen = args.paths.split(",") if args.paths else [
        name for name in plan if name not in BIG_PATHS or args.big_chars]
    compared = add_compared(args, plan, chosen, text_file)
    report = {"data": str(args.data), "run": str(args.run), "model": str(model), "paths": {},
              "compare_models": compared}
    add_interleaved(args, plan, chosen, {"main": str(model), **compared}, text_file, common)
    add_variants(args, plan, chosen, model, text_file, common)
    unknown = [name for name in chosen if name not in plan]
    if unknown:
        raise ValueError(f"--paths: unknown {', '.join(unknown)} (known: {', '.join(plan)})")
    return plan, chosen, report


def main(argv=None) -> int:
    args = parse_args(argv)
    model = args.model or Path("models") / f"{args.run.name}.onnx"
    out = args.out or Path("bench") / args.run.name
    try:
        check_output(out, create_parent=True, folder=True)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        write_report(out, json.loads((out / "bench.json").read_text()))
        print((out / "bench.md").read_text())
        return 0
    for needed in (args.run / "model.keras", model, args.data):
        if not needed.exists():
            print(f"error: {needed}: not found (train, export, or fetch data first)",
                  file=sys.stderr)
            return 2
    texts, _ = load_texts(args.data)
    (out / "input.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    common = {"run": str(args.run), "data": str(args.data), "repeats": args.repeats,
              "latency_runs": LATENCY_RUNS, "out": str(out), "model": str(model)}
    try:
        plan, chosen, report = plan_paths(args, model, texts, out, common)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name in chosen:
        result = measure(name, {**common, **plan[name]}, model.with_suffix(".int8.onnx"))
        report["paths"][name] = result
        shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
        print(f"{name}: {shown}", flush=True)
    report["hardware"] = hardware(args.run, report)
    write_report(out, report)
    write_pareto(out, report, model)
    print((out / "bench.md").read_text())
    return 0
