"""Keras Tuner search: pruning rule, resume after interruption, distributed chief + workers."""
import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import FIXTURES, ROOT, default_sigint

pytest.importorskip("keras_tuner")

TINY_SEARCH = ["--train", str(FIXTURES / "train.txt"), "--dev", str(FIXTURES / "dev.txt"),
               "--epochs", "1", "--tuner", "random", "--layers", "1", "--hidden-sizes", "8,16",
               "--embedding-dims", "8,16", "--batch-sizes", "32,64", "--epoch-min-steps", "0"]


def tune_command(out, max_trials):
    return [sys.executable, "-m", "pipeline.tune", "--out", str(out), "--max-trials",
            str(max_trials), *TINY_SEARCH]


def trial_rows(out):
    return list(csv.DictReader(open(out / "trials.csv")))


def test_pruning_chooses_the_fastest_within_tolerance():
    from tuning.search import choose, pareto_front

    rows = [{"trial": "a", "val_f1": 0.90, "chars_per_s": 100},
            {"trial": "b", "val_f1": 0.897, "chars_per_s": 300},
            {"trial": "c", "val_f1": 0.80, "chars_per_s": 900},
            {"trial": "d", "val_f1": 0.896, "chars_per_s": 200}]
    best, chosen = choose(rows, tolerance=0.005)
    assert best["trial"] == "a" and chosen["trial"] == "b"
    assert choose(rows, tolerance=0.0)[1]["trial"] == "a"
    assert {r["trial"] for r in pareto_front(rows)} == {"a", "b", "c"}
    # one architecture timed twice: the timing noise does not decide, dev F1 does
    twins = [{"trial": "x", "val_f1": 0.809, "chars_per_s": 90_000},
             {"trial": "y", "val_f1": 0.805, "chars_per_s": 93_000},
             {"trial": "z", "val_f1": 0.700, "chars_per_s": 300_000}]
    assert choose(twins, tolerance=0.005)[1]["trial"] == "x"
    twins[0]["chars_per_s"] = 80_000  # 14% slower is slower
    assert choose(twins, tolerance=0.005)[1]["trial"] == "y"


