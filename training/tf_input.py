"""The tf.data input pipeline for training (imported by training only: it pulls in TensorFlow).

Batches are cut from length-sorted windows, so sentences of similar length go together and
padding is small; the batch order is then shuffled. Every random choice derives from
(seed, epoch), so epoch k has the same batches whether or not training was resumed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from data.encoding.inputs import BIGRAM_IDS, CHAR_IDS, InputEncoder
from data.corpus.formats import Sentence
from data.corpus.tags import OUTSIDE, split_tag
from data.encoding.vocab import PAD_ID, UNK_ID, TagVocab

SORT_WINDOW_BATCHES = 50  # sort by length within windows of this many batches


@dataclass
class EncodedCorpus:
    inputs: dict[str, list[np.ndarray]]  # input name -> one array per sentence
    tag_ids: list[np.ndarray]
    texts: list[str] = field(default_factory=list)
    # distillation: the teacher's tag marginals per sentence, float32 [length, tags]
    soft_targets: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.tag_ids)

    @property
    def char_ids(self) -> list[np.ndarray]:
        return self.inputs[CHAR_IDS]


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


def encode_corpus(sentences: list[Sentence], encoder: InputEncoder, tags: TagVocab,
                  max_len: int | None = None) -> EncodedCorpus:
    """Each sentence encoded as serve encodes a text (the same InputEncoder)."""
    if max_len:
        sentences = [chunk for sentence in sentences for chunk in split_long(sentence, max_len)]
    sentences = [s for s in sentences if s.text]
    texts = [s.text for s in sentences]
    return EncodedCorpus(inputs=encoder.encode_each(texts),
                         tag_ids=[tags.encode(s.tags) for s in sentences], texts=texts)


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
    """[len(arrays), longest, ...] with 0 past each array's end."""
    width = max(len(a) for a in arrays)
    padded = np.full((len(arrays), width) + arrays[0].shape[1:], PAD_ID, dtype=arrays[0].dtype)
    for row, array in enumerate(arrays):
        padded[row, :len(array)] = array
    return padded


def batch_arrays(corpus: EncodedCorpus, indices: np.ndarray, unk_rng=None,
                 unk_rate: float = 0.0) -> tuple[dict, np.ndarray]:
    """One padded batch; with unk_rate, that share of char and bigram ids become <unk>
    (word dropout)."""
    inputs, tags, _ = batch_with_drops(corpus, indices, unk_rng, unk_rate)
    return inputs, tags


def batch_with_drops(corpus: EncodedCorpus, indices: np.ndarray, unk_rng=None,
                     unk_rate: float = 0.0) -> tuple[dict, np.ndarray, dict[str, np.ndarray]]:
    """batch_arrays, and where it put <unk>: input name -> [batch, width] bool (no entry
    without unk_rate)."""
    inputs = {name: pad([arrays[i] for i in indices]) for name, arrays in corpus.inputs.items()}
    drops = {}
    if unk_rate > 0:
        for name in (CHAR_IDS, BIGRAM_IDS):
            if name in inputs:
                ids = inputs[name]
                drops[name] = (unk_rng.random(ids.shape) < unk_rate) & (ids != PAD_ID)
                ids[drops[name]] = UNK_ID
    return inputs, pad([corpus.tag_ids[i] for i in indices]), drops


def passes_per_epoch(sentences: int, batch_size: int, epoch_min_steps: int) -> int:
    """Passes over the training data that make one epoch: enough for epoch_min_steps steps.

    A small training set is passed over several times per epoch, so that an epoch (and with it
    patience, the learning-rate decay and the cost of scoring dev) means about the same amount
    of training whatever the data size. MSRA (1,493 steps a pass) keeps one pass an epoch."""
    steps_per_pass = max(1, -(-sentences // batch_size))
    return max(1, -(-epoch_min_steps // steps_per_pass))


def training_dataset(corpus: EncodedCorpus, batch_size: int, seed: int, epoch: int,
                     unk_rate: float = 0.0, passes: int = 1,
                     view_targets=None) -> tuple[tf.data.Dataset, int]:
    """One epoch (`passes` passes over the data) of padded batches as a tf.data pipeline.

    The batches are padded in numpy up front and laid end to end in flat arrays that the
    pipeline only slices and reshapes: no Python runs inside tf.data (a `from_generator`
    pipeline runs Python on TensorFlow's threads, and Ctrl-C then hangs the process).
    Distillation: the soft targets are corpus.soft_targets, or with view_targets
    (indices, drops) -> [batch, width, tags], computed per batch on the very text the student
    sees, with the same ids turned <unk>.
    """
    lengths = np.array([len(ids) for ids in corpus.char_ids])
    batches = [batch for step in range(passes)
               for batch in epoch_batches(lengths, batch_size, seed, epoch * passes + step)]
    unk_rng = np.random.default_rng([seed, epoch, 1])
    padded = [batch_with_drops(corpus, indices, unk_rng, unk_rate) for indices in batches]
    shapes = np.array([tags.shape for _, tags, _ in padded], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])[:-1]])
    flat_tags = tf.constant(np.concatenate([tags.ravel() for _, tags, _ in padded]))
    flat_soft = None
    if view_targets or corpus.soft_targets is not None:  # distillation: (tags, marginals)
        soft = ([view_targets(indices, drops) for indices, (_, _, drops) in zip(batches, padded)]
                if view_targets else
                [pad([corpus.soft_targets[i] for i in indices]) for indices in batches])
        flat_soft = tf.constant(np.concatenate([targets.ravel() for targets in soft]))
        num_tags = soft[0].shape[2]
    flat_inputs = {name: tf.constant(np.concatenate([batch[0][name].ravel() for batch in padded]))
                   for name in padded[0][0]}
    # values per character of each input: None for ids, the feature width for lexicon inputs
    widths = {name: (padded[0][0][name].shape[2] if padded[0][0][name].ndim == 3 else None)
              for name in flat_inputs}

    def cut(offset, shape):
        def take(flat, width=None):
            if width is None:
                return tf.reshape(flat[offset:offset + shape[0] * shape[1]], shape)
            values = flat[offset * width:(offset + shape[0] * shape[1]) * width]
            return tf.reshape(values, tf.concat([shape, [width]], 0))
        inputs = {name: take(flat, widths[name]) for name, flat in flat_inputs.items()}
        if flat_soft is None:
            return inputs, take(flat_tags)
        return inputs, (take(flat_tags), take(flat_soft, num_tags))

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
