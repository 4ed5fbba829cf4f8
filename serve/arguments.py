"""Arguments shared by the serve commands, declared once so that every command spells and
checks them alike (argparse reports a bad value with exit 2)."""
from __future__ import annotations

import argparse
from pathlib import Path


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected a positive number")
    return value


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}: expected a probability from 0 to 1")
    return value


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path,
                        help="exported .onnx (default $NER_MODEL or the newest models/*.onnx)")


def add_word_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--words", type=Path, metavar="FILE",
                        help="`word [frequency] [type]` a line: words that join the model's "
                        "lexicon at load time (type: one of its lexicon classes)")
    parser.add_argument("--force-words", type=Path, metavar="FILE",
                        help="`word [frequency] TYPE` a line: every longest occurrence is "
                        "tagged as that entity type (constrained Viterbi)")


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scores", action=argparse.BooleanOptionalAction, default=True,
                        help="give each entity its probability `score` (default: on)")
    parser.add_argument("--min-score", type=probability, metavar="P",
                        help="leave out entities whose score is below P")


def add_errors_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--errors", choices=["strict", "replace"], default="strict",
                        help="invalid UTF-8: stop with FILE:LINE (default) or use U+FFFD")
