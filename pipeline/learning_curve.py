"""`python -m pipeline.learning_curve --out DIR`: labelling by uncertainty against labelling at
random, as a curve of F1 over labelled characters.

Both curves start from the same --start sentences drawn from the training file; the rest is
the pool, its labels hidden from the selector. Each round trains a run on what is labelled
(pipeline.train, the same flags for every run), exports it, and adds --add texts: chosen by
`pipeline.select --strategy uncertainty` with that run, or at random (one curve per --seeds
value). A chosen text gets its gold tags from the pool, as an annotator would give them.
Dev and test F1 of every run go to DIR/curve.json and curve.md; curve.png plots dev F1 over
labelled characters (annotation costs by the character, not by the text); summary.json and
curve.md's last line: random labelling's last dev F1 (mean over seeds) and the characters
uncertainty labelling needed to reach it (linear between its rounds).
Finished runs are kept: a rerun continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from data.files import DataError, atomic_text, check_input_file, check_output, write_text_atomic
from data.corpus.formats import read_corpus, write_columns

MSRA = Path("data/msra")


def run_module(*args) -> None:
    result = subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(f"python -m {' '.join(map(str, args[:1]))} failed: "
                           f"{result.stderr.strip()[-800:]}")


def train_round(folder: Path, labelled: list, args) -> dict:
    """Train (unless done) and export a run on the labelled sentences; its metrics."""
    folder.mkdir(parents=True, exist_ok=True)
    run = folder / "run"
    if not (run / "metrics.json").exists():
        with atomic_text(folder / "train.txt") as handle:
            write_columns(labelled, handle)
        run_module("pipeline.train", "--train", folder / "train.txt", "--dev", args.dev,
                   "--test", args.test, "--out", run, "--seed", args.train_seed,
                   *args.train_flags.split())
    if not (folder / "model.onnx").exists():
        run_module("export.to_onnx", "--run", run, "--out", folder / "model.onnx")
    metrics = json.loads((run / "metrics.json").read_text())
    return {"sentences": len(labelled), "chars": sum(len(s.text) for s in labelled),
            "dev_f1": metrics["dev"]["micro"]["f1"], "test_f1": metrics["test"]["micro"]["f1"]}


def choose(model: Path, chosen: Path, pool_file: Path, labelled_file: Path, strategy: str,
           count: int, seed: int) -> list[str]:
    if not chosen.exists():
        run_module("pipeline.select", "--model", model, "--pool", pool_file,
                   "--n", count, "-o", chosen, "--format", "jsonl", "--strategy", strategy,
                   "--exclude", labelled_file, "--seed", seed, "--quiet")
    return [json.loads(line)["text"] for line in chosen.read_text(encoding="utf-8").splitlines()]


def curve(name: str, strategy: str, seed: int, start: list, pool: list, args) -> list[dict]:
    """One curve: rounds of train, select, label."""
    by_text = {}
    for sentence in pool:
        by_text.setdefault(sentence.text, sentence)
    pool_file = args.out / "pool.txt"
    labelled = list(start)
    points = []
    for round_index in range(args.rounds + 1):
        # round 0 is the same run for every curve: trained once
        folder = args.out / ("start" if round_index == 0 else f"{name}/round{round_index}")
        point = train_round(folder, labelled, args)
        points.append({"curve": name, "round": round_index, **point})
        print(f"{name} round {round_index}: {point}", file=sys.stderr, flush=True)
        if round_index == args.rounds:
            break
        selection = args.out / name / f"select{round_index}"
        selection.mkdir(parents=True, exist_ok=True)
        labelled_file = selection / "labelled.txt"
        write_text_atomic(labelled_file, "".join(s.text + "\n" for s in labelled))
        texts = choose(folder / "model.onnx", selection / "chosen.jsonl", pool_file,
                       labelled_file, strategy, args.add, seed)
        labelled += [by_text[text] for text in texts]
    return points


def characters_to_reach(curve_points: list[dict], dev_f1: float) -> float | None:
    """Labelled characters at which a curve first reaches dev_f1, linear between its points;
    None if it never does."""
    previous = None
    for point in curve_points:
        if point["dev_f1"] >= dev_f1:
            if previous is None:
                return float(point["chars"])
            share = (dev_f1 - previous["dev_f1"]) / (point["dev_f1"] - previous["dev_f1"])
            return previous["chars"] + share * (point["chars"] - previous["chars"])
        previous = point
    return None


def summary(points: list[dict]) -> dict:
    """Random labelling's last dev F1 (mean over seeds) and its characters, and the characters
    uncertainty labelling needed to reach that F1."""
    last_round = max(p["round"] for p in points)
    randoms = [p for p in points if p["curve"].startswith("random") and p["round"] == last_round]
    target = float(np.mean([p["dev_f1"] for p in randoms]))
    random_chars = float(np.mean([p["chars"] for p in randoms]))
    needed = characters_to_reach([p for p in points if p["curve"] == "uncertainty"], target)
    return {"random_dev_f1": target, "random_chars": random_chars,
            "random_dev_f1_spread": float(np.ptp([p["dev_f1"] for p in randoms])),
            "uncertainty_chars": needed,
            "share": None if needed is None else needed / random_chars}


def summary_line(result: dict) -> str:
    reached = "never reaches it" if result["uncertainty_chars"] is None else (
        f"reaches it with {result['uncertainty_chars']:,.0f} characters, "
        f"{result['share']:.0%} of random's")
    return (f"Random labelling's last round: dev F1 {result['random_dev_f1']:.4f} (mean over "
            f"seeds, spread {result['random_dev_f1_spread']:.4f}) with "
            f"{result['random_chars']:,.0f} labelled characters; uncertainty labelling "
            f"{reached}.")


def write_report(out: Path, points: list[dict]) -> None:
    rows = ["| curve | round | sentences | characters | dev F1 | test F1 |",
            "|---|---|---|---|---|---|"]
    rows += [f"| {p['curve']} | {p['round']} | {p['sentences']:,} | {p['chars']:,} | "
             f"{p['dev_f1']:.4f} | {p['test_f1']:.4f} |" for p in points]
    result = summary(points) if any(p["curve"].startswith("random") for p in points) else None
    if result is not None:
        rows += ["", summary_line(result)]
        write_text_atomic(out / "summary.json", json.dumps(result, indent=2) + "\n")
    (out / "curve.md").write_text("\n".join(rows) + "\n", encoding="utf-8")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(p["curve"] for p in points):
        mine = [p for p in points if p["curve"] == name]
        axes.plot([p["chars"] for p in mine], [p["dev_f1"] for p in mine], "o-", label=name)
    axes.set_xlabel("labelled characters")
    axes.set_ylabel("dev F1")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "curve.png", dpi=110)
    plt.close(figure)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m pipeline.learning_curve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, default=MSRA / "train.txt")
    parser.add_argument("--dev", type=Path, default=MSRA / "dev.txt")
    parser.add_argument("--test", type=Path, default=MSRA / "test.txt")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--start", type=int, default=1000, help="sentences labelled at first")
    parser.add_argument("--add", type=int, default=500, help="texts added each round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2],
                        help="one random curve per seed")
    parser.add_argument("--draw-seed", type=int, default=0,
                        help="which sentences start labelled")
    parser.add_argument("--train-seed", type=int, default=42)
    parser.add_argument("--train-flags", default="",
                        help="extra pipeline.train flags for every run, e.g. '--epochs 8'")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        for path in (args.train, args.dev, args.test):
            check_input_file(path)
        check_output(args.out, create_parent=True, folder=True)
        sentences = read_corpus(args.train).sentences
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(args.draw_seed).permutation(len(sentences))
    start = [sentences[i] for i in order[:args.start]]
    pool = [sentences[i] for i in order[args.start:]]
    write_text_atomic(args.out / "pool.txt", "".join(s.text + "\n" for s in pool))
    points = []
    try:
        points += curve("uncertainty", "uncertainty", 0, start, pool, args)
        for seed in args.seeds:
            points += curve(f"random-{seed}", "random", seed, start, pool, args)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    write_text_atomic(args.out / "curve.json", json.dumps(points, indent=2) + "\n")
    write_report(args.out, points)
    print((args.out / "curve.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
