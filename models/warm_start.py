"""`--init-from RUN`: start a new run's character and bigram embeddings from a trained run's.

A student distilled from a teacher can start from the teacher's embedding tables, which hold
most of its parameters (on MSRA the bigram table alone is 4.5M of the default's 5.4M) and were
learnt with the teacher's larger network. Rows are matched by token (character or bigram),
so the two vocabularies need not be equal: a token the source lacks keeps its random start.
The tables must have the same width; the rest of the network starts as usual.
"""
from __future__ import annotations

import numpy as np


def shared_rows(target_tokens: list[str], source_tokens: list[str]
                ) -> tuple[np.ndarray, np.ndarray]:
    """(target row ids, source row ids) of every token both vocabularies hold."""
    source_index = {token: row for row, token in enumerate(source_tokens)}
    pairs = [(row, source_index[token]) for row, token in enumerate(target_tokens)
             if token in source_index]
    rows = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return rows[:, 0], rows[:, 1]


def copy_rows(target_layer, source_layer, target_tokens, source_tokens, name: str,
              source_path) -> tuple[int, int]:
    """Copy the shared tokens' rows; (rows copied, rows in the target). ValueError when the
    widths differ (the flag that would make them equal is named)."""
    target = target_layer.get_weights()[0]
    source = source_layer.get_weights()[0]
    if target.shape[1] != source.shape[1]:
        flag = "--embedding-dim" if name == "character" else "--bigram-dim"
        raise ValueError(f"--init-from {source_path}: its {name} embedding has "
                         f"{source.shape[1]} columns, this run's {target.shape[1]}; "
                         f"give {flag} {source.shape[1]}")
    target_rows, source_rows = shared_rows(target_tokens, source_tokens)
    target[target_rows] = source[source_rows]
    target_layer.set_weights([target])
    return len(target_rows), len(target)


def init_embeddings_from(model, encoder, source, log=print) -> None:
    """Set `model`'s character (and bigram) embedding rows from the loaded run `source`."""
    tables = [("character", model.char_embedding, source.model.char_embedding,
               encoder.chars.tokens, source.encoder.chars.tokens)]
    if model.uses_bigrams:
        if not source.model.uses_bigrams:
            raise ValueError(f"--init-from {source.path}: it has no bigram embedding; "
                             "give --no-bigrams or another run")
        tables.append(("bigram", model.bigram_embedding, source.model.bigram_embedding,
                       encoder.bigrams.tokens, source.encoder.bigrams.tokens))
    for name, target_layer, source_layer, target_tokens, source_tokens in tables:
        copied, total = copy_rows(target_layer, source_layer, target_tokens, source_tokens,
                                  name, source.path)
        log(f"init from {source.path}: {copied:,} of {total:,} {name} rows")
