"""Training end to end on a small fixture: artifacts, save/load, resume after a kill."""
import csv
import json
import signal
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tests.conftest import ROOT, kill_at_epoch, train_command


def run_training(out, epochs, *extra):
    result = subprocess.run(train_command(out, epochs, *extra), capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_run_folder_has_every_artifact(trained_run):
    out, result = trained_run
    for name in ("model.keras", "config.json", "vocab.json", "tags.json", "metrics.json",
                 "history.csv"):
        assert (out / name).exists(), name
    assert not (out / "checkpoint").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["dev"]["per_type"]) == {"LOC", "ORG", "PER"}
    assert 0.0 <= metrics["test"]["micro"]["f1"] <= 1.0
    history = list(csv.DictReader(open(out / "history.csv")))
    assert [row["epoch"] for row in history] == ["1", "2", "3"]
    best_f1 = max(float(row["dev_f1"]) for row in history)
    first_best = next(int(row["epoch"]) for row in history if float(row["dev_f1"]) == best_f1)
    assert metrics["best_epoch"] == first_best
    assert "epoch 3/3  loss" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["hidden_size"] == 16 and config["epochs"] == 3


def test_reloaded_model_predicts_identically(trained_run):
    from data.corpus.formats import read_corpus
    from training.tf_input import encode_corpus
    from training.predict import predict_tag_ids
    from training.run_files import load_run

    out, _ = trained_run
    first = load_run(out)
    second = load_run(out)
    dev = encode_corpus(read_corpus(ROOT / "tests" / "fixtures" / "dev.txt").sentences, first.encoder,
                        first.tags)
    ids_first = predict_tag_ids(first.model, dev)
    ids_second = predict_tag_ids(second.model, dev)
    assert all(np.array_equal(a, b) for a, b in zip(ids_first, ids_second))
    # The slow model.predict path decodes the same tags as the compiled path.
    ids_predict = predict_tag_ids(first.model, dev, use_predict=True)
    assert all(np.array_equal(a, b) for a, b in zip(ids_first, ids_predict))
    # The metrics written at the end are those of the reloaded best model.
    from data.metrics import entity_scores
    scores = entity_scores([first.tags.decode(t) for t in dev.tag_ids],
                           [first.tags.decode(t) for t in ids_first])
    assert scores["micro"]["f1"] == pytest.approx(first.metrics["dev"]["micro"]["f1"])


def test_unknown_flag_value_and_bad_data_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("a O\nb O extra\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.train", "--train", str(bad), "--dev", str(bad),
         "--out", str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert f"error: {bad}:2: 3 fields" in result.stderr
    assert "Traceback" not in result.stderr


def test_training_output_has_no_tensorflow_startup_chatter(trained_run):
    _, result = trained_run
    assert "cudart_stub" not in result.stderr
    assert "absl::InitializeLog" not in result.stderr


def test_quiet_import_keeps_every_other_stderr_line(tmp_path):
    """A stand-in tensorflow writes the start-up chatter and one real warning to fd 2."""
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are "
        "written to STDERR\\n')\n"
        "os.write(2, b'I0000 00:00:1 1 cudart_stub.cc:31] Could not find cuda drivers on your "
        "machine, GPU will not be used.\\n')\n"
        "os.write(2, b'W real warning: kept\\n')\n", encoding="utf-8")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from data.quiet import import_tensorflow_quietly as q; q(); q(); print('imported')")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "imported\n"
    assert result.stderr == "W real warning: kept\n"


def comparable_history(out):
    return [{k: v for k, v in row.items() if k != "seconds"}
            for row in csv.DictReader(open(out / "history.csv"))]


