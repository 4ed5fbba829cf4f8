"""pipeline.distill: a student on its teacher's marginals and on teacher-tagged raw text."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import FIXTURES, ROOT, TINY, kill_at_epoch, run_module

pytestmark = pytest.mark.slow
pytest.importorskip("tensorflow")


def distill_command(teacher, out, epochs, *extra):
    student = [flag if flag != "16" or previous != "--hidden-size" else "8"
               for previous, flag in zip([""] + TINY, TINY)]  # a smaller student
    return [sys.executable, "-m", "pipeline.distill", "--teacher", str(teacher),
            "--train", str(FIXTURES / "train.txt"), "--dev", str(FIXTURES / "dev.txt"),
            "--out", str(out), "--epochs", str(epochs), *student, *extra]


def distill(teacher, out, epochs, *extra, timeout=600):
    return subprocess.run(distill_command(teacher, out, epochs, *extra), capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def raw_text(tmp_path_factory):
    from data.corpus.formats import read_corpus

    path = tmp_path_factory.mktemp("raw") / "raw.txt"
    texts = [s.text for s in read_corpus(FIXTURES / "dev.txt").sentences]
    path.write_text("\n".join(texts) + "\n\n" + "，".join(texts) + "\n", encoding="utf-8")
    return path  # one line longer than max_len: cut into pieces as serving cuts it


def test_student_is_an_ordinary_run_recording_its_teacher(trained_run, raw_text, tmp_path):
    teacher, _ = trained_run
    out = tmp_path / "student"
    result = distill(teacher, out, 2, "--unlabeled", str(raw_text), "--temperature", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "teacher marginals for 300 training sentences from 1 teacher(s)" in result.stdout
    assert "tagged by the teachers" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["teachers"] == [str(teacher)] and config["unlabeled"] == [str(raw_text)]
    assert config["hidden_size"] == 8 and config["temperature"] == 2.0
    assert json.loads((out / "tags.json").read_text()) == \
        json.loads((teacher / "tags.json").read_text())
    exported = run_module("export.to_onnx", "--run", out, "--out", tmp_path / "student.onnx")
    assert exported.returncode == 0 and "validation passed" in exported.stdout


def test_distillation_resumes_to_the_same_result_after_a_kill(trained_run, raw_text, tmp_path):
    """With the teachers scoring the student's <unk> view: the masks an epoch draws, and so
    its targets, must come back the same after the kill."""
    from training.run_files import load_run

    teacher, _ = trained_run
    epochs, extra = 3, ("--unlabeled", str(raw_text), "--teacher-view", "student")
    whole = tmp_path / "whole"
    first = distill(teacher, whole, epochs, *extra)
    assert first.returncode == 0, first.stderr[-2000:]
    # the view scores every batch anew: no clean-text targets are computed up front
    assert "teacher view: each epoch" in first.stdout
    assert "teacher marginals for" not in first.stdout and "tagged by the teachers" in first.stdout
    resumed = tmp_path / "resumed"
    kill_at_epoch(distill_command(teacher, resumed, epochs, *extra), 2, epochs)
    result = distill(teacher, resumed, epochs, *extra, "--resume")
    assert result.returncode == 0 and "after epoch 2" in result.stdout, result.stderr[-2000:]
    assert json.loads((whole / "config.json").read_text())["teacher_view"] == "student"
    history = [(out / "history.csv").read_text().splitlines() for out in (whole, resumed)]
    strip = [[",".join(row.split(",")[:-1]) for row in rows] for rows in history]  # no seconds
    assert strip[0] == strip[1]
    for a, b in zip(load_run(whole).model.get_weights(), load_run(resumed).model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("content,line,message", [
    ("北京\n上海\n".encode() + b"\xffab\n", 3, "invalid UTF-8 (byte 0xff"),
    (b"", 1, "empty file"),
    (b"\n\n  \n", 1, "empty file"),
], ids=["utf8", "empty", "blank"])
def test_bad_unlabeled_file_is_named_with_exit_2(trained_run, tmp_path, content, line, message):
    teacher, _ = trained_run
    raw = tmp_path / "raw.txt"
    raw.write_bytes(content)
    result = distill(teacher, tmp_path / "s", 1, "--unlabeled", str(raw), timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"error: {raw}:{line}: {message}" in result.stderr


def test_student_view_targets_are_the_teachers_marginals_on_the_masked_text(trained_run):
    """No drops: the clean targets, exactly. Drops: each teacher's own char and bigram ids turn
    <unk> at those positions (an input the teacher lacks is ignored), then the same marginals."""
    from data.encoding.inputs import BIGRAM_IDS, CHAR_IDS
    from data.corpus.formats import read_corpus
    from data.decoding.marginals import crf_marginals
    from data.encoding.vocab import UNK_ID
    from training.distillation import load_teachers, student_view_targets, teacher_outputs
    from models.tagger import emissions_function

    teachers = load_teachers([str(trained_run[0])])
    teacher = teachers[0]
    texts = [s.text for s in read_corpus(FIXTURES / "dev.txt").sentences[:6]]
    targets = student_view_targets(teachers, texts, temperature=2.0)
    clean, _ = teacher_outputs(teachers, texts, with_tags=False, temperature=2.0)
    indices = np.array([4, 1, 3])
    width = max(len(texts[i]) for i in indices)
    no_drops = targets(indices, {})
    assert no_drops.shape == (3, width, len(teacher.tags))
    for row, index in enumerate(indices):
        np.testing.assert_allclose(no_drops[row, :len(texts[index])], clean[index], atol=1e-6)
        assert not no_drops[row, len(texts[index]):].any()

    rng = np.random.default_rng(0)
    drops = {CHAR_IDS: rng.random((3, width)) < 0.3, BIGRAM_IDS: rng.random((3, width)) < 0.3,
             "word_ids": np.ones((3, width), bool)}
    inputs = teacher.encoder.encode_padded([texts[i] for i in indices])
    assert CHAR_IDS in inputs and BIGRAM_IDS in inputs and "word_ids" not in inputs
    for name in (CHAR_IDS, BIGRAM_IDS):
        inputs[name][drops[name]] = UNK_ID
    lengths = np.array([len(texts[i]) for i in indices])
    emissions = emissions_function(teacher.model)(inputs).numpy()
    expected = crf_marginals(emissions / 2.0, teacher.model.crf.transitions.numpy() / 2.0,
                             lengths)
    masked = targets(indices, drops)
    np.testing.assert_allclose(masked, expected, atol=1e-6)
    assert np.abs(masked - no_drops).max() > 1e-3  # the <unk> changed what the teacher says


def test_teacher_view_must_be_known(trained_run, tmp_path):
    result = run_module("pipeline.distill", "--teacher", trained_run[0], "--out", tmp_path / "s",
                        "--teacher-view", "noisy")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--teacher-view: invalid choice: 'noisy'" in result.stderr


def test_teacher_must_be_a_run_folder(tmp_path):
    result = run_module("pipeline.distill", "--teacher", tmp_path, "--out", tmp_path / "s")
    assert result.returncode == 2 and "not a finished run folder" in result.stderr


@pytest.mark.parametrize("value", ["0", "-1"])
def test_temperature_must_be_positive(trained_run, tmp_path, value):
    teacher, _ = trained_run
    result = run_module("pipeline.distill", "--teacher", teacher, "--out", tmp_path / "s",
                        "--temperature", value)
    assert result.returncode == 2 and "--temperature must be above 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_soft_targets_are_cross_fitted_to_teachers_not_trained_on_a_sentence(tmp_path,
                                                                             monkeypatch):
    """Teachers trained on different parts of the data: each sentence's targets average only
    the teachers that did not see it; a sentence every teacher (or none) saw averages all."""
    from types import SimpleNamespace

    import training.distillation as distillation

    def column_file(name, texts):
        path = tmp_path / name
        path.write_text("\n\n".join("\n".join(f"{c} O" for c in t) for t in texts) + "\n",
                        encoding="utf-8")
        return str(path)

    def teacher(name, texts, value):
        config = SimpleNamespace(train=column_file(name, texts), data_format=None,
                                 overlaps="refuse", max_len=200)
        return SimpleNamespace(config=config, value=value)

    teachers = [teacher("a.txt", ["甲乙", "共同"], 1.0), teacher("b.txt", ["丙丁", "共同"], 3.0),
                SimpleNamespace(config=SimpleNamespace(train=str(tmp_path / "gone.txt")),
                                value=8.0)]

    def fake_outputs(chosen, texts, with_tags=True, temperature=1.0):  # a teacher's marginals: its value
        return [np.full((len(t), 2), chosen[0].value, np.float32) for t in texts], None

    monkeypatch.setattr(distillation, "teacher_outputs", fake_outputs)
    corpus = SimpleNamespace(texts=["甲乙", "丙丁", "共同", "新的"])
    messages = []
    distillation.attach_teacher_targets(corpus, teachers, messages.append)
    # 甲乙: a saw it -> b and the teacher whose file is gone; 共同: a and b saw it -> the third
    assert [float(t[0, 0]) for t in corpus.soft_targets] == [5.5, 4.5, 8.0, 4.0]
    assert corpus.soft_targets[0].shape == (2, 2)
    assert "3 of them from only the teachers not trained on them" in messages[0]
    both_saw = teachers[:2]
    corpus = SimpleNamespace(texts=["共同"])
    distillation.attach_teacher_targets(corpus, both_saw, messages.append)
    assert float(corpus.soft_targets[0][0, 0]) == 2.0  # seen by all: all teachers


def test_shared_rows_match_tokens_not_positions():
    from training.warm_start import shared_rows

    target_rows, source_rows = shared_rows(["<pad>", "<unk>", "北", "京", "人"],
                                           ["<pad>", "<unk>", "人", "北", "上"])
    assert target_rows.tolist() == [0, 1, 2, 4] and source_rows.tolist() == [0, 1, 3, 2]
    assert [len(rows) for rows in shared_rows(["a"], ["b"])] == [0, 0]


def test_init_from_starts_the_student_from_the_teachers_embeddings(trained_run, tmp_path):
    """With a learning rate of 0 the student's tables stay where --init-from put them: every
    character and bigram row equals the teacher's row for the same token."""
    from training.run_files import load_run

    teacher, _ = trained_run
    out = tmp_path / "student"
    result = distill(teacher, out, 1, "--init-from", str(teacher), "--lr", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    source, student = load_run(teacher), load_run(out)
    assert json.loads((out / "config.json").read_text())["init_from"] == str(teacher)
    for name, tokens in (("char_embedding", "chars"), ("bigram_embedding", "bigrams")):
        source_tokens = getattr(source.encoder, tokens).tokens
        student_tokens = getattr(student.encoder, tokens).tokens
        assert f"of {len(student_tokens):,} {'character' if tokens == 'chars' else 'bigram'} rows" \
            in result.stdout
        source_rows = dict(zip(source_tokens, getattr(source.model, name).get_weights()[0]))
        student_table = getattr(student.model, name).get_weights()[0]
        shared = [i for i, token in enumerate(student_tokens) if token in source_rows]
        assert len(shared) > 0.9 * len(student_tokens)
        np.testing.assert_allclose(student_table[shared],
                                   [source_rows[student_tokens[i]] for i in shared],
                                   rtol=1e-6, atol=1e-7)


def test_init_from_must_be_a_run_folder(tmp_path):
    result = run_module("pipeline.train", "--train", FIXTURES / "train.txt", "--out",
                        tmp_path / "s", "--init-from", tmp_path / "nothing")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (f"error: --init-from {tmp_path / 'nothing'}: not a finished run "
                             "folder (no model.keras)\n")
    assert not (tmp_path / "s").exists()


def test_init_from_refuses_a_table_of_another_width(trained_run, tmp_path):
    teacher, _ = trained_run
    result = distill(teacher, tmp_path / "s", 1, "--init-from", str(teacher),
                     "--embedding-dim", "12")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (f"error: --init-from {teacher}: its character embedding has 16 columns, this "
            "run's 12; give --embedding-dim 16") in result.stderr
