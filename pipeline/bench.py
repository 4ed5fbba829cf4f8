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
import multiprocessing
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

from data.files import DataError, check_output

BATCH_SIZE = 64
LATENCY_RUNS = 300
LATENCY_TEXT = ("新华社北京十月一日电，中国科学院上海分院今天在上海举行成立大会，院长周光召出席。"
                * 2)[:50]


# -- helpers shared by every path -----------------------------------------------------------
def load_texts(data: Path):
    from data.formats import read_corpus

    sentences = read_corpus(data).sentences
    return [s.text for s in sentences], [s.tags for s in sentences]


def f1_of(gold, predicted) -> float:
    from data.metrics import entity_scores
    return entity_scores(gold, predicted)["micro"]["f1"]


def percentile_ms(samples, q) -> float:
    return float(np.percentile(np.array(samples) * 1000, q))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(function, repeats: int = 1):
    """(best seconds over repeats, last result): best-of damps noise from other processes."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def sorted_batches(lengths, batch_size=BATCH_SIZE):
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


# -- the Keras paths -------------------------------------------------------------------------
def keras_path(spec: dict) -> dict:
    from data.quiet import import_tensorflow_quietly
    import_tensorflow_quietly()
    from data.tags import entity_spans
    from data.viterbi import viterbi_decode
    from models.tagger import emissions_function
    from models.run_files import load_run

    run = load_run(spec["run"])
    texts, gold = load_texts(Path(spec["data"]))
    use_predict = spec["path"] == "keras_predict"
    compiled = emissions_function(run.model)
    transitions = run.model.crf.transitions.numpy()

    encode = run.encoder.encode_padded

    def emissions_of(inputs):
        if use_predict:
            return run.model.predict(inputs, verbose=0, batch_size=len(inputs["char_ids"]))
        return compiled(inputs).numpy()

    def tag_all(texts_in):
        lengths = np.array([len(t) for t in texts_in])
        results = [None] * len(texts_in)
        for batch in sorted_batches(lengths):
            inputs = encode([texts_in[i] for i in batch])
            tag_ids, _ = viterbi_decode(emissions_of(inputs), transitions, lengths[batch])
            for row, index in enumerate(batch):
                tags = run.tags.decode(tag_ids[row, :lengths[index]])
                results[index] = (tags, entity_spans(tags))
        return results

    tag_all(texts[:256])  # warm-up: tracing, first allocations
    lengths = np.array([len(t) for t in texts])
    encoded = [encode([texts[i] for i in batch]) for batch in sorted_batches(lengths)]
    model_seconds, _ = timed(lambda: [emissions_of(inputs) for inputs in encoded],
                             spec["repeats"])
    e2e_seconds, results = timed(lambda: tag_all(texts), spec["repeats"])
    latencies = []
    single = encode([LATENCY_TEXT])
    for _ in range(spec["latency_runs"]):
        started = time.perf_counter()
        tag_ids, _ = viterbi_decode(emissions_of(single), transitions, np.array([50]))
        entity_spans(run.tags.decode(tag_ids[0]))
        latencies.append(time.perf_counter() - started)
    return finish_measure(texts, gold, [r[0] for r in results], e2e_seconds, model_seconds,
                          latencies)


def finish_measure(texts, gold, predicted, e2e_seconds, model_seconds, latencies) -> dict:
    chars = sum(len(t) for t in texts)
    return {"chars": chars, "e2e_chars_per_s": chars / e2e_seconds,
            "model_chars_per_s": chars / model_seconds,
            "latency_p50_ms": percentile_ms(latencies, 50),
            "latency_p99_ms": percentile_ms(latencies, 99),
            "peak_rss_mb": peak_rss_mb(), "f1": f1_of(gold, predicted)}


# -- the ONNX Runtime paths (through serve) -------------------------------------------------
def ort_path(spec: dict) -> dict:
    from serve.tagger import Tagger

    tagger = Tagger.load(spec["model"], spec.get("device", "cpu"), spec.get("threads", 1))
    texts, gold = load_texts(Path(spec["data"]))

    def tag_all(texts_in):
        tagged = tagger.tag_batch(texts_in, BATCH_SIZE, scores=spec.get("scores", True))
        return tagged, tagger.entities(tagged)

    tag_all(texts[:256])
    lengths = np.array([len(t) for t in texts])
    batches = [[texts[i] for i in batch] for batch in sorted_batches(lengths)]
    model_seconds, _ = timed(lambda: [tagger.emissions(batch, BATCH_SIZE) for batch in batches],
                             spec["repeats"])
    e2e_seconds, (tagged, _) = timed(lambda: tag_all(texts), spec["repeats"])
    lexicon_seconds = lexicon_time(tagger, texts, lengths, spec["repeats"])
    latencies = []
    for _ in range(spec["latency_runs"]):
        started = time.perf_counter()
        tag_all([LATENCY_TEXT])
        latencies.append(time.perf_counter() - started)
    predicted = [names.tolist() for names in tagger.tag_names(tagged)]
    result = finish_measure(texts, gold, predicted, e2e_seconds, model_seconds, latencies)
    if lexicon_seconds is not None:
        result["lexicon_share"] = lexicon_seconds / e2e_seconds
    return result


def lexicon_time(tagger, texts, lengths, repeats) -> float | None:
    """Seconds the lexicon matcher and its features take over the texts, in the groups of
    length-sorted texts that Tagger.tag_flat encodes at once (None: no lexicon)."""
    from data.vocab import code_points
    from serve.tagger import DECODE_BATCHES

    features = tagger.encoder.lexicon
    if features is None:
        return None
    order = np.argsort(lengths, kind="stable")
    group = BATCH_SIZE * DECODE_BATCHES
    groups = [[texts[i] for i in order[begin:begin + group]]
              for begin in range(0, len(order), group)]

    def encode_all():
        for texts_in in groups:
            features.encode_flat(code_points("".join(texts_in)).astype(np.int64),
                                 np.fromiter(map(len, texts_in), np.int64, len(texts_in)))

    seconds, _ = timed(encode_all, repeats)
    return seconds


def text_chars(path: Path) -> int:
    """Characters of a one-text-a-line file (the bench writes them, "\n"-ended), line ends
    not counted; streamed, so the 20M-character input is not read into memory whole."""
    with open(path, encoding="utf-8", newline="\n") as lines:
        return sum(len(line.rstrip("\n")) for line in lines)


def ort_file_path(spec: dict) -> dict:
    """serve.tag's own CLI work, text file in and JSONL out, with its default layout."""
    from serve import tag

    out = Path(spec["out"]) / "bench_output.jsonl"
    argv = [spec["text_file"], "--model", spec["model"], "-o", str(out), "--quiet"]
    argv += ["--workers", str(spec["workers"])] if spec.get("workers") else []
    tag.main(argv)  # warm-up (also page cache)
    seconds, _ = timed(lambda: tag.main(argv), spec["repeats"])
    chars = text_chars(Path(spec["text_file"]))
    return {"chars": chars, "e2e_chars_per_s": chars / seconds, "peak_rss_mb": peak_rss_mb()}


