"""Word lexicons and their sources (numpy only, no TensorFlow).

A lexicon is a list of words, each with a frequency and a type class (jieba's POS folded into
PER / LOC / ORG / PROPER / OTHER, or the types of a user's word list). For every character of
a text, `data.lexicon.matcher` finds the lexicon words that begin (B), continue (M), end (E)
at, or are (S) that character; `data.lexicon.features` turns those sets into model inputs.

Sources: jieba 0.42.1's `dict.txt`, read out of the pinned sdist fetched from the package
registry and hash-checked (jieba itself is never imported), or a user's file with
`word [frequency] [type]` per line. Never built from dev or test data.
"""
from __future__ import annotations

import base64
import gc
import json
import math
import os
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path

import numpy as np

from data.corpus.formats import DataError, split_lines
from data.files import check_input_file, decode_bytes

JIEBA_SDIST = "jieba-0.42.1.tar.gz"
JIEBA_SDIST_SHA256 = "055ca12f62674fafed09427f176506079bc135638a14e23e25be909131928db2"
JIEBA_DICT = "jieba-0.42.1/jieba/dict.txt"
JIEBA_DICT_SHA256 = "7197c3211ddd98962b036cdf40324d1ea2bfaa12bd028e68faa70111a88e12a8"
JIEBA = "jieba"  # the config value naming the default lexicon
NO_LEXICON = "none"
# jieba's ICTCLAS POS tags folded into the classes an entity tagger can use; the rest is OTHER.
JIEBA_TYPE_CLASSES = {"nr": "PER", "nrt": "PER", "nrfg": "PER", "ns": "LOC", "nt": "ORG",
                      "nz": "PROPER"}
JIEBA_CLASS_NAMES = ["OTHER", "PER", "LOC", "ORG", "PROPER"]
UNTYPED = "OTHER"  # the class of a user's word listed without a type
DEFAULT_CACHE = Path("data/cache")


