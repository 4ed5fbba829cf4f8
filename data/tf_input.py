"""The tf.data input pipeline for training (imported by training only: it pulls in TensorFlow).

Batches are cut from length-sorted windows, so sentences of similar length go together and
padding is small; the batch order is then shuffled. Every random choice derives from
(seed, epoch), so epoch k has the same batches whether or not training was resumed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from data.formats import Sentence
from data.tags import OUTSIDE, split_tag
from data.vocab import PAD_ID, UNK_ID, BigramVocab, CharVocab, TagVocab

SORT_WINDOW_BATCHES = 50  # sort by length within windows of this many batches


@dataclass
class EncodedCorpus:
    char_ids: list[np.ndarray]
    bigram_ids: list[np.ndarray] | None
    tag_ids: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.char_ids)


def split_long(sentence: Sentence, max_len: int) -> list[Sentence]:
    """Chunks of at most max_len characters, cut where no entity is open whenever possible."""
    chunks, start = [], 0
    text, tags = sentence.text, sentence.tags
    while len(text) - start > max_len:
        cut = start + max_len
        for candidate in range(start + max_len, start, -1):
            if split_tag(tags[candidate])[0] in ("B", "S", OUTSIDE):
                cut = candidate
                break
        chunks.append(Sentence(text[start:cut], tags[start:cut], sentence.line + start))
        start = cut
    chunks.append(Sentence(text[start:], tags[start:], sentence.line + start))
    return chunks


def encode_corpus(sentences: list[Sentence], chars: CharVocab, tags: TagVocab,
                  bigrams: BigramVocab | None, max_len: int | None = None) -> EncodedCorpus:
    if max_len:
        sentences = [chunk for sentence in sentences for chunk in split_long(sentence, max_len)]
    sentences = [s for s in sentences if s.text]
    return EncodedCorpus(
        char_ids=[chars.encode(s.text) for s in sentences],
        bigram_ids=[bigrams.encode(s.text) for s in sentences] if bigrams else None,
        tag_ids=[tags.encode(s.tags) for s in sentences])


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Index arrays, one per batch: shuffled, length-sorted within windows, batches shuffled."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    window = batch_size * SORT_WINDOW_BATCHES
    batches = []
    for begin in range(0, len(order), window):
        chunk = order[begin:begin + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def pad(arrays: list[np.ndarray]) -> np.ndarray:
    width = max(len(a) for a in arrays)
    padded = np.full((len(arrays), width), PAD_ID, dtype=np.int32)
    for row, array in enumerate(arrays):
        padded[row, :len(array)] = array
    return padded


def batch_arrays(corpus: EncodedCorpus, indices: np.ndarray, unk_rng=None,
                 unk_rate: float = 0.0) -> tuple[dict, np.ndarray]:
    """One padded batch; with unk_rate, that share of input ids become <unk> (word dropout)."""
    inputs = {"char_ids": pad([corpus.char_ids[i] for i in indices])}
    if corpus.bigram_ids is not None:
        inputs["bigram_ids"] = pad([corpus.bigram_ids[i] for i in indices])
    if unk_rate > 0:
        for name, ids in inputs.items():
            drop = (unk_rng.random(ids.shape) < unk_rate) & (ids != PAD_ID)
            ids[drop] = UNK_ID
    return inputs, pad([corpus.tag_ids[i] for i in indices])


def training_dataset(corpus: EncodedCorpus, batch_size: int, seed: int, epoch: int,
                     unk_rate: float = 0.0) -> tuple[tf.data.Dataset, int]:
    """One epoch of padded batches as a tf.data pipeline.

    The batches are padded in numpy up front and laid end to end in flat arrays that the
    pipeline only slices and reshapes: no Python runs inside tf.data (a `from_generator`
    pipeline runs Python on TensorFlow's threads, and Ctrl-C then hangs the process).
    """
    lengths = np.array([len(ids) for ids in corpus.char_ids])
    batches = epoch_batches(lengths, batch_size, seed, epoch)
    unk_rng = np.random.default_rng([seed, epoch, 1])
    padded = [batch_arrays(corpus, indices, unk_rng, unk_rate) for indices in batches]
    shapes = np.array([tags.shape for _, tags in padded], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])[:-1]])
    flat_tags = tf.constant(np.concatenate([tags.ravel() for _, tags in padded]))
    flat_inputs = {name: tf.constant(np.concatenate([inputs[name].ravel() for inputs, _ in padded]))
                   for name in padded[0][0]}

    def cut(offset, shape):
        def take(flat):
            return tf.reshape(flat[offset:offset + shape[0] * shape[1]], shape)
        return {name: take(flat) for name, flat in flat_inputs.items()}, take(flat_tags)

    dataset = tf.data.Dataset.from_tensor_slices((offsets, shapes)).map(cut)
    return dataset.prefetch(4), len(batches)


def inference_batches(corpus: EncodedCorpus, batch_size: int):
    """(indices, inputs) in length order, for fast evaluation; callers restore the order."""
    lengths = np.array([len(ids) for ids in corpus.char_ids])
    order = np.argsort(lengths, kind="stable")
    for begin in range(0, len(order), batch_size):
        indices = order[begin:begin + batch_size]
        inputs, _ = batch_arrays(corpus, indices)
        yield indices, inputs
