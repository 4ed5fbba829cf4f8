"""`python -m serve.evaluate --model PATH.onnx --data F`: entity scores through the ONNX path.

The same seqeval report as `python -m pipeline.evaluate`, computed by the deployed tagger.
With `--compare OTHER.onnx`: both models' reports, then OTHER − MODEL in micro F1 with a 95%
interval from a paired bootstrap over the sentences (the same resamplings for both models),
so a gap on dev can be told from chance before it decides anything.
With `--seen-in TRAIN`: the scores also split by whether an entity's text and type occur
among TRAIN's entities (names the model was trained on) or not (new names).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from data.formats import DataError, read_corpus
from data.metrics import (corpus_entities, entity_scores, format_comparison, format_scores,
                          paired_bootstrap, seen_split_scores)
from serve.arguments import positive
from serve.providers import DEVICES, DeviceError
from serve.tagger import Tagger, default_model_path


def evaluate(tagger: Tagger, data: Path, seen: set | None = None) -> dict:
    sentences = read_corpus(data).sentences
    return scores_of(sentences, tagger.tag_bmeo([s.text for s in sentences]), seen)


def compare(tagger: Tagger, other: Tagger, data: Path, samples: int, seed: int,
            seen: set | None = None) -> dict:
    """Both models' scores and the paired bootstrap of other − tagger."""
    sentences = read_corpus(data).sentences
    texts, gold = [s.text for s in sentences], [s.tags for s in sentences]
    predicted, predicted_other = tagger.tag_bmeo(texts), other.tag_bmeo(texts)
    return {"scores": scores_of(sentences, predicted, seen),
            "compare_scores": scores_of(sentences, predicted_other, seen),
            "comparison": paired_bootstrap(gold, predicted, predicted_other, samples, seed)}


def scores_of(sentences, predicted: list[list[str]], seen: set | None) -> dict:
    """entity_scores, and with `seen` (type, text) pairs their seen/unseen split."""
    gold = [s.tags for s in sentences]
    scores = entity_scores(gold, predicted)
    if seen is not None:
        scores["seen_split"] = seen_split_scores(gold, predicted, [s.text for s in sentences],
                                                 seen)
    return scores


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="exported .onnx (default: newest models/*.onnx)")
    parser.add_argument("--data", type=Path, required=True, help="tagged data file")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--compare", type=Path, metavar="OTHER.onnx",
                        help="also score this model, and OTHER − MODEL with a paired bootstrap")
    parser.add_argument("--samples", type=positive, default=1000,
                        help="bootstrap resamplings for --compare (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--seen-in", type=Path, metavar="TRAIN",
                        help="also score the entities whose text and type occur among this "
                        "tagged file's entities (seen) apart from the others (unseen)")
    args = parser.parse_args(argv)
    model = args.model or default_model_path()
    if model is None:
        print("error: no model: pass --model PATH.onnx", file=sys.stderr)
        return 2
    try:
        seen = corpus_entities(read_corpus(args.seen_in).sentences) if args.seen_in else None
        tagger = Tagger.load(model, args.device)
        if args.compare:
            result = compare(tagger, Tagger.load(args.compare, args.device), args.data,
                             args.samples, args.seed, seen)
        else:
            result = evaluate(tagger, args.data, seen)
    except (DataError, DeviceError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.compare:
        print(f"{model}\n{format_scores(result['scores'])}\n\n{args.compare}\n"
              f"{format_scores(result['compare_scores'])}\n\n"
              f"{format_comparison(result['comparison'], model.name, args.compare.name)}")
    else:
        print(format_scores(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
