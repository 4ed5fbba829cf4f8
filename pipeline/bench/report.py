"""`pipeline.bench`'s report: bench.json, bench.md and bench.png; the Pareto view."""
from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

def _cell(result: dict, key: str, form: str) -> str:
    return form.format(result[key]) if key in result else "—"


def write_report(out: Path, report: dict) -> None:
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = ["| path | end-to-end chars/s | model-only chars/s | p50 ms (50 chars) | p99 ms | "
            "peak RSS MB | test F1 | vs keras_predict |", "|---|---|---|---|---|---|---|---|"]
    base = report["paths"].get("keras_predict", {}).get("e2e_chars_per_s")
    for name, result in report["paths"].items():
        if "error" in result or "skipped" in result:
            rows.append(f"| {name} | {result.get('error') or result.get('skipped')} |||||||")
            continue
        ratio = f"{result['e2e_chars_per_s'] / base:.1f}x" if base else ""
        cells = [f"{result['e2e_chars_per_s']:,.0f}",
                 _cell(result, "model_chars_per_s", "{:,.0f}"),
                 _cell(result, "latency_p50_ms", "{:.2f}"), _cell(result, "latency_p99_ms", "{:.2f}"),
                 _cell(result, "peak_rss_mb", "{:.0f}"), _cell(result, "f1", "{:.4f}"), ratio]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    hw = report["hardware"]
    machine = f"Machine: {hw['machine']}, {hw['cpus']} CPUs. fp32 matmul peak " \
        f"{hw['matmul_peak_gflops']:.1f} GFLOP/s"
    if hw["lstm_gflops"] > 0:  # only when ort_fp32 ran
        machine += f"; the LSTM at model-only ORT fp32 speed achieves {hw['lstm_gflops']:.1f} " \
            f"GFLOP/s ({hw['lstm_share_of_peak']:.0%} of peak)"
    rows += ["", machine + "."] + ratio_lines(report)
    (out / "bench.md").write_text("\n".join(rows) + "\n")
    plot_throughput(out / "bench.png", report)


def ratio_lines(report: dict) -> list[str]:
    """The report's sentences under the table: lexicon shares and the ratios between paths."""
    rows = []
    shares = {name: r["lexicon_share"] for name, r in report["paths"].items()
              if "lexicon_share" in r}
    if shares:
        rows.append("Lexicon matcher and features, share of end-to-end time: " + ", ".join(
            f"{name} {share:.1%}" for name, share in shares.items()) + ".")
    big = report["paths"].get("serve_tag_big", {})
    for name in ("ray_1_actor_x_2_threads", "ray_2_actors_x_1_thread"):
        ray_result = report["paths"].get(name, {})
        if "e2e_chars_per_s" in big and "e2e_chars_per_s" in ray_result:
            rows.append(f"{name} / serve_tag_big on {big['chars']:,} characters: "
                        f"{ray_result['e2e_chars_per_s'] / big['e2e_chars_per_s']:.1%} "
                        f"({ray_result['seconds']} s against {big['seconds']} s, start-up "
                        "included).")
    for name, other in report.get("compare_models", {}).items():
        for path in ("serve_tag_file", "serve_tag_big"):
            ours = report["paths"].get(path, {})
            theirs = report["paths"].get(f"{path}[{name}]", {})
            if "e2e_chars_per_s" in ours and "e2e_chars_per_s" in theirs:
                rows.append(f"{path} / {path}[{name}]: "
                            f"{ours['e2e_chars_per_s'] / theirs['e2e_chars_per_s']:.1%} on "
                            f"{ours['chars']:,} characters ({name}: {other}).")
    for path in ("serve_tag_interleaved", "serve_tag_big_interleaved", "serve_tag_variants",
                 "serve_tag_big_variants"):
        interleaved = report["paths"].get(path, {})
        for name, ratios in interleaved.get("ratios", {}).items():
            rows.append(f"{path}, main / {name}: median {np.median(ratios):.1%} (rounds "
                        f"{min(ratios):.1%} to {max(ratios):.1%}) over {interleaved['rounds']} "
                        f"alternating rounds on {interleaved['chars']:,} characters, start-up "
                        "included.")
    return rows


