"""`python -m data.check FILE...`: read and validate tagged data files without training.

Accepts every form `pipeline.train` reads: column (`字 TAG`), inline (`字\\TAG ...`), and span
files from annotation tools (doccano, Label Studio, spaCy-style JSON lines, our own serve.tag
JSONL, brat standoff folders). Prints, per file, its form, the sentence and character counts, the tag set, entities
per type, overlapping spans resolved, and any invalid BMES transitions. Exit code 0 when every
file reads, 2 on the first bad file (message: FILE:LINE: what is wrong).
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter

from data.corpus.formats import FORMS, DataError, check_corpus_path, read_corpus
from data.corpus.tags import entity_spans

SHOWN_PROBLEMS = 5


def add_reading_options(parser: argparse.ArgumentParser, unreviewed: str = "refuse") -> None:
    """--format, --overlaps, --labels and --unreviewed: how span files are read (shared by
    the CLIs)."""
    from data.corpus.annotations import OVERLAPS, UNREVIEWED
    from data.corpus.brat import DISCONTINUOUS

    parser.add_argument("--format", choices=FORMS, help="the input form (default: detected "
                        "per file)")
    parser.add_argument("--overlaps", choices=OVERLAPS, default="refuse",
                        help="overlapping or nested spans: refuse them (default), or keep the "
                        "longest / the first of each overlapping group")
    parser.add_argument("--labels", type=lambda text: set(text.split(",")),
                        help="accepted span labels, comma-separated (default: any)")
    parser.add_argument("--discontinuous", choices=DISCONTINUOUS, default="refuse",
                        help="brat entities with text between their fragments: refuse them "
                        "(default), or read each as its outer extent")
    parser.add_argument("--unreviewed", choices=UNREVIEWED, default=unreviewed,
                        help="Label Studio tasks with a model's predictions but no annotation "
                        f"(pipeline.select's): refuse, read their predictions, or skip them "
                        f"(default {unreviewed})")


def summary(corpus) -> list[str]:
    tag_counts = Counter(tag for s in corpus.sentences for tag in s.tags)
    entity_counts = Counter(span[0] for s in corpus.sentences for span in entity_spans(s.tags))
    chars = sum(len(s.text) for s in corpus.sentences)
    bio = " (BIO, converted to BMES)" if corpus.converted_from_bio else ""
    lines = [f"{corpus.path}: {corpus.form} form, {len(corpus.sentences)} sentences, "
             f"{chars} characters{bio}",
             "  entities: " + (", ".join(f"{t} {n}" for t, n in sorted(entity_counts.items()))
                               or "none"),
             "  tags: " + ", ".join(f"{tag} {count}" for tag, count in sorted(tag_counts.items()))]
    if corpus.overlaps_resolved:
        lines.append(f"  overlapping spans dropped: {corpus.overlaps_resolved}")
    if corpus.trimmed:
        lines.append(f"  spans trimmed of surrounding whitespace: {corpus.trimmed}")
    if corpus.ignored:
        lines.append(f"  brat lines of other kinds ignored (relations, attributes, notes): "
                     f"{corpus.ignored}")
    if corpus.unreviewed:
        lines.append(f"  not yet reviewed (predictions only): {corpus.unreviewed} tasks")
    problems = corpus.transition_problems
    lines.append(f"  invalid transitions: {len(problems)}")
    lines += [f"    {corpus.path}:{line}: {reason}" for line, reason in problems[:SHOWN_PROBLEMS]]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="data files, any accepted form (a folder of "
                        "brat .txt/.ann pairs too)")
    parser.add_argument("--strict", action="store_true", help="invalid transitions, and spans that begin or end with whitespace, are errors")
    add_reading_options(parser, unreviewed="predictions")
    args = parser.parse_args(argv)
    for path in args.files:
        try:
            check_corpus_path(path)
            corpus = read_corpus(path, args.strict, args.format, args.overlaps, args.labels,
                                 args.unreviewed, args.discontinuous)
        except (DataError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print("\n".join(summary(corpus)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