def weights_of(out):
    from training.run_files import load_run
    return load_run(out).model.get_weights()


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_artifacts(tmp_path):
    epochs = 4
    uninterrupted = tmp_path / "uninterrupted"
    run_training(uninterrupted, epochs, "--unk-rate", "0.1")

    resumed = tmp_path / "resumed"
    kill_at_epoch(train_command(resumed, epochs, "--unk-rate", "0.1"), 2, epochs)
    assert (resumed / "checkpoint" / "state.json").exists()
    assert json.loads((resumed / "checkpoint" / "state.json").read_text())["epochs_done"] == 2

    refused = subprocess.run(train_command(resumed, epochs), capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
    assert refused.returncode == 2 and "--resume" in refused.stderr

    result = run_training(resumed, epochs, "--resume")
    assert "resuming" in result.stdout and "after epoch 2" in result.stdout
    assert comparable_history(resumed) == comparable_history(uninterrupted)
    for name in ("vocab.json", "tags.json"):
        assert (resumed / name).read_text() == (uninterrupted / name).read_text(), name
    configs = [json.loads((out / "config.json").read_text()) for out in (resumed, uninterrupted)]
    assert {**configs[0], "out": None} == {**configs[1], "out": None}
    metrics = [json.loads((out / "metrics.json").read_text()) for out in (resumed, uninterrupted)]
    for m in metrics:
        m.pop("train_seconds")
    assert metrics[0] == metrics[1]
    for a, b in zip(weights_of(resumed), weights_of(uninterrupted)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "interrupted"
    process = subprocess.Popen(train_command(out, 200), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for line in process.stdout:
        if line.startswith("epoch 1/200"):
            process.send_signal(signal.SIGINT)
            break
    _, stderr = process.communicate(timeout=60)  # a hang inside TensorFlow would time out
    assert process.returncode == 130
    assert f"continue with --resume --out {out}" in stderr and "Traceback" not in stderr
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["epochs_done"] >= 1 and (out / "model.keras").exists()


def test_view_targets_get_each_batch_and_the_positions_turned_unk():
    """The soft targets of an epoch come from view_targets(indices, drops), batch by batch,
    with drops exactly where the student's ids became <unk>; the inputs are those drawn
    without it (the masks' random stream is unchanged)."""
    from data.encoding.inputs import BIGRAM_IDS, CHAR_IDS
    from training.tf_input import EncodedCorpus, training_dataset
    from data.encoding.vocab import UNK_ID

    lengths = [3, 7, 5, 9, 4, 6, 8]
    # sentence k's ids are 10 * (k + 1) + position: never <unk>, and they name the sentence
    chars = [10 * (k + 1) + np.arange(n, dtype=np.int32) for k, n in enumerate(lengths)]
    corpus = EncodedCorpus(inputs={CHAR_IDS: chars, BIGRAM_IDS: [c + 1000 for c in chars]},
                           tag_ids=[np.zeros(n, np.int32) for n in lengths],
                           texts=["x" * n for n in lengths])  # no precomputed targets
    calls = []

    def view_targets(indices, drops):
        calls.append(list(indices))
        targets = np.zeros((len(indices), max(lengths[i] for i in indices), 3), np.float32)
        targets[..., 0] = drops[CHAR_IDS]
        targets[..., 1] = drops[BIGRAM_IDS]
        targets[..., 2] = np.asarray(indices)[:, None]
        return targets

    plain, steps = training_dataset(corpus, 3, seed=5, epoch=2, unk_rate=0.4)
    viewed, _ = training_dataset(corpus, 3, seed=5, epoch=2, unk_rate=0.4,
                                 view_targets=view_targets)
    assert len(calls) == steps == 3 and sorted(sum(calls, [])) == list(range(len(lengths)))
    dropped = 0
    for (inputs, _), (viewed_inputs, (_, soft)) in zip(plain, viewed):
        for name in (CHAR_IDS, BIGRAM_IDS):
            np.testing.assert_array_equal(inputs[name].numpy(), viewed_inputs[name].numpy())
        ids, soft = viewed_inputs[CHAR_IDS].numpy(), soft.numpy()
        for row in range(len(ids)):
            sentence = int(soft[row, 0, 2])
            n = lengths[sentence]
            real = ids[row, :n][ids[row, :n] != UNK_ID]
            assert set(real // 10 - 1) <= {sentence}  # this row's targets are its sentence's
            np.testing.assert_array_equal(soft[row, :n, 0], ids[row, :n] == UNK_ID)
            np.testing.assert_array_equal(
                soft[row, :n, 1], viewed_inputs[BIGRAM_IDS].numpy()[row, :n] == UNK_ID)
            dropped += int(soft[row, :n, 0].sum())
    assert 0 < dropped < sum(lengths)


def test_small_training_sets_get_several_passes_per_epoch():
    from training.tf_input import passes_per_epoch

    assert passes_per_epoch(47775, 32, 1000) == 1  # MSRA: 1,493 steps a pass
    assert passes_per_epoch(2000, 32, 1000) == 16  # 63 steps a pass -> 1,008 steps an epoch
    assert passes_per_epoch(2000, 32, 0) == 1
    assert passes_per_epoch(1, 32, 1000) == 1000


@pytest.mark.parametrize("warmup", [10, 0])
def test_weight_average_equals_the_explicit_weighted_sum(warmup):
    """Each step's weights enter the average with the weight the decay formula gives them."""
    import keras

    from training.averaging import WeightAverage

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    decay = 0.9
    average = WeightAverage(model, decay, warmup)
    initial = [v.numpy() for v in model.trainable_variables]
    assert all(np.array_equal(a, b) for a, b in zip(average.averaged(), initial))
    rng = np.random.default_rng(0)
    history = []
    for _ in range(30):
        values = [rng.normal(size=v.shape).astype(np.float32) for v in model.trainable_variables]
        for variable, value in zip(model.trainable_variables, values):
            variable.assign(value)
        average.update()
        history.append(values)
    expected = [np.zeros(v.shape) for v in initial] if not warmup else \
        [v.astype(np.float64) for v in initial]
    for step, values in enumerate(history, 1):
        rate = min(decay, (1 + step) / (warmup + step)) if warmup else decay
        expected = [rate * e + (1 - rate) * v for e, v in zip(expected, values)]
    if not warmup:  # bias correction: the weights of the 30 steps sum to one
        expected = [e / (1 - decay ** 30) for e in expected]
    with average.applied():
        applied = [v.numpy() for v in model.trainable_variables]
    for got, want in zip(applied, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # outside the block the model has its own (last) weights back
    assert all(np.array_equal(v.numpy(), last)
               for v, last in zip(model.trainable_variables, history[-1]))


def test_bias_corrected_average_of_constant_weights_is_those_weights():
    """warmup 0: the average starts empty; without the correction 3 steps at decay 0.9997
    would give 0.0009 of the weights."""
    import keras

    from training.averaging import WeightAverage

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    average = WeightAverage(model, 0.9997, warmup=0)
    for _ in range(3):
        average.update()
    with average.applied():
        applied = [v.numpy() for v in model.trainable_variables]
    for got, own in zip(applied, model.trainable_variables):
        np.testing.assert_allclose(got, own.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("key, default, before_the_key", [
    ("weight_average_warmup", 0, 10),  # the bias-corrected average; before: tf.train's cap of 10
    ("adversarial", 0.5, 0.0),  # adversarial steps; before: none
])
def test_runs_saved_before_a_key_resume_as_they_trained(tmp_path, key, default, before_the_key):
    """A run folder whose config predates a key trained with that key's old default and must
    resume with it, while new configs get (and keep) the new default."""
    from dataclasses import asdict

    from models.config import TrainConfig

    assert getattr(TrainConfig(), key) == default
    old = asdict(TrainConfig())
    del old[key]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    assert getattr(TrainConfig.load(path), key) == before_the_key
    TrainConfig(**{key: default}).save(path)
    assert getattr(TrainConfig.load(path), key) == default


def test_adversarial_training_is_recorded_and_changes_the_training(trained_run, tmp_path):
    """--adversarial EPS reaches the model: the same seed and data with --adversarial 0 give
    another first-epoch loss than the default (0.5), and config.json records it; a negative
    value is exit 2."""
    default, _ = trained_run
    run_training(tmp_path / "plain", 1, "--adversarial", "0")
    assert json.loads((default / "config.json").read_text())["adversarial"] == 0.5
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["adversarial"] == 0.0
    first_loss = [float(comparable_history(out)[0]["loss"]) for out in (default, tmp_path / "plain")]
    assert first_loss[0] != pytest.approx(first_loss[1], rel=1e-3)
    result = subprocess.run(train_command(tmp_path / "neg", 1, "--adversarial", "-1"),
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert "error: adversarial must be 0 (off) or above, got -1.0" in result.stderr
    assert "Traceback" not in result.stderr
