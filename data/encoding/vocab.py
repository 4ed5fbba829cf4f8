"""Character and char-bigram vocabularies, and vectorised encoding of text to ids.

Ids: 0 is `<pad>`, 1 is `<unk>`. An unseen character maps to `<unk>`, never dropped, so a
text of n characters always encodes to n ids. Encoding avoids per-character Python work:
text -> UTF-32 code points -> one table lookup (characters) or a hash table (bigrams).
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

import numpy as np

from data.lexicon.hashing import HashTable

PAD_ID, UNK_ID = 0, 1
PAD, UNK = "<pad>", "<unk>"
_CODE_POINTS = 0x110000
# Code point standing for "after the last character" in the bigram of a text's last character.
_END = _CODE_POINTS


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


class CharVocab:
    def __init__(self, chars: list[str]):
        self.tokens = [PAD, UNK] + list(chars)
        self._table = np.full(_CODE_POINTS, UNK_ID, dtype=np.int32)
        points = np.array([ord(c) for c in chars], dtype=np.int64)
        self._table[points] = np.arange(2, len(chars) + 2, dtype=np.int32)

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> "CharVocab":
        counts = Counter(char for text in texts for char in text)
        return cls(_frequent(counts, min_count))

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> np.ndarray:
        return self._table[code_points(text)]

    def ids_of_points(self, points: np.ndarray) -> np.ndarray:
        return self._table[points]



class BigramVocab:
    """Bigram at position i is (text[i], text[i+1]); the last character pairs with an end mark."""

    def __init__(self, bigrams: list[str]):
        self.tokens = [PAD, UNK] + list(bigrams)
        keys = _keys_of(self.tokens[2:])
        self._ids = HashTable(keys.astype(np.uint64), np.arange(2, keys.size + 2))

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 2) -> "BigramVocab":
        counts = Counter(bigram for text in texts for bigram in _bigrams(text))
        return cls(_frequent(counts, min_count))

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> np.ndarray:
        points = code_points(text).astype(np.int64)
        return self._lookup(points, np.append(points[1:], _END))

    def ids_of_points(self, points: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Ids of the texts concatenated (their code points, int64) with these lengths."""
        following = np.append(points[1:], _END)
        lengths = np.asarray(lengths)
        ends = np.cumsum(lengths)[lengths > 0] - 1
        following[ends] = _END  # each text's last character pairs with the end mark
        return self._lookup(points, following)


    def _lookup(self, points: np.ndarray, following: np.ndarray) -> np.ndarray:
        if points.size == 0:
            return np.zeros(0, dtype=np.int32)
        keys = (points * (_CODE_POINTS + 1) + following).astype(np.uint64)
        ids = self._ids.lookup(keys)
        return np.where(ids == HashTable.ABSENT, UNK_ID, ids).astype(np.int32)


def scatter(flat_rows: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """Rows of texts laid end to end -> [len(lengths), width, ...], padded with 0."""
    padded = np.full((len(lengths), width) + flat_rows.shape[1:], PAD_ID, dtype=flat_rows.dtype)
    padded[np.arange(width)[None, :] < np.asarray(lengths)[:, None]] = flat_rows
    return padded


def _bigrams(text: str) -> list[str]:
    # A one-character string is the bigram of the last character with the end mark.
    return [text[i:i + 2] for i in range(len(text))]


def _keys_of(bigrams: list[str]) -> np.ndarray:
    """Search keys of one- or two-character bigrams, without a Python step per bigram (a
    served model's vocabulary has 100,000-odd: this is start-up time of every serve.tag)."""
    sizes = np.fromiter(map(len, bigrams), dtype=np.int64, count=len(bigrams))
    if sizes.size and (sizes.min() < 1 or sizes.max() > 2):
        raise ValueError("a bigram has one or two characters")
    points = code_points("".join(bigrams)).astype(np.int64)
    starts = np.cumsum(sizes) - sizes
    second = np.where(sizes == 2, points[np.minimum(starts + 1, points.size - 1)], _END)
    return points[starts] * (_CODE_POINTS + 1) + second


def _frequent(counts: Counter, min_count: int) -> list[str]:
    # Most frequent first, ties by the token itself: the same data always gives the same ids.
    kept = [token for token, count in counts.items() if count >= min_count]
    return sorted(kept, key=lambda token: (-counts[token], token))


class TagVocab:
    def __init__(self, tags: list[str]):
        self.tags = list(tags)
        self.index = {tag: i for i, tag in enumerate(self.tags)}

    def __len__(self) -> int:
        return len(self.tags)

    def encode(self, tags: list[str]) -> np.ndarray:
        try:
            return np.array([self.index[tag] for tag in tags], dtype=np.int32)
        except KeyError as error:
            raise ValueError(f"tag {error.args[0]} is not in the model's tag set "
                             f"({', '.join(self.tags)})") from None

    def decode(self, tag_ids) -> list[str]:
        return [self.tags[i] for i in tag_ids]
