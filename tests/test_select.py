"""pipeline.select: texts worth labelling next, pre-annotated, read back by our own readers."""
import json

import numpy as np
import pytest

from data.corpus.formats import DataError, read_corpus
from pipeline.select import Chosen, label_studio_task
from tests.conftest import FIXTURES, run_module


def test_chosen_keeps_the_best_distinct_texts_in_bounded_memory():
    chosen = Chosen(3)
    for order, (priority, text) in enumerate([(0.1, "a"), (0.9, "b"), (0.5, "c"), (0.9, "b"),
                                              (0.7, "d"), (0.2, "e"), (0.8, "f")]):
        chosen.offer(priority, order, text.encode(), text)
        assert len(chosen.heap) <= 3
    assert chosen.best_first() == ["b", "f", "d"]


def unreviewed_tasks(tmp_path, reviewed: bool):
    record = {"text": "周恩来在北京。", "uncertainty": 0.25,
              "entities": [{"type": "PER", "start": 0, "end": 3, "text": "周恩来", "score": 0.9},
                           {"type": "LOC", "start": 4, "end": 6, "text": "北京", "score": 0.6}]}
    task = label_studio_task(record, "tiny.onnx")
    tasks = [task, {**task, "data": {"text": "上海。"}, "predictions": [
        {**task["predictions"][0], "result": []}]}]
    if reviewed:
        tasks.append({"data": {"text": "张三来了。"}, "annotations": [{"result": [
            {"type": "labels", "value": {"start": 0, "end": 2, "text": "张三",
                                         "labels": ["PER"]}}]}]})
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return path


def test_prediction_only_tasks_are_refused_read_or_skipped_by_policy(tmp_path):
    path = unreviewed_tasks(tmp_path, reviewed=True)
    with pytest.raises(DataError, match=r":1: task 0: not reviewed yet \(predictions only\)"):
        read_corpus(path)
    corpus = read_corpus(path, unreviewed="predictions")
    assert corpus.form == "label-studio" and corpus.unreviewed == 2
    assert [s.tags for s in corpus.sentences][0] == ["B-PER", "M-PER", "E-PER", "O", "B-LOC",
                                                     "E-LOC", "O"]
    assert len(corpus.sentences) == 3
    skipped = read_corpus(path, unreviewed="skip")
    assert [s.text for s in skipped.sentences] == ["张三来了。"] and skipped.unreviewed == 2


