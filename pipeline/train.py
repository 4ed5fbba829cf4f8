"""`python -m pipeline.train`: train a Bi-LSTM-CRF tagger on BMES/BIO character data.

With no arguments, trains the default model on MSRA (fetched if needed) into runs/default.
Early stopping on dev entity F1 (Viterbi + seqeval); the best epoch's weights are kept.
Writes model.keras, config.json, vocab.json, tags.json, metrics.json and history.csv into --out.
After each epoch a checkpoint is written, so a killed run can continue with --resume.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from dataclasses import asdict, fields
from pathlib import Path

from data.corpus.annotations import OVERLAPS, UNREVIEWED
from data.corpus.brat import DISCONTINUOUS
from data.files import check_input_file, check_output
from data.corpus.formats import FORMS, DataError, check_corpus_path
from models.config import CHAR_PRIOR_CHOICES, CHAR_PRIORS_AUTO_CHARS, MSRA_TEST, TrainConfig
from training.loop import NOTES, StopRequest, train
from training.run_files import CHECKPOINT_DIR, CONFIG, MODEL

EXIT_DATA_ERROR, EXIT_INTERRUPTED = 2, 130


class GracefulInterrupt(StopRequest):
    """Ctrl-C stops training at the end of the current batch instead of inside TensorFlow.

    A KeyboardInterrupt raised while TensorFlow executes a step can hang the process for
    good (seen with TF 2.21); a flag checked between batches cannot. A second Ctrl-C quits
    at once. The last finished epoch's checkpoint is left as it was.
    """

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGINT, self.handle)
        except ValueError:  # not the main thread: leave signals alone
            self.previous = None
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def handle(self, signum, frame):
        if self.requested:
            os._exit(EXIT_INTERRUPTED)
        self.requested = True
        print("\nstopping after this batch (Ctrl-C again to quit at once)", file=sys.stderr,
              flush=True)


def notes_to_stderr() -> None:
    """The training library's notes on the data, one plain line each on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    NOTES.handlers[:] = [handler]
    NOTES.setLevel(logging.INFO)
    NOTES.propagate = False


# Fields with flags of their own (or set by pipeline.distill), not the generic --name NUMBER.
_OWN_FLAGS = ("train", "dev", "test", "out", "bigrams", "strict", "lexicon", "lexicon_features",
              "data_format", "overlaps", "unreviewed", "discontinuous", "teachers", "unlabeled",
              "soft_weight", "temperature", "teacher_view", "lexicon_char_priors", "init_from")


# What a generic flag does, where its name does not say it.
_HELP = {"init_frozen_epochs": "N: with --init-from, the first N epochs train only the layers "
         "that start fresh (0: every layer from the start) ",
         "lexicon_train_entities": "K: the training file's entities join the lexicon, each of "
         "K folds of training sentences seeing only the other folds' (0: off) ",
         "lexicon_frequency_classes": "N: per B/M/E/S set, one flag per frequency class of its "
         "words (0: off) ",
         "adversarial": "EPS: adversarial training; each step also fits the trained embeddings "
         "moved against the model by EPS per character, root-mean-square (0: off) "}


def parse_args(argv):
    return build_parser("python -m pipeline.train", __doc__).parse_args(argv)


