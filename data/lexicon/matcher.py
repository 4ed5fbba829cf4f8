"""The matcher that finds a lexicon's words in text, with no per-character Python work, and
the growing of a served model's lexicon by a user's words at load time (numpy only).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.encoding.vocab import code_points
from data.lexicon.hashing import HashTable
from data.lexicon.words import SOURCE_SEPARATOR, UNTYPED, Lexicon, check_type_count, \
    store_in_cache, word_list_cache_folder

@dataclass
class LexiconMatches:
    """Every lexicon word found in a batch of texts: the word at flat[start:start+length]."""
    starts: np.ndarray  # int64 offsets into the texts concatenated
    lengths: np.ndarray  # int64
    word_ids: np.ndarray  # int64 index into the lexicon


_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier; overflow wraps (mod 2^64)
# Windows this short have a distinct hash for every string of code points (for two, since
# d * _HASH_BASE mod 2^64 is never within 0x10FFFF of 0 for 0 < d <= 0x10FFFF; tested), so
# a table hit needs no comparison of the characters.
INJECTIVE_LENGTHS = 2


class LexiconMatcher:
    """Finds all lexicon words in texts with no per-character Python work.

    Per word length l, a window hash (polynomial, mod 2^64) is extended by one character for
    every position still alive and looked up in that length's hash table, which holds the
    words of length l and the length-l prefixes of longer words. Positions whose window is no
    prefix of a longer word drop out, so after the first few lengths few remain. A hit longer
    than INJECTIVE_LENGTHS is then checked character by character against the word, and the
    build refuses hash collisions between words, so the result is exact (tested against
    enumerating every substring).
    Hash tables, not sorted arrays and binary search, which spent most of the time searching.
    A lexicon grown at load time (add_words) keeps the tables built for its first words and
    adds tables for the new ones only: each word is in one set of tables (a part).
    """

    def __init__(self, lexicon: Lexicon, parts: list["WordTables"] | None = None):
        self.lexicon = lexicon
        self.parts = parts if parts is not None else \
            [WordTables(lexicon.joined, len(lexicon), 0)] if len(lexicon) else []
        self._fingerprint: bytes | None = None

    @property
    def fingerprint(self) -> bytes:
        """A digest of the words in stored order (what the tables and ids depend on)."""
        if self._fingerprint is None:
            import hashlib

            digest = hashlib.sha256()
            for part in self.parts:
                digest.update(part.points.tobytes())
            self._fingerprint = digest.digest()
        return self._fingerprint

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
        """One pass over the word lengths for every part: a window's hash is extended once
        and looked up in each part's table of that length (a second part, a user's list,
        costs its lookups, not a second pass)."""
        alive = np.arange(flat.size, dtype=np.int64)
        room = np.repeat(np.cumsum(text_lengths), text_lengths) - alive  # chars to text end
        hashes = np.zeros(flat.size, dtype=np.uint64)
        found_starts, found_lengths, found_ids = [], [], []
        for length in range(1, max((part.max_length for part in self.parts), default=0) + 1):
            fits = room >= length
            alive, hashes, room = alive[fits], hashes[fits], room[fits]
            if alive.size == 0:
                break
            hashes = _extend(hashes, flat[alive + length - 1])
            keep = np.zeros(alive.size, dtype=bool)
            for part in self.parts:
                if length > part.max_length:
                    continue
                values = part.tables[length].lookup(hashes)
                keep |= values != HashTable.ABSENT
                is_word = np.flatnonzero(values >= 0)
                starts, ids = alive[is_word], values[is_word]
                same = part.same(flat, starts, ids, length)
                found_starts.append(starts[same])
                found_ids.append(ids[same] + part.offset)
                found_lengths.append(np.full(int(same.sum()), length, dtype=np.int64))
            alive, hashes, room = alive[keep], hashes[keep], room[keep]
        if not found_starts:
            empty = np.zeros(0, dtype=np.int64)
            return LexiconMatches(empty, empty, empty)
        return LexiconMatches(np.concatenate(found_starts), np.concatenate(found_lengths),
                              np.concatenate(found_ids))


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

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything the tables hold, as named arrays (from_arrays reads them back)."""
        arrays = {"points": self.points, "word_lengths": self.word_lengths,
                  "word_starts": self.word_starts, "offset": np.array(self.offset)}
        for length, table in enumerate(self.tables[1:], 1):
            arrays.update({f"keys{length}": table.keys, f"values{length}": table.values,
                           f"slots{length}": table.slots})
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> "WordTables":
        tables = cls.__new__(cls)
        tables.offset = int(arrays["offset"])
        tables.points, tables.word_lengths, tables.word_starts = (
            arrays[name] for name in ("points", "word_lengths", "word_starts"))
        tables.max_length = int(tables.word_lengths.max())
        tables.tables = [None] + [
            HashTable.from_arrays(arrays[f"keys{length}"], arrays[f"values{length}"],
                                  arrays[f"slots{length}"])
            for length in range(1, tables.max_length + 1)]
        return tables

    def joined(self) -> str:
        """The words joined by newlines, as given."""
        return self.points.tobytes().decode("utf-32-le", "surrogatepass")

    @staticmethod
    def layout(joined: str, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The words' code points as stored ("\\n" between words), lengths and starts."""
        points = code_points(joined)
        if not count:
            return points, np.zeros(0, np.int64), np.zeros(0, np.int64)
        breaks = np.flatnonzero(points == ord("\n"))
        lengths = np.diff(breaks, prepend=-1, append=points.size) - 1
        return points, lengths, np.arange(count) + np.cumsum(lengths) - lengths

    def same(self, flat: np.ndarray, starts: np.ndarray, ids: np.ndarray,
              length: int) -> np.ndarray:
        """Exactness: compare the characters themselves, not only the hash."""
        if length <= INJECTIVE_LENGTHS:
            return np.ones(starts.size, dtype=bool)
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
                same = self.same(points, starts[whole], ids, length)
                found[whole[same]] = ids[same] + self.offset
        return found


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
    where, new_part = _found_and_new(base_matcher, added)
    known, new = where >= 0, where < 0
    frequencies = base.frequencies.copy()
    type_ids = base.type_ids.copy()
    added_types = retype[added.type_ids]
    frequencies[where[known]] = np.maximum(frequencies[where[known]],
                                           added.frequencies[known])
    typed = known & (added.type_names.index(UNTYPED) != added.type_ids
                     if UNTYPED in added.type_names else known)
    type_ids[where[typed]] = added_types[typed]
    parts = list(base_matcher.parts)
    words = base.joined
    if new_part is not None:
        parts.append(new_part)
        words = f"{words}\n{new_part.joined()}" if len(base) else new_part.joined()
    merged = Lexicon(words, np.concatenate([frequencies, added.frequencies[new]]),
                     np.concatenate([type_ids, added_types[new]]), type_names,
                     f"{base.source}{SOURCE_SEPARATOR}{added.source}")
    return LexiconMatcher(merged, parts)


_GROWN_FORMAT = "g1"


def _found_and_new(base_matcher: LexiconMatcher, added: Lexicon) \
        -> tuple[np.ndarray, WordTables | None]:
    """Each added word's id in base (-1: new) and the new words' tables, taken from the
    cache of word lists when this base and these words were seen before: finding and
    building cost about 40 ms for 100,000 words, more than the rest of a load with them."""
    cache = _grown_cache_file(base_matcher, added)
    cached = _read_grown(cache, len(base_matcher.lexicon), len(added))
    if cached is not None:
        return cached
    where = base_matcher.find(added)
    new = where < 0
    count = int(new.sum())
    new_part = WordTables("\n".join(word for word, is_new in zip(added.words, new.tolist())
                                    if is_new), count, len(base_matcher.lexicon)) \
        if count else None
    _write_grown(cache, where, new_part)
    return where, new_part


def _grown_cache_file(base_matcher: LexiconMatcher, added: Lexicon):
    import hashlib

    folder = word_list_cache_folder()
    if folder is None:
        return None
    digest = hashlib.sha256(base_matcher.fingerprint)
    digest.update(code_points(added.joined).tobytes())
    return folder / f"{digest.hexdigest()}.{_GROWN_FORMAT}.npz"


def _read_grown(path, base_count: int, added_count: int):
    """(where, new part) stored before; None when absent, damaged or not of this shape."""
    if path is None:
        return None
    try:
        with np.load(path) as stored:
            arrays = {name: stored[name] for name in stored.files}
        where = arrays.pop("where")
        new_part = WordTables.from_arrays(arrays) if arrays else None
    except Exception:  # absent, partial or foreign (zip, pickle, shape errors): build anew
        return None
    new_count = int(np.count_nonzero(where < 0))
    if where.shape != (added_count,) or (new_part is None) != (new_count == 0) or (
            new_part is not None and (new_part.offset != base_count or
                                      new_part.word_lengths.size != new_count)):
        return None
    return where, new_part


def _write_grown(path, where: np.ndarray, new_part: WordTables | None) -> None:
    store_in_cache(path, lambda partial: np.savez(
        partial, where=where, **(new_part.arrays() if new_part else {})), ".npz")
