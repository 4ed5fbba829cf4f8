"""CRF Viterbi decode in numpy, vectorised over the batch.

It lives in `data` (numpy only) because both training (dev F1 each epoch) and `serve` decode
with it, and `serve` may import nothing that pulls in TensorFlow. Same meaning as
`tfa.text.crf_decode`: `transitions[i, j]` scores tag i followed by tag j; no start/end scores.
"""
from __future__ import annotations

import numpy as np

SMALL_BATCH = 4
# From this batch size on, the batch-innermost layout (below) is faster; for a few sequences
# per-step call overhead rules.
WIDE_BATCH = 16


def viterbi_decode(emissions: np.ndarray, transitions: np.ndarray,
                   sequence_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best tag path per sequence.

    emissions [batch, time, tags], transitions [tags, tags], sequence_lengths [batch].
    Returns tag_ids [batch, time] (0 past each length) and the best path scores [batch].
    """
    emissions = np.asarray(emissions)
    batch, time, _ = emissions.shape
    lengths = np.asarray(sequence_lengths).reshape(batch)
    if time == 0:
        return np.zeros((batch, time), dtype=np.int32), np.zeros(batch, dtype=emissions.dtype)
    if batch == 1:
        path, best_score = viterbi_path(emissions[0, :max(int(lengths[0]), 1)], transitions)
        tag_ids = np.zeros((1, time), dtype=np.int32)
        tag_ids[0, :len(path)] = path
        best_scores = np.array([best_score], dtype=emissions.dtype)
    else:
        decode = _viterbi_batch_innermost if batch >= WIDE_BATCH else _viterbi_tags_innermost
        tag_ids, best_scores = decode(emissions, transitions, lengths)
    tag_ids[np.arange(time)[None, :] >= lengths[:, None]] = 0
    return tag_ids, np.where(lengths > 0, best_scores, 0)


def viterbi_path(emissions: np.ndarray, transitions: np.ndarray) -> tuple[list[int], float]:
    """Best tag path of one sequence, emissions [time >= 1, tags], and its score.

    The single-request latency path: four numpy calls per step instead of the batched
    layouts' eight. Same float additions and first-index tie-breaks as the batched
    layouts, so a text gets the same tags alone as in a batch.
    """
    num_tags = emissions.shape[1]
    transitions_to_from = np.ascontiguousarray(np.asarray(transitions, emissions.dtype).T)
    rows = np.arange(num_tags)
    score = emissions[0]
    backpointers = []
    for emission in emissions[1:]:
        candidates = score + transitions_to_from  # [to, from]
        best_previous = candidates.argmax(axis=1)
        score = candidates[rows, best_previous] + emission
        backpointers.append(best_previous)
    tag = int(score.argmax())
    best_score = float(score[tag])
    path = [tag]
    if backpointers:
        for pointers in np.array(backpointers)[::-1].tolist():
            tag = pointers[tag]
            path.append(tag)
    path.reverse()
    return path, best_score


def _viterbi_tags_innermost(emissions, transitions, lengths):
    batch, time, num_tags = emissions.shape
    tag_ids = np.zeros((batch, time), dtype=np.int32)
    score = emissions[:, 0].copy()
    emissions_by_step = np.ascontiguousarray(emissions.transpose(1, 0, 2))
    backpointers = np.empty((time, batch, num_tags), dtype=np.intp)
    # Past a sequence's end, each tag points back to itself, so backtracking from the last
    # step walks through the padding unchanged and lands on the true last tag.
    stay = np.broadcast_to(np.arange(num_tags), (batch, num_tags))
    # [batch, to, from] layout: argmax along contiguous memory, then the max picked out by
    # index (numpy's max over a 10-odd-long last axis is several times slower than argmax).
    transitions_to_from = np.ascontiguousarray(np.asarray(transitions, emissions.dtype).T)
    candidates = np.empty((batch, num_tags, num_tags), dtype=emissions.dtype)
    flat_candidates = candidates.reshape(-1)
    row_starts = np.arange(batch * num_tags) * num_tags
    all_active_until = int(lengths.min()) if batch else 0  # batches are length-sorted: most steps
    for t in range(1, time):
        np.add(score[:, None, :], transitions_to_from, out=candidates)
        best_previous = candidates.argmax(axis=2)
        new_score = flat_candidates[row_starts + best_previous.reshape(-1)].reshape(batch, num_tags)
        new_score += emissions_by_step[t]
        if t < all_active_until:
            score = new_score
            backpointers[t] = best_previous
        else:
            active = (t < lengths)[:, None]
            score = np.where(active, new_score, score)
            backpointers[t] = np.where(active, best_previous, stay)
    last = score.argmax(axis=1).astype(np.int32)
    best_scores = score[np.arange(batch), last]
    tag_ids[:, time - 1] = last
    if batch <= SMALL_BATCH:
        # Plain lists walk a few sequences back faster than one numpy call per step.
        pointers = backpointers.tolist()
        for row in range(batch):
            tag = int(last[row])
            path = tag_ids[row]
            for t in range(time - 1, 0, -1):
                tag = pointers[t][row][tag]
                path[t - 1] = tag
    else:
        rows = np.arange(batch)
        for t in range(time - 1, 0, -1):
            tag_ids[:, t - 1] = backpointers[t][rows, tag_ids[:, t]]
    return tag_ids, best_scores


def _viterbi_batch_innermost(emissions, transitions, lengths):
    """Keeps every step's scores [tags, batch] instead of backpointers: the forward pass then
    needs a max over the first axis (numpy's fastest reduction, contiguous rows of `batch`)
    rather than an argmax, and backtracking recomputes each step's argmax for the one chosen
    tag only. The recomputed sums are the same float additions, so ties break identically."""
    batch, time, num_tags = emissions.shape
    transitions = np.asarray(transitions, emissions.dtype)
    emissions_by_step = np.ascontiguousarray(emissions.transpose(1, 2, 0))  # [time, tags, batch]
    scores = np.empty((time, num_tags, batch), dtype=emissions.dtype)
    scores[0] = emissions_by_step[0]
    candidates = np.empty((num_tags, num_tags, batch), dtype=emissions.dtype)  # [from, to, batch]
    transitions_column = transitions[:, :, None]
    all_active_until = int(lengths.min())
    for t in range(1, time):
        np.add(scores[t - 1][:, None, :], transitions_column, out=candidates)
        new_score = candidates.max(axis=0)
        new_score += emissions_by_step[t]
        if t < all_active_until:
            scores[t] = new_score
        else:  # past a sequence's end its score is carried unchanged
            scores[t] = np.where((t < lengths)[None, :], new_score, scores[t - 1])
    tag_ids = np.zeros((batch, time), dtype=np.int32)
    tag = scores[time - 1].argmax(axis=0)
    best_scores = scores[time - 1][tag, np.arange(batch)]
    tag_ids[:, time - 1] = tag
    transitions_to_from = np.ascontiguousarray(transitions.T)
    for t in range(time - 1, 0, -1):
        previous = (scores[t - 1].T + transitions_to_from[tag]).argmax(axis=1)
        if t >= all_active_until:  # in the padding the path stays on the last real tag
            previous = np.where(t < lengths, previous, tag)
        tag_ids[:, t - 1] = previous
        tag = previous
    return tag_ids, best_scores
