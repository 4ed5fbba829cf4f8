"""The deployed tagger: ONNX Runtime emissions, numpy Viterbi, entity spans.

Needs onnxruntime and numpy only (plus `data`'s numpy-only formats); never TensorFlow.
Everything it needs (vocabularies, tags, max length) is read from the .onnx file's metadata.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.encoding import encoder_from_metadata
from data.pieces import piece_bounds, split_points  # noqa: F401  (split_points: public here too)
from data.tags import TagCodes, spans_of_ids
from data.viterbi import viterbi_decode, viterbi_path
from serve.providers import choose_providers

DEFAULT_BATCH_SIZE = 64
# Viterbi decodes this many model batches at once: numpy's per-step cost is then spread over
# more sequences (wide-batch Viterbi: 0.79 us/char at 64 sequences, 0.45 at 256).
DECODE_BATCHES = 4


@dataclass(frozen=True)
class Entity:
    type: str
    start: int  # character offset into the input text, inclusive
    end: int  # exclusive
    text: str

    def to_dict(self) -> dict:
        return {"type": self.type, "start": self.start, "end": self.end, "text": self.text}


class Tagger:
    def __init__(self, session, metadata: dict[str, str], notice: str | None = None):
        self.session = session
        self.notice = notice
        self.tags = json.loads(metadata["ner.tags"])
        self.encoder = encoder_from_metadata(metadata)
        self.max_len = int(metadata.get("ner.max_len", 200))
        self.metadata = metadata
        self.transitions = session.run(["transitions"], self._encode_batch(["。"]))[0]
        self.transitions = self.transitions.astype(np.float32)
        self.codes = TagCodes(self.tags)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", threads: int | None = None) -> "Tagger":
        """device: "cpu", "cuda" (error if unavailable) or "auto" (CUDA if present, else CPU).

        threads: ONNX Runtime intra-op threads (default: one per CPU; on the 2-core machine
        two threads tagged 1.6x faster than one, see README "Performance").
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
        try:
            return cls(session, metadata, notice)
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f"{path}: its tagger metadata is damaged ({error})") from None

    # -- the hot path ---------------------------------------------------------------------
    def tag_flat(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Tag ids of all texts concatenated in input order, and each text's length.

        Texts longer than max_len are tagged as pieces (see split_points); pieces of similar
        length share a batch. No work per character happens in Python.
        """
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        if len(texts) == 1 and 0 < lengths[0] <= self.max_len:
            return self._tag_one(texts[0]), lengths
        pieces, piece_lengths = texts, lengths
        if len(texts) and lengths.max() > self.max_len:
            pieces = [text[start:end] for text in texts
                      for start, end in piece_bounds(text, self.max_len)]
            piece_lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        # Pieces are consecutive stretches of the concatenated texts: their offsets there.
        piece_offsets = np.cumsum(piece_lengths) - piece_lengths
        flat = np.zeros(int(lengths.sum()), dtype=np.int32)
        order = np.argsort(piece_lengths, kind="stable")
        order = order[piece_lengths[order] > 0]
        group_size = batch_size * DECODE_BATCHES
        for begin in range(0, len(order), group_size):
            group = order[begin:begin + group_size]
            group_lengths = piece_lengths[group]
            emissions = self._emissions(pieces, group, group_lengths, batch_size)
            tag_ids, _ = viterbi_decode(emissions, self.transitions, group_lengths)
            valid = np.arange(tag_ids.shape[1])[None, :] < group_lengths[:, None]
            positions = piece_offsets[group][:, None] + np.arange(tag_ids.shape[1])[None, :]
            flat[positions[valid]] = tag_ids[valid]
        return flat, lengths

    def _tag_one(self, text: str) -> np.ndarray:
        """One text that fits the model: one call, no sorting or regrouping. Single-request
        latency: p50 1.32-1.36 against 1.41-1.45 ms through the batch path for 50 characters,
        measured interleaved; the same tags as in a batch, tested."""
        inputs = self._encode_batch([text])
        emissions = self.session.run(["emissions"], inputs)[0][0]
        return np.array(viterbi_path(emissions, self.transitions)[0], dtype=np.int32)

    def _emissions(self, pieces: list[str], group: np.ndarray, group_lengths: np.ndarray,
                   batch_size: int) -> np.ndarray:
        """Emissions [len(group), longest, tags] of length-sorted pieces, run batch by batch."""
        emissions = np.zeros((len(group), int(group_lengths.max()), len(self.tags)), np.float32)
        batches = self.encoder.encode_batches([pieces[i] for i in group], batch_size)
        for begin, inputs in zip(range(0, len(group), batch_size), batches):
            batch_emissions = self.session.run(["emissions"], inputs)[0]
            emissions[begin:begin + len(batch_emissions), :batch_emissions.shape[1]] = \
                batch_emissions
        return emissions

    def _encode_batch(self, texts: list[str]) -> dict[str, np.ndarray]:
        return self.encoder.encode_padded(texts)

    # -- public results -------------------------------------------------------------------
    def tag_ids(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> list[np.ndarray]:
        """One tag id per character of each text, texts of any length, in input order."""
        flat, lengths = self.tag_flat(texts, batch_size)
        return np.split(flat, np.cumsum(lengths)[:-1]) if len(texts) else []

    def tag_bmeo(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> list[list[str]]:
        names = np.array(self.tags, dtype=object)
        return [names[ids].tolist() for ids in self.tag_ids(texts, batch_size)]

    def tag(self, texts: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> list[list[Entity]]:
        flat, lengths = self.tag_flat(texts, batch_size)
        return self.entities(texts, flat, lengths)

    def entities(self, texts: list[str], flat: np.ndarray, lengths: np.ndarray
                 ) -> list[list[Entity]]:
        results: list[list[Entity]] = [[] for _ in texts]
        types = self.codes.types
        # Python ints from tolist(): iterating numpy arrays yields slow numpy scalars
        spans = (column.tolist() for column in spans_of_ids(self.codes, flat, lengths))
        for index, type_id, start, end in zip(*spans):
            results[index].append(Entity(types[type_id], start, end, texts[index][start:end]))
        return results


class ModelError(Exception):
    """No usable tagger model: the message is one line for the user."""


def checked_model_path(requested: Path | None) -> Path:
    """--model (or the default model), loaded once to prove it is a tagger, for the commands
    that load it again elsewhere (a server's worker thread, Ray actors): ModelError if not."""
    model = requested or default_model_path()
    if model is None:
        raise ModelError("no model: pass --model PATH.onnx (export one with python -m "
                         "export.to_onnx)")
    try:
        Tagger.load(model, "cpu", 1)
    except (FileNotFoundError, ValueError) as error:
        raise ModelError(str(error)) from None
    return Path(model)


def default_model_path() -> Path | None:
    """$NER_MODEL, else the newest models/*.onnx that is not a quantized variant."""
    if os.environ.get("NER_MODEL"):
        return Path(os.environ["NER_MODEL"])
    candidates = [p for p in Path("models").glob("*.onnx") if ".int8." not in p.name]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None
