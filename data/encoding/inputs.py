"""Text -> the network's inputs: one encoder for training, export validation and serving, so
what the model is trained on is exactly what it is served (tested: train/serve parity).

Inputs, each one row per character: `char_ids`, `bigram_ids` (models with bigrams), and the
lexicon inputs of `data.lexicon.features` (models with a lexicon). Whole batches are encoded
at once from the texts' code points: no per-character Python work.
"""
from __future__ import annotations

import json

import numpy as np

from data.lexicon.words import Lexicon
from data.lexicon.features import LexiconFeatures
from data.encoding.vocab import BigramVocab, CharVocab, code_points, scatter

CHAR_IDS, BIGRAM_IDS = "char_ids", "bigram_ids"


class InputEncoder:
    def __init__(self, chars: CharVocab, bigrams: BigramVocab | None = None,
                 lexicon: LexiconFeatures | None = None):
        self.chars, self.bigrams, self.lexicon = chars, bigrams, lexicon

    def input_shapes(self) -> dict[str, tuple[int | None, str]]:
        """Name -> (width per character or None for a scalar id, dtype), in input order."""
        shapes = {CHAR_IDS: (None, "int32")}
        if self.bigrams:
            shapes[BIGRAM_IDS] = (None, "int32")
        if self.lexicon:
            shapes.update(self.lexicon.input_shapes())
        return shapes

    def encode_flat(self, texts: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Rows for all texts concatenated, and each text's length."""
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        points = code_points("".join(texts)).astype(np.int64)
        flat = {CHAR_IDS: self.chars.ids_of_points(points)}
        if self.bigrams:
            flat[BIGRAM_IDS] = self.bigrams.ids_of_points(points, lengths)
        if self.lexicon:
            flat.update(self.lexicon.encode_flat(points, lengths))
        return flat, lengths

    def encode_padded(self, texts: list[str], width: int | None = None) -> dict[str, np.ndarray]:
        """[len(texts), width, ...] per input, padded with 0 (PAD_ID, no word, no flag)."""
        flat, lengths = self.encode_flat(texts)
        width = int(lengths.max(initial=1)) if width is None else width
        return {name: scatter(rows, lengths, width) for name, rows in flat.items()}

    def encode_batches(self, texts: list[str], batch_size: int):
        """Padded inputs of texts[i:i + batch_size] for each i, from one encode_flat call
        (one matcher pass over many batches instead of one per batch)."""
        flat, lengths = self.encode_flat(texts)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        for begin in range(0, len(texts), batch_size):
            end = min(begin + batch_size, len(texts))
            batch_lengths = lengths[begin:end]
            width = int(batch_lengths.max(initial=1))
            rows = slice(offsets[begin], offsets[end])
            yield {name: scatter(values[rows], batch_lengths, width)
                   for name, values in flat.items()}

    def encode_each(self, texts: list[str]) -> dict[str, list[np.ndarray]]:
        """Per input, one array per text (training keeps sentences apart to batch them)."""
        flat, lengths = self.encode_flat(texts)
        cuts = np.cumsum(lengths)[:-1]
        return {name: np.split(rows, cuts) for name, rows in flat.items()}



# -- the encoder as plain data: a run's vocab.json + lexicon.json, an ONNX file's metadata ----
def encoder_description(encoder: InputEncoder) -> dict:
    """Everything but the lexicon's words (stored apart: 6 MB for jieba), JSON-ready."""
    description = {"chars": encoder.chars.tokens[2:],
                   "bigrams": encoder.bigrams.tokens[2:] if encoder.bigrams else None,
                   "lexicon_features": None}
    if encoder.lexicon:
        features = encoder.lexicon
        description["lexicon_features"] = {"kind": features.kind, "top_k": features.top_k,
                                           "frequency_classes": features.frequency_classes,
                                           "words": features.word_vocab,
                                           "source": features.lexicon.source,
                                           "char_prior_chars": features.char_prior_chars}
    return description


def encoder_from_description(description: dict, lexicon_json: str | None) -> InputEncoder:
    chars = CharVocab(description["chars"])
    bigrams = BigramVocab(description["bigrams"]) if description.get("bigrams") else None
    features = description.get("lexicon_features")
    lexicon = None
    if features:
        if lexicon_json is None:
            raise ValueError("the model uses a lexicon, but its words are missing")
        lexicon = LexiconFeatures(Lexicon.from_json(lexicon_json), features["kind"],
                                  features["words"], features["top_k"],
                                  features.get("frequency_classes", 0),  # 0: older files
                                  features.get("char_prior_chars"))
    return InputEncoder(chars, bigrams, lexicon)


# The ONNX file's metadata_props that hold the encoder (export writes them, serve reads them).
_METADATA_KEYS = {"chars": "ner.chars", "bigrams": "ner.bigrams",
                  "lexicon_features": "ner.lexicon_features"}
LEXICON_KEY = "ner.lexicon"
SCORE_TEMPERATURE_KEY = "ner.score_temperature"  # divides emissions and transitions for scores


def encoder_metadata(encoder: InputEncoder) -> dict[str, str]:
    description = encoder_description(encoder)
    metadata = {key: json.dumps(description[name], ensure_ascii=False)
                for name, key in _METADATA_KEYS.items()}
    lexicon_json = lexicon_json_of(encoder)
    if lexicon_json is not None:
        metadata[LEXICON_KEY] = lexicon_json
    return metadata


def encoder_from_metadata(metadata: dict[str, str]) -> InputEncoder:
    description = {name: json.loads(metadata.get(key, "null"))
                   for name, key in _METADATA_KEYS.items()}
    return encoder_from_description(description, metadata.get(LEXICON_KEY))


def lexicon_json_of(encoder: InputEncoder) -> str | None:
    return encoder.lexicon.lexicon.to_json() if encoder.lexicon else None


def describe(encoder: InputEncoder) -> str:
    """One line for logs: what the model reads."""
    parts = [f"{len(encoder.chars)} chars",
             f"{len(encoder.bigrams) if encoder.bigrams else 0} bigrams"]
    if encoder.lexicon:
        features = encoder.lexicon
        parts.append(f"lexicon {features.lexicon.source} ({len(features.lexicon):,} words, "
                     f"{features.kind}: {features.num_flags} flags, "
                     f"{len(features.word_vocab):,} word rows"
                     + (f", priors for {len(features.char_prior_chars):,} characters"
                        if features.char_prior_chars is not None else "") + ")")
    return ", ".join(parts)


def merged_encoder(encoders: list[InputEncoder]) -> InputEncoder:
    """One encoder whose inputs cover every given encoder's (an ensemble's members): they must
    share the character and bigram vocabularies and the lexicon, and agree on each lexicon
    feature they both use; the merged one then computes every input once, each exactly as the
    member that reads it would. ValueError naming what differs otherwise."""
    first = encoders[0]
    for other in encoders[1:]:
        if other.chars.tokens != first.chars.tokens:
            raise ValueError("the members' character vocabularies differ: they must be trained "
                             "on the same training file")
    _one_of([e.bigrams.tokens for e in encoders if e.bigrams], "bigram vocabularies")
    bigram_vocab = next((e.bigrams for e in encoders if e.bigrams), None)
    features = [e.lexicon for e in encoders if e.lexicon]
    if not features:
        return InputEncoder(first.chars, bigram_vocab)
    _one_of([f.lexicon.to_json() for f in features], "lexicons")
    flags = [f for f in features if f.uses_flags]
    words = [f for f in features if f.uses_words]
    priors = [f.char_prior_chars for f in features if f.char_prior_chars is not None]
    frequency_classes = _one_of([f.frequency_classes for f in flags], "flag frequency classes")
    word_vocab = _one_of([f.word_vocab for f in words], "word vocabularies")
    top_k = _one_of([f.top_k for f in words], "word top-k")
    kind = "both" if flags and words else "flags" if flags else "words"
    merged = LexiconFeatures(features[0].lexicon, kind, word_vocab, top_k or features[0].top_k,
                             frequency_classes or 0, _one_of(priors, "char prior tables"))
    return InputEncoder(first.chars, bigram_vocab, merged)


def _one_of(values: list, what: str):
    """The value all members that have one agree on (None if none has): else ValueError."""
    if any(value != values[0] for value in values[1:]):
        raise ValueError(f"the members' {what} differ")
    return values[0] if values else None
