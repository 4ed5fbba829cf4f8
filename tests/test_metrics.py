"""Entity scores and the paired bootstrap that compares two models on the same sentences."""
import json

import pytest

from data.corpus.formats import read_corpus
from data.metrics import (corpus_entities, entity_counts, entity_scores, format_scores,
                          paired_bootstrap, seen_split_scores)
from tests.conftest import FIXTURES, run_module

GOLD = [["B-PER", "E-PER", "O", "S-LOC"], ["O", "B-ORG", "M-ORG", "E-ORG"], ["S-PER", "O"],
        ["O", "O"], ["B-LOC", "E-LOC", "O", "O"]]
# 5 gold entities: A finds 3 and predicts 2 wrong ones; B finds 4 and predicts no wrong one
A = [["B-PER", "E-PER", "O", "O"], ["O", "B-ORG", "E-ORG", "O"], ["S-PER", "O"],
     ["S-LOC", "O"], ["B-LOC", "E-LOC", "O", "O"]]
B = [["B-PER", "E-PER", "O", "S-LOC"], ["O", "B-ORG", "M-ORG", "E-ORG"], ["S-PER", "O"],
     ["O", "O"], ["O", "O", "O", "O"]]

TEXTS = ["张三在京", "在北京大", "李说", "好的", "上海很好"]


def test_counts_sum_to_seqeval_micro_f1():
    counts = entity_counts(GOLD, A)
    assert counts.tolist() == [[1, 1, 2], [0, 1, 1], [1, 1, 1], [0, 1, 0], [1, 1, 1]]
    right, predicted, gold = counts.sum(axis=0)
    assert 2 * right / (predicted + gold) == pytest.approx(entity_scores(GOLD, A)["micro"]["f1"])


def test_paired_bootstrap_of_two_models():
    result = paired_bootstrap(GOLD, A, B, samples=400, seed=3)
    assert result["f1_a"] == pytest.approx(2 * 3 / (5 + 5))  # 3 right, 5 predicted, 5 gold
    assert result["f1_b"] == pytest.approx(2 * 4 / (4 + 5))
    assert result["difference"] == pytest.approx(result["f1_b"] - result["f1_a"])
    assert result["low"] <= result["difference"] <= result["high"]
    assert 0.5 < result["b_better_share"] < 1.0  # resampling sentence 5 alone: A is better
    assert (result["samples"], result["sentences"]) == (400, 5)
    assert paired_bootstrap(GOLD, A, B, samples=400, seed=3) == result  # seeded: repeatable
    swapped = paired_bootstrap(GOLD, B, A, samples=400, seed=3)
    assert swapped["difference"] == pytest.approx(-result["difference"])
    # B better in a resampling means A is not better there (ties count for neither)
    assert swapped["b_better_share"] <= 1 - result["b_better_share"]
    assert (swapped["low"], swapped["high"]) == pytest.approx((-result["high"], -result["low"]))


def test_a_model_against_itself_differs_by_nothing():
    result = paired_bootstrap(GOLD, A, A, samples=100)
    assert (result["difference"], result["low"], result["high"], result["b_better_share"]) == \
        (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="no sentences"):
        paired_bootstrap([], [], [])


def test_seen_and_unseen_entities_are_scored_apart():
    # gold: 张三 PER, 京 LOC, 北京大 ORG, 李 PER, 上海 LOC; A predicts 张三, 北京 ORG, 李,
    # 好 LOC and 上海. Seen: 张三, 上海 and 北京 as ORG (not 北京大, not 京)
    seen = {("PER", "张三"), ("ORG", "北京"), ("LOC", "上海")}
    split = seen_split_scores(GOLD, A, TEXTS, seen)
    assert split["seen"] == {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    assert split["unseen"] == {"precision": 0.5, "recall": 1 / 3, "f1": 0.4, "support": 3}
    # the two groups add up to the micro scores: 3 right of 5 gold entities
    micro = entity_scores(GOLD, A)["micro"]
    assert split["seen"]["support"] + split["unseen"]["support"] == micro["support"] == 5
    found = sum(group["recall"] * group["support"] for group in split.values())
    assert found == pytest.approx(3) and micro["recall"] * micro["support"] == pytest.approx(3)
    assert seen_split_scores(GOLD, A, TEXTS, set())["seen"]["support"] == 0
    scores = dict(entity_scores(GOLD, A), seen_split=split)
    assert format_scores(scores).endswith(
        "entities   precision    recall        f1   support\n"
        "seen          0.6667    1.0000    0.8000         2\n"
        "unseen        0.5000    0.3333    0.4000         3")


def test_corpus_entities_are_type_and_text(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("张 B-PER\n三 E-PER\n在 O\n京 S-LOC\n\n北 B-ORG\n京 E-ORG\n", encoding="utf-8")
    assert corpus_entities(read_corpus(path).sentences) == \
        {("PER", "张三"), ("LOC", "京"), ("ORG", "北京")}


@pytest.mark.slow
def test_serve_evaluate_compares_two_models(exported, tmp_path):
    fp32, int8, _ = exported
    result = run_module("serve.evaluate", "--model", fp32, "--compare", fp32, "--data",
                        FIXTURES / "dev.txt", "--samples", "50")
    assert result.returncode == 0, result.stderr
    assert "tiny.onnx − tiny.onnx: +0.0000 F1" in result.stdout
    assert "50 paired resamplings of the 80 sentences; tiny.onnx better in 0% of them" in \
        result.stdout
    result = run_module("serve.evaluate", "--model", fp32, "--compare", int8, "--data",
                        FIXTURES / "dev.txt", "--json")
    report = json.loads(result.stdout)
    assert report["comparison"]["f1_a"] == pytest.approx(report["scores"]["micro"]["f1"])
    assert report["comparison"]["f1_b"] == pytest.approx(report["compare_scores"]["micro"]["f1"])
    missing = tmp_path / "missing.onnx"
    result = run_module("serve.evaluate", "--model", fp32, "--compare", missing, "--data",
                        FIXTURES / "dev.txt")
    assert result.returncode == 2 and result.stderr == f"error: {missing}: no such model file\n"
    result = run_module("serve.evaluate", "--model", fp32, "--compare", fp32, "--data",
                        FIXTURES / "dev.txt", "--samples", "0")
    assert result.returncode == 2 and "expected a positive number" in result.stderr
    # --seen-in: the dev entities split by whether training holds the same name and type
    result = run_module("serve.evaluate", "--model", fp32, "--data", FIXTURES / "dev.txt",
                        "--seen-in", FIXTURES / "train.txt", "--json")
    report = json.loads(result.stdout)
    split, micro = report["seen_split"], report["micro"]
    assert (split["seen"]["support"], split["unseen"]["support"]) == (12, 47)  # of 59 entities
    found = sum(group["recall"] * group["support"] for group in split.values())
    assert found == pytest.approx(micro["recall"] * micro["support"])
    result = run_module("serve.evaluate", "--model", fp32, "--data", FIXTURES / "dev.txt",
                        "--seen-in", FIXTURES / "train.txt")
    assert result.stdout.splitlines()[-3].split() == ["entities", "precision", "recall", "f1",
                                                      "support"]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\n")
    result = run_module("serve.evaluate", "--model", fp32, "--data", FIXTURES / "dev.txt",
                        "--seen-in", bad)
    assert (result.returncode, result.stderr) == \
        (2, f"error: {bad}:1: invalid UTF-8 (byte 0xff at byte 1 of the line); the file must be "
           "UTF-8\n")
