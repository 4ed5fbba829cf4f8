"""The benchmark command runs every path and writes its report (speeds are not asserted)."""
import json

import pytest

from tests.conftest import FIXTURES, run_module

pytestmark = pytest.mark.slow


def test_bench_measures_every_path_and_writes_the_report(trained_run, exported, tmp_path):
    run, _ = trained_run
    fp32, _, _ = exported
    result = run_module("pipeline.bench", "--run", run, "--model", fp32, "--data",
                        FIXTURES / "dev.txt", "--out", tmp_path, "--repeats", "1", timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    paths = report["paths"]
    assert set(paths) == {"keras_predict", "tf_function", "ort_fp32", "ort_fp32_1thread",
                          "ort_int8", "ort_cuda", "serve_tag_file", "serve_tag_file_2_workers",
                          "serve_tag_2_processes"}
    measured = [name for name, r in paths.items() if "e2e_chars_per_s" in r]
    assert set(measured) >= {"keras_predict", "tf_function", "ort_fp32", "ort_int8",
                             "serve_tag_file", "serve_tag_2_processes"}
    # Every path tags the same model: the fp32 paths agree on F1 exactly.
    f1 = {name: paths[name]["f1"] for name in ("keras_predict", "tf_function", "ort_fp32")}
    assert len(set(f1.values())) == 1, f1
    for name in ("keras_predict", "ort_fp32", "ort_int8"):
        assert paths[name]["latency_p50_ms"] <= paths[name]["latency_p99_ms"]
        assert paths[name]["chars"] == 2958
    assert report["hardware"]["matmul_peak_gflops"] > 0
    assert "| ort_fp32 |" in (tmp_path / "bench.md").read_text()
    assert (tmp_path / "bench.png").stat().st_size > 1000