class Lexicon:
    """Words with a frequency and a type class each. Built from a source, words are kept in
    code-point order (the matcher's build relies on it to skip a sort, see LexiconMatcher);
    read back from JSON, they keep the stored order, whatever it is."""

    def __init__(self, words: Sequence[str] | str, frequencies: np.ndarray,
                 type_ids: np.ndarray, type_names: list[str], source: str):
        # words: a list, or the words joined by newlines as stored (split only when asked:
        # a served model never needs them one by one, and splitting jieba's costs 10 ms)
        self._joined = words if isinstance(words, str) else None
        self._words = None if isinstance(words, str) else list(words)
        # float64, one per word (1 where the source gives none); or a callable that decodes
        # them when first asked: only word features use them, and a flags model's start-up
        # skips the 2 ms of decoding jieba's
        self._frequencies = frequencies
        self.type_ids = type_ids  # int8 index into type_names, one per word
        self.type_names = type_names
        self.source = source  # "jieba-0.42.1" or the user file's name

    @property
    def frequencies(self) -> np.ndarray:
        if callable(self._frequencies):
            self._frequencies = self._frequencies()
        return self._frequencies

    @property
    def words(self) -> list[str]:
        if self._words is None:
            self._words = self._joined.split("\n") if self._joined else []
        return self._words

    @property
    def joined(self) -> str:
        """The words joined by newlines (a word never holds whitespace)."""
        if self._joined is None:
            self._joined = "\n".join(self._words)
        return self._joined

    def __len__(self) -> int:
        return len(self.type_ids)

    def to_json(self) -> str:
        """Compact: words joined by newlines, numbers as base64 arrays. Frequencies are stored
        as float32 where that is exact (jieba's counts), halving the largest array: this JSON
        travels in every exported model and is parsed at every start."""
        frequencies = self.frequencies.astype("<f8")
        if np.array_equal(frequencies.astype("<f4").astype("<f8"), frequencies):
            frequencies = frequencies.astype("<f4")
        return json.dumps({
            "source": self.source, "type_names": self.type_names, "words": self.joined,
            "frequencies": _b64(frequencies), "frequency_dtype": frequencies.dtype.str,
            "type_ids": _b64(self.type_ids.astype(np.int8))}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "Lexicon":
        value = json.loads(text)
        encoded, dtype = value["frequencies"], value.get("frequency_dtype", "<f8")

        def frequencies() -> np.ndarray:
            return np.frombuffer(base64.b64decode(encoded), dtype).astype(np.float64)

        return cls(value["words"], frequencies,
                   np.frombuffer(base64.b64decode(value["type_ids"]), np.int8).copy(),
                   list(value["type_names"]), value["source"])


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(array.tobytes()).decode("ascii")


# -- sources ----------------------------------------------------------------------------------
def read_word_list(path: str | Path, allowed_types: Sequence[str] | None = None,
                   what: str = "types", type_required: bool = False) -> Lexicon:
    """A user's lexicon: one `word [frequency] [type]` per line (whitespace-separated, UTF-8).

    Blank lines and lines starting with `#` are skipped; a word listed again keeps its first
    line. Any other problem stops with `FILE:LINE`; so does a type not in allowed_types
    (when given; `what` names them in the message) and, with type_required, a line without
    one. A list read before is taken from the cache (word_list_cache_folder), keyed by the
    file's bytes: parsing 100,000 lines costs more than tagging a small file.
    """
    check_input_file(path)
    raw = Path(path).read_bytes()
    cached = _cached_word_list(raw)
    if cached is not None and _types_accepted(cached, allowed_types, type_required):
        cached.source = Path(path).name
        return cached
    lines = split_lines(decode_bytes(raw, path))
    lexicon = _parse_word_list(path, lines, allowed_types, what, type_required)
    _cache_word_list(raw, lexicon)
    return lexicon


def _parse_word_list(path, lines, allowed_types, what, type_required) -> Lexicon:
    with _collection_paused():  # 100,000 lists of fields kept: the collector would scan them
        return _parse_lines(path, lines, allowed_types, what, type_required)


@contextmanager
def _collection_paused():
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse_lines(path, lines, allowed_types, what, type_required) -> Lexicon:
    accepted = None if allowed_types is None else \
        set(allowed_types) | ({UNTYPED} if not type_required else set())
    split = list(map(str.split, lines))
    parsed = _parse_alike_rows([fields for fields in split
                                if fields and not fields[0].startswith("#")], accepted)
    if parsed is None:  # lines of several forms, or a bad one: line by line, naming it
        rows = [(number, fields) for number, fields in enumerate(split, 1)
                if fields and not fields[0].startswith("#")]
        parsed = _parse_rows(path, rows, allowed_types, accepted, what, type_required)
    words, frequencies, types = parsed
    if not words:
        raise DataError(path, None, "empty lexicon: no words")
    return _first_of_each(words, frequencies, types, None, Path(path).name)


def _parse_alike_rows(rows: list[list[str]], accepted: set | None):
    """(words, frequencies, types) at list speed when every line has the same form and none
    is bad; None otherwise (then _parse_rows finds the line to name). 100,000 lines: 3x
    faster than line by line."""
    sizes = set(map(len, rows))
    if len(sizes) != 1 or not 1 <= min(sizes) <= 3:
        return None
    size, count = sizes.pop(), len(rows)
    words = list(map(itemgetter(0), rows))
    frequencies, types = [1.0] * count, [UNTYPED] * count
    try:
        if size == 3:
            frequencies = list(map(float, map(itemgetter(1), rows)))
            types = list(map(itemgetter(2), rows))
        elif size == 2:
            frequencies = list(map(float, map(itemgetter(1), rows)))
    except ValueError:
        if size == 3:
            return None
        types = list(map(itemgetter(1), rows))  # `word type`, unless a number is mixed in
        if any(map(_is_number, types)):
            return None
        frequencies = [1.0] * count
    array = np.array(frequencies, dtype=np.float64)
    if not (np.all(np.isfinite(array)) and np.all(array > 0)):
        return None
    if accepted is not None and not set(types) <= accepted:
        return None
    return words, array, types


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_rows(path, rows, allowed_types, accepted, what, type_required):
    words, frequencies, types = [], [], []
    for number, fields in rows:
        if len(fields) > 3:
            raise DataError(path, number, f"{len(fields)} fields: expected `word [frequency] "
                                          f"[type]`, got {' '.join(fields)!r}")
        word, frequency, word_type = fields[0], 1.0, UNTYPED
        if len(fields) >= 2:
            try:
                frequency = float(fields[1])
            except ValueError:
                if len(fields) == 3:
                    raise DataError(path, number, f"frequency {fields[1]!r} is not a number")
                word_type = fields[1]  # `word type`
            else:
                if not math.isfinite(frequency) or frequency <= 0:
                    raise DataError(path, number, f"frequency {fields[1]!r} must be positive")
        if len(fields) == 3:
            word_type = fields[2]
        if accepted is not None and word_type not in accepted:
            _check_word_type(path, number, word, word_type, allowed_types, what, type_required)
        words.append(word)
        frequencies.append(frequency)
        types.append(word_type)
    return words, frequencies, types


WORD_LIST_CACHE = "NER_WORD_LIST_CACHE"  # environment: the cache folder, or `off`
_CACHE_FORMAT = "v1"


def word_list_cache_folder() -> Path | None:
    """Where parsed word lists are kept: $NER_WORD_LIST_CACHE (`off`: nowhere), else
    $XDG_CACHE_HOME/ner-pipeline/word-lists (~/.cache when unset)."""
    value = os.environ.get(WORD_LIST_CACHE)
    if value:
        return None if value == "off" else Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ner-pipeline" / "word-lists"


def _cache_file(raw: bytes) -> Path | None:
    import hashlib

    folder = word_list_cache_folder()
    if folder is None:
        return None
    return folder / f"{hashlib.sha256(raw).hexdigest()}.{_CACHE_FORMAT}.json"


def _cached_word_list(raw: bytes) -> Lexicon | None:
    """The list parsed before from these bytes; None when not cached or unreadable."""
    path = _cache_file(raw)
    try:
        return Lexicon.from_json(path.read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError, KeyError, TypeError):  # absent, partial or foreign: parse
        return None


def _cache_word_list(raw: bytes, lexicon: Lexicon) -> None:
    store_in_cache(_cache_file(raw), lambda partial: partial.write_text(
        lexicon.to_json(), encoding="utf-8", newline="\n"))


def store_in_cache(path: Path | None, write, suffix: str = "") -> None:
    """Best effort: `write(partial)` fills a temporary file that replaces `path` only whole;
    a cache folder that cannot be written only means parsing or building next time."""
    from data.files import atomic_path

    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix) as partial:
            write(partial)
    except OSError:
        pass


