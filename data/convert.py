"""`python -m data.convert IN OUT --to columns|jsonl|brat`: write any accepted data form as another.

IN may be any form `pipeline.train` reads (column, inline, doccano, Label Studio, spaCy-style,
our own JSONL, a brat folder); OUT is written in the column form (`字 TAG`, a blank line after
each sentence), our JSONL (`{"text", "entities": [{"type", "start", "end", "text"}]}`, what
serve.tag writes and what annotation tools import as pre-annotations), or brat standoff (OUT a
new folder, one `00001.txt`/`00001.ann` pair per sentence). Written to a temporary file (or
folder) and renamed, so a failed conversion leaves no OUT. Round trips are exact: columns ->
any form -> columns gives the same bytes (tested). A sentence holding a newline cannot be written as
columns: that is an error naming its line, not a silent change.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from data.corpus.annotations import entity_records
from data.check import add_reading_options
from data.corpus.brat import check_brat_output, write_brat
from data.files import check_output, write_text_atomic
from data.corpus.formats import DataError, check_corpus_path, read_corpus, write_columns


def render(corpus, target: str) -> str:
    out = io.StringIO()
    if target == "jsonl":
        for record in entity_records(corpus.sentences):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return out.getvalue()
    for sentence in corpus.sentences:
        if "\n" in sentence.text:
            raise DataError(sentence.source or corpus.path, sentence.line,
                            "this sentence holds a newline, which the column form cannot hold: "
                            "convert to jsonl instead")
        if not sentence.text:
            raise DataError(sentence.source or corpus.path, sentence.line,
                            "an empty sentence cannot be written in the column form")
    write_columns(corpus.sentences, out)
    return out.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help="data file, any accepted form")
    parser.add_argument("output", type=Path, help="file to write (a new folder for brat)")
    parser.add_argument("--to", choices=["columns", "jsonl", "brat"], required=True)
    add_reading_options(parser)
    args = parser.parse_args(argv)
    try:
        check_corpus_path(args.input)
        check_brat_output(args.output) if args.to == "brat" else check_output(args.output)
        corpus = read_corpus(args.input, False, args.format, args.overlaps, args.labels,
                             args.unreviewed, args.discontinuous)
        if args.to == "brat":
            write_brat(corpus.sentences, args.output)
        else:
            write_text_atomic(args.output, render(corpus, args.to))
    except (DataError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    note = "".join(f", {count} {what}" for count, what in (
        (corpus.overlaps_resolved, "overlapping spans dropped"),
        (corpus.trimmed, "spans trimmed of surrounding whitespace"),
        (corpus.ignored, "brat lines of other kinds ignored")) if count)
    print(f"{args.input} ({corpus.form}) -> {args.output} ({args.to}): "
          f"{len(corpus.sentences)} sentences{note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
