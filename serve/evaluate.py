"""`python -m serve.evaluate --model PATH.onnx --data F`: entity scores through the ONNX path.

The same seqeval report as `python -m pipeline.evaluate`, computed by the deployed tagger.
With `--compare OTHER.onnx`: both models' reports, then OTHER − MODEL in micro F1 with a 95%
interval from a paired bootstrap over the sentences (the same resamplings for both models),
so a gap on dev can be told from chance before it decides anything.
With `--seen-in TRAIN`: the scores also split by whether an entity's text and type occur
among TRAIN's entities (names the model was trained on) or not (new names).
With `--calibration`: how far the entity scores can be trusted (expected calibration error,
average precision of ranking by score, beside the max-marginal heuristic; precision and
recall by --min-score threshold), and with `--plot PNG` the reliability diagram.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from data.files import check_input_file, check_output
from data.corpus.formats import DataError, read_corpus
from data.metrics import (corpus_entities, entity_scores, format_comparison, format_scores,
                          paired_bootstrap, seen_split_scores)
from serve.arguments import add_model_argument, add_word_list_arguments, positive
from serve.calibration import calibration_report, format_calibration, plot_reliability
from serve.providers import DEVICES, DeviceError
from serve.tagger import ModelError, Tagger, load_tagger, model_path


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
    add_model_argument(parser)
    parser.add_argument("--data", type=Path, required=True, help="tagged data file")
    add_word_list_arguments(parser)
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
    parser.add_argument("--calibration", action="store_true",
                        help="also report how well entity scores are calibrated")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="with --calibration: write the reliability diagram here")
    args = parser.parse_args(argv)
    try:
        check_input_file(args.data)
        if args.seen_in:
            check_input_file(args.seen_in)
        if args.plot:
            check_output(args.plot)
        seen = corpus_entities(read_corpus(args.seen_in).sentences) if args.seen_in else None
        model = model_path(args.model)
        tagger = load_tagger(model, args.device, None, args.words, args.force_words)
        if args.compare:
            result = compare(tagger, Tagger.load(args.compare, args.device, None, args.words,
                                                 args.force_words),
                             args.data, args.samples, args.seed, seen)
        else:
            result = evaluate(tagger, args.data, seen)
        if args.calibration:
            sentences = read_corpus(args.data).sentences
            result["calibration"] = calibration_report(tagger, [s.text for s in sentences],
                                                       [s.tags for s in sentences])
    except (DataError, DeviceError, ModelError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.plot and args.calibration:
        plot_reliability(result["calibration"], args.plot)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    scores = result.get("scores", result)
    if args.compare:
        print(f"{model}\n{format_scores(scores)}\n\n{args.compare}\n"
              f"{format_scores(result['compare_scores'])}\n\n"
              f"{format_comparison(result['comparison'], model.name, args.compare.name)}")
    else:
        print(format_scores(scores))
    if args.calibration:
        print(f"\n{format_calibration(result['calibration'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
