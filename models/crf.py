"""Linear-chain CRF in plain TF ops, with the meaning of `tfa.text.crf_log_likelihood`.

`transitions[i, j]` scores tag i followed by tag j; there are no start or end scores. A
sequence of length 0 has log-likelihood 0. Decoding is numpy (`data.decoding.viterbi`), re-exported here.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from data.decoding.viterbi import viterbi_decode  # noqa: F401  (the decode half of this CRF)


def crf_sequence_score(emissions, tag_ids, sequence_lengths, transitions):
    """Unnormalised score of the given tag paths: emissions along the path plus transitions."""
    tag_ids = tf.cast(tag_ids, tf.int32)
    time = tf.shape(emissions)[1]
    mask = tf.sequence_mask(sequence_lengths, time, dtype=emissions.dtype)
    unary = tf.gather(emissions, tag_ids, batch_dims=2)
    unary = tf.reduce_sum(unary * mask, axis=1)
    pair_scores = tf.gather_nd(transitions, tf.stack([tag_ids[:, :-1], tag_ids[:, 1:]], axis=-1))
    binary = tf.reduce_sum(pair_scores * mask[:, 1:], axis=1)
    return unary + binary


def crf_log_norm(emissions, sequence_lengths, transitions):
    """log of the sum of exp(score) over all tag paths: the forward algorithm, masked by length."""
    sequence_lengths = tf.cast(sequence_lengths, tf.int32)
    first = emissions[:, 0, :]
    rest = tf.transpose(emissions[:, 1:, :], [1, 0, 2])
    steps = tf.range(1, tf.shape(emissions)[1])

    def forward(alphas, step):
        emission_t, t = step
        scores = tf.reduce_logsumexp(alphas[:, :, None] + transitions[None, :, :], axis=1)
        active = (t < sequence_lengths)[:, None]
        return tf.where(active, scores + emission_t, alphas)

    alphas = tf.scan(forward, (rest, steps), initializer=first)
    final = tf.cond(tf.shape(rest)[0] > 0, lambda: alphas[-1], lambda: first)
    log_norm = tf.reduce_logsumexp(final, axis=1)
    return tf.where(sequence_lengths > 0, log_norm, tf.zeros_like(log_norm))


def crf_log_marginals(emissions, sequence_lengths, transitions):
    """log P(tag at t is k) [batch, time, tags] by forward-backward (0 past each length):
    differentiable, for distillation onto a teacher's marginals (data/decoding/marginals.py, the numpy
    twin, is checked against enumerating every path; this against it)."""
    sequence_lengths = tf.cast(sequence_lengths, tf.int32)
    transitions = tf.cast(transitions, emissions.dtype)
    time = tf.shape(emissions)[1]
    first = emissions[:, 0, :]
    rest = tf.transpose(emissions[:, 1:, :], [1, 0, 2])

    def forward(alphas, step):
        emission_t, t = step
        scores = tf.reduce_logsumexp(alphas[:, :, None] + transitions[None, :, :], axis=1)
        return tf.where((t < sequence_lengths)[:, None], scores + emission_t, alphas)

    def backward(betas, step):
        emission_next, t = step  # emissions at t + 1, producing beta at t
        scores = tf.reduce_logsumexp(transitions[None, :, :] + (emission_next + betas)[:, None, :],
                                     axis=2)
        return tf.where((t + 1 < sequence_lengths)[:, None], scores, tf.zeros_like(scores))

    steps = tf.range(1, time)
    alphas = tf.concat([first[None], tf.scan(forward, (rest, steps), initializer=first)], 0)
    zeros = tf.zeros_like(first)
    betas = tf.concat([tf.scan(backward, (rest, steps - 1), initializer=zeros, reverse=True),
                       zeros[None]], 0)
    log_norm = crf_log_norm(emissions, sequence_lengths, transitions)
    log_marginals = tf.transpose(alphas + betas, [1, 0, 2]) - log_norm[:, None, None]
    valid = tf.sequence_mask(sequence_lengths, time)[:, :, None]
    return tf.where(valid, log_marginals, tf.zeros_like(log_marginals))


def crf_log_likelihood(emissions, tag_ids, sequence_lengths, transitions):
    """Log-likelihood of each tag path [batch]; `-mean` of it is the training loss."""
    sequence_lengths = tf.cast(sequence_lengths, tf.int32)
    transitions = tf.cast(transitions, emissions.dtype)
    score = crf_sequence_score(emissions, tag_ids, sequence_lengths, transitions)
    score = tf.where(sequence_lengths > 0, score, tf.zeros_like(score))
    return score - crf_log_norm(emissions, sequence_lengths, transitions)


@keras.saving.register_keras_serializable(package="ner")
class CRF(keras.layers.Layer):
    """Holds the transition matrix; passes emissions through unchanged."""

    def __init__(self, num_tags: int, **kwargs):
        super().__init__(**kwargs)
        self.num_tags = num_tags
        self.supports_masking = True

    def build(self, input_shape):
        self.transitions = self.add_weight(
            name="transitions", shape=(self.num_tags, self.num_tags),
            initializer=keras.initializers.GlorotUniform(), trainable=True)

    def call(self, emissions):
        return emissions

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_tags": self.num_tags}
