"""Entity-level scores: seqeval (micro average) on BMES tags converted to BIO."""
from __future__ import annotations

from data.tags import bmes_to_bio


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
    lines = [f"{'type':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    rows = list(scores["per_type"].items()) + [("micro avg", scores["micro"])]
    for name, row in rows:
        lines.append(f"{name:<10}{row['precision']:>10.4f}{row['recall']:>10.4f}"
                     f"{row['f1']:>10.4f}{row['support']:>10d}")
    return "\n".join(lines)