def plot_throughput(path: Path, report: dict) -> None:
    """bench.png: end-to-end chars/s per path (nothing without matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        names = [n for n, r in report["paths"].items() if "e2e_chars_per_s" in r]
        values = [report["paths"][n]["e2e_chars_per_s"] for n in names]
        figure, axis = plt.subplots(figsize=(8, 0.5 * len(names) + 1.5))
        axis.barh(names, values, color="#4a7ab5")
        axis.set_xlabel("characters per second, end to end (higher is better)")
        axis.set_title(f"NER tagging throughput, {report['hardware']['machine']}")
        for y, value in enumerate(values):
            axis.text(value, y, f" {value:,.0f}", va="center", fontsize=8)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    except ImportError:
        pass


def pareto_points(report: dict, model: Path) -> list[dict]:
    """One point per model and precision the run measured end to end in-process."""
    files = {"": str(model), **{f"[{n}]": m for n, m in report.get("compare_models", {}).items()}}
    points = []
    for suffix, fp32_file in files.items():
        for precision in ("fp32", "int8"):
            result = report["paths"].get(f"ort_{precision}{suffix}", {})
            if "e2e_chars_per_s" not in result:
                continue
            path = Path(fp32_file) if precision == "fp32" else \
                Path(fp32_file).with_suffix(".int8.onnx")
            points.append({"model": (suffix.strip("[]") or "main") + f" {precision}",
                           "f1": result.get("f1"), "chars_per_s": result["e2e_chars_per_s"],
                           "p50_ms": result.get("latency_p50_ms"),
                           "mb": path.stat().st_size / 1e6 if path.exists() else None})
    front = [p for p in points if not any(
        o["f1"] >= p["f1"] and o["chars_per_s"] >= p["chars_per_s"] and o is not p and
        (o["f1"] > p["f1"] or o["chars_per_s"] > p["chars_per_s"]) for o in points)]
    for point in points:
        point["front"] = point in front
    return points


def write_pareto(out: Path, report: dict, model: Path) -> None:
    """pareto.md and pareto.png: test F1 against end-to-end chars/s, every model given
    (--model and each --compare), fp32 and int8."""
    points = pareto_points(report, model)
    if not points:
        return
    rows = ["| model | test F1 | end-to-end chars/s | p50 ms (50 chars) | file MB | Pareto front |",
            "|---|---|---|---|---|---|"]
    for p in sorted(points, key=lambda p: -p["chars_per_s"]):
        rows.append(f"| {p['model']} | {p['f1']:.4f} | {p['chars_per_s']:,.0f} | "
                    f"{p['p50_ms']:.2f} | {p['mb']:.1f} | {'yes' if p['front'] else ''} |")
    (out / "pareto.md").write_text("\n".join(rows) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for p in points:
        axis.scatter(p["chars_per_s"], p["f1"], color="#c0392b" if p["front"] else "#7f8c8d",
                     marker="o" if p["model"].endswith("fp32") else "s")
        axis.annotate(p["model"], (p["chars_per_s"], p["f1"]), fontsize=8,
                      xytext=(4, 4), textcoords="offset points")
    front = sorted((p for p in points if p["front"]), key=lambda p: p["chars_per_s"])
    axis.plot([p["chars_per_s"] for p in front], [p["f1"] for p in front], color="#c0392b",
              linewidth=1)
    axis.set_xlabel("characters per second, end to end (ONNX Runtime, 2 threads)")
    axis.set_ylabel("test entity F1")
    axis.set_title(f"F1 against speed (red: Pareto front; o fp32, s int8), {machine_name()}",
                   fontsize=9)
    figure.tight_layout()
    figure.savefig(out / "pareto.png", dpi=100)


def machine_name() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or platform.processor()} ({platform.machine()})"
