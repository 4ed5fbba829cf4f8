"""`python -m pipeline.word_lists --model M.onnx --train TRAIN --test TEST`: what a user's word
list does for new names, measured.

The test file's entity names that never occur as entities of that type in TRAIN ("new names")
are split into halves A and B by a hash of their text. Half A is handed to the tagger as a
typed word list, once joining the lexicon (`--words`) and once forced (`--force-words`).
Reported for each (and for the plain tagger): precision, recall and F1 of A's mentions, of
B's mentions (names it was not given) and of seen names. A's types go to the lexicon as the
same names (MSRA's PER, LOC, ORG are jieba's classes too); --type-map maps others, e.g.
person_name=PER. The word lists are written to --out for reuse.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from data.files import DataError, check_input_file, check_output, write_text_atomic
from data.corpus.formats import read_corpus
from data.metrics import corpus_entities, group_scores
from serve.arguments import add_model_argument
from serve.tagger import ModelError, load_tagger, model_path

GROUPS = ("A", "B", "seen")


def half_of(text: str) -> str:
    return "AB"[hashlib.blake2b(text.encode("utf-8"), digest_size=1).digest()[0] % 2]


def new_name_halves(train, test) -> tuple[set, set, set]:
    """(seen, A, B): (type, text) pairs of test entities seen in training, and the new ones
    split by a hash of the text."""
    seen_in_train = corpus_entities(train)
    test_names = corpus_entities(test)
    new = test_names - seen_in_train
    halves = {"A": set(), "B": set()}
    for name in new:
        halves[half_of(name[1])].add(name)
    return test_names & seen_in_train, halves["A"], halves["B"]


def word_list(names: set, type_map: dict[str, str]) -> str:
    return "".join(f"{text} 1 {type_map.get(kind, kind)}\n" for kind, text in sorted(names))


def measure(model: Path, test, seen: set, half_a: set, half_b: set, lists: dict) -> dict:
    texts, gold = [s.text for s in test], [s.tags for s in test]

    def group_of(name):
        return "A" if name in half_a else "B" if name in half_b else \
            "seen" if name in seen else "other"

    results = {}
    for setting, options in (("plain", {}), ("words", {"words": lists["words"]}),
                             ("force_words", {"force_words": lists["force_words"]})):
        tagger = load_tagger(model, **options)
        scores = group_scores(gold, tagger.tag_bmeo(texts), texts, group_of)
        results[setting] = {group: scores.get(group) for group in GROUPS}
    return results


def format_results(results: dict, sizes: dict) -> str:
    lines = [f"names: A {sizes['A']}, B {sizes['B']}, seen {sizes['seen']}",
             f"{'setting':<13}" + "".join(f"{g + ' P':>9}{g + ' R':>9}{g + ' F1':>9}"
                                          for g in GROUPS)]
    for setting, groups in results.items():
        lines.append(f"{setting:<13}" + "".join(
            f"{groups[g]['precision']:>9.4f}{groups[g]['recall']:>9.4f}{groups[g]['f1']:>9.4f}"
            for g in GROUPS))
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m pipeline.word_lists", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_argument(parser)
    parser.add_argument("--train", type=Path, required=True, help="the model's training file")
    parser.add_argument("--test", type=Path, required=True, help="tagged file to measure on")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for the word lists and results.json")
    parser.add_argument("--type-map", default="", metavar="TYPE=CLASS,...",
                        help="entity type -> lexicon class for --words (default: same name)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        type_map = dict(item.split("=", 1) for item in args.type_map.split(",") if item)
        check_input_file(args.train)
        check_input_file(args.test)
        check_output(args.out, create_parent=True, folder=True)
        model = model_path(args.model)
        train, test = read_corpus(args.train).sentences, read_corpus(args.test).sentences
        seen, half_a, half_b = new_name_halves(train, test)
        args.out.mkdir(parents=True, exist_ok=True)
        lists = {"words": args.out / "words-A.txt", "force_words": args.out / "force-A.txt"}
        write_text_atomic(lists["words"], word_list(half_a, type_map))
        write_text_atomic(lists["force_words"], word_list(half_a, {}))
        results = measure(model, test, seen, half_a, half_b, lists)
    except (DataError, ModelError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sizes = {"A": len(half_a), "B": len(half_b), "seen": len(seen)}
    write_text_atomic(args.out / "results.json", json.dumps(
        {"model": str(model), "test": str(args.test), "names": sizes, "results": results},
        indent=2) + "\n")
    print(format_results(results, sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