def interleaved_file_path(spec: dict) -> dict:
    """serve.tag on the same file for every model in turn, round after round, in one process.

    A ratio between two models timed minutes apart moves with whatever else the machine does
    (81-102% for the same pair in three runs); timed in alternation, both see the same load.
    Each round starts with a different model, so none always runs first.
    """
    from serve import tag

    out = Path(spec["out"]) / "bench_output.jsonl"
    models = spec["models"]  # name -> .onnx, "main" first

    flags = spec.get("flags", {})  # name -> extra serve.tag flags (same model, other options)

    def argv(name: str) -> list[str]:
        return [spec["text_file"], "--model", models[name], "-o", str(out), "--quiet",
                *flags.get(name, [])]

    for name in models:
        tag.main(argv(name))  # warm-up (also page cache)
    names = list(models)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(spec["rounds"]):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            tag.main(argv(name))
            seconds[name].append(time.perf_counter() - started)
    # the big input's count was taken once when it was written
    chars = spec.get("text_chars") or text_chars(Path(spec["text_file"]))
    main_seconds = np.array(seconds["main"])
    # chars/s of main against each other model, round by round: other's time / main's time
    ratios = {name: (np.array(seconds[name]) / main_seconds).tolist()
              for name in names if name != "main"}
    return {"chars": chars, "rounds": spec["rounds"], "seconds": seconds, "ratios": ratios,
            "e2e_chars_per_s": chars / float(np.median(main_seconds))}


