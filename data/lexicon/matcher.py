"""The matcher that finds a lexicon's words in text, with no per-character Python work, and
the growing of a served model's lexicon by a user's words at load time (numpy only).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.encoding.vocab import code_points
from data.lexicon.hashing import HashTable
from data.lexicon.words import SOURCE_SEPARATOR, UNTYPED, Lexicon, check_type_count

@dataclass
class LexiconMatches:
    """Every lexicon word found in a batch of texts: the word at flat[start:start+length]."""
    starts: np.ndarray  # int64 offsets into the texts concatenated
    lengths: np.ndarray  # int64
    word_ids: np.ndarray  # int64 index into the lexicon


_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier; overflow wraps (mod 2^64)


class LexiconMatcher:
    """Finds all lexicon words in texts with no per-character Python work.

    Per word length l, a window hash (polynomial, mod 2^64) is extended by one character for
    every position still alive and looked up in that length's hash table, which holds the
    words of length l and the length-l prefixes of longer words. Positions whose window is no
    prefix of a longer word drop out, so after the first few lengths few remain. A hit is then
    checked character by character against the word, and the build refuses hash collisions
    between words, so the result is exact (tested against enumerating every substring).
    Hash tables, not sorted arrays and binary search, which spent most of the time searching.
    A lexicon grown at load time (add_words) keeps the tables built for its first words and
    builds tables for the new ones only (`extended`): each word is in one set of tables.
    """

    def __init__(self, lexicon: Lexicon, parts: list["WordTables"] | None = None):
        self.lexicon = lexicon
        self.parts = parts if parts is not None else \
            [WordTables(lexicon.joined, len(lexicon), 0)] if len(lexicon) else []

    def extended(self, grown: Lexicon) -> LexiconMatcher:
        """The matcher of `grown`, whose words are this lexicon's followed by new ones (as
        add_words builds it): only the new words' tables are built."""
        count = len(self.lexicon)
        if len(grown) == count:
            return LexiconMatcher(grown, self.parts)
        new_words = grown.joined[len(self.lexicon.joined) + 1:] if count else grown.joined
        return LexiconMatcher(grown, self.parts + [WordTables(new_words, len(grown) - count,
                                                              count)])

    def find(self, words: Lexicon) -> np.ndarray:
        """Each of `words`' id in this lexicon, -1 where it is not one of them."""
        found = np.full(len(words), -1, dtype=np.int64)
        if not len(words):
            return found
        query = WordTables.layout(words.joined, len(words))
        for part in self.parts:
            ids = part.lookup_whole(*query)
            found = np.where(ids >= 0, ids, found)
        return found

    def match(self, texts: list[str]) -> LexiconMatches:
        """All matches in `texts` concatenated (offsets into "".join(texts))."""
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        return self.match_points(code_points("".join(texts)).astype(np.int64), lengths)

    def match_points(self, flat: np.ndarray, text_lengths: np.ndarray) -> LexiconMatches:
        ends = np.repeat(np.cumsum(text_lengths), text_lengths)  # each position's text end
        found = [part.match_points(flat, ends) for part in self.parts]
        if not found:
            empty = np.zeros(0, dtype=np.int64)
            return LexiconMatches(empty, empty, empty)
        if len(found) == 1:
            return found[0]
        return LexiconMatches(*(np.concatenate(arrays) for arrays in zip(
            *((m.starts, m.lengths, m.word_ids) for m in found))))


