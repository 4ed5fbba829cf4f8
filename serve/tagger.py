"""The deployed tagger: ONNX Runtime emissions, numpy Viterbi, entity spans and their scores.

Needs onnxruntime and numpy only (plus `data`'s numpy-only parts); never TensorFlow.
Everything it needs (vocabularies, tags, max length, lexicon) is read from the .onnx file's
metadata. `Tagger.tag_batch` is the one batch-tagging function: the file tagger, the HTTP
service, the Ray actors and the evaluators all go through it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.encoding.inputs import SCORE_TEMPERATURE_KEY, encoder_from_metadata
from data.decoding.marginals import SpanTerms, span_log_probabilities, span_probabilities, span_terms
from data.encoding.pieces import piece_bounds, split_points  # noqa: F401  (split_points: public here too)
from data.corpus.tags import TagCodes, spans_of_ids
from data.decoding.viterbi import viterbi_decode
from serve.providers import choose_providers
from serve.word_lists import ForcedWords, with_user_words

DEFAULT_BATCH_SIZE = 64
# Viterbi decodes this many model batches at once: numpy's per-step cost is then spread over
# more sequences (docs/performance.md).
DECODE_BATCHES = 4


@dataclass(frozen=True)
class Entity:
    type: str
    start: int  # character offset into the input text, inclusive
    end: int  # exclusive
    text: str
    score: float | None = None  # P(these characters carry exactly these tags | text)

    def to_dict(self) -> dict:
        entity = {"type": self.type, "start": self.start, "end": self.end, "text": self.text}
        if self.score is not None:
            entity["score"] = self.score
        return entity


SCORE_DECIMALS = 4  # what records carry: enough to rank and threshold, 8 bytes an entity


@dataclass
class Tagged:
    """One batch's result: flat tag ids (texts concatenated), each text's length, and the
    entity spans as arrays (text index, type number, start, end, score or None)."""
    texts: list[str]
    tag_ids: np.ndarray
    lengths: np.ndarray
    span_text: np.ndarray
    span_type: np.ndarray
    span_start: np.ndarray
    span_end: np.ndarray
    span_score: np.ndarray | None
    # log P(each text's whole tag path | text), pieces multiplied (scored batches only)
    path_log_prob: np.ndarray | None = None

    def keep(self, min_score: float | None) -> "Tagged":
        """Only the entities scored at least min_score (None: all), compared as records
        show the scores (rounded), so a score read off the output keeps its entity."""
        if min_score is None or self.span_score is None:
            return self
        kept = np.round(self.span_score, SCORE_DECIMALS) >= min_score
        return Tagged(self.texts, self.tag_ids, self.lengths, self.span_text[kept],
                      self.span_type[kept], self.span_start[kept], self.span_end[kept],
                      self.span_score[kept], self.path_log_prob)


class Tagger:
    def __init__(self, session, metadata: dict[str, str], notice: str | None = None,
                 words: str | Path | None = None, force_words: str | Path | None = None):
        self.session = session
        self.notice = notice
        self.tags = json.loads(metadata["ner.tags"])
        self.encoder = encoder_from_metadata(metadata)
        self.max_len = int(metadata.get("ner.max_len", 200))
        self.metadata = metadata
        self.temperature = float(metadata.get(SCORE_TEMPERATURE_KEY, 1.0))
        self.codes = TagCodes(self.tags)
        self.words_added = 0
        if words is not None:
            self.encoder, self.words_added = with_user_words(self.encoder, words)
        self.forced = ForcedWords(force_words, self.tags) if force_words is not None else None
        self.transitions = self.session.run(
            ["transitions"], self.encoder.encode_padded(["。"]))[0].astype(np.float32)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", threads: int | None = None,
             words: str | Path | None = None,
             force_words: str | Path | None = None) -> "Tagger":
        """device: "cpu", "cuda" (error if unavailable) or "auto" (CUDA if present, else CPU).

        threads: ONNX Runtime intra-op threads (default: one per CPU).
        words: a `word [frequency] [type]` list joining the model's lexicon (types: its
        lexicon classes); force_words: the same syntax, types the model's entity types, each
        longest occurrence tagged as that entity.
        """
        import onnxruntime as ort

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such model file")
        if not path.is_file():
            raise ValueError(f"{path}: not a model file (a directory?): pass the exported .onnx")
        providers, notice = choose_providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as error:  # ORT's own types: InvalidProtobuf, Fail, InvalidGraph...
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ValueError(f"{path}: not a valid ONNX file (truncated, or not a model: "
                             f"{type(error).__name__}{': ' + reason[:200] if reason else ''})") \
                from None
        metadata = session.get_modelmeta().custom_metadata_map
        if "ner.tags" not in metadata or "ner.chars" not in metadata:
            raise ValueError(f"{path}: an ONNX model, but not a tagger (no tagger metadata): "
                             "export one with python -m export.to_onnx")
        try:  # a bad word list is a DataError of its own, naming FILE:LINE
            return cls(session, metadata, notice, words, force_words)
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f"{path}: its tagger metadata is damaged ({error})") from None

    # -- the hot path ---------------------------------------------------------------------
    def tag_batch(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE,
                  scores: bool = True) -> Tagged:
        """Tag texts of any length: tag ids, entity spans and (scores=True) their
        probabilities. Texts longer than max_len are tagged as pieces (see split_points);
        pieces of similar length share a batch. No work per character happens in Python."""
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        pieces, piece_lengths = texts, lengths
        if len(texts) and lengths.max() > self.max_len:
            pieces = [text[start:end] for text in texts
                      for start, end in piece_bounds(text, self.max_len)]
            piece_lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        # Pieces are consecutive stretches of the concatenated texts: their offsets there.
        piece_offsets = np.cumsum(piece_lengths) - piece_lengths
        total = int(lengths.sum())
        flat = np.zeros(total, dtype=np.int32)
        terms = SpanTerms(*(np.zeros(total) for _ in range(3))) if scores else None
        forced = self.forced.tag_ids("".join(texts), lengths) if self.forced else None
        order = np.argsort(piece_lengths, kind="stable")
        order = order[piece_lengths[order] > 0]
        group_size = batch_size * DECODE_BATCHES
        for begin in range(0, len(order), group_size):
            group = order[begin:begin + group_size]
            group_lengths = piece_lengths[group]
            emissions = self.emissions([pieces[i] for i in group], batch_size)
            positions = piece_offsets[group][:, None] + np.arange(emissions.shape[1])[None, :]
            valid = np.arange(emissions.shape[1])[None, :] < group_lengths[:, None]
            decoded = emissions
            if forced is not None:
                group_forced = np.full(valid.shape, -1, dtype=np.int64)
                group_forced[valid] = forced[positions[valid]]
                decoded = self.forced.constrain(emissions, group_forced)
            tag_ids, _ = viterbi_decode(decoded, self.transitions, group_lengths)
            flat[positions[valid]] = tag_ids[valid]
            if scores:
                group_terms = span_terms(emissions, self.transitions, group_lengths, tag_ids,
                                         self.temperature)
                for name in ("start", "step", "end"):
                    getattr(terms, name)[positions[valid]] = getattr(group_terms, name)[valid]
        return self._spans(texts, flat, lengths, terms)

    def _spans(self, texts, flat, lengths, terms: SpanTerms | None) -> Tagged:
        span_text, span_type, starts, ends = spans_of_ids(self.codes, flat, lengths)
        score = path_log_prob = None
        if terms is not None:
            text_offsets = np.cumsum(lengths) - lengths
            offsets = text_offsets[span_text]
            score = span_probabilities(terms, starts + offsets, ends + offsets)
            path_log_prob = np.zeros(len(texts))
            whole = lengths > 0
            path_log_prob[whole] = span_log_probabilities(
                terms, text_offsets[whole], text_offsets[whole] + lengths[whole])
        return Tagged(texts, flat, lengths, span_text, span_type, starts, ends, score,
                      path_log_prob)

    def emissions(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Emissions [len(texts), longest, tags] (texts of at most max_len characters, best
        sorted by length), run batch by batch: the model's own cost, for benchmarks too."""
        lengths = [len(text) for text in texts]
        emissions = np.zeros((len(texts), max(lengths, default=0), len(self.tags)), np.float32)
        batches = self.encoder.encode_batches(texts, batch_size)
        for begin, inputs in zip(range(0, len(texts), batch_size), batches):
            batch_emissions = self.session.run(["emissions"], inputs)[0]
            emissions[begin:begin + len(batch_emissions), :batch_emissions.shape[1]] = \
                batch_emissions
        return emissions

    # -- public results -------------------------------------------------------------------
    def tag_flat(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Tag ids of all texts concatenated in input order, and each text's length."""
        tagged = self.tag_batch(texts, batch_size, scores=False)
        return tagged.tag_ids, tagged.lengths

    def tag_ids(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> list[np.ndarray]:
        """One tag id per character of each text, texts of any length, in input order."""
        flat, lengths = self.tag_flat(texts, batch_size)
        return np.split(flat, np.cumsum(lengths)[:-1]) if len(texts) else []

    def tag_names(self, tagged: Tagged) -> list[np.ndarray]:
        """Each text's tags as names, with O over any entity `tagged` no longer holds
        (left out by Tagged.keep)."""
        names = np.array(self.tags, dtype=object)[tagged.tag_ids]
        all_spans = spans_of_ids(self.codes, tagged.tag_ids, tagged.lengths)
        if len(all_spans[0]) != len(tagged.span_text):
            offsets = np.cumsum(tagged.lengths) - tagged.lengths
            names[:] = "O"
            kept = np.zeros(len(names), dtype=bool)
            for text, start, end in zip(tagged.span_text.tolist(), tagged.span_start.tolist(),
                                        tagged.span_end.tolist()):
                kept[offsets[text] + start:offsets[text] + end] = True
            names[kept] = np.array(self.tags, dtype=object)[tagged.tag_ids[kept]]
        return np.split(names, np.cumsum(tagged.lengths)[:-1]) if len(tagged.texts) else []

    def tag_bmeo(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> list[list[str]]:
        tagged = self.tag_batch(texts, batch_size, scores=False)
        return [names.tolist() for names in self.tag_names(tagged)]

    def tag(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE,
            scores: bool = True, min_score: float | None = None) -> list[list[Entity]]:
        return self.entities(self.tag_batch(texts, batch_size, scores).keep(min_score))

    def entities(self, tagged: Tagged) -> list[list[Entity]]:
        results: list[list[Entity]] = [[] for _ in tagged.texts]
        types, texts = self.codes.types, tagged.texts
        # Python values from tolist(): iterating numpy arrays yields slow numpy scalars
        columns = [tagged.span_text.tolist(), tagged.span_type.tolist(),
                   tagged.span_start.tolist(), tagged.span_end.tolist()]
        if tagged.span_score is None:
            for index, type_id, start, end in zip(*columns):
                results[index].append(Entity(types[type_id], start, end,
                                             texts[index][start:end]))
        else:
            scores = np.round(tagged.span_score, SCORE_DECIMALS).tolist()
            for index, type_id, start, end, score in zip(*columns, scores):
                results[index].append(Entity(types[type_id], start, end,
                                             texts[index][start:end], score))
        return results


class ModelError(Exception):
    """No usable tagger model: the message is one line for the user."""


def model_path(requested: Path | None) -> Path:
    """--model, else the default model; ModelError naming what to do when there is none."""
    model = requested or default_model_path()
    if model is None:
        raise ModelError("no model: pass --model PATH.onnx (export one with python -m "
                         "export.to_onnx)")
    return Path(model)


def load_tagger(requested: Path | None, device: str = "cpu", threads: int | None = None,
                words: Path | None = None, force_words: Path | None = None) -> Tagger:
    """The tagger of --model (or the default model) for a command: ModelError for a missing
    or unusable model, DataError (FILE:LINE) for a bad word list, DeviceError for a device."""
    model = model_path(requested)
    try:
        return Tagger.load(model, device, threads, words, force_words)
    except (FileNotFoundError, ValueError) as error:
        raise ModelError(str(error)) from None


def checked_model_path(requested: Path | None, words: Path | None = None,
                       force_words: Path | None = None) -> Path:
    """model_path, loaded once (with the word lists) to prove it is a usable tagger, for the
    commands that load it again elsewhere (a server's worker thread, Ray actors)."""
    load_tagger(requested, "cpu", 1, words, force_words)
    return model_path(requested)


def default_model_path() -> Path | None:
    """$NER_MODEL, else the newest models/*.onnx that is not a quantized variant."""
    if os.environ.get("NER_MODEL"):
        return Path(os.environ["NER_MODEL"])
    candidates = [p for p in Path("models").glob("*.onnx") if ".int8." not in p.name]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None
