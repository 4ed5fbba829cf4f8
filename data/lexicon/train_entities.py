"""The training data's own entities as lexicon words (`--lexicon-train-entities K`).

Every entity string of the training file becomes a word of its (most frequent) type, added to
the lexicon as a user's word list is (merge_lexicons: its type replaces the dictionary's), so
the served model's lexicon knows the names its training data taught it.

Cross-fitted: trained on flags that always fire on its own training entities, a network would
learn that a typed word match is an entity, and rely on it for the names it never saw. So the
training sentences are cut into K consecutive folds (consecutive, so a document's repeats of
a name stay in one fold) and each fold is encoded with the entities of the other folds only:
a name found in one stretch of documents alone looks unseen there, as a new name will at
test time, while names the other folds know fire as they will when served. Dev and serving
use every training entity. Numpy only; never built from dev or test data.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from data.corpus.formats import Sentence
from data.lexicon.words import Lexicon, merge_lexicons
from data.corpus.tags import entity_spans

SOURCE = "train-entities"


def entity_lexicon(sentences: Sequence[Sentence], type_names: list[str]) -> Lexicon:
    """Each entity string of the sentences with its most frequent type (ties: the type first
    in type_names) and its count as frequency. type_names: every class the merged lexicons
    must share, whether or not these sentences use it (folds must agree on the flags)."""
    counts = Counter((sentence.text[span.start:span.end], span.type)
                     for sentence in sentences for span in entity_spans(sentence.tags))
    rank = {name: i for i, name in enumerate(type_names)}
    best: dict[str, tuple[int, str]] = {}
    for (word, word_type), count in counts.items():
        kept = best.get(word)
        if kept is None or (count, -rank[word_type]) > (kept[0], -rank[kept[1]]):
            best[word] = (count, word_type)
    words = sorted(best)
    return Lexicon(words, np.array([float(best[w][0]) for w in words], dtype=np.float64),
                   np.array([rank[best[w][1]] for w in words], dtype=np.int8),
                   list(type_names), SOURCE)


def entity_types(sentences: Sequence[Sentence], base: Lexicon) -> list[str]:
    """The merged lexicon's classes: the base's, then the data's new types in sorted order."""
    types = {span.type for sentence in sentences for span in entity_spans(sentence.tags)}
    return list(base.type_names) + sorted(types - set(base.type_names))


def check_folds(count: int, folds: int) -> None:
    """ValueError unless `count` training sentences can be cut into `folds` folds."""
    if not 2 <= folds <= count:
        raise ValueError(f"--lexicon-train-entities {folds}: the folds must number at least 2 "
                         f"and at most the {count} training sentences (0 turns it off)")


def fold_bounds(count: int, folds: int) -> list[tuple[int, int]]:
    """[start, end) of `folds` consecutive, near-equal folds of `count` sentences."""
    check_folds(count, folds)
    edges = [count * k // folds for k in range(folds + 1)]
    return list(zip(edges[:-1], edges[1:]))


def with_train_entities(base: Lexicon, sentences: Sequence[Sentence], folds: int
                        ) -> Lexicon:
    """The lexicon dev and serving use: the base plus every training entity (checked first:
    the folds fold_lexicons will cut must exist)."""
    check_folds(len(sentences), folds)
    return merge_lexicons([base, entity_lexicon(sentences, entity_types(sentences, base))])


def fold_lexicons(base: Lexicon, sentences: Sequence[Sentence], folds: int
                  ) -> list[tuple[int, int, Lexicon]]:
    """(start, end, lexicon) per fold: the base plus the entities of the other folds."""
    types = entity_types(sentences, base)
    result = []
    for start, end in fold_bounds(len(sentences), folds):
        others = list(sentences[:start]) + list(sentences[end:])
        result.append((start, end, merge_lexicons([base, entity_lexicon(others, types)])))
    return result
