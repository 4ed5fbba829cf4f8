"""How far entity scores can be trusted: calibration and ranking of predicted entities.

Each predicted entity is correct when gold holds the same type, start and end. Reported for
the tagger's scores and, beside them, for the common heuristic (the mean over the span of
each character's highest tag marginal): expected calibration error over equal-width bins,
the average precision of ranking the predictions by score, and the reliability curve.
"""
from __future__ import annotations

import numpy as np

from data.decoding.marginals import crf_marginals
from data.encoding.pieces import piece_bounds
from data.corpus.tags import entity_spans

BINS = 10


def expected_calibration_error(scores: np.ndarray, correct: np.ndarray,
                               bins: int = BINS) -> float:
    """Sum over equal-width score bins of |accuracy - mean score| x the bin's share."""
    if scores.size == 0:
        return 0.0
    which = np.minimum((scores * bins).astype(np.int64), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += abs(correct[inside].mean() - scores[inside].mean()) * inside.mean()
    return float(error)


def average_precision(scores: np.ndarray, correct: np.ndarray) -> float:
    """Mean over the correct predictions of the precision down to each, best score first
    (ties in score keep their input order)."""
    if not correct.any():
        return 0.0
    ranked = correct[np.argsort(-scores, kind="stable")].astype(np.float64)
    precision_at = np.cumsum(ranked) / np.arange(1, ranked.size + 1)
    return float((precision_at * ranked).sum() / ranked.sum())


def reliability(scores: np.ndarray, correct: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per non-empty bin: its range, how many predictions, their mean score and accuracy."""
    which = np.minimum((scores * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            rows.append({"low": b / bins, "high": (b + 1) / bins, "count": int(inside.sum()),
                         "mean_score": float(scores[inside].mean()),
                         "accuracy": float(correct[inside].mean())})
    return rows


def max_marginal_scores(tagger, texts: list[str], spans) -> np.ndarray:
    """The heuristic score of each span (text index, start, end): the mean over its
    characters of their highest CRF tag marginal (texts longer than the model's maximum are
    taken in the same pieces the tagger uses)."""
    best = []
    for text in texts:
        parts = []
        for start, end in piece_bounds(text, tagger.max_len):
            if end > start:
                emissions = tagger.emissions([text[start:end]])
                parts.append(crf_marginals(emissions, tagger.transitions,
                                           np.array([end - start]))[0].max(axis=1))
        best.append(np.concatenate(parts) if parts else np.zeros(0, np.float32))
    return np.array([best[i][start:end].mean() for i, start, end in spans], dtype=np.float64)


def calibration_report(tagger, texts: list[str], gold_tags: list[list[str]]) -> dict:
    tagged = tagger.tag_batch(texts)
    gold = {(i, span.type, span.start, span.end)
            for i, tags in enumerate(gold_tags) for span in entity_spans(tags)}
    types = tagger.codes.types
    predicted = list(zip(tagged.span_text.tolist(), tagged.span_type.tolist(),
                         tagged.span_start.tolist(), tagged.span_end.tolist()))
    correct = np.array([(i, types[t], s, e) in gold for i, t, s, e in predicted], dtype=bool)
    heuristic = max_marginal_scores(tagger, texts, [(i, s, e) for i, _, s, e in predicted])
    report = {"predicted": len(predicted), "correct": int(correct.sum()), "gold": len(gold),
              "temperature": tagger.temperature}
    for name, scores in (("entity_score", tagged.span_score), ("max_marginal", heuristic)):
        report[name] = {"ece": expected_calibration_error(scores, correct),
                        "average_precision": average_precision(scores, correct),
                        # the wrong ones, least sure first: what a reviewer looks at
                        "error_average_precision": average_precision(-scores, ~correct),
                        "reliability": reliability(scores, correct)}
    report["precision_recall"] = precision_recall_by_threshold(tagged.span_score, correct,
                                                               len(gold))
    return report


def precision_recall_by_threshold(scores: np.ndarray, correct: np.ndarray, gold: int,
                                  thresholds=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)) -> list:
    """Micro precision, recall and F1 of the entities kept by --min-score P, for each P."""
    rows = []
    for threshold in thresholds:
        kept = scores >= threshold
        found = int(correct[kept].sum())
        precision = found / max(int(kept.sum()), 1)
        recall = found / max(gold, 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        rows.append({"min_score": threshold, "kept": int(kept.sum()), "precision": precision,
                     "recall": recall, "f1": f1})
    return rows


def format_calibration(report: dict) -> str:
    lines = [f"{report['predicted']} predicted entities, {report['correct']} correct, "
             f"{report['gold']} in gold; score temperature {report['temperature']:g}",
             f"{'confidence':<14}{'ECE':>8}{'avg precision':>15}{'errors avg precision':>22}"]
    for name in ("entity_score", "max_marginal"):
        lines.append(f"{name:<14}{report[name]['ece']:>8.4f}"
                     f"{report[name]['average_precision']:>15.4f}"
                     f"{report[name]['error_average_precision']:>22.4f}")
    lines.append(f"{'min_score':<11}{'kept':>7}{'precision':>11}{'recall':>8}{'f1':>8}")
    for row in report["precision_recall"]:
        lines.append(f"{row['min_score']:<11}{row['kept']:>7}{row['precision']:>11.4f}"
                     f"{row['recall']:>8.4f}{row['f1']:>8.4f}")
    return "\n".join(lines)


def plot_reliability(report: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for name, style in (("entity_score", "o-"), ("max_marginal", "s--")):
        rows = report[name]["reliability"]
        axes.plot([r["mean_score"] for r in rows], [r["accuracy"] for r in rows], style,
                  label=f"{name} (ECE {report[name]['ece']:.4f}, "
                        f"AP {report[name]['average_precision']:.4f}, errors AP "
                        f"{report[name]['error_average_precision']:.4f})")
    axes.set_xlabel("confidence (mean in bin)")
    axes.set_ylabel("share of predicted entities that are correct")
    axes.set_title(f"{report['predicted']:,} predicted entities")
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
