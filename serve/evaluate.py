"""`python -m serve.evaluate --model PATH.onnx --data F`: entity scores through the ONNX path.

The same seqeval report as `python -m pipeline.evaluate`, computed by the deployed tagger.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from data.formats import DataError, read_corpus
from data.metrics import entity_scores, format_scores
from serve.providers import DEVICES, DeviceError
from serve.tagger import Tagger, default_model_path


def evaluate(tagger: Tagger, data: Path) -> dict:
    sentences = read_corpus(data).sentences
    predicted = tagger.tag_bmeo([s.text for s in sentences])
    return entity_scores([s.tags for s in sentences], predicted)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="exported .onnx (default: newest models/*.onnx)")
    parser.add_argument("--data", type=Path, required=True, help="tagged data file")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args(argv)
    model = args.model or default_model_path()
    if model is None:
        print("error: no model: pass --model PATH.onnx", file=sys.stderr)
        return 2
    try:
        scores = evaluate(Tagger.load(model, args.device), args.data)
    except (DataError, DeviceError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(scores, indent=2) if args.json else format_scores(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
