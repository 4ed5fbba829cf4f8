"""`python -m pipeline.tune`: Keras Tuner search, then prune to the cheapest model that is
accurate enough.

Every trial is a full training run (early stopping on dev entity F1, reported as `val_f1`),
exported to ONNX and timed through `serve` on a fixed dev sample, one thread (and timed again,
all trials one after another, before choosing, so that the timings compare). After the search, the configuration with the highest chars/s whose dev F1 is within --tolerance of the
best trial's is chosen and copied to <out>/chosen, a normal run folder for export.to_onnx.
Writes trials.csv, pareto.png and summary.md into --out. With no arguments: a default search
on MSRA. Rerun the same command to continue an interrupted search.

Distributed (Keras Tuner's chief/worker mode): start the chief and each worker with the same
command and KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT, KERASTUNER_TUNER_ID=chief on the
chief and tuner0, tuner1, ... on the workers; the chief hands out trials and writes the report.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from data.files import check_output
from data.quiet import import_tensorflow_quietly
from data.corpus.formats import DataError, read_corpus, write_columns
from models.config import MSRA_DEV, MSRA_TRAIN, TrainConfig

DEFAULT_OUT = Path("tuning/msra")
SAMPLE_CHARS = 20_000


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def lexicon_kinds(text: str) -> list[str]:
    kinds = text.split(",")
    unknown = sorted(set(kinds) - {"none", "flags", "words", "both"})
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown kind(s) {', '.join(unknown)}: "
                                         "choose from none, flags, words, both")
    return kinds


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m pipeline.tune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", help=f"training data (default {MSRA_TRAIN})")
    parser.add_argument("--dev", help=f"dev data: every choice (default {MSRA_DEV})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="search folder")
    parser.add_argument("--max-trials", type=int, default=12)
    parser.add_argument("--tuner", choices=["bayesian", "hyperband", "random"], default="bayesian")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (max)")
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--epoch-min-steps", type=int, default=TrainConfig.epoch_min_steps,
                        help="steps that make an epoch at least, as in pipeline.train "
                        f"(default {TrainConfig.epoch_min_steps}; 0: one pass an epoch)")
    parser.add_argument("--tolerance", type=float, default=0.005,
                        help="dev F1 a cheaper model may lose against the best (default 0.005)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-limit", type=int,
                        help="use only the first N training sentences (faster trials)")
    parser.add_argument("--layers", type=int_list, help="e.g. 1,2 (default 1,2,3)")
    parser.add_argument("--hidden-sizes", type=int_list, help="default 32,64,128,256")
    parser.add_argument("--embedding-dims", type=int_list, help="default 32,64,128,256")
    parser.add_argument("--batch-sizes", type=int_list, help="default 32,64,128")
    parser.add_argument("--bigrams", choices=["both", "on", "off"], default="both")
    parser.add_argument("--lexicon-features", type=lexicon_kinds,
                        help="lexicon feature kinds to try (default none,flags,words,both)")
    parser.add_argument("--lexicon", metavar="FILE",
                        help="word list for the lexicon features (default jieba's dictionary; "
                        "jieba+FILE: jieba's words and yours)")
    return parser.parse_args(argv)


def search_space(args):
    from tuning.search import SearchSpace

    space = SearchSpace()
    for flag, name in (("layers", "layers"), ("hidden_sizes", "hidden_size"),
                       ("embedding_dims", "embedding_dim"), ("batch_sizes", "batch_size")):
        if getattr(args, flag):
            setattr(space, name, getattr(args, flag))
    space.bigrams = {"both": [True, False], "on": [True], "off": [False]}[args.bigrams]
    if args.lexicon_features:
        space.lexicon_features = args.lexicon_features
    return space


def base_config(args) -> TrainConfig:
    if not args.train:
        from data.msra import prepare
        prepare()
    config = TrainConfig(train=args.train or MSRA_TRAIN, dev=args.dev or MSRA_DEV, test=None,
                         epochs=args.epochs, patience=args.patience, seed=args.seed,
                         epoch_min_steps=args.epoch_min_steps)
    if args.lexicon:
        config.lexicon = args.lexicon
    if args.train_limit:
        sentences = read_corpus(config.train).sentences[:args.train_limit]
        subset = args.out / f"train-first-{args.train_limit}.txt"
        args.out.mkdir(parents=True, exist_ok=True)
        with open(subset, "w", encoding="utf-8", newline="\n") as handle:
            write_columns(sentences, handle)
        config.train = str(subset)
    return config


def dev_sample(dev: str) -> list[str]:
    """The fixed text every trial is timed on: the first SAMPLE_CHARS characters of dev."""
    texts, total = [], 0
    for sentence in read_corpus(dev).sentences:
        texts.append(sentence.text)
        total += len(sentence.text)
        if total >= SAMPLE_CHARS:
            break
    return texts


def remeasure(tuner, rows: list[dict], texts: list[str]) -> None:
    """Time every trial's model again, one after another in this process: trials timed while
    other trials trained beside them (workers, other jobs) are not comparable."""
    from tuning.search import measure_throughput

    for row in rows:
        row["trial_chars_per_s"] = row.get("chars_per_s")
        row["chars_per_s"] = measure_throughput(tuner.runs_dir() / row["trial"] / "model.onnx",
                                                texts, repeats=5)


def reference_row(rows: list[dict], hyperparameters) -> dict | None:
    """The trial that trained the default configuration, when the search ran one."""
    from tuning.search import reference_values

    values = reference_values(TrainConfig(), hyperparameters)
    return next((row for row in rows if values is not None and
                 all(row.get(name) == value for name, value in values.items())), None)


def report(tuner, args) -> int:
    from tuning.report import write_pareto_png, write_summary, write_trials_csv
    from tuning.search import choose, completed_trials

    rows = completed_trials(tuner)
    if not rows:
        print("error: no trial completed", file=sys.stderr)
        return 1
    remeasure(tuner, rows, dev_sample(tuner.base.dev))
    best, chosen = choose(rows, args.tolerance)
    reference = reference_row(rows, tuner.oracle.hyperparameters)
    chosen_run = args.out / "chosen"
    shutil.rmtree(chosen_run, ignore_errors=True)
    shutil.copytree(tuner.runs_dir() / chosen["trial"], chosen_run)
    write_trials_csv(args.out / "trials.csv", rows)
    write_pareto_png(args.out / "pareto.png", rows, chosen, best, reference)
    write_summary(args.out / "summary.md", rows, chosen, best, args.tolerance, chosen_run,
                  reference)
    print((args.out / "summary.md").read_text(encoding="utf-8"))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        check_output(args.out, create_parent=True, folder=True)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import_tensorflow_quietly()
    from pipeline.train import notes_to_stderr
    from tuning.search import RunTuner, make_oracle

    notes_to_stderr()
    try:
        config = base_config(args)
        oracle = make_oracle(args.tuner, search_space(args), args.max_trials, args.seed,
                             base=TrainConfig())
        tuner = RunTuner(oracle, config, dev_sample(config.dev),
                         log=lambda line: print(line, flush=True),
                         directory=str(args.out), project_name="search", overwrite=False)
        tuner.search()
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished trials are kept; rerun the same command to continue",
              file=sys.stderr)
        return 130
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "chief")
    if "KERASTUNER_ORACLE_IP" in os.environ and tuner_id != "chief":
        return 0  # a worker: the chief writes the report
    return report(tuner, args)


if __name__ == "__main__":
    sys.exit(main())
