"""`python -m pipeline.evaluate --run runs/NAME --data F`: seqeval report of a trained run (Keras)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data.files import check_input_file
from data.quiet import import_tensorflow_quietly
from data.corpus.formats import DataError, read_corpus
from data.metrics import format_scores


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.evaluate", description=__doc__)
    parser.add_argument("--run", type=Path, required=True, help="run folder")
    parser.add_argument("--data", type=Path, required=True, help="tagged data file")
    args = parser.parse_args(argv)
    try:
        check_input_file(args.data)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import_tensorflow_quietly()
    from training.tf_input import encode_corpus
    from training.predict import score_corpus
    from training.run_files import load_run

    try:
        run = load_run(args.run)
        corpus = encode_corpus(read_corpus(args.data).sentences, run.encoder, run.tags)
    except (DataError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_scores(score_corpus(run.model, corpus, run.tags)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