class WordTables:
    """The hash tables of some words (joined by newlines), whose ids start at `offset`."""

    def __init__(self, joined: str, count: int, offset: int):
        self.offset = offset
        self.points, self.word_lengths, self.word_starts = self.layout(joined, count)
        if self.word_lengths.min() < 1:
            raise ValueError("a lexicon word is empty")
        self.max_length = int(self.word_lengths.max())
        self.tables: list[HashTable | None] = [None]
        # `alive`: the words at least `length` long, in stored order, with their prefix
        # hashes, lengths and starts (compressed together: no scatter back into full arrays).
        # In code-point order (every lexicon built from a source) equal prefixes are
        # neighbours, so one comparison with the previous key drops repeats without a sort;
        # in any other order the table merges the repeats left. No sort here: this build is
        # part of every served model's start-up, and a sort per word length doubled it.
        alive = np.arange(count)
        prefixes = np.zeros(count, dtype=np.uint64)
        lengths, starts = self.word_lengths, self.word_starts
        for length in range(1, self.max_length + 1):
            if length > 1:
                longer = lengths >= length
                alive, prefixes = alive[longer], prefixes[longer]
                lengths, starts = lengths[longer], starts[longer]
            prefixes = _extend(prefixes, self.points[starts + (length - 1)])
            # value: the word's id where the prefix is the whole word, else -1
            is_word = lengths == length
            values = np.where(is_word, alive, -1)
            heads = np.flatnonzero(_first_of_runs(prefixes))  # never empty: the longest word
            head_values = np.maximum.reduceat(values, heads)
            # a run of equal keys holding two words would keep one: fewer words than before
            if np.count_nonzero(head_values >= 0) != np.count_nonzero(is_word):
                raise ValueError("two lexicon words share a hash")  # never seen; be exact
            self.tables.append(HashTable(prefixes[heads], head_values))

    @staticmethod
    def layout(joined: str, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The words' code points as stored ("\\n" between words), lengths and starts."""
        points = code_points(joined)
        if not count:
            return points, np.zeros(0, np.int64), np.zeros(0, np.int64)
        breaks = np.flatnonzero(points == ord("\n"))
        lengths = np.diff(breaks, prepend=-1, append=points.size) - 1
        return points, lengths, np.arange(count) + np.cumsum(lengths) - lengths

    def _same(self, flat: np.ndarray, starts: np.ndarray, ids: np.ndarray,
              length: int) -> np.ndarray:
        """Exactness: compare the characters themselves, not only the hash."""
        steps = np.arange(length)
        return np.all(flat[starts[:, None] + steps] ==
                      self.points[self.word_starts[ids][:, None] + steps], axis=1)

    def lookup_whole(self, points: np.ndarray, lengths: np.ndarray,
                     starts: np.ndarray) -> np.ndarray:
        """Each of the given words' id (offset included), -1 where it is none of these."""
        found = np.full(lengths.size, -1, dtype=np.int64)
        hashes = np.zeros(lengths.size, dtype=np.uint64)
        alive = np.arange(lengths.size)
        for length in range(1, min(self.max_length, int(lengths.max())) + 1):
            alive = alive[lengths[alive] >= length]
            hashes_alive = _extend(hashes[alive], points[starts[alive] + length - 1])
            hashes[alive] = hashes_alive
            whole = alive[lengths[alive] == length]
            if whole.size:
                ids = self.tables[length].lookup(hashes[whole])
                hit = ids >= 0
                whole, ids = whole[hit], ids[hit]
                same = self._same(points, starts[whole], ids, length)
                found[whole[same]] = ids[same] + self.offset
        return found

    def match_points(self, flat: np.ndarray, ends: np.ndarray) -> LexiconMatches:
        alive = np.arange(flat.size, dtype=np.int64)
        hashes = np.zeros(flat.size, dtype=np.uint64)
        found_starts, found_lengths, found_ids = [], [], []
        for length in range(1, self.max_length + 1):
            fits = ends[alive] - alive >= length
            alive, hashes = alive[fits], hashes[fits]
            if alive.size == 0:
                break
            hashes = _extend(hashes, flat[alive + length - 1])
            values = self.tables[length].lookup(hashes)
            keep = values != HashTable.ABSENT
            alive, hashes, values = alive[keep], hashes[keep], values[keep]
            is_word = values >= 0
            starts, ids = alive[is_word], values[is_word]
            same = self._same(flat, starts, ids, length)
            found_starts.append(starts[same])
            found_ids.append(ids[same] + self.offset)
            found_lengths.append(np.full(int(same.sum()), length, dtype=np.int64))
        if not found_starts:
            empty = np.zeros(0, dtype=np.int64)
            return LexiconMatches(empty, empty, empty)
        return LexiconMatches(np.concatenate(found_starts), np.concatenate(found_lengths),
                              np.concatenate(found_ids))


def _first_of_runs(sorted_values: np.ndarray) -> np.ndarray:
    first = np.ones(sorted_values.size, dtype=bool)
    first[1:] = sorted_values[1:] != sorted_values[:-1]
    return first


def _extend(hashes: np.ndarray, next_points: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return hashes * _HASH_BASE + (next_points.astype(np.uint64) + np.uint64(1))


def add_words(base_matcher: LexiconMatcher, added: Lexicon) -> LexiconMatcher:
    """The matcher of base's words with added's joined, as merge_lexicons([base, added]) has
    them (a word in both: the higher frequency, and added's type unless it is untyped), but
    in base's order followed by the new words, found with base's own hash tables and adding
    tables for the new words only: a large lexicon takes a user's list in a fraction of a
    second. Its `lexicon` is the merged one. The matcher does not need code-point order."""
    base = base_matcher.lexicon
    type_names = base.type_names + [name for name in added.type_names
                                    if name not in base.type_names]
    check_type_count(type_names, f"{base.source}{SOURCE_SEPARATOR}{added.source}")
    retype = np.array([type_names.index(name) for name in added.type_names], dtype=np.int8)
    where = base_matcher.find(added)
    known, new = where >= 0, where < 0
    frequencies = base.frequencies.copy()
    type_ids = base.type_ids.copy()
    added_types = retype[added.type_ids]
    frequencies[where[known]] = np.maximum(frequencies[where[known]],
                                           added.frequencies[known])
    typed = known & (added.type_names.index(UNTYPED) != added.type_ids
                     if UNTYPED in added.type_names else known)
    type_ids[where[typed]] = added_types[typed]
    new_words = [word for word, is_new in zip(added.words, new.tolist()) if is_new]
    words = base.joined + ("\n" + "\n".join(new_words) if new_words else "") \
        if len(base) else "\n".join(new_words)
    merged = Lexicon(words, np.concatenate([frequencies, added.frequencies[new]]),
                     np.concatenate([type_ids, added_types[new]]), type_names,
                     f"{base.source}{SOURCE_SEPARATOR}{added.source}")
    return base_matcher.extended(merged)
