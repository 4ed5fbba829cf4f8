"""The inference paths `pipeline.bench` measures, each in a worker process of its own."""
from __future__ import annotations

import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

BATCH_SIZE = 64
LATENCY_RUNS = 300
LATENCY_TEXT = ("新华社北京十月一日电，中国科学院上海分院今天在上海举行成立大会，院长周光召出席。"
                * 2)[:50]


# -- helpers shared by every path -----------------------------------------------------------
def load_texts(data: Path):
    from data.corpus.formats import read_corpus

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
    from data.corpus.tags import entity_spans
    from data.decoding.viterbi import viterbi_decode
    from models.tagger import emissions_function
    from training.run_files import load_run

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
    from data.encoding.vocab import code_points
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
    environments = spec.get("env", {})  # name -> environment variables set for its runs

    def run(name: str) -> float:
        saved = {key: os.environ.get(key) for key in environments.get(name, {})}
        os.environ.update(environments.get(name, {}))
        started = time.perf_counter()
        tag.main([spec["text_file"], "--model", models[name], "-o", str(out), "--quiet",
                  *flags.get(name, [])])
        seconds = time.perf_counter() - started
        for key, value in saved.items():
            if value is None:
                del os.environ[key]
            else:
                os.environ[key] = value
        return seconds

    for name in models:
        run(name)  # warm-up (also page cache and the word-list cache)
    names = list(models)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(spec["rounds"]):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(run(name))
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


# common surnames and given-name characters: made-up names that read like real ones
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
            "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
GIVEN_CHARS = ("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国文辉志红玉晓海燕宇鹏飞俊峰"
               "波林东新春梅丹云玲雪琳颖慧凤倩婷斌浩宁凯健亮博帅鑫欣怡佳然瑞泽子涵梓轩雨萱思晨")


def synthetic_name_list(count: int, out: Path) -> Path:
    """`count` distinct made-up person names for --words (a common surname and one or two
    given-name characters, typed PER; seed 0): a list shaped like a real one, whose words
    mostly do not occur in the text."""
    rng = np.random.default_rng(0)
    names: dict[str, None] = {}
    while len(names) < count:
        surnames = rng.integers(0, len(SURNAMES), count)
        given = rng.integers(0, len(GIVEN_CHARS), (count, 2))
        sizes = rng.integers(1, 3, count)
        for surname, chars, size in zip(surnames.tolist(), given.tolist(), sizes.tolist()):
            names.setdefault(SURNAMES[surname] + "".join(GIVEN_CHARS[c] for c in chars[:size]))
    path = out / f"names-{count}.txt"
    path.write_text("".join(f"{name} PER\n" for name in list(names)[:count]), encoding="utf-8")
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
    from training.run_files import load_vocabularies

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
