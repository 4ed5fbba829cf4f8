"""Per-character tag marginals of the linear-chain CRF, by forward-backward in log space.

The CRF is ours (models/crf.py): `transitions[i, j]` scores tag i followed by tag j, no start
or end scores. marginals[b, t, k] = P(tag at t is k | sequence b) for t < lengths[b], 0 after.
numpy only: the teacher's soft targets in distillation come from its ONNX emissions.
Proven against enumerating every tag path (tests/test_crf.py).
"""
from __future__ import annotations

import numpy as np


def _logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    peak = values.max(axis=axis, keepdims=True)
    return np.squeeze(peak, axis) + np.log(np.exp(values - peak).sum(axis=axis))


def crf_marginals(emissions: np.ndarray, transitions: np.ndarray,
                  lengths: np.ndarray) -> np.ndarray:
    """[batch, time, tags] marginals (float64 inside, float32 out)."""
    emissions = np.asarray(emissions, dtype=np.float64)
    transitions = np.asarray(transitions, dtype=np.float64)
    lengths = np.asarray(lengths)
    batch, time, tags = emissions.shape
    alphas = np.zeros_like(emissions)
    betas = np.zeros_like(emissions)
    if time == 0:
        return np.zeros((batch, 0, tags), dtype=np.float32)
    alphas[:, 0] = emissions[:, 0]
    for t in range(1, time):
        step = _logsumexp(alphas[:, t - 1, :, None] + transitions[None], axis=1) + emissions[:, t]
        alphas[:, t] = np.where((t < lengths)[:, None], step, alphas[:, t - 1])
    # beta[t] = log-sum over continuations after t; 0 at each sequence's last position
    for t in range(time - 2, -1, -1):
        step = _logsumexp(transitions[None] + (emissions[:, t + 1] + betas[:, t + 1])[:, None, :],
                          axis=2)
        betas[:, t] = np.where((t + 1 < lengths)[:, None], step, 0.0)
    last = np.clip(lengths - 1, 0, time - 1)
    log_norm = _logsumexp(alphas[np.arange(batch), last], axis=1)
    marginals = np.exp(alphas + betas - log_norm[:, None, None])
    marginals[np.arange(time)[None, :] >= lengths[:, None]] = 0.0
    return marginals.astype(np.float32)


# -- entity (span) probabilities -----------------------------------------------------------
class SpanTerms:
    """Per-position log terms from which the probability of any stretch of a decoded path is
    a sum: log P(tags[s:e] = path[s:e]) = start[s] + sum(step[s+1:e]) + end[e-1].

    Computed by a scaled forward-backward (each step's forward vector normalised to sum 1,
    its log kept), so everything stays in float64 without logsumexp: start[t] is log of the
    normalised forward value of the path's tag at t, end[t] the log of the matching backward
    value, step[t] the log of the transition and emission into the path's tag at t over that
    step's normaliser. step[0] of a sequence is its start[0], so sums may run over sequences
    given one after the other (pieces of a long text multiply, as independent CRFs do)."""

    def __init__(self, start: np.ndarray, step: np.ndarray, end: np.ndarray):
        self.start, self.step, self.end = start, step, end


def span_terms(emissions: np.ndarray, transitions: np.ndarray, lengths: np.ndarray,
               tag_ids: np.ndarray, temperature: float = 1.0,
               dtype=np.float32) -> SpanTerms:
    """SpanTerms [batch, time] (float64) of the paths tag_ids [batch, time] (values past each
    length are meaningless). temperature divides emissions and transitions (the Viterbi path
    is unchanged; the probabilities soften for > 1). The recursions run in `dtype` with the
    batch innermost ([time, tags, batch]: each step is one small matrix product); every
    forward vector is normalised, so float32 neither overflows nor underflows on the path."""
    lengths = np.asarray(lengths)
    batch, time, _ = emissions.shape
    transitions = np.asarray(transitions, dtype=np.float64) / temperature
    # [time, tags, batch]: a max over tags then runs along contiguous rows of the batch
    scaled = np.asarray(emissions, dtype=dtype).transpose(1, 2, 0) * dtype(1.0 / temperature)
    peaks = scaled.max(axis=1)  # [time, batch]
    scaled -= peaks[:, None, :]
    np.exp(scaled, out=scaled)
    transition_peak = transitions.max()
    weights_to_from = np.exp(transitions - transition_peak).T.astype(dtype)  # [to, from]
    forward = np.empty_like(scaled)
    norms = np.empty((time, batch), dtype=dtype)
    step = scaled[0]
    for t in range(time):
        if t:
            step = (weights_to_from @ forward[t - 1]) * scaled[t]
        norms[t] = step.sum(axis=0)
        np.divide(step, norms[t], out=forward[t])
    backward = np.ones_like(scaled)
    weights_from_to = np.ascontiguousarray(weights_to_from.T)
    all_active_until = int(lengths.min()) if batch else 0
    for t in range(time - 2, -1, -1):
        step = (weights_from_to @ (scaled[t + 1] * backward[t + 1])) / norms[t + 1]
        if t + 1 >= all_active_until:  # past a sequence's end its backward value stays 1
            step = np.where((t + 1 < lengths)[None, :], step, 1.0)
        backward[t] = step
    steps, rows = np.arange(time)[None, :], np.arange(batch)[:, None]
    with np.errstate(divide="ignore"):
        start = np.log(forward[steps, tag_ids, rows].astype(np.float64))
        end = np.log(backward[steps, tag_ids, rows].astype(np.float64))
        previous = np.concatenate([tag_ids[:, :1], tag_ids[:, :-1]], axis=1)
        path_emissions = np.asarray(emissions)[rows, steps, tag_ids].astype(np.float64)
        step_terms = (transitions[previous, tag_ids] - transition_peak
                      + path_emissions / temperature - peaks.T.astype(np.float64)
                      - np.log(norms.T.astype(np.float64)))
    step_terms[:, 0] = start[:, 0]
    return SpanTerms(start, step_terms, end)


def span_log_probabilities(terms: SpanTerms, starts: np.ndarray,
                           ends: np.ndarray) -> np.ndarray:
    """log P of each span [starts[i], ends[i]) of flat (1-D, sequences one after another)
    terms (at most 0: rounding can otherwise push a sure span a hair above)."""
    cumulative = np.cumsum(terms.step)
    log_p = terms.start[starts] + cumulative[ends - 1] - cumulative[starts] + terms.end[ends - 1]
    return np.minimum(log_p, 0.0)


def span_probabilities(terms: SpanTerms, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    return np.exp(span_log_probabilities(terms, starts, ends))


def max_marginal_means(emissions: np.ndarray, transitions: np.ndarray, lengths: np.ndarray,
                       spans: list[tuple[int, int, int]]) -> np.ndarray:
    """The common heuristic confidence of spans (sequence, start, end): the mean over the span
    of each character's highest tag marginal."""
    best = crf_marginals(emissions, transitions, lengths).max(axis=2)
    return np.array([best[b, start:end].mean() for b, start, end in spans], dtype=np.float64)
