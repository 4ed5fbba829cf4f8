"""The files of a run folder, and loading a trained run back (model + vocabularies + tags)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from data.files import write_text_atomic
from data.encoding.inputs import (InputEncoder, encoder_description, encoder_from_description,
                           lexicon_json_of)
from data.encoding.vocab import TagVocab
from models.config import TrainConfig

MODEL, CONFIG, VOCAB, TAGS, METRICS, HISTORY, LEXICON = (
    "model.keras", "config.json", "vocab.json", "tags.json", "metrics.json", "history.csv",
    "lexicon.json")
CHECKPOINT_DIR = "checkpoint"  # last finished epoch, for --resume


def save_json(path: Path, value) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def save_vocabularies(run: Path, encoder: InputEncoder, tags: TagVocab) -> None:
    """vocab.json (chars, bigrams, lexicon feature settings and word rows), tags.json, and
    lexicon.json: the exact lexicon the run used, so the run reproduces and serves alone."""
    save_json(run / VOCAB, encoder_description(encoder))
    lexicon_json = lexicon_json_of(encoder)
    if lexicon_json is not None:
        write_text_atomic(run / LEXICON, lexicon_json)
    save_json(run / TAGS, tags.tags)


def load_vocabularies(run: Path) -> tuple[InputEncoder, TagVocab]:
    description = json.loads((run / VOCAB).read_text(encoding="utf-8"))
    lexicon_path = run / LEXICON
    lexicon_json = lexicon_path.read_text(encoding="utf-8") if lexicon_path.exists() else None
    tags = TagVocab(json.loads((run / TAGS).read_text(encoding="utf-8")))
    return encoder_from_description(description, lexicon_json), tags


@dataclass
class TrainedRun:
    path: Path
    config: TrainConfig
    model: object  # models.tagger.BiLSTMCRF
    encoder: InputEncoder
    tags: TagVocab
    metrics: dict


def load_run(run: str | Path) -> TrainedRun:
    import keras

    import models.tagger  # noqa: F401  (registers the custom classes for load_model)

    run = Path(run)
    missing = [name for name in (MODEL, CONFIG, VOCAB, TAGS) if not (run / name).exists()]
    if missing:
        raise FileNotFoundError(f"{run}: not a finished run folder (missing {', '.join(missing)})")
    encoder, tags = load_vocabularies(run)
    metrics_path = run / METRICS
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    model = keras.models.load_model(run / MODEL, compile=False)
    return TrainedRun(run, TrainConfig.load(run / CONFIG), model, encoder, tags, metrics)


def check_one_tag_set(runs: list[TrainedRun], role: str) -> None:
    """ValueError naming the first run whose tag set differs from the first's: teachers and
    ensemble members must share one (`role` says which they are)."""
    for run in runs[1:]:
        if run.tags.tags != runs[0].tags.tags:
            raise ValueError(f"{run.path}: its tag set differs from {runs[0].path}'s; "
                             f"{role} must share one tag set")


def newest_run(root: Path = Path("runs")) -> Path | None:
    finished = [p.parent for p in root.glob(f"*/{MODEL}")]
    return max(finished, key=lambda p: (p / MODEL).stat().st_mtime) if finished else None