def worker(spec: dict, queue) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        function = {"keras": keras_path, "ort": ort_path, "file": ort_file_path,
                    "interleaved": interleaved_file_path}[spec["kind"]]
        queue.put(function(spec))
    except Exception as error:  # reported in the table, the other paths still run
        queue.put({"error": f"{type(error).__name__}: {error}"})


def measure_in_process(spec: dict) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=worker, args=(spec, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def measure_two_processes(spec: dict) -> dict:
    """Two single-threaded processes, each tagging half of the text, started together."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    texts, _ = load_texts(Path(spec["data"]))
    halves = []
    for part in range(2):
        half = Path(spec["out"]) / f"half{part}.txt"
        half.write_text("\n".join(texts[part::2]) + "\n", encoding="utf-8")
        halves.append(half)
    processes = [context.Process(target=worker, args=(
        {**spec, "kind": "file", "text_file": str(half), "repeats": spec["repeats"],
         "out": str(Path(spec["out"]) / f"p{part}")}, queue)) for part, half in enumerate(halves)]
    for part in range(2):
        (Path(spec["out"]) / f"p{part}").mkdir(exist_ok=True)
    for process in processes:
        process.start()
    results = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    if any("error" in r for r in results):
        return {"error": "; ".join(r["error"] for r in results if "error" in r)}
    chars = sum(r["chars"] for r in results)
    # Both ran at once; the slower one bounds the pair.
    seconds = max(r["chars"] / r["e2e_chars_per_s"] for r in results)
    return {"chars": chars, "e2e_chars_per_s": chars / seconds}


def synthetic_word_list(model: Path, data: Path, count: int, out: Path) -> Path:
    """`count` distinct words for --words: stretches of 2-4 characters of the data's text
    that the model's lexicon does not hold, each typed PER, LOC or ORG at random (seed 0)."""
    from serve.tagger import Tagger

    texts, _ = load_texts(data)
    known = set(Tagger.load(model, "cpu", 1).encoder.lexicon.lexicon.words)
    rng = np.random.default_rng(0)
    joined = "".join(texts)
    words: dict[str, str] = {}
    while len(words) < count:
        starts = rng.integers(0, len(joined) - 4, count)
        sizes = rng.integers(2, 5, count)
        for start, size in zip(starts.tolist(), sizes.tolist()):
            word = joined[start:start + size]
            if word not in known and not any(c.isspace() for c in word):
                words.setdefault(word, ("PER", "LOC", "ORG")[len(words) % 3])
    path = out / f"words-{count}.txt"
    path.write_text("".join(f"{word} 1 {kind}\n" for word, kind in
                            list(words.items())[:count]), encoding="utf-8")
    return path


def big_input(texts: list[str], out: Path, chars: int) -> Path:
    """The data's text repeated to at least `chars` characters, one text a line."""
    path = out / f"big-{chars}.txt"
    block = "\n".join(texts) + "\n"
    block_chars = sum(map(len, texts))
    if not path.exists() or path.stat().st_size < chars:
        repeats = -(-chars // max(block_chars, 1))
        with open(path, "w", encoding="utf-8") as handle:
            for _ in range(repeats):
                handle.write(block)
    return path


def measure_command(spec: dict) -> dict:
    """A whole command on the big input, as a user runs it: process start-up, model loading
    (and Ray start-up) included; one timed run (tens of seconds each)."""
    import shutil
    import subprocess

    source, chars = Path(spec["big_file"]), spec["big_chars"]
    target = Path(spec["out"]) / "big-output"
    shutil.rmtree(target, ignore_errors=True)
    if spec["command"] == "serve.tag":
        command = ["serve.tag", str(source), "--model", spec["model"], "-o",
                   str(target) + ".jsonl", "--quiet"]
    else:
        command = ["serve.distributed", str(source), "--model", spec["model"], "--out",
                   str(target), "--quiet", "--actors", str(spec["actors"]),
                   "--threads-per-actor", str(spec["threads"])]
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        return {"error": result.stderr.strip()[-300:]}
    return {"chars": chars, "e2e_chars_per_s": chars / seconds, "seconds": round(seconds, 1)}


# -- hardware bound --------------------------------------------------------------------------
def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    a @ b
    seconds, _ = timed(lambda: a @ b, repeats)
    return 2 * size ** 3 / seconds / 1e9


def lexicon_width(run: Path, config: dict) -> int:
    """Inputs the lexicon features add per character (they widen the first LSTM's input)."""
    from models.run_files import load_vocabularies

    features = load_vocabularies(run)[0].lexicon
    if features is None:
        return 0
    return features.num_flags + (4 * config["word_dim"] if features.uses_words else 0)


def lstm_flops_per_char(config: dict, lexicon_inputs: int = 0) -> float:
    """Multiply-adds of the recurrent layers and the emission layer, x2 for FLOPs."""
    hidden = config["hidden_size"]
    width = config["embedding_dim"] + (config["bigram_dim"] if config.get("bigrams") else 0)
    width += lexicon_inputs
    flops = 0
    for _ in range(config["layers"]):
        flops += 2 * 2 * 4 * hidden * (width + hidden)  # 2 directions, 4 gates
        width = 2 * hidden
    return flops


# -- report ----------------------------------------------------------------------------------
def _cell(result: dict, key: str, form: str) -> str:
    return form.format(result[key]) if key in result else "—"


def write_report(out: Path, report: dict) -> None:
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = ["| path | end-to-end chars/s | model-only chars/s | p50 ms (50 chars) | p99 ms | "
            "peak RSS MB | test F1 | vs keras_predict |", "|---|---|---|---|---|---|---|---|"]
    base = report["paths"].get("keras_predict", {}).get("e2e_chars_per_s")
    for name, result in report["paths"].items():
        if "error" in result or "skipped" in result:
            rows.append(f"| {name} | {result.get('error') or result.get('skipped')} |||||||")
            continue
        ratio = f"{result['e2e_chars_per_s'] / base:.1f}x" if base else ""
        cells = [f"{result['e2e_chars_per_s']:,.0f}",
                 _cell(result, "model_chars_per_s", "{:,.0f}"),
                 _cell(result, "latency_p50_ms", "{:.2f}"), _cell(result, "latency_p99_ms", "{:.2f}"),
                 _cell(result, "peak_rss_mb", "{:.0f}"), _cell(result, "f1", "{:.4f}"), ratio]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    hw = report["hardware"]
    machine = f"Machine: {hw['machine']}, {hw['cpus']} CPUs. fp32 matmul peak " \
        f"{hw['matmul_peak_gflops']:.1f} GFLOP/s"
    if hw["lstm_gflops"] > 0:  # only when ort_fp32 ran
        machine += f"; the LSTM at model-only ORT fp32 speed achieves {hw['lstm_gflops']:.1f} " \
            f"GFLOP/s ({hw['lstm_share_of_peak']:.0%} of peak)"
    rows += ["", machine + "."]
    shares = {name: r["lexicon_share"] for name, r in report["paths"].items()
              if "lexicon_share" in r}
    if shares:
        rows.append("Lexicon matcher and features, share of end-to-end time: " + ", ".join(
            f"{name} {share:.1%}" for name, share in shares.items()) + ".")
    big = report["paths"].get("serve_tag_big", {})
    for name in ("ray_1_actor_x_2_threads", "ray_2_actors_x_1_thread"):
        ray_result = report["paths"].get(name, {})
        if "e2e_chars_per_s" in big and "e2e_chars_per_s" in ray_result:
            rows.append(f"{name} / serve_tag_big on {big['chars']:,} characters: "
                        f"{ray_result['e2e_chars_per_s'] / big['e2e_chars_per_s']:.1%} "
                        f"({ray_result['seconds']} s against {big['seconds']} s, start-up "
                        "included).")
    for name, other in report.get("compare_models", {}).items():
        for path in ("serve_tag_file", "serve_tag_big"):
            ours = report["paths"].get(path, {})
            theirs = report["paths"].get(f"{path}[{name}]", {})
            if "e2e_chars_per_s" in ours and "e2e_chars_per_s" in theirs:
                rows.append(f"{path} / {path}[{name}]: "
                            f"{ours['e2e_chars_per_s'] / theirs['e2e_chars_per_s']:.1%} on "
                            f"{ours['chars']:,} characters ({name}: {other}).")
    for path in ("serve_tag_interleaved", "serve_tag_big_interleaved", "serve_tag_variants",
                 "serve_tag_big_variants"):
        interleaved = report["paths"].get(path, {})
        for name, ratios in interleaved.get("ratios", {}).items():
            rows.append(f"{path}, main / {name}: median {np.median(ratios):.1%} (rounds "
                        f"{min(ratios):.1%} to {max(ratios):.1%}) over {interleaved['rounds']} "
                        f"alternating rounds on {interleaved['chars']:,} characters, start-up "
                        "included.")
    (out / "bench.md").write_text("\n".join(rows) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        names = [n for n, r in report["paths"].items() if "e2e_chars_per_s" in r]
        values = [report["paths"][n]["e2e_chars_per_s"] for n in names]
        figure, axis = plt.subplots(figsize=(8, 0.5 * len(names) + 1.5))
        axis.barh(names, values, color="#4a7ab5")
        axis.set_xlabel("characters per second, end to end (higher is better)")
        axis.set_title(f"NER tagging throughput, {hw['machine']}")
        for y, value in enumerate(values):
            axis.text(value, y, f" {value:,.0f}", va="center", fontsize=8)
        figure.tight_layout()
        figure.savefig(out / "bench.png", dpi=100)
    except ImportError:
        pass


def pareto_points(report: dict, model: Path) -> list[dict]:
    """One point per model and precision the run measured end to end in-process."""
    files = {"": str(model), **{f"[{n}]": m for n, m in report.get("compare_models", {}).items()}}
    points = []
    for suffix, fp32_file in files.items():
        for precision in ("fp32", "int8"):
            result = report["paths"].get(f"ort_{precision}{suffix}", {})
            if "e2e_chars_per_s" not in result:
                continue
            path = Path(fp32_file) if precision == "fp32" else \
                Path(fp32_file).with_suffix(".int8.onnx")
            points.append({"model": (suffix.strip("[]") or "main") + f" {precision}",
                           "f1": result.get("f1"), "chars_per_s": result["e2e_chars_per_s"],
                           "p50_ms": result.get("latency_p50_ms"),
                           "mb": path.stat().st_size / 1e6 if path.exists() else None})
    front = [p for p in points if not any(
        o["f1"] >= p["f1"] and o["chars_per_s"] >= p["chars_per_s"] and o is not p and
        (o["f1"] > p["f1"] or o["chars_per_s"] > p["chars_per_s"]) for o in points)]
    for point in points:
        point["front"] = point in front
    return points


def write_pareto(out: Path, report: dict, model: Path) -> None:
    """pareto.md and pareto.png: test F1 against end-to-end chars/s, every model given
    (--model and each --compare), fp32 and int8."""
    points = pareto_points(report, model)
    if not points:
        return
    rows = ["| model | test F1 | end-to-end chars/s | p50 ms (50 chars) | file MB | Pareto front |",
            "|---|---|---|---|---|---|"]
    for p in sorted(points, key=lambda p: -p["chars_per_s"]):
        rows.append(f"| {p['model']} | {p['f1']:.4f} | {p['chars_per_s']:,.0f} | "
                    f"{p['p50_ms']:.2f} | {p['mb']:.1f} | {'yes' if p['front'] else ''} |")
    (out / "pareto.md").write_text("\n".join(rows) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for p in points:
        axis.scatter(p["chars_per_s"], p["f1"], color="#c0392b" if p["front"] else "#7f8c8d",
                     marker="o" if p["model"].endswith("fp32") else "s")
        axis.annotate(p["model"], (p["chars_per_s"], p["f1"]), fontsize=8,
                      xytext=(4, 4), textcoords="offset points")
    front = sorted((p for p in points if p["front"]), key=lambda p: p["chars_per_s"])
    axis.plot([p["chars_per_s"] for p in front], [p["f1"] for p in front], color="#c0392b",
              linewidth=1)
    axis.set_xlabel("characters per second, end to end (ONNX Runtime, 2 threads)")
    axis.set_ylabel("test entity F1")
    axis.set_title(f"F1 against speed (red: Pareto front; o fp32, s int8), {machine_name()}",
                   fontsize=9)
    figure.tight_layout()
    figure.savefig(out / "pareto.png", dpi=100)


def machine_name() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or platform.processor()} ({platform.machine()})"


def main(argv=None) -> int:
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
                        help="also time serve.tag with N added words (--words): stretches of "
                        "2-4 characters of the data's text that the model's lexicon lacks, "
                        "typed at random, so they match often (row serve_tag_variants)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite bench.md and bench.png from an existing bench.json")
    args = parser.parse_args(argv)
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
    int8 = model.with_suffix(".int8.onnx")
    texts, _ = load_texts(args.data)
    text_file = out / "input.txt"
    text_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    common = {"run": str(args.run), "data": str(args.data), "repeats": args.repeats,
              "latency_runs": LATENCY_RUNS, "out": str(out), "model": str(model)}
    import onnxruntime
    plan = {
        "keras_predict": {"kind": "keras", "path": "keras_predict"},
        "tf_function": {"kind": "keras", "path": "tf_function"},
        "ort_fp32_1thread": {"kind": "ort", "threads": 1},
        "ort_fp32": {"kind": "ort", "threads": 2},
        "ort_int8": {"kind": "ort", "threads": 2, "model": str(int8)},
        "ort_cuda": {"kind": "ort", "device": "cuda"},
        "serve_tag_file": {"kind": "file", "text_file": str(text_file)},
        "serve_tag_file_2_workers": {"kind": "file", "text_file": str(text_file), "workers": 2},
        "serve_tag_2_processes": {"kind": "pair"},
        # --big-chars: the Ray path against serve.tag on one large input (issue: >= 80%)
        "serve_tag_big": {"kind": "command", "command": "serve.tag"},
        "ray_1_actor_x_2_threads": {"kind": "command", "command": "ray", "actors": 1,
                                    "threads": 2},
        "ray_2_actors_x_1_thread": {"kind": "command", "command": "ray", "actors": 2,
                                    "threads": 1},
    }
    big = ("serve_tag_big", "ray_1_actor_x_2_threads", "ray_2_actors_x_1_thread")
    if args.big_chars:
        big_file = big_input(texts, out, args.big_chars)
        # counted once here, not again for every command timed on it
        common["big_file"] = str(big_file)
        common["big_chars"] = text_chars(big_file)
    chosen = args.paths.split(",") if args.paths else [
        name for name in plan if name not in big or args.big_chars]
    report = {"data": str(args.data), "run": str(args.run), "model": str(model), "paths": {},
              "compare_models": {}}
    for item in args.compare:
        name, _, other = item.partition("=")
        if not other or not Path(other).exists() or name in ("", "main"):
            print(f"error: --compare {item}: expected NAME=MODEL.onnx of an existing file "
                  "(NAME not `main`: that is --model)", file=sys.stderr)
            return 2
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
        report["compare_models"][name] = other
    models = {"main": str(model), **report["compare_models"]}
    plan["serve_tag_interleaved"] = {"kind": "interleaved", "text_file": str(text_file),
                                     "rounds": max(args.rounds, 1), "models": models}
    if args.compare and not args.paths:
        chosen.append("serve_tag_interleaved")
    if args.big_chars:  # the same on the big input: 2 rounds at least, minutes each
        plan["serve_tag_big_interleaved"] = {"kind": "interleaved", "text_file": str(big_file),
                                             "text_chars": common["big_chars"],
                                             "rounds": max(args.rounds // 3, 2),
                                             "models": models}
        if args.compare and not args.paths:
            chosen.append("serve_tag_big_interleaved")
    if args.synthetic_words:
        words_file = synthetic_word_list(model, args.data, args.synthetic_words, out)
        args.variant.append(f"words-{args.synthetic_words}=--words {words_file}")
    if args.variant:
        variants = dict(item.partition("=")[::2] for item in args.variant)
        plan["serve_tag_variants"] = {
            "kind": "interleaved", "text_file": str(text_file), "rounds": max(args.rounds, 1),
            "models": {"main": str(model), **{name: str(model) for name in variants}},
            "flags": {name: flags.split() for name, flags in variants.items()}}
        if not args.paths:
            chosen.append("serve_tag_variants")
        if args.big_chars:  # the same on the big input, where start-up weighs little
            plan["serve_tag_big_variants"] = {
                **plan["serve_tag_variants"], "text_file": str(big_file),
                "text_chars": common["big_chars"], "rounds": max(args.rounds // 3, 2)}
            if not args.paths:
                chosen.append("serve_tag_big_variants")
    unknown = [name for name in chosen if name not in plan]
    if unknown:
        print(f"error: --paths: unknown {', '.join(unknown)} (known: {', '.join(plan)})",
              file=sys.stderr)
        return 2
    for name in chosen:
        spec = {**common, **plan[name]}
        if name == "ort_int8" and not int8.exists():
            result = {"skipped": f"no {int8} (export with --quantize int8)"}
        elif name == "ort_cuda" and "CUDAExecutionProvider" not in \
                onnxruntime.get_available_providers():
            result = {"skipped": "no CUDAExecutionProvider in this onnxruntime"}
        elif spec["kind"] == "pair":
            result = measure_two_processes(spec)
        elif spec["kind"] == "command":
            if "big_file" not in spec:
                result = {"skipped": "needs --big-chars N"}
            elif spec["command"] == "ray" and importlib.util.find_spec("ray") is None:
                result = {"skipped": "ray is not installed (requirements-ray.txt)"}
            else:
                result = measure_command(spec)
        else:
            result = measure_in_process(spec)
        report["paths"][name] = result
        shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
        print(f"{name}: {shown}", flush=True)
    config = json.loads((args.run / "config.json").read_text())
    peak = matmul_peak_gflops()
    ort_model = report["paths"].get("ort_fp32", {}).get("model_chars_per_s", 0)
    flops_per_char = lstm_flops_per_char(config, lexicon_width(args.run, config))
    lstm_gflops = flops_per_char * ort_model / 1e9
    report["hardware"] = {"machine": machine_name(), "cpus": os.cpu_count(),
                          "matmul_peak_gflops": peak, "lstm_gflops": lstm_gflops,
                          "lstm_share_of_peak": lstm_gflops / peak,
                          "lstm_flops_per_char": flops_per_char}
    write_report(out, report)
    write_pareto(out, report, model)
    print((out / "bench.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