def build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """Every training flag (pipeline.distill adds its own to the same parser)."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", help="training data (column or inline BMES/BIO)")
    parser.add_argument("--dev", help="dev data: early stopping and every choice")
    parser.add_argument("--test", help="test data: scored once at the end, never for choices")
    parser.add_argument("--out", help="run folder (default runs/default)")
    parser.add_argument("--config", type=Path, help="config.json to start from; flags override it")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last finished epoch")
    for field in fields(TrainConfig):
        if field.name in _OWN_FLAGS:
            continue
        kind = {"int": int, "float": float}[field.type]
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=kind, dest=field.name,
                            help=f"{_HELP.get(field.name, '')}(default {field.default})")
    parser.add_argument("--bigrams", dest="bigrams", action="store_true", default=None,
                        help="add char-bigram embeddings (default on)")
    parser.add_argument("--no-bigrams", dest="bigrams", action="store_false")
    parser.add_argument("--lexicon", metavar="FILE",
                        help="word list for lexicon features: one `word [frequency] [type]` a "
                        "line (default: jieba 0.42.1's dictionary, fetched from the package "
                        "registry); jieba+FILE adds your words to jieba's")
    parser.add_argument("--no-lexicon", dest="lexicon", action="store_const", const="none",
                        help="no lexicon features")
    parser.add_argument("--lexicon-features", choices=["flags", "words", "both", "none"],
                        help="B/M/E/S flags by type class and length, frequency-weighted word "
                        "embeddings, both, or none (= --no-lexicon) (default flags)")
    parser.add_argument("--lexicon-char-priors", choices=CHAR_PRIOR_CHOICES,
                        help="also each character's own lexicon statistics: how often it "
                        "begins, continues, ends or is a word of each type class; auto: on "
                        f"for training text under {CHAR_PRIORS_AUTO_CHARS:,} characters, where "
                        "it was measured to pay, and as the --init-from run chose (default "
                        "auto)")
    parser.add_argument("--format", dest="data_format", choices=FORMS,
                        help="form of the data files (default: detected per file)")
    parser.add_argument("--overlaps", choices=OVERLAPS,
                        help="overlapping spans in span files: refuse (default), keep-longest, "
                        "keep-first")
    parser.add_argument("--unreviewed", choices=UNREVIEWED,
                        help="Label Studio tasks holding only a model's predictions (from "
                        "pipeline.select): refuse (default), train on the predictions, or skip")
    parser.add_argument("--discontinuous", choices=DISCONTINUOUS,
                        help="brat entities with text between their fragments: refuse "
                        "(default), or read each as its outer extent")
    parser.add_argument("--init-from", dest="init_from", metavar="RUN",
                        help="start from this trained run: embedding rows by token (taking its "
                        "characters and bigrams into the vocabulary), the Bi-LSTM, and the "
                        "emissions and CRF if the tag sets are equal, wherever shapes match "
                        "(embedding widths must)")
    parser.add_argument("--strict", action="store_true", default=None,
                        help="refuse data with invalid BMES transitions")
    return parser


def build_config(args) -> TrainConfig:
    if args.resume and args.out and (Path(args.out) / CONFIG).exists():
        return TrainConfig.load(Path(args.out) / CONFIG)
    config = TrainConfig.load(args.config) if args.config else TrainConfig()
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    config = TrainConfig(**{**asdict(config), **overrides})
    if not args.train and not args.config:  # the default job: MSRA, with its test split
        from data.msra import prepare
        prepare()
        if args.test is None:
            config.test = MSRA_TEST
    return config


def not_a_run_folder(flag: str, path) -> str | None:
    """The message for a flag naming a folder that holds no finished run (no model.keras);
    None when it holds one. Checked before any data is read."""
    if (Path(path) / MODEL).exists():
        return None
    return f"{flag} {path}: not a finished run folder (no {MODEL})"


def main(argv=None) -> int:
    return run_command(parse_args(argv))


def check_paths(config: TrainConfig) -> None:
    """The data files and the run folder, before anything is read or trained (DataError)."""
    for path in (config.train, config.dev, config.test):
        if path:
            check_corpus_path(path)
    for path in config.unlabeled:
        check_input_file(path)
    check_output(config.out, create_parent=True, folder=True)


def run_command(args) -> int:
    """Build the config from the flags, train, and turn failures into messages and exit
    codes (2 bad input, 130 interrupted); shared by pipeline.distill."""
    try:
        config = build_config(args)
        if args.out:
            config.out = args.out
        problem = config.init_from and not_a_run_folder("--init-from", config.init_from)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_DATA_ERROR
        check_paths(config)
        if not args.resume and (Path(config.out) / CHECKPOINT_DIR).exists():
            print(f"error: {config.out} holds an unfinished run: pass --resume to continue it, "
                  "or choose another --out", file=sys.stderr)
            return EXIT_DATA_ERROR
        notes_to_stderr()
        with GracefulInterrupt() as stop:
            train(config, resume=args.resume, log=lambda line: print(line, flush=True),
                  stop=stop)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DATA_ERROR
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DATA_ERROR
    except KeyboardInterrupt:
        print(f"\ninterrupted: the best model so far is in {config.out}/{MODEL}; "
              f"continue with --resume --out {config.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
