"""Entity-level scores: seqeval (micro average) on BMES tags converted to BIO, and a paired
bootstrap that says whether one model's F1 is above another's by more than chance."""
from __future__ import annotations

import numpy as np

from data.corpus.tags import bmes_to_bio, entity_spans


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """{"micro": {precision, recall, f1, support}, "per_type": {TYPE: {...}}}."""
    from seqeval.metrics import classification_report  # only evaluation needs seqeval

    gold_bio = [bmes_to_bio(tags) for tags in gold]
    predicted_bio = [bmes_to_bio(tags) for tags in predicted]
    report = classification_report(gold_bio, predicted_bio, output_dict=True, zero_division=0)
    def clean(row):
        return {"precision": float(row["precision"]), "recall": float(row["recall"]),
                "f1": float(row["f1-score"]), "support": int(row["support"])}
    per_type = {name: clean(row) for name, row in report.items() if not name.endswith(" avg")}
    return {"micro": clean(report["micro avg"]), "per_type": per_type}


def format_scores(scores: dict) -> str:
    rows = list(scores["per_type"].items()) + [("micro avg", scores["micro"])]
    text = _score_table("type", rows)
    if "seen_split" in scores:
        text += "\n\n" + _score_table("entities", list(scores["seen_split"].items()))
    return text


def _score_table(heading: str, rows: list[tuple[str, dict]]) -> str:
    lines = [f"{heading:<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, row in rows:
        lines.append(f"{name:<10}{row['precision']:>10.4f}{row['recall']:>10.4f}"
                     f"{row['f1']:>10.4f}{row['support']:>10d}")
    return "\n".join(lines)


def corpus_entities(sentences) -> set[tuple[str, str]]:
    """(type, text) of every entity in tagged sentences: the names a model trained on them saw."""
    return {(span.type, sentence.text[span.start:span.end])
            for sentence in sentences for span in entity_spans(sentence.tags)}


def seen_split_scores(gold: list[list[str]], predicted: list[list[str]], texts: list[str],
                      seen: set[tuple[str, str]]) -> dict:
    """Micro scores of the entities whose (type, text) is in `seen` and of the others
    ({"seen": {precision, recall, f1, support}, "unseen": {...}}): how well a model finds
    names it was trained on against new ones."""
    scores = group_scores(gold, predicted, texts,
                          lambda name: "seen" if name in seen else "unseen")
    return {group: scores.get(group, _scores_of_counts(0, 0, 0))
            for group in ("seen", "unseen")}


def group_scores(gold: list[list[str]], predicted: list[list[str]], texts: list[str],
                 group_of) -> dict:
    """Micro scores per group of entities, group_of((type, text)) naming each one's group.
    Each gold and each predicted entity falls in the group of its own (type, text), so a
    right prediction counts in its gold entity's group; support is the group's gold
    entities."""
    counts: dict[str, np.ndarray] = {}
    for text, gold_tags, predicted_tags in zip(texts, gold, predicted, strict=True):
        gold_spans = set(entity_spans(gold_tags))
        predicted_spans = set(entity_spans(predicted_tags))
        for column, spans in enumerate((gold_spans & predicted_spans, predicted_spans, gold_spans)):
            for span in spans:
                group = group_of((span.type, text[span.start:span.end]))
                counts.setdefault(group, np.zeros(3, np.int64))[column] += 1
    return {group: _scores_of_counts(*map(int, count)) for group, count in counts.items()}


def _scores_of_counts(right: int, predicted: int, gold: int) -> dict:
    precision = right / predicted if predicted else 0.0
    recall = right / gold if gold else 0.0
    f1 = 2 * right / (predicted + gold) if predicted + gold else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": gold}


def entity_counts(gold: list[list[str]], predicted: list[list[str]]) -> np.ndarray:
    """[sentences, 3]: entities right, predicted, and in gold, per sentence (seqeval's
    chunks, so the micro F1 of their sums is entity_scores' micro F1)."""
    from seqeval.metrics.sequence_labeling import get_entities

    counts = np.zeros((len(gold), 3), dtype=np.int64)
    for row, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted, strict=True)):
        gold_entities = set(get_entities(bmes_to_bio(gold_tags)))
        predicted_entities = set(get_entities(bmes_to_bio(predicted_tags)))
        counts[row] = (len(gold_entities & predicted_entities), len(predicted_entities),
                       len(gold_entities))
    return counts


def paired_bootstrap(gold: list[list[str]], predicted_a: list[list[str]],
                     predicted_b: list[list[str]], samples: int = 1000, seed: int = 0) -> dict:
    """Micro F1 of A and B, and B − A over `samples` resamplings of the sentences with
    replacement, the same resampling for both (paired): its 95% interval and the share of
    resamplings where B is better: read a dev gap with it (docs/results.md)."""
    if not len(gold):
        raise ValueError("no sentences to compare on")
    counts_a, counts_b = entity_counts(gold, predicted_a), entity_counts(gold, predicted_b)
    rng = np.random.default_rng(seed)
    resampled_a, resampled_b = np.zeros((samples, 3)), np.zeros((samples, 3))
    for sample in range(samples):
        draw = rng.integers(0, len(gold), size=len(gold))
        resampled_a[sample], resampled_b[sample] = counts_a[draw].sum(0), counts_b[draw].sum(0)
    differences = _micro_f1(resampled_b) - _micro_f1(resampled_a)
    low, high = np.percentile(differences, [2.5, 97.5])
    point_a, point_b = (float(_micro_f1(counts.sum(axis=0, keepdims=True))[0])
                        for counts in (counts_a, counts_b))
    return {"f1_a": point_a, "f1_b": point_b, "difference": point_b - point_a,
            "low": float(low), "high": float(high),
            "b_better_share": float(np.mean(differences > 0)), "samples": samples,
            "sentences": len(gold)}


def _micro_f1(counts: np.ndarray) -> np.ndarray:
    """counts [n, 3] (right, predicted, gold) -> F1 per row; 0 where nothing is predicted
    or in gold (seqeval's zero_division=0)."""
    right, predicted, gold = counts[:, 0], counts[:, 1], counts[:, 2]
    total = predicted + gold
    return np.divide(2.0 * right, total, out=np.zeros(len(counts)), where=total > 0)


def format_comparison(comparison: dict, name_a: str, name_b: str) -> str:
    c = comparison
    return (f"{name_b} − {name_a}: {c['difference']:+.4f} F1 ({c['f1_b']:.4f} against "
            f"{c['f1_a']:.4f}); 95% interval {c['low']:+.4f} to {c['high']:+.4f} over "
            f"{c['samples']:,} paired resamplings of the {c['sentences']:,} sentences; "
            f"{name_b} better in {c['b_better_share']:.0%} of them")
