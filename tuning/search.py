"""A Keras Tuner search over the Bi-LSTM-CRF whose trials are whole training runs.

Each trial trains a normal run folder (dev entity F1 as `val_f1`, never token accuracy),
exports it to ONNX and measures its CPU throughput through `serve`, so that the cost of each
configuration is measured, not guessed. Our own `run_trial` reports the metrics, so Keras
Tuner's built-in one (which imports tensorboard, absent with TF 2.21) is never used.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras_tuner as kt
import numpy as np
from keras_tuner.src import utils as kt_utils

from data.files import write_text_atomic
from models.config import TrainConfig

OBJECTIVE = "val_f1"


def _atomic_save_json(path, obj):
    """Keras Tuner writes its state files in place, so a Ctrl-C during a write leaves a
    truncated JSON file that the next run cannot reload. Write a temporary file and rename."""
    text = json.dumps(obj)
    write_text_atomic(path, text)
    return text


kt_utils.save_json = _atomic_save_json  # every Keras Tuner save goes through this function


@dataclass
class SearchSpace:
    layers: list[int] = field(default_factory=lambda: [1, 2, 3])
    hidden_size: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    embedding_dim: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    batch_size: list[int] = field(default_factory=lambda: [32, 64, 128])
    bigrams: list[bool] = field(default_factory=lambda: [True, False])
    lexicon_features: list[str] = field(default_factory=lambda: ["none", "flags", "words", "both"])
    dropout: tuple[float, float] = (0.1, 0.5)
    lr: tuple[float, float] = (5e-4, 5e-3)

    def declare(self) -> kt.HyperParameters:
        hp = kt.HyperParameters()
        hp.Choice("layers", self.layers)
        hp.Choice("hidden_size", self.hidden_size)
        hp.Choice("embedding_dim", self.embedding_dim)
        hp.Choice("batch_size", self.batch_size)
        hp.Choice("bigrams", [int(b) for b in self.bigrams])
        hp.Choice("lexicon_features", self.lexicon_features)
        hp.Float("dropout", *self.dropout, step=0.1)
        hp.Float("lr", *self.lr, sampling="log")
        return hp


# The hyperparameters searched, each named as its TrainConfig field, with that field's type.
TUNED = {"layers": int, "hidden_size": int, "embedding_dim": int, "batch_size": int,
         "bigrams": bool, "lexicon_features": str, "dropout": float, "lr": float}


def trial_config(base: TrainConfig, values: dict, out: Path) -> TrainConfig:
    config = TrainConfig(**asdict(base))
    config.out = str(out)
    for name, field_type in TUNED.items():
        setattr(config, name, field_type(values[name]))
    if "tuner/epochs" in values:  # Hyperband gives each trial its own budget
        config.epochs = int(values["tuner/epochs"])
    return config


def measure_throughput(onnx_path: Path, texts: list[str], repeats: int = 3) -> float:
    """chars/s of the fp32 ONNX model through serve, one thread, best of `repeats` passes."""
    from serve.tagger import Tagger

    tagger = Tagger.load(onnx_path, "cpu", threads=1)
    tagger.tag_flat(texts[:64])
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        tagger.tag_flat(texts)
        best = min(best, time.perf_counter() - started)
    return sum(map(len, texts)) / best


class RunTuner(kt.engine.base_tuner.BaseTuner):
    """Trials are training runs in <directory>/<project>/runs/<trial_id>."""

    def __init__(self, oracle, base: TrainConfig, sample_texts: list[str], log=print, **kwargs):
        super().__init__(oracle=oracle, hypermodel=None, **kwargs)
        self.base, self.sample_texts, self.log = base, sample_texts, log

    def runs_dir(self) -> Path:
        return Path(self.project_dir) / "runs"

    def run_trial(self, trial, *args, **kwargs):
        import keras

        from export.to_onnx import write_onnx
        from training.run_files import load_run
        from training.loop import train

        out = self.runs_dir() / trial.trial_id
        shutil.rmtree(out, ignore_errors=True)  # a trial cut short is run again from scratch
        config = trial_config(self.base, trial.hyperparameters.values, out)
        self.log(f"trial {trial.trial_id}: {describe(trial.hyperparameters.values)}")
        keras.backend.clear_session()
        started = time.time()
        metrics = train(config, log=lambda line: self.log(f"  {line}"))
        onnx_path = out / "model.onnx"
        write_onnx(load_run(out), onnx_path)
        chars_per_s = measure_throughput(onnx_path, self.sample_texts)
        result = {OBJECTIVE: metrics["dev"]["micro"]["f1"], "parameters": metrics["parameters"],
                  "onnx_mb": onnx_path.stat().st_size / 1e6, "chars_per_s": chars_per_s,
                  "train_seconds": time.time() - started, "epochs": metrics["epochs_run"]}
        self.log(f"trial {trial.trial_id}: dev F1 {result[OBJECTIVE]:.4f}, "
                 f"{result['chars_per_s']:,.0f} chars/s, {result['parameters']:,} parameters")
        return result


def describe(values: dict) -> str:
    return ", ".join(f"{k}={v:.2g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in values.items())


def reference_values(base: TrainConfig, hp: kt.HyperParameters) -> dict | None:
    """The base (default) training configuration as a point of the space, or None when the
    space does not hold it (narrowed by flags)."""
    # Keras Tuner holds the bigram switch as a Choice of 0/1.
    values = {name: int(getattr(base, name)) if field_type is bool else getattr(base, name)
              for name, field_type in TUNED.items()}
    if not base.uses_lexicon:
        values["lexicon_features"] = "none"
    for parameter in hp.space:
        value = values.get(parameter.name)
        if isinstance(parameter, kt.engine.hyperparameters.Choice):
            if value not in parameter.values:
                return None
        elif not parameter.min_value <= value <= parameter.max_value:
            return None
    return values


def run_reference_first(oracle, reference: dict | None):
    """The first trial trains the default configuration, under the same budget as the others,
    so the search shows where the default sits against what it found."""
    if reference is None:
        return oracle
    populate_space = oracle.populate_space

    def populate_reference_first(trial_id):
        if not oracle.trials:
            return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": dict(reference)}
        return populate_space(trial_id)

    oracle.populate_space = populate_reference_first
    return oracle


def make_oracle(kind: str, space: SearchSpace, max_trials: int, seed: int,
                base: TrainConfig | None = None):
    objective = kt.Objective(OBJECTIVE, "max")
    hp = space.declare()
    reference = reference_values(base, hp) if base is not None else None
    if kind == "bayesian":
        return run_reference_first(kt.oracles.BayesianOptimizationOracle(
            objective, max_trials, hyperparameters=hp, seed=seed, num_initial_points=4),
            reference)
    if kind == "random":
        return run_reference_first(kt.oracles.RandomSearchOracle(
            objective, max_trials, hyperparameters=hp, seed=seed), reference)
    if kind == "hyperband":
        # Hyperband decides epochs itself; its trials stop at max_epochs.
        return kt.oracles.HyperbandOracle(objective, max_epochs=3, hyperparameters=hp, seed=seed,
                                          max_retries_per_trial=0)
    raise ValueError(f"unknown tuner {kind!r}")


def completed_trials(tuner) -> list[dict]:
    rows = []
    for trial in tuner.oracle.trials.values():
        if trial.status != "COMPLETED" or not trial.metrics.exists(OBJECTIVE):
            continue
        row = {"trial": trial.trial_id, **trial.hyperparameters.values}
        for name in (OBJECTIVE, "parameters", "onnx_mb", "chars_per_s", "train_seconds",
                     "epochs"):
            if trial.metrics.exists(name):
                row[name] = trial.metrics.get_last_value(name)
        rows.append(row)
    return sorted(rows, key=lambda r: r["trial"])


# Speeds this close count as equal: two trials of one architecture time differently by a few
# percent, and the pruning rule must not pick the less accurate one on timing noise.
SAME_SPEED = 0.05


def choose(rows: list[dict], tolerance: float) -> tuple[dict, dict]:
    """(best-F1 trial, cheapest trial within tolerance of it): the pruning rule. Among trials
    as fast as the fastest eligible one (within SAME_SPEED), the most accurate is chosen."""
    best = max(rows, key=lambda r: r[OBJECTIVE])
    eligible = [r for r in rows if r[OBJECTIVE] >= best[OBJECTIVE] - tolerance]
    fastest = max(r["chars_per_s"] for r in eligible)
    as_fast = [r for r in eligible if r["chars_per_s"] >= fastest * (1 - SAME_SPEED)]
    return best, max(as_fast, key=lambda r: r[OBJECTIVE])


def pareto_front(rows: list[dict]) -> list[dict]:
    """Trials no other trial beats on both dev F1 and chars/s."""
    return [r for r in rows if not any(
        o[OBJECTIVE] >= r[OBJECTIVE] and o["chars_per_s"] >= r["chars_per_s"] and
        (o[OBJECTIVE] > r[OBJECTIVE] or o["chars_per_s"] > r["chars_per_s"]) for o in rows)]


def to_json(value) -> str:
    return json.dumps(value, default=lambda v: v.item() if isinstance(v, np.generic) else str(v))
