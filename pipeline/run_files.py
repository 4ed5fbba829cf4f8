"""The files of a run folder, and loading a trained run back (model + vocabularies + tags)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from data.vocab import BigramVocab, CharVocab, TagVocab
from pipeline.config import TrainConfig

MODEL, CONFIG, VOCAB, TAGS, METRICS, HISTORY = (
    "model.keras", "config.json", "vocab.json", "tags.json", "metrics.json", "history.csv")
CHECKPOINT_DIR = "checkpoint"  # last finished epoch, for --resume


def write_atomic(path: Path, text: str) -> None:
    partial = Path(f"{path}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def save_json(path: Path, value) -> None:
    write_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def save_vocabularies(run: Path, chars: CharVocab, bigrams: BigramVocab | None,
                      tags: TagVocab) -> None:
    save_json(run / VOCAB, {"chars": chars.tokens[2:],
                            "bigrams": bigrams.tokens[2:] if bigrams else None})
    save_json(run / TAGS, tags.tags)


def load_vocabularies(run: Path) -> tuple[CharVocab, BigramVocab | None, TagVocab]:
    vocab = json.loads((run / VOCAB).read_text(encoding="utf-8"))
    bigrams = BigramVocab(vocab["bigrams"]) if vocab.get("bigrams") else None
    tags = TagVocab(json.loads((run / TAGS).read_text(encoding="utf-8")))
    return CharVocab(vocab["chars"]), bigrams, tags


@dataclass
class TrainedRun:
    path: Path
    config: TrainConfig
    model: object  # models.tagger.BiLSTMCRF
    chars: CharVocab
    bigrams: BigramVocab | None
    tags: TagVocab
    metrics: dict


def load_run(run: str | Path) -> TrainedRun:
    import keras

    import models.tagger  # noqa: F401  (registers the custom classes for load_model)

    run = Path(run)
    missing = [name for name in (MODEL, CONFIG, VOCAB, TAGS) if not (run / name).exists()]
    if missing:
        raise FileNotFoundError(f"{run}: not a finished run folder (missing {', '.join(missing)})")
    chars, bigrams, tags = load_vocabularies(run)
    metrics_path = run / METRICS
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    model = keras.models.load_model(run / MODEL, compile=False)
    return TrainedRun(run, TrainConfig.load(run / CONFIG), model, chars, bigrams, tags, metrics)


def newest_run(root: Path = Path("runs")) -> Path | None:
    finished = [p.parent for p in root.glob(f"*/{MODEL}")]
    return max(finished, key=lambda p: (p / MODEL).stat().st_mtime) if finished else None
