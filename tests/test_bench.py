"""The benchmark command runs every path and writes its report (speeds are not asserted)."""
import json

import pytest

from tests.conftest import FIXTURES, run_module

pytestmark = pytest.mark.slow


def test_bench_measures_every_path_and_writes_the_report(trained_run, exported, tmp_path):
    run, _ = trained_run
    fp32, _, _ = exported
    result = run_module("pipeline.bench", "--run", run, "--model", fp32, "--data",
                        FIXTURES / "dev.txt", "--out", tmp_path, "--repeats", "1",
                        "--compare", f"again={fp32}", "--rounds", "2", timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    paths = report["paths"]
    assert set(paths) == {"keras_predict", "tf_function", "ort_fp32", "ort_fp32_1thread",
                          "ort_int8", "ort_cuda", "serve_tag_file", "serve_tag_file_2_workers",
                          "serve_tag_2_processes", "ort_fp32[again]", "serve_tag_file[again]",
                          "ort_int8[again]", "serve_tag_interleaved"}
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
    # the compared model is the same file: same F1; the Pareto view has every model x precision
    assert paths["ort_fp32[again]"]["f1"] == paths["ort_fp32"]["f1"]
    pareto = (tmp_path / "pareto.md").read_text().splitlines()
    assert [row.split(" | ")[0] for row in pareto[2:]] != []
    assert sorted(row.split(" | ")[0].lstrip("| ") for row in pareto[2:]) == \
        ["again fp32", "again int8", "main fp32", "main int8"]
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    assert "lexicon_share" in paths["ort_fp32"]  # the default model reads the jieba lexicon
    assert "serve_tag_file / serve_tag_file[again]:" in (tmp_path / "bench.md").read_text()
    # both models timed in alternation, round by round: one ratio per round
    interleaved = paths["serve_tag_interleaved"]
    assert interleaved["rounds"] == 2 and interleaved["chars"] == 2958
    assert [len(interleaved["seconds"][name]) for name in ("main", "again")] == [2, 2]
    assert len(interleaved["ratios"]["again"]) == 2
    assert all(ratio > 0 for ratio in interleaved["ratios"]["again"])
    assert "serve_tag_interleaved, main / again: median" in (tmp_path / "bench.md").read_text()


def test_bench_rejects_unknown_paths_and_bad_compare(trained_run, exported, tmp_path):
    run, _ = trained_run
    fp32, _, _ = exported
    result = run_module("pipeline.bench", "--run", run, "--model", fp32, "--data",
                        FIXTURES / "dev.txt", "--out", tmp_path, "--paths", "ort_fp33")
    assert result.returncode == 2
    assert "error: --paths: unknown ort_fp33" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_module("pipeline.bench", "--run", run, "--model", fp32, "--data",
                        FIXTURES / "dev.txt", "--out", tmp_path, "--compare", f"main={fp32}")
    assert result.returncode == 2
    assert "NAME not `main`" in result.stderr


def test_bench_compares_models_on_the_big_input_too(trained_run, exported, tmp_path):
    run, _ = trained_run
    fp32, _, _ = exported
    result = run_module("pipeline.bench", "--run", run, "--model", fp32, "--data",
                        FIXTURES / "dev.txt", "--out", tmp_path, "--repeats", "1",
                        "--paths", "serve_tag_big,serve_tag_big_interleaved",
                        "--big-chars", "20000",
                        "--compare", f"again={fp32}", timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    paths = json.loads((tmp_path / "bench.json").read_text())["paths"]
    assert {"serve_tag_big", "serve_tag_big[again]"} <= set(paths)
    # both read the same big file: every character counted for each model
    assert paths["serve_tag_big"]["chars"] == paths["serve_tag_big[again]"]["chars"] >= 20000
    report = (tmp_path / "bench.md").read_text()
    assert "serve_tag_big / serve_tag_big[again]:" in report
    assert f"on {paths['serve_tag_big']['chars']:,} characters" in report
    # the big input timed for both models in alternation: as many characters, 2 rounds
    interleaved = paths["serve_tag_big_interleaved"]
    assert interleaved["chars"] == paths["serve_tag_big"]["chars"]
    assert interleaved["rounds"] == 2 and len(interleaved["ratios"]["again"]) == 2
    assert "serve_tag_big_interleaved, main / again: median" in report


def test_word_list_variants_time_the_list_read_again_and_read_first(monkeypatch, tmp_path):
    """--synthetic-words times two variants: the list as read again (the cache of parsed lists
    on) and as read the first time (that cache off for its runs only)."""
    import argparse
    import os

    from pipeline.bench import command, paths
    from serve import tag

    monkeypatch.setattr(command, "synthetic_word_list", lambda *args: tmp_path / "w.txt")
    monkeypatch.setattr(command, "synthetic_name_list", lambda *args: tmp_path / "n.txt")
    args = argparse.Namespace(synthetic_words=7, variant=[], paths="serve_tag_variants", data="",
                              rounds=2, big_chars=0)
    plan = {}
    command.add_variants(args, plan, [], tmp_path / "m.onnx", tmp_path / "t.txt",
                         {"out": str(tmp_path)})
    spec = {**plan["serve_tag_variants"], "out": str(tmp_path)}
    assert spec["flags"] == {"words-7": ["--words", str(tmp_path / "w.txt")],
                             "words-7-first-read": ["--words", str(tmp_path / "w.txt")],
                             "names-7": ["--words", str(tmp_path / "n.txt")]}
    (tmp_path / "t.txt").write_text("上海\n", encoding="utf-8")
    before = os.environ["NER_WORD_LIST_CACHE"]
    calls = []
    monkeypatch.setattr(tag, "main", lambda argv: calls.append(
        ("--words" in argv, os.environ.get("NER_WORD_LIST_CACHE"))))
    result = paths.interleaved_file_path(spec)
    assert sorted(result["ratios"]) == ["names-7", "words-7", "words-7-first-read"]
    # warm-up, then 2 rounds, of 4 commands: the first-read runs alone see the cache off
    assert len(calls) == 12
    assert set(calls) == {(False, before), (True, "off"), (True, before)}
    assert calls.count((True, "off")) == 3
    assert os.environ["NER_WORD_LIST_CACHE"] == before


def test_made_up_names_are_distinct_typed_person_names(tmp_path):
    from pipeline.bench.paths import GIVEN_CHARS, SURNAMES, synthetic_name_list

    lines = synthetic_name_list(500, tmp_path).read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(set(lines)) == 500
    names = [line.split() for line in lines]
    assert all(kind == "PER" and name[0] in SURNAMES and 2 <= len(name) <= 3 and
               all(c in GIVEN_CHARS for c in name[1:]) for name, kind in names)
    assert synthetic_name_list(500, tmp_path).read_text(encoding="utf-8") == "\n".join(lines) + "\n"
