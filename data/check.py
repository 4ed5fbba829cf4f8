"""`python -m data.check FILE...`: read and validate tagged data files without training.

Prints, per file, the sentence and character counts, the tag set, and any invalid BMES
transitions. Exit code 0 when every file reads, 2 on the first bad file (message: file:line).
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter

from data.formats import DataError, read_corpus

SHOWN_PROBLEMS = 5


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="column (`字 TAG`) or inline (`字\\TAG ...`) files")
    parser.add_argument("--strict", action="store_true", help="invalid transitions are errors")
    args = parser.parse_args(argv)
    for path in args.files:
        try:
            corpus = read_corpus(path, strict=args.strict)
        except (DataError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        tag_counts = Counter(tag for s in corpus.sentences for tag in s.tags)
        chars = sum(len(s.text) for s in corpus.sentences)
        bio = " (BIO, converted to BMES)" if corpus.converted_from_bio else ""
        print(f"{path}: {len(corpus.sentences)} sentences, {chars} characters{bio}")
        print("  tags: " + ", ".join(f"{tag} {count}" for tag, count in sorted(tag_counts.items())))
        problems = corpus.transition_problems
        print(f"  invalid transitions: {len(problems)}")
        for line, reason in problems[:SHOWN_PROBLEMS]:
            print(f"    {path}:{line}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
