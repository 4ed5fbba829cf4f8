"""Model inputs from lexicon matches, with fixed inner dimensions (so they export to ONNX).

For each character, the lexicon words that begin (B), continue (M), end at (E) or are (S) it:
  * `lexicon_flags` uint8 [chars, 4 * (classes + 4 + f)]: per set, one flag per type class of
    the words in it, one per length bucket (1-2, 3, 4, 5+ characters), and with f frequency
    classes one per class (the lexicon's words split into f equal shares by frequency);
  * `lexicon_word_ids` int32 [chars, 4 * k] and `lexicon_word_weights` float32 [chars, 4 * k]:
    per set, its k most frequent words and SoftLexicon's weights 4 z(w) / Z, with z(w) =
    log(1 + the lexicon's frequency) and Z the sum of z over every word kept at that
    character (so a character's four set vectors are weighted averages).
Word ids: 0 = no word, 1..classes = a word not in the model's word vocabulary (one shared row
per type class, so the table stays small and unseen words still carry their class), then the
vocabulary: lexicon words matched in the training text at least `min_count` times.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from data.lexicon.matcher import LexiconMatcher, LexiconMatches
from data.lexicon.words import Lexicon
from data.encoding.vocab import CharVocab, code_points

KINDS = ("none", "flags", "words", "both")
SETS = "BMES"
LENGTH_BUCKETS = 4  # 1-2, 3, 4, 5+ characters
FLAGS, WORD_IDS, WORD_WEIGHTS = "lexicon_flags", "lexicon_word_ids", "lexicon_word_weights"
CHAR_PRIOR_IDS = "lexicon_char_prior_ids"


def build_word_vocab(matcher: LexiconMatcher, train_texts: Sequence[str],
                     min_count: int) -> list[str]:
    """Lexicon words matched in the training text at least min_count times, most frequent
    first (ties by the word): the words that get an embedding row of their own."""
    counts = np.bincount(matcher.match(list(train_texts)).word_ids,
                         minlength=len(matcher.lexicon))
    kept = np.flatnonzero(counts >= min_count)
    words = matcher.lexicon.words
    return [words[i] for i in sorted(kept, key=lambda i: (-counts[i], words[i]))]


class LexiconFeatures:
    def __init__(self, lexicon: Lexicon, kind: str, word_vocab: list[str] | None = None,
                 top_k: int = 3, frequency_classes: int = 0,
                 char_prior_chars: str | None = None):
        if kind not in KINDS[1:]:
            raise ValueError(f"lexicon features {kind!r}: expected one of {', '.join(KINDS[1:])}")
        self.lexicon, self.kind, self.top_k = lexicon, kind, top_k
        self._matcher = None  # built when first used: features replaced at load never build one
        self.num_classes = len(lexicon.type_names)
        self.uses_flags = kind in ("flags", "both")
        self.uses_words = kind in ("words", "both")
        self.word_vocab = list(word_vocab or [])
        self.frequency_classes = frequency_classes if self.uses_flags else 0
        # char priors: the characters with a table row, in row order (char_prior_table's);
        # None: not used
        self.char_prior_chars = char_prior_chars
        if char_prior_chars is not None:
            self.char_prior_vocab = CharVocab(list(char_prior_chars))
        if self.frequency_classes:
            self.word_frequency_class = frequency_class_of(lexicon.frequencies,
                                                           self.frequency_classes)
        if self.uses_words:  # a flags model needs neither: its start-up skips them
            self.model_word_ids = self._model_word_ids()
            self.word_strength = np.log1p(lexicon.frequencies).astype(np.float32)

    def _model_word_ids(self) -> np.ndarray:
        """Lexicon word -> model word id: its own row if in the vocabulary, else its class's."""
        model_word_ids = self.lexicon.type_ids.astype(np.int32) + 1
        if self.word_vocab:
            index = {word: i for i, word in enumerate(self.lexicon.words)}
            # a training fold's lexicon lacks the other folds' entities (train_entities.py)
            rows = [(index[word], row) for row, word in enumerate(self.word_vocab)
                    if word in index]
            own, vocab_rows = np.array(rows, dtype=np.int64).reshape(-1, 2).T
            model_word_ids[own] = vocab_rows.astype(np.int32) + self.num_classes + 1
        return model_word_ids

    def with_lexicon(self, lexicon: Lexicon) -> "LexiconFeatures":
        """The same features (kind, word rows, priors) over another lexicon with the same
        type classes: a training fold's (data/lexicon/train_entities.py)."""
        if lexicon.type_names != self.lexicon.type_names:
            raise ValueError("a fold's lexicon must have the same type classes")
        return LexiconFeatures(lexicon, self.kind, self.word_vocab, self.top_k,
                               self.frequency_classes, self.char_prior_chars)

    @property
    def matcher(self) -> LexiconMatcher:
        if self._matcher is None:
            self._matcher = LexiconMatcher(self.lexicon)
        return self._matcher

    def with_added_words(self, matcher: LexiconMatcher) -> "LexiconFeatures":
        """The features over a lexicon that holds this one's words and more (a user's list
        added at load time, see add_words; `matcher` is its matcher): new words are read as
        if they had been in the lexicon, while the frequency classes keep this lexicon's cut
        points, which the model was trained on."""
        lexicon = matcher.lexicon
        features = self.with_lexicon(lexicon)
        features._matcher = matcher
        if self.frequency_classes:
            cuts = frequency_cuts(self.lexicon.frequencies, self.frequency_classes)
            features.word_frequency_class = np.searchsorted(
                cuts, lexicon.frequencies, side="right").astype(np.int64)
        return features

    @property
    def num_flags(self) -> int:
        return len(SETS) * self._flags_per_set if self.uses_flags else 0

    @property
    def _flags_per_set(self) -> int:
        return self.num_classes + LENGTH_BUCKETS + self.frequency_classes

    @property
    def num_words(self) -> int:
        """Rows of the word embedding table (0 when words are not used)."""
        return self.num_classes + 1 + len(self.word_vocab) if self.uses_words else 0

    def input_shapes(self) -> dict[str, tuple[int, str]]:
        """Name -> (per-character width, dtype) of each input these features add."""
        shapes = {}
        if self.uses_flags:
            shapes[FLAGS] = (self.num_flags, "uint8")
        if self.uses_words:
            shapes[WORD_IDS] = (len(SETS) * self.top_k, "int32")
            shapes[WORD_WEIGHTS] = (len(SETS) * self.top_k, "float32")
        if self.char_prior_chars is not None:
            shapes[CHAR_PRIOR_IDS] = (None, "int32")
        return shapes

    def encode_flat(self, flat_points: np.ndarray, text_lengths: np.ndarray) -> dict:
        """Per-character rows for the texts concatenated (flat_points: their code points)."""
        matches = self.matcher.match_points(flat_points, text_lengths)
        positions, sets, word_ids, lengths = set_members(matches)
        out = {}
        if self.uses_flags:
            out[FLAGS] = self._flags(flat_points.size, positions, sets, word_ids, lengths)
        if self.uses_words:
            out[WORD_IDS], out[WORD_WEIGHTS] = self._top_words(flat_points.size, positions,
                                                               sets, word_ids)
        if self.char_prior_chars is not None:
            out[CHAR_PRIOR_IDS] = self.char_prior_vocab.ids_of_points(flat_points)
        return out

    def _flags(self, size, positions, sets, word_ids, lengths) -> np.ndarray:
        width = self._flags_per_set
        flags = np.zeros(size * len(SETS) * width, dtype=np.uint8)
        # one flat index per flag: a 1-d scatter is faster than indexing three axes
        row_starts = (positions * len(SETS) + sets) * width
        flags[row_starts + self.lexicon.type_ids[word_ids]] = 1
        flags[row_starts + (self.num_classes - 2 + np.clip(lengths, 2, 5))] = 1
        if self.frequency_classes:
            flags[row_starts + (self.num_classes + LENGTH_BUCKETS +
                                self.word_frequency_class[word_ids])] = 1
        return flags.reshape(size, len(SETS) * width)

    def _top_words(self, size, positions, sets, word_ids):
        k = self.top_k
        ids = np.zeros((size, len(SETS), k), dtype=np.int32)
        weights = np.zeros((size, len(SETS), k), dtype=np.float32)
        strength = self.word_strength[word_ids]
        group = positions * len(SETS) + sets
        # strongest first within each (character, set); ties by lexicon id, so it is exact
        order = np.lexsort((word_ids, -strength, group))
        group, strength, word_ids = group[order], strength[order], word_ids[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        rank = np.arange(group.size) - np.repeat(starts, np.diff(np.r_[starts, group.size]))
        kept = rank < k
        rows, ranks = group[kept], rank[kept]
        ids.reshape(-1, k)[rows, ranks] = self.model_word_ids[word_ids[kept]]
        weights.reshape(-1, k)[rows, ranks] = strength[kept]
        total = weights.sum(axis=(1, 2), keepdims=True)
        weights = np.divide(len(SETS) * weights, total, out=np.zeros_like(weights),
                            where=total > 0)
        return ids.reshape(size, len(SETS) * k), weights.reshape(size, len(SETS) * k)


def char_prior_table(lexicon: Lexicon) -> tuple[str, np.ndarray]:
    """The characters of the lexicon's words (in code-point order) and their prior rows.

    Row r + 2 describes the r-th character (rows 0 and 1, padding and a character in no word,
    are zeros): for each type class and B/M/E/S position, how often the character stands
    there in words of that class, over (1 + its occurrences in all words); then
    log(1 + its occurrences) / log(1 + the most occurrences of any character). Words count
    once each, not by frequency: a rare name counts as much as a common word, which is what
    tells a given name's characters apart. Width: 4 x classes + 1.
    """
    sizes = np.fromiter(map(len, lexicon.words), dtype=np.int64, count=len(lexicon))
    points = code_points("".join(lexicon.words)).astype(np.int64)
    word_of_char = np.repeat(np.arange(len(lexicon)), sizes)
    offset = np.arange(points.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    size = sizes[word_of_char]
    position = np.where(size == 1, 3, np.where(offset == 0, 0, np.where(offset == size - 1, 2,
                                                                         1)))
    chars, rows = np.unique(points, return_inverse=True)
    classes = len(lexicon.type_names)
    column = lexicon.type_ids[word_of_char].astype(np.int64) * len(SETS) + position
    width = classes * len(SETS)
    counts = np.bincount(rows * width + column, minlength=chars.size * width)
    counts = counts.reshape(chars.size, width).astype(np.float64)
    holding = counts.sum(axis=1, keepdims=True)
    table = np.zeros((chars.size + 2, classes * len(SETS) + 1), np.float32)
    table[2:, :-1] = counts / (1.0 + holding)
    table[2:, -1] = (np.log1p(holding) / np.log1p(holding.max(initial=1.0)))[:, 0]
    return "".join(map(chr, chars)), table


def frequency_class_of(frequencies: np.ndarray, classes: int) -> np.ndarray:
    """Each word's frequency class, 0 (rarest) to classes - 1: cut points at the lexicon's own
    frequency quantiles, so the classes need no data beyond the lexicon and hold equal shares
    of its words as far as ties allow (equal frequencies share a class: jieba's 3 classes hold
    40k, 188k and 120k words). A lexicon without frequencies (all 1) puts every word in the
    top class."""
    if frequencies.size == 0:
        return np.zeros(0, np.int64)
    return np.searchsorted(frequency_cuts(frequencies, classes), frequencies,
                           side="right").astype(np.int64)


def frequency_cuts(frequencies: np.ndarray, classes: int) -> np.ndarray:
    return np.quantile(frequencies, np.arange(1, classes) / classes)


def set_members(matches: LexiconMatches) -> tuple[np.ndarray, ...]:
    """(character position, set index in BMES, lexicon word id, word length) for every
    membership of a character in a set."""
    single = matches.lengths == 1
    multi = ~single
    starts, lengths, ids = matches.starts[multi], matches.lengths[multi], matches.word_ids[multi]
    middle_counts = lengths - 2
    owner = np.repeat(np.arange(starts.size), middle_counts)
    step = np.arange(owner.size) - np.repeat(np.cumsum(middle_counts) - middle_counts,
                                             middle_counts) + 1
    positions = np.concatenate([starts, starts[owner] + step, starts + lengths - 1,
                                matches.starts[single]])
    sets = np.concatenate([np.zeros(starts.size, np.int64), np.ones(owner.size, np.int64),
                           np.full(starts.size, 2, np.int64), np.full(int(single.sum()), 3,
                                                                      np.int64)])
    word_ids = np.concatenate([ids, ids[owner], ids, matches.word_ids[single]])
    word_lengths = np.concatenate([lengths, lengths[owner], lengths, np.ones(int(single.sum()),
                                                                              np.int64)])
    return positions, sets, word_ids, word_lengths

