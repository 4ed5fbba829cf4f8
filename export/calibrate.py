"""A temperature for entity scores, fitted on dev and stored in the ONNX file's metadata.

Dividing emissions and transitions by T leaves the Viterbi path (and so every tag) unchanged
and softens (T > 1) or sharpens (T < 1) the probabilities. T is the value, on a grid, whose
entity scores on the run's dev set have the lowest log loss against whether each predicted
entity is correct (exact type, start and end).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data.encoding.inputs import SCORE_TEMPERATURE_KEY as TEMPERATURE_KEY
from data.decoding.marginals import SpanTerms, span_probabilities, span_terms
from data.corpus.tags import TagCodes, entity_spans, spans_of_ids
from data.decoding.viterbi import viterbi_decode

MIN_ENTITIES = 100  # fewer predicted dev entities than this: no fit, temperature 1
GRID = tuple(np.round(np.arange(0.5, 3.01, 0.05), 2))


def dev_scores(session, corpus, gold_tags: list[list[str]], tags: list[str],
               temperatures) -> tuple:
    """(correct [entities], scores [temperatures, entities]) of the predicted dev entities."""
    from training.tf_input import inference_batches

    codes = TagCodes(tags)
    correct, scores = [], [[] for _ in temperatures]
    for indices, inputs in inference_batches(corpus, 128):
        emissions, transitions = session.run(["emissions", "transitions"], inputs)
        lengths = np.array([len(corpus.char_ids[i]) for i in indices])
        tag_ids, _ = viterbi_decode(emissions, transitions, lengths)
        valid = np.arange(tag_ids.shape[1])[None, :] < lengths[:, None]
        text, kind, starts, ends = spans_of_ids(codes, tag_ids[valid], lengths)
        for row, type_id, start, end in zip(text.tolist(), kind.tolist(), starts.tolist(),
                                            ends.tolist()):
            gold = entity_spans(gold_tags[indices[row]])
            correct.append((codes.types[type_id], start, end) in
                           {(span.type, span.start, span.end) for span in gold})
        offsets = (np.cumsum(lengths) - lengths)[text]
        for column, temperature in enumerate(temperatures):
            terms = span_terms(emissions, transitions, lengths, tag_ids, temperature)
            flat = SpanTerms(terms.start[valid], terms.step[valid], terms.end[valid])
            scores[column].append(span_probabilities(flat, starts + offsets, ends + offsets))
    return np.array(correct), np.array([np.concatenate(column) for column in scores])


def log_loss(scores: np.ndarray, correct: np.ndarray) -> float:
    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
    return float(-np.mean(np.where(correct, np.log(clipped), np.log1p(-clipped))))


def fit_temperature(session, corpus, gold_tags, tags: list[str]) -> tuple[float, dict]:
    """The grid temperature of lowest dev log loss; 1 when dev has too few predicted
    entities (or all right, or all wrong) to say anything."""
    correct, scores = dev_scores(session, corpus, gold_tags, tags, GRID)
    if correct.size < MIN_ENTITIES or correct.all() or not correct.any():
        return 1.0, {"entities": int(correct.size), "log_loss_at_1": float("nan"),
                     "log_loss": float("nan")}
    losses = [log_loss(row, correct) for row in scores]
    best = int(np.argmin(losses))
    return float(GRID[best]), {"entities": int(correct.size), "log_loss_at_1": losses[
        GRID.index(1.0)], "log_loss": losses[best]}


def store_temperature(path: Path, temperature: float) -> None:
    """Write the temperature into an ONNX file's metadata (the file is replaced whole)."""
    import onnx

    from data.files import atomic_path

    model = onnx.load(str(path))
    kept = [entry for entry in model.metadata_props if entry.key != TEMPERATURE_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = TEMPERATURE_KEY, repr(float(temperature))
    with atomic_path(path) as partial:
        onnx.save(model, str(partial))