@pytest.mark.slow
def test_interrupted_search_resumes_to_exactly_max_trials(tmp_path):
    out = tmp_path / "search"
    # unbuffered: "Trial 2 Complete" must arrive when it is printed, not with a later flush
    process = subprocess.Popen(tune_command(out, 4), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"},
                               preexec_fn=default_sigint)
    finished = 0
    deadline = time.time() + 300
    for line in process.stdout:
        if re.match(r"Trial \d+ Complete", line):
            finished += 1
            if finished == 2:
                process.send_signal(signal.SIGINT)
                break
        assert time.time() < deadline
    process.wait(timeout=120)
    assert not (out / "trials.csv").exists()
    rerun = subprocess.run(tune_command(out, 4), capture_output=True, text=True, cwd=ROOT,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    rows = trial_rows(out)
    assert len(rows) == 4 and len({r["trial"] for r in rows}) == 4
    assert (out / "pareto.png").stat().st_size > 0
    assert "Chosen (the highest chars/s within 0.005" in (out / "summary.md").read_text()
    assert (out / "chosen" / "model.keras").exists() and (out / "chosen" / "vocab.json").exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_distributed_chief_and_two_workers(tmp_path):
    out = tmp_path / "search"
    port = free_port()
    processes = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {**os.environ, "KERASTUNER_TUNER_ID": tuner_id,
               "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(port)}
        processes[tuner_id] = subprocess.Popen(
            tune_command(out, 4), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=ROOT, env=env)
        if tuner_id == "chief":
            time.sleep(5)  # the chief's oracle server listens before workers connect
    outputs = {}
    try:
        for tuner_id, process in processes.items():
            outputs[tuner_id], _ = process.communicate(timeout=480)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    for tuner_id, process in processes.items():
        assert process.returncode == 0, f"{tuner_id}:\n{outputs[tuner_id][-3000:]}"
    ran = {tuner_id: re.findall(r"^trial (\d+): dev F1", outputs[tuner_id], re.M)
           for tuner_id in ("tuner0", "tuner1")}
    all_runs = ran["tuner0"] + ran["tuner1"]
    assert len(all_runs) == 4 and len(set(all_runs)) == 4, ran  # every trial ran exactly once
    assert ran["tuner0"] and ran["tuner1"]  # both workers took part
    reported = {row["trial"] for row in trial_rows(out)}
    assert reported == set(all_runs)  # and the chief has every result


@pytest.mark.parametrize("kind", ["bayesian", "random"])
def test_first_trial_is_the_default_configuration_when_the_space_holds_it(tmp_path, kind):
    from models.config import TrainConfig
    from tuning.search import SearchSpace, make_oracle

    default = TrainConfig()
    oracle = make_oracle(kind, SearchSpace(), max_trials=3, seed=1, base=default)
    oracle._set_project_dir(str(tmp_path), "search")
    first, second = oracle.create_trial("a").hyperparameters.values, \
        oracle.create_trial("b").hyperparameters.values
    assert first == {"layers": default.layers, "hidden_size": default.hidden_size,
                     "embedding_dim": default.embedding_dim, "batch_size": default.batch_size,
                     "bigrams": int(default.bigrams), "dropout": default.dropout,
                     "lr": default.lr, "lexicon_features": default.lexicon_features}
    assert second != first

    narrowed = make_oracle(kind, SearchSpace(hidden_size=[32, 64]), max_trials=3, seed=1,
                           base=default)
    narrowed._set_project_dir(str(tmp_path), "narrowed")
    assert narrowed.create_trial("a").hyperparameters.values["hidden_size"] in (32, 64)


def test_lexicon_choice_is_searched_and_none_turns_the_lexicon_off(tmp_path):
    from models.config import TrainConfig
    from tuning.search import SearchSpace, make_oracle, reference_values, trial_config

    plain = TrainConfig(lexicon="none")
    hp = SearchSpace().declare()
    assert reference_values(plain, hp)["lexicon_features"] == "none"
    values = {**reference_values(TrainConfig(), hp), "lexicon_features": "none"}
    config = trial_config(TrainConfig(), values, tmp_path / "t")
    assert not config.uses_lexicon
    values["lexicon_features"] = "both"
    config = trial_config(TrainConfig(), values, tmp_path / "t")
    assert config.uses_lexicon and config.lexicon_features == "both"
    oracle = make_oracle("random", SearchSpace(), max_trials=12, seed=3, base=TrainConfig())
    oracle._set_project_dir(str(tmp_path), "lexicon")
    seen = {oracle.create_trial(str(i)).hyperparameters.values["lexicon_features"]
            for i in range(12)}
    assert len(seen) >= 3  # the choice is part of the space, not fixed


def test_summary_compares_the_chosen_trial_with_the_default_configuration(tmp_path):
    from tuning.report import write_summary
    from tuning.search import choose

    def row(trial, hidden, f1, speed):
        return {"trial": trial, "layers": 1, "hidden_size": hidden, "embedding_dim": 64,
                "batch_size": 64, "bigrams": 1, "dropout": 0.5, "lr": 2e-3, "val_f1": f1,
                "chars_per_s": speed, "parameters": 1000, "onnx_mb": 1.0, "epochs": 3,
                "train_seconds": 60.0}
    rows = [row("00", 128, 0.80, 100_000), row("01", 64, 0.798, 250_000),
            row("02", 32, 0.70, 400_000)]
    best, chosen = choose(rows, tolerance=0.005)
    write_summary(tmp_path / "summary.md", rows, chosen, best, 0.005, tmp_path / "chosen",
                  reference=rows[0])
    text = (tmp_path / "summary.md").read_text()
    assert "Speed-up of the chosen over the default configuration: 2.50x at -0.20 F1 points" \
        in text
    table = [line for line in text.splitlines() if line.startswith("| 0")]
    assert [line.split(" | ")[0] for line in table] == ["| 00", "| 01", "| 02"]
    assert table[0].endswith("| best, default, front |")
    assert table[1].endswith("| chosen, front |")