def _types_accepted(lexicon: Lexicon, allowed_types, type_required: bool) -> bool:
    """Whether every type the list uses is allowed (else parsing names the first bad line)."""
    if allowed_types is None:
        return True
    accepted = set(allowed_types) | ({UNTYPED} if not type_required else set())
    used = {lexicon.type_names[i] for i in np.unique(lexicon.type_ids).tolist()}
    return used <= accepted


def _check_word_type(path, number: int, word: str, word_type: str, types: Sequence[str],
                     what: str, type_required: bool) -> None:
    known = ", ".join(types)
    if word_type == UNTYPED and type_required and UNTYPED not in types:
        raise DataError(path, number, f"{word!r} has no type: give one of this model's {what} "
                                      f"({known})")
    if word_type not in types and not (word_type == UNTYPED and not type_required):
        raise DataError(path, number, f"type {word_type!r} is not one of this model's {what} "
                                      f"({known})")


def parse_jieba_dict(data: bytes, name: str = JIEBA_DICT) -> Lexicon:
    words, frequencies, types = [], [], []
    for number, line in enumerate(data.decode("utf-8").splitlines(), 1):
        fields = line.split()
        if len(fields) != 3:
            raise DataError(name, number, f"expected `word frequency POS`, got {line!r}")
        words.append(fields[0])
        frequencies.append(float(fields[1]))
        types.append(JIEBA_TYPE_CLASSES.get(fields[2], "OTHER"))
    return _first_of_each(words, frequencies, types, list(JIEBA_CLASS_NAMES), "jieba-0.42.1")


def _first_of_each(words, frequencies, types, type_names, source) -> Lexicon:
    """A word listed again keeps its first line (jieba lists `B超` twice); the words are then
    put in code-point order."""
    # sorted distinct words (numpy compares code points, as str does) and each one's first
    # position; a word ending in NUL, which numpy's strings drop, takes the dict's way
    if "\0" in "".join(words) and any(word.endswith("\0") for word in words):
        first = dict(zip(reversed(words), range(len(words) - 1, -1, -1)))
        ordered = sorted(first)
        kept = np.fromiter(map(first.__getitem__, ordered), dtype=np.int64, count=len(ordered))
    else:
        distinct, kept = np.unique(np.array(words, dtype=str), return_index=True)
        ordered = distinct.tolist()
    kept_types = list(map(types.__getitem__, kept.tolist()))
    if type_names is None:  # a user's types: OTHER first, then theirs in sorted order
        type_names = [UNTYPED] + sorted(set(kept_types) - {UNTYPED})
    check_type_count(type_names, source)
    index = {name: i for i, name in enumerate(type_names)}
    return Lexicon(ordered, np.asarray(frequencies, dtype=np.float64)[kept],
                   np.fromiter(map(index.__getitem__, kept_types), dtype=np.int8,
                               count=len(kept_types)), type_names, source)