def test_data_check_reports_unreviewed_and_train_refuses_them(tmp_path):
    path = unreviewed_tasks(tmp_path, reviewed=False)
    result = run_module("data.check", path)
    assert result.returncode == 0, result.stderr
    assert "label-studio form, 2 sentences" in result.stdout
    assert "not yet reviewed (predictions only): 2 tasks" in result.stdout
    result = run_module("pipeline.train", "--train", path, "--dev", FIXTURES / "dev.txt",
                        "--out", tmp_path / "run", "--epochs", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {path}:1: task 0")
    assert "--unreviewed predictions" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("output_format", ["label-studio", "doccano", "jsonl"])
def test_select_writes_importable_tasks_that_read_back(exported, tmp_path, output_format):
    sentences = read_corpus(FIXTURES / "dev.txt").sentences
    pool = tmp_path / "pool.txt"
    texts = [s.text for s in sentences[:80]]
    pool.write_text("\n".join(texts + texts[:10] + ["", "  "]) + "\n", encoding="utf-8")
    labelled = tmp_path / "labelled.txt"
    labelled.write_text("\n".join(texts[:5]) + "\n", encoding="utf-8")
    out = tmp_path / f"chosen.{output_format}"
    result = run_module("pipeline.select", "--model", exported[0], "--pool", pool, "--n", 20,
                        "-o", out, "--format", output_format, "--exclude", labelled)
    assert result.returncode == 0, result.stderr
    corpus = read_corpus(out, unreviewed="predictions")
    chosen = [s.text for s in corpus.sentences]
    assert len(chosen) == 20 == len(set(chosen)) and not set(chosen) & set(texts[:5])
    if output_format == "label-studio":
        tasks = json.loads(out.read_text(encoding="utf-8"))
        assert all("annotations" not in task and task["predictions"][0]["model_version"] ==
                   exported[0].name for task in tasks)
        assert corpus.unreviewed == 20
    if output_format == "jsonl":
        doubts = [json.loads(line)["uncertainty"] for line in out.read_text().splitlines()]
        assert doubts == sorted(doubts, reverse=True)
        from serve.tagger import Tagger
        tagger = Tagger.load(exported[0])
        tagged = tagger.tag_batch(texts[5:])
        every = 1 - np.exp(tagged.path_log_prob / np.maximum(tagged.lengths, 1))
        assert doubts[0] == pytest.approx(every.max(), abs=1e-6)  # the most uncertain of all


@pytest.mark.slow
def test_random_selection_is_reproducible_and_errors_are_one_line(exported, tmp_path):
    pool = tmp_path / "pool.txt"
    pool.write_text("\n".join(s.text for s in read_corpus(FIXTURES / "dev.txt").sentences)
                    + "\n", encoding="utf-8")
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.jsonl"
        result = run_module("pipeline.select", "--model", exported[0], "--pool", pool, "--n", 7,
                            "-o", out, "--format", "jsonl", "--strategy", "random", "--seed", 3)
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_text(encoding="utf-8"))
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == 7
    bad = tmp_path / "bad.txt"
    bad.write_bytes("好\n".encode() + b"\xff\n")
    for args, message in (([bad], f"error: {bad}:2: invalid UTF-8"),
                          ([tmp_path], f"error: {tmp_path}: is a folder, not a file")):
        result = run_module("pipeline.select", "--model", exported[0], "--pool", *args,
                            "--n", 3, "-o", tmp_path / "x.json", "--format", "doccano")
        assert result.returncode == 2 and result.stderr.startswith(message)
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_learning_curve_rounds_share_the_start_and_add_the_chosen_texts(tmp_path):
    tiny = "--epochs 1 --embedding-dim 16 --hidden-size 16 --bigram-dim 8 --epoch-min-steps 0"
    result = run_module("pipeline.learning_curve", "--train", FIXTURES / "train.txt",
                        "--dev", FIXTURES / "dev.txt", "--test", FIXTURES / "dev.txt",
                        "--out", tmp_path, "--start", 60, "--add", 30, "--rounds", 1,
                        "--seeds", 1, "--train-flags", tiny, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    points = json.loads((tmp_path / "curve.json").read_text())
    assert [(p["curve"], p["round"], p["sentences"]) for p in points] == [
        ("uncertainty", 0, 60), ("uncertainty", 1, 90), ("random-1", 0, 60), ("random-1", 1, 90)]
    assert points[0]["dev_f1"] == points[2]["dev_f1"]  # one start run for both curves
    chosen = [json.loads(line)["text"] for line in
              (tmp_path / "uncertainty" / "select0" / "chosen.jsonl").read_text().splitlines()]
    added = read_corpus(tmp_path / "uncertainty" / "round1" / "train.txt").sentences[60:]
    assert [s.text for s in added] == chosen
    assert (tmp_path / "curve.png").stat().st_size > 0


@pytest.mark.slow
def test_word_list_measurement_forces_every_given_name(exported, tmp_path):
    result = run_module("pipeline.word_lists", "--model", exported[0], "--train",
                        FIXTURES / "train.txt", "--test", FIXTURES / "dev.txt", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "results.json").read_text())
    gold_a = {tuple(line.split()[::2][::-1]) for line in
              (tmp_path / "force-A.txt").read_text(encoding="utf-8").splitlines()}
    assert len(gold_a) == report["names"]["A"] > 0
    assert report["results"]["force_words"]["A"]["recall"] == 1.0
    sentences = read_corpus(FIXTURES / "dev.txt").sentences
    from data.metrics import corpus_entities
    train = corpus_entities(read_corpus(FIXTURES / "train.txt").sentences)
    assert not gold_a & train and gold_a <= corpus_entities(sentences)


def test_learning_curve_summary_interpolates_where_uncertainty_reaches_random():
    from pipeline.learning_curve import characters_to_reach, summary, summary_line

    def point(curve, round_index, chars, dev_f1):
        return {"curve": curve, "round": round_index, "chars": chars, "dev_f1": dev_f1}

    points = [point("uncertainty", 0, 100, 0.5), point("uncertainty", 1, 200, 0.7),
              point("uncertainty", 2, 300, 0.8),
              point("random-1", 0, 100, 0.5), point("random-1", 1, 250, 0.7),
              point("random-1", 2, 500, 0.74),
              point("random-2", 0, 100, 0.5), point("random-2", 1, 250, 0.66),
              point("random-2", 2, 520, 0.76)]
    result = summary(points)
    assert result["random_dev_f1"] == pytest.approx(0.75)
    assert result["random_chars"] == 510
    assert result["random_dev_f1_spread"] == pytest.approx(0.02)
    assert result["uncertainty_chars"] == pytest.approx(250)  # halfway from 0.7 to 0.8
    assert result["share"] == pytest.approx(250 / 510)
    assert summary_line(result).endswith("reaches it with 250 characters, 49% of random's.")
    assert characters_to_reach(points[:3], 0.9) is None
    assert characters_to_reach(points[:3], 0.4) == 100
