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