def fetch_jieba_dict(cache: Path = DEFAULT_CACHE) -> bytes:
    """dict.txt out of the pinned jieba sdist (pip download, sha256-checked), cached."""
    # imported here: a served model never fetches, and these cost start-up time
    import hashlib
    import subprocess
    import tarfile

    cached = cache / "jieba-dict.txt"
    if cached.exists() and hashlib.sha256(cached.read_bytes()).hexdigest() == JIEBA_DICT_SHA256:
        return cached.read_bytes()
    sdist = cache / JIEBA_SDIST
    if not (sdist.exists() and _sha256_file(sdist) == JIEBA_SDIST_SHA256):
        cache.mkdir(parents=True, exist_ok=True)
        print(f"fetching jieba==0.42.1 (its dictionary only) into {cache}", file=sys.stderr)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--quiet", "--dest", str(cache), "jieba==0.42.1"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not sdist.exists():
            raise DataError(sdist, None, f"pip download failed: {result.stderr.strip()[-500:]}")
        digest = _sha256_file(sdist)
        if digest != JIEBA_SDIST_SHA256:
            sdist.unlink()
            raise DataError(sdist, None, f"sha256 {digest} is not the pinned {JIEBA_SDIST_SHA256}")
    with tarfile.open(sdist, "r:gz") as archive:
        data = archive.extractfile(JIEBA_DICT).read()
    if hashlib.sha256(data).hexdigest() != JIEBA_DICT_SHA256:
        raise DataError(sdist, None, f"{JIEBA_DICT}: sha256 differs from the pinned one")
    cached.write_bytes(data)
    return data


def _sha256_file(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


SOURCE_SEPARATOR = "+"  # `jieba+drugs.txt`: several sources, merged


def load_lexicon(choice: str, cache: Path = DEFAULT_CACHE) -> Lexicon | None:
    """`jieba` (the default), `none`, a path to a user's word list, or several of `jieba` and
    paths joined by `+` (`jieba+drugs.txt`: jieba's words and yours, see merge_lexicons)."""
    if choice == NO_LEXICON:
        return None
    if choice == JIEBA:
        return parse_jieba_dict(fetch_jieba_dict(cache))
    if SOURCE_SEPARATOR in choice and not Path(choice).is_file():
        return merge_lexicons([load_lexicon(part, cache) for part in split_sources(choice)])
    if not Path(choice).is_file():
        raise DataError(choice, None, "no such lexicon file")
    return read_word_list(choice)


def split_sources(choice: str) -> list[str]:
    """`jieba+a.txt+b.txt` -> its sources. A file whose own name holds `+` stays whole: at
    each point the longest run of parts naming jieba or an existing file is one source."""
    parts, sources = choice.split(SOURCE_SEPARATOR), []
    if not all(parts) or NO_LEXICON in parts:
        raise DataError(choice, None, "expected sources joined by `+`, such as jieba+words.txt")
    while parts:
        for size in range(len(parts), 0, -1):
            candidate = SOURCE_SEPARATOR.join(parts[:size])
            if candidate == JIEBA or Path(candidate).is_file():
                break
        else:
            size, candidate = 1, parts[0]  # not found: load_lexicon names it
        sources.append(candidate)
        parts = parts[size:]
    return sources


def merge_lexicons(lexicons: Sequence[Lexicon]) -> Lexicon:
    """One lexicon with every source's words, as jieba's own user dictionaries add to its
    dictionary. A word in several sources takes its highest frequency, and its type from the
    last source that gives it one (OTHER, a word listed without a type, never replaces a
    type): `阿司匹林 DRUG` after jieba makes a DRUG of jieba's common noun. Type classes: the
    first source's, then every new one in order."""
    type_names: list[str] = []
    merged: dict[str, tuple[float, str]] = {}
    for lexicon in lexicons:
        type_names += [name for name in lexicon.type_names if name not in type_names]
        for word, frequency, type_id in zip(lexicon.words, lexicon.frequencies.tolist(),
                                            lexicon.type_ids.tolist()):
            word_type = lexicon.type_names[type_id]
            if word in merged:
                old_frequency, old_type = merged[word]
                frequency = max(frequency, old_frequency)
                word_type = old_type if word_type == UNTYPED else word_type
            merged[word] = (frequency, word_type)
    if UNTYPED not in type_names:
        type_names.insert(0, UNTYPED)
    source = SOURCE_SEPARATOR.join(lexicon.source for lexicon in lexicons)
    check_type_count(type_names, source)
    words = sorted(merged)  # code-point order, as every lexicon built from a source
    index = {name: i for i, name in enumerate(type_names)}
    return Lexicon(words, np.array([merged[word][0] for word in words], dtype=np.float64),
                   np.array([index[merged[word][1]] for word in words], dtype=np.int8),
                   type_names, source)


MAX_TYPE_CLASSES = 127  # type ids are int8; every class adds 4 flags per character anyway


def check_type_count(type_names: list[str], source: str) -> None:
    if len(type_names) > MAX_TYPE_CLASSES:
        raise DataError(source, None, f"{len(type_names)} word types: at most "
                                      f"{MAX_TYPE_CLASSES} (each adds 4 model inputs)")
