"""`--init-from RUN`: start a new run from a trained run's network.

Every layer whose role and shape match starts from RUN: the character and bigram embedding
rows by token (the new run's vocabularies also take RUN's tokens, so characters and bigrams
its own data lacks keep what RUN learnt of them), word-embedding rows by word, the Bi-LSTM
layers, and the emissions and CRF when the tag sets are equal (fine-tuning a deployed model on
corrected data). Differing tag sets start fresh emissions and CRF. A layer whose shape differs
(another lexicon's flag count, another hidden size) starts as usual and is named in the log.
Embedding tables must have the same width: the flag that makes them equal is named.
"""
from __future__ import annotations

import numpy as np

RECURRENT_PREFIX = "bilstm_"


def shared_rows(target_tokens: list[str], source_tokens: list[str]
                ) -> tuple[np.ndarray, np.ndarray]:
    """(target row ids, source row ids) of every token both vocabularies hold."""
    source_index = {token: row for row, token in enumerate(source_tokens)}
    pairs = [(row, source_index[token]) for row, token in enumerate(target_tokens)
             if token in source_index]
    rows = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return rows[:, 0], rows[:, 1]


def with_source_tokens(own: list[str], source: list[str]) -> list[str]:
    """`own` tokens (without the two reserved ones), then the source's that `own` lacks."""
    kept = set(own)
    return list(own) + [token for token in source[2:] if token not in kept]


def copy_rows(target_layer, source_layer, target_tokens, source_tokens, name: str,
              source_path) -> tuple[int, int]:
    """Copy the shared tokens' rows; (rows copied, rows in the target). ValueError when the
    widths differ (the flag that would make them equal is named)."""
    target = target_layer.get_weights()[0]
    source = source_layer.get_weights()[0]
    if target.shape[1] != source.shape[1]:
        flag = {"character": "--embedding-dim", "bigram": "--bigram-dim"}.get(name, "--word-dim")
        raise ValueError(f"--init-from {source_path}: its {name} embedding has "
                         f"{source.shape[1]} columns, this run's {target.shape[1]}; "
                         f"give {flag} {source.shape[1]}")
    target_rows, source_rows = shared_rows(target_tokens, source_tokens)
    target[target_rows] = source[source_rows]
    target_layer.set_weights([target])
    return len(target_rows), len(target)


def embedding_tables(model, encoder, source) -> list[tuple]:
    """(name, target layer, source layer, target tokens, source tokens) of each table both
    networks have."""
    tables = [("character", model.char_embedding, source.model.char_embedding,
               encoder.chars.tokens, source.encoder.chars.tokens)]
    if model.uses_bigrams:
        if not source.model.uses_bigrams:
            raise ValueError(f"--init-from {source.path}: it has no bigram embedding; "
                             "give --no-bigrams or another run")
        tables.append(("bigram", model.bigram_embedding, source.model.bigram_embedding,
                       encoder.bigrams.tokens, source.encoder.bigrams.tokens))
    if model.uses_words and source.model.uses_words:
        tables.append(("word", model.word_embedding, source.model.word_embedding,
                       word_tokens(encoder), word_tokens(source.encoder)))
    return tables


def word_tokens(encoder) -> list[str]:
    """The word embedding's row names: one row per lexicon class (ids 1..), then a row per word
    of the vocabulary; row 0 is padding."""
    features = encoder.lexicon
    classes = [f"<class:{name}>" for name in features.lexicon.type_names]
    return ["<pad>"] + classes + list(features.word_vocab)


def init_embeddings_from(model, encoder, source, log=print) -> list[str]:
    """Set `model`'s embedding rows (characters, bigrams, words) from the loaded run `source`;
    the names of the layers set."""
    names = []
    for name, target_layer, source_layer, target_tokens, source_tokens in \
            embedding_tables(model, encoder, source):
        copied, total = copy_rows(target_layer, source_layer, target_tokens, source_tokens,
                                  name, source.path)
        log(f"init from {source.path}: {copied:,} of {total:,} {name} rows")
        names.append(target_layer.name)
    return names


def same_shapes(target_layer, source_layer) -> bool:
    target, source = target_layer.get_weights(), source_layer.get_weights()
    return len(target) == len(source) and all(t.shape == s.shape for t, s in zip(target, source))


def transfer_layers(model, tags, source) -> tuple[list[str], list[str]]:
    """Copy the Bi-LSTM layers, and the emissions and CRF when the tag sets are equal, where
    shapes match; (names copied, `name (why)` of each left to start fresh)."""
    copied, left = [], []
    pairs = [(layer, source_layer) for layer, source_layer in
             zip(model.recurrent, source.model.recurrent)]
    left += [f"{layer.name} (the source has {len(source.model.recurrent)} layers)"
             for layer in model.recurrent[len(pairs):]]
    if tags.tags == source.tags.tags:
        pairs += [(model.emission_dense, source.model.emission_dense),
                  (model.crf, source.model.crf)]
    else:
        left.append("emissions and crf (the tag sets differ)")
    for layer, source_layer in pairs:
        if same_shapes(layer, source_layer):
            layer.set_weights(source_layer.get_weights())
            copied.append(layer.name)
        else:
            left.append(f"{layer.name} (its shapes differ: another lexicon, hidden size or "
                        "input width)")
    return copied, left


def init_from_run(model, encoder, tags, source, log=print) -> list[str]:
    """Start `model` from the loaded run `source` wherever roles and shapes match (module doc),
    logging what was copied and what was left; the names of the layers that start from it."""
    tables = init_embeddings_from(model, encoder, source, log)
    copied, left = transfer_layers(model, tags, source)
    log(f"init from {source.path}: copied {', '.join(copied) or 'no other layer'}"
        + (f"; left {'; '.join(left)}" if left else ""))
    return tables + copied


def set_frozen(model, layer_names: list[str], frozen: bool, optimizer) -> None:
    """Freeze (or thaw) the named layers and compile with a new `optimizer`, so thawed layers
    do not meet Adam moments that never saw their gradients."""
    for name in layer_names:
        model.get_layer(name).trainable = not frozen
    model.compile(optimizer=optimizer)
