"""Users' word lists at tagging time, built once when a model is loaded.

`--words`: words join the model's own lexicon, so the network sees them as lexicon matches
of the given class (a word already there takes the user's type). `--force-words`: every
longest, non-overlapping occurrence of a word is decoded as that entity by constrained
Viterbi (its characters' other tags are ruled out; the path around it is decoded as usual,
so neighbouring tags stay valid BMES). Both lists: `word [frequency] [type]` a line.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data.encoding.inputs import InputEncoder
from data.files import DataError
from data.lexicon.matcher import LexiconMatcher, add_words
from data.lexicon.words import read_word_list
from data.corpus.tags import TagCodes
from data.encoding.vocab import code_points

RULED_OUT = np.float32(-1e30)  # an emission no path takes; sums stay finite in float32
# tag_ids codes besides a forced tag id: what the neighbours of an occurrence may not be, so
# the path stays valid BMES around it
FREE, BEFORE, AFTER, BOTH = -1, -2, -3, -4


def with_user_words(encoder: InputEncoder, path: str | Path) -> tuple[InputEncoder, int]:
    """The encoder reading the model's lexicon plus the words of `path`, and their count."""
    features = encoder.lexicon
    if features is None:
        raise DataError(path, None, "this model reads no lexicon, so added words cannot "
                                    "change what it sees: use --force-words")
    user = read_word_list(path, features.lexicon.type_names, "lexicon classes")
    grown = add_words(features.matcher, user)
    return InputEncoder(encoder.chars, encoder.bigrams, features.with_added_words(grown)), \
        len(user)


class ForcedWords:
    """Words each of whose occurrences must be tagged as one entity type."""

    def __init__(self, path: str | Path, tags: list[str]):
        types = TagCodes(tags).types
        lexicon = read_word_list(path, types, "entity types", type_required=True)
        self.count = len(lexicon)
        self.matcher = LexiconMatcher(lexicon)
        index = {tag: i for i, tag in enumerate(tags)}
        self.opens = np.array([tag[0] in "BM" for tag in tags])  # B-/M-: an entity goes on
        self.continues = np.array([tag[0] in "ME" for tag in tags])  # M-/E-: one went on
        self._check_tags(path, lexicon, index)
        # per lexicon type id: the tag ids of B, M, E, S (-1 for OTHER, which never occurs)
        self.prefix_tags = np.array([[index.get(f"{prefix}-{name}", -1) for prefix in "BMES"]
                                     for name in lexicon.type_names], dtype=np.int64)

    @staticmethod
    def _check_tags(path, lexicon, index: dict[str, int]) -> None:
        """Every word's tags (S- for one character; B-, E- and M- for three or more) must be
        tags of the model: DataError naming the word's line otherwise."""
        for word, type_id in zip(lexicon.words, lexicon.type_ids.tolist()):
            needed = "S" if len(word) == 1 else "BE" if len(word) == 2 else "BME"
            name = lexicon.type_names[type_id]
            missing = [f"{prefix}-{name}" for prefix in needed if f"{prefix}-{name}" not in index]
            if missing:
                line = next(number for number, text in enumerate(
                    Path(path).read_text(encoding="utf-8-sig").split("\n"), 1)
                    if text.split()[:1] == [word])
                raise DataError(path, line, f"{word!r} would need the tag {missing[0]}, which "
                                            "this model does not have")

    def tag_ids(self, flat_text: str, lengths: np.ndarray) -> np.ndarray:
        """Per character of the texts concatenated: the tag it is forced to (>= 0), or
        BEFORE (the character just before an occurrence: it may not open an entity), AFTER
        (just after one: it may not continue an entity), BOTH, or FREE."""
        forced = np.full(len(flat_text), FREE, dtype=np.int64)
        matches = self.matcher.match_points(code_points(flat_text).astype(np.int64), lengths)
        order = np.lexsort((-matches.lengths, matches.starts))  # leftmost, then longest
        kept, reached = [], 0
        for position, start, length in zip(order.tolist(), matches.starts[order].tolist(),
                                           matches.lengths[order].tolist()):
            if start >= reached:
                kept.append(position)
                reached = start + length
        kept = np.array(kept, dtype=np.int64)
        starts, sizes = matches.starts[kept], matches.lengths[kept]
        type_ids = self.matcher.lexicon.type_ids[matches.word_ids[kept]]
        text_starts = np.cumsum(lengths) - lengths
        before = starts - 1
        before = before[(before >= 0) & ~np.isin(starts, text_starts)]
        after = starts + sizes
        after = after[(after < len(flat_text)) & ~np.isin(after, text_starts)]
        forced[before] = BEFORE
        forced[after] = np.where(forced[after] == BEFORE, BOTH, AFTER)
        offsets = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        owner_sizes = np.repeat(sizes, sizes)
        prefix = np.where(owner_sizes == 1, 3, np.where(offsets == 0, 0,
                                                        np.where(offsets == owner_sizes - 1, 2, 1)))
        forced[np.repeat(starts, sizes) + offsets] = self.prefix_tags[np.repeat(type_ids, sizes),
                                                                      prefix]
        return forced

    def constrain(self, emissions: np.ndarray, forced: np.ndarray) -> np.ndarray:
        """emissions [batch, time, tags] with the tags each position may not take (by
        forced [batch, time], codes of tag_ids) ruled out."""
        tags = np.arange(emissions.shape[2])[None, None, :]
        code = forced[..., None]
        ruled_out = ((code >= 0) & (tags != code)) | \
            (((code == BEFORE) | (code == BOTH)) & self.opens[tags]) | \
            (((code == AFTER) | (code == BOTH)) & self.continues[tags])
        return np.where(ruled_out, RULED_OUT, emissions)
