"""trials.csv, pareto.png and summary.md of a finished search."""
from __future__ import annotations

import csv
from pathlib import Path

from tuning.search import OBJECTIVE, pareto_front

COLUMNS = ["trial", "layers", "hidden_size", "embedding_dim", "batch_size", "bigrams", "dropout",
           "lr", OBJECTIVE, "parameters", "onnx_mb", "chars_per_s", "trial_chars_per_s", "epochs",
           "train_seconds"]


def write_trials_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_pareto_png(path: Path, rows: list[dict], chosen: dict, best: dict,
                     reference: dict | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = sorted(pareto_front(rows), key=lambda r: r["chars_per_s"])
    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.scatter([r["chars_per_s"] for r in rows], [r[OBJECTIVE] for r in rows], color="#999",
                 label="trials")
    axis.plot([r["chars_per_s"] for r in front], [r[OBJECTIVE] for r in front], "-o",
              color="#4a7ab5", label="Pareto front")
    axis.scatter([best["chars_per_s"]], [best[OBJECTIVE]], s=160, facecolors="none",
                 edgecolors="#333", label=f"best dev F1 (trial {best['trial']})")
    axis.scatter([chosen["chars_per_s"]], [chosen[OBJECTIVE]], marker="*", s=220,
                 color="#d62728", label=f"chosen (trial {chosen['trial']})")
    if reference is not None:
        axis.scatter([reference["chars_per_s"]], [reference[OBJECTIVE]], marker="s", s=90,
                     facecolors="none", edgecolors="#2ca02c",
                     label=f"default configuration (trial {reference['trial']})")
    axis.set_xscale("log")
    axis.set_xlabel("chars/s, ONNX fp32 through serve, 1 thread (log)")
    axis.set_ylabel("dev entity F1")
    axis.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def write_summary(path: Path, rows: list[dict], chosen: dict, best: dict, tolerance: float,
                  chosen_run: Path, reference: dict | None = None) -> None:
    def describe(row):
        return (f"trial {row['trial']}: layers {row['layers']}, hidden {row['hidden_size']}, "
                f"embedding {row['embedding_dim']}, bigrams {'on' if row['bigrams'] else 'off'}, "
                f"batch {row['batch_size']}, dropout {row['dropout']:.1f}, lr {row['lr']:.2g}: "
                f"dev F1 {row[OBJECTIVE]:.4f}, {row['chars_per_s']:,.0f} chars/s, "
                f"{int(row['parameters']):,} parameters, {row['onnx_mb']:.1f} MB")
    lines = [
        "# Tuning summary", "",
        f"{len(rows)} completed trials. Objective: dev entity F1 (`{OBJECTIVE}`).", "",
        f"- Best dev F1: {describe(best)}",
        f"- Chosen (the highest chars/s within {tolerance} dev F1 of the best): {describe(chosen)}",
        f"- Speed-up of the chosen over the best: {speed_up(chosen, best)}", "",
    ]
    if reference is not None:
        lines[-1:-1] = [
            f"- The default training configuration, trained under the same budget: "
            f"{describe(reference)}",
            f"- Speed-up of the chosen over the default configuration: "
            f"{speed_up(chosen, reference)}"]
    lines += [
        f"The chosen run is `{chosen_run}`: export it with "
        f"`python -m export.to_onnx --run {chosen_run}`.", "",
        "Pareto front (no trial is both more accurate and faster):", ""]
    lines += [f"- {describe(r)}" for r in sorted(pareto_front(rows),
                                                 key=lambda r: -r[OBJECTIVE])]
    lines += ["", "All trials (chars/s: fp32 ONNX through serve, 1 thread, timed one after another "
              "after the search):", "", *trials_table(rows, chosen, best, reference)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def speed_up(row: dict, baseline: dict) -> str:
    return (f"{row['chars_per_s'] / baseline['chars_per_s']:.2f}x at "
            f"{(row[OBJECTIVE] - baseline[OBJECTIVE]) * 100:+.2f} F1 points")


def trials_table(rows: list[dict], chosen: dict, best: dict,
                 reference: dict | None = None) -> list[str]:
    """Markdown table of every trial, best dev F1 first."""
    lines = ["| trial | layers | hidden | embedding | bigrams | batch | dropout | lr | dev F1 | "
             "chars/s | parameters | ONNX MB | epochs | train s | |",
             "|" + "---|" * 15]
    front = {r["trial"] for r in pareto_front(rows)}
    for row in sorted(rows, key=lambda r: -r[OBJECTIVE]):
        marks = [name for name, hit in (("best", row is best), ("chosen", row is chosen),
                                        ("default", row is reference),
                                        ("front", row["trial"] in front)) if hit]
        lines.append(
            f"| {row['trial']} | {row['layers']} | {row['hidden_size']} | "
            f"{row['embedding_dim']} | {'on' if row['bigrams'] else 'off'} | "
            f"{row['batch_size']} | {row['dropout']:.1f} | {row['lr']:.2g} | "
            f"{row[OBJECTIVE]:.4f} | {row['chars_per_s']:,.0f} | {int(row['parameters']):,} | "
            f"{row['onnx_mb']:.1f} | {int(row.get('epochs', 0))} | "
            f"{row.get('train_seconds', 0):.0f} | {', '.join(marks)} |")
    return lines
