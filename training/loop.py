"""Training a Bi-LSTM-CRF run folder: data, vocabularies and lexicon, the Keras model, epochs
with early stopping on dev entity F1, checkpoints for --resume, and the final scores.

The library behind `python -m pipeline.train` and the tuner's trials (tuning/search.py).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.files import atomic_path, write_text_atomic
from data.corpus.formats import read_corpus
from data.quiet import import_tensorflow_quietly
from models.config import TrainConfig
from training.distillation import (attach_teacher_targets, load_teachers, pseudo_labelled,
                                   read_unlabeled, student_view_targets)
from training.run_files import (CHECKPOINT_DIR, CONFIG, HISTORY, METRICS, MODEL, load_run,
                                load_vocabularies, save_json, save_vocabularies)
from training.warm_start import init_from_run, set_frozen, with_source_tokens

# What the data holds (forms, conversions, warnings): the command decides where it goes.
NOTES = logging.getLogger("ner.training")

HISTORY_FIELDS = ["epoch", "loss", "dev_f1", "lr", "seconds"]


def load_data(config: TrainConfig):
    def read(path):
        return read_corpus(path, config.strict, config.data_format, config.overlaps,
                           unreviewed=config.unreviewed,
                           discontinuous=config.discontinuous)

    corpora = {"train": read(config.train), "dev": read(config.dev)}
    if config.test:
        corpora["test"] = read(config.test)
    for name, corpus in corpora.items():
        note = " (read as BIO, converted to BMES)" if corpus.converted_from_bio else ""
        if corpus.overlaps_resolved:
            note += f" ({corpus.overlaps_resolved} overlapping spans dropped, --overlaps " \
                    f"{config.overlaps})"
        if corpus.trimmed:
            note += f" ({corpus.trimmed} spans trimmed of surrounding whitespace)"
        NOTES.info(f"{name}: {corpus.path}: {corpus.form} form, {len(corpus.sentences)} "
                   f"sentences{note}")
        if corpus.transition_problems:
            shown = "; ".join(f"line {line}: {reason}"
                              for line, reason in corpus.transition_problems[:3])
            NOTES.warning(f"  warning: {len(corpus.transition_problems)} invalid BMES "
                          f"transitions (use --strict to refuse): {shown}")
    return corpora


def build_vocabularies(config: TrainConfig, corpora, extra_texts=(), tag_names=None,
                       source=None, lexicon=None):
    """The input encoder and tag set, from the training data only (and the lexicon); a
    student also learns characters from the raw text its teachers tag (extra_texts) and
    takes its teachers' tag set (tag_names); a run started from `source` (--init-from) also
    takes the source's characters and bigrams, whose rows it inherits. `lexicon`: the loaded
    --lexicon, if the caller has it already."""
    from data.encoding.inputs import InputEncoder
    from data.lexicon.words import load_lexicon
    from data.lexicon.features import LexiconFeatures, build_word_vocab, char_prior_table
    from data.corpus.tags import tag_set
    from data.encoding.vocab import BigramVocab, CharVocab, TagVocab

    texts = [s.text for s in corpora["train"].sentences] + list(extra_texts)
    chars = CharVocab.build(texts, config.char_min_count)
    bigrams = BigramVocab.build(texts, config.bigram_min_count) if config.bigrams else None
    if source is not None:
        chars = CharVocab(with_source_tokens(chars.tokens[2:], source.encoder.chars.tokens))
        if bigrams is not None and source.encoder.bigrams is not None:
            bigrams = BigramVocab(with_source_tokens(bigrams.tokens[2:],
                                                     source.encoder.bigrams.tokens))
    features = None
    if source is not None and config.lexicon_char_priors == "auto" and config.uses_lexicon:
        # the source's choice keeps the Bi-LSTM's input width, so its weights can transfer
        config.lexicon_char_priors = source.config.lexicon_char_priors
    uses_priors = config.resolve_char_priors(sum(map(len, texts)))
    if not config.uses_lexicon:
        lexicon = None
    elif lexicon is None:
        lexicon = load_lexicon(config.lexicon)
    if lexicon is not None and config.lexicon_train_entities:
        from data.lexicon.train_entities import with_train_entities
        lexicon = with_train_entities(lexicon, corpora["train"].sentences,
                                      config.lexicon_train_entities)
    if lexicon is not None:
        prior_chars = char_prior_table(lexicon)[0] if uses_priors else None
        features = LexiconFeatures(lexicon, config.lexicon_features, top_k=config.word_top_k,
                                   frequency_classes=config.lexicon_frequency_classes,
                                   char_prior_chars=prior_chars)
        if features.uses_words:
            word_vocab = build_word_vocab(features.matcher, texts, config.word_min_count)
            features = LexiconFeatures(lexicon, config.lexicon_features, word_vocab,
                                       config.word_top_k, config.lexicon_frequency_classes,
                                       prior_chars)
    # Tags from every given file: a type seen only in dev must still be encodable.
    seen = tag_set(s.tags for corpus in corpora.values() for s in corpus.sentences)
    if tag_names is not None:
        unknown = sorted(set(seen) - set(tag_names))
        if unknown:
            raise ValueError(f"the data has tags the teachers do not know: {', '.join(unknown)}")
        seen = list(tag_names)
    return InputEncoder(chars, bigrams, features), TagVocab(seen)


def build_model(config: TrainConfig, encoder, tags):
    from data.lexicon.features import char_prior_table
    from models.tagger import BiLSTMCRF

    lexicon = encoder.lexicon
    uses_words = bool(lexicon and lexicon.uses_words)
    prior_table = (char_prior_table(lexicon.lexicon)[1]
                   if lexicon and lexicon.char_prior_chars is not None else None)
    model = BiLSTMCRF(num_chars=len(encoder.chars), num_tags=len(tags),
                      num_bigrams=len(encoder.bigrams) if encoder.bigrams else 0,
                      bigram_dim=config.bigram_dim if encoder.bigrams else 0,
                      num_lexicon_flags=lexicon.num_flags if lexicon else 0,
                      num_words=lexicon.num_words if uses_words else 0,
                      word_dim=config.word_dim if uses_words else 0,
                      word_top_k=config.word_top_k if uses_words else 0,
                      num_char_priors=len(prior_table) if prior_table is not None else 0,
                      char_prior_dim=prior_table.shape[1] if prior_table is not None else 0,
                      **config.model_settings())
    model(model.input_example())
    if prior_table is not None:  # frozen: it holds the lexicon's statistics, not learnt ones
        model.char_prior_embedding.set_weights([prior_table])
    model.compile(optimizer=new_optimizer(config, config.lr))
    return model


def new_optimizer(config: TrainConfig, lr: float):
    import keras
    return keras.optimizers.Adam(lr, clipnorm=config.clipnorm or None)


class Progress:
    """A tqdm bar over an epoch's batches (stderr, only on a terminal)."""

    def __init__(self, total: int, epoch: int, epochs: int):
        self.total, self.epoch, self.epochs = total, epoch, epochs

    def callback(self):
        import keras
        from tqdm import tqdm

        progress = self

        class Bar(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                progress.bar = tqdm(total=progress.total, leave=False, unit="batch", disable=None,
                                    desc=f"epoch {progress.epoch + 1}/{progress.epochs}")

            def on_train_batch_end(self, batch, logs=None):
                progress.bar.update(1)
                if logs and "loss" in logs:
                    progress.bar.set_postfix(loss=f"{float(logs['loss']):.3f}", refresh=False)

            def on_epoch_end(self, epoch, logs=None):
                progress.bar.close()

        return Bar()


class StopRequest:
    """A request to stop training between batches, set by whoever owns the process's signals
    (pipeline.train's Ctrl-C handler); checked after each batch and after each epoch."""

    def __init__(self):
        self.requested = False

    def callback(self):
        import keras
        request = self

        class Stop(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if request.requested:
                    self.model.stop_training = True

        return Stop()

    def check(self):
        if self.requested:
            raise KeyboardInterrupt


def seed_generator_states(model) -> list:
    # Dropout's random state is a variable that `.keras` files do not store; without it a
    # resumed run would draw other dropout masks than an uninterrupted one.
    return [v for v in model.variables if "seed_generator_state" in v.path]


def weight_average(model, config: TrainConfig):
    from training.averaging import WeightAverage
    return WeightAverage(model, config.weight_average, config.weight_average_warmup) \
        if config.weight_average > 0 else None


def save_checkpoint(run: Path, model, state: dict, average=None) -> None:
    """Files named by epoch, then state.json naming them: state.json is the commit point, so a
    kill at any moment leaves the previous epoch's checkpoint whole."""
    folder = run / CHECKPOINT_DIR
    folder.mkdir(exist_ok=True)
    epoch = state["epochs_done"]
    model.save(folder / f"epoch{epoch}.keras")
    if average:
        np.savez(folder / f"epoch{epoch}-average.npz", **average.state())
    state["seed_states"] = [v.numpy().tolist() for v in seed_generator_states(model)]
    save_json(folder / "state.json", state)
    for old in folder.glob("epoch*"):
        if not old.name.startswith(f"epoch{epoch}.") and not old.name.startswith(f"epoch{epoch}-"):
            old.unlink()


def load_checkpoint(run: Path, config: TrainConfig):
    import keras

    import models.tagger  # noqa: F401

    folder = run / CHECKPOINT_DIR
    state = json.loads((folder / "state.json").read_text())
    epoch = state["epochs_done"]
    model = keras.models.load_model(folder / f"epoch{epoch}.keras")
    for variable, value in zip(seed_generator_states(model), state.pop("seed_states"), strict=True):
        variable.assign(value)
    average = weight_average(model, config)
    if average:
        average.restore(np.load(folder / f"epoch{epoch}-average.npz"))
    return model, average, state


def write_history(run: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(run / HISTORY, buffer.getvalue())


def train(config: TrainConfig, resume: bool = False, log=print,
          stop: StopRequest | None = None) -> dict:
    """Train into config.out; returns metrics (also written to metrics.json). `log` takes each
    progress line; `stop` ends training after the current batch (KeyboardInterrupt)."""
    from data.lexicon.words import load_lexicon

    import_tensorflow_quietly()
    import keras
    import tensorflow as tf

    from data.encoding.inputs import describe
    from training.tf_input import encode_corpus

    run = Path(config.out)
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    corpora = load_data(config)
    teachers = load_teachers(config.teachers) if config.teachers else []
    unlabeled = read_unlabeled(config.unlabeled, config.max_len) if config.unlabeled else []
    if unlabeled:
        log(f"unlabeled: {len(unlabeled)} texts from {len(config.unlabeled)} file(s)")
    checkpoint_state = run / CHECKPOINT_DIR / "state.json"
    resuming = resume and checkpoint_state.exists()
    needs_lexicon = config.uses_lexicon and (not resuming or config.lexicon_train_entities)
    lexicon = load_lexicon(config.lexicon) if needs_lexicon else None  # once per run
    if resuming:
        encoder, tags = load_vocabularies(run)
        model, average, state = load_checkpoint(run, config)
        log(f"resuming {run} after epoch {state['epochs_done']}")
    else:
        if resume:
            log(f"no checkpoint in {run}: starting from scratch")
        run.mkdir(parents=True, exist_ok=True)
        source = load_run(config.init_from) if config.init_from else None
        encoder, tags = build_vocabularies(
            config, corpora, unlabeled, teachers[0].tags.tags if teachers else None, source,
            lexicon)
        model = build_model(config, encoder, tags)
        transferred = [] if source is None else init_from_run(model, encoder, tags, source, log)
        average = weight_average(model, config)
        config.save(run / CONFIG)
        save_vocabularies(run, encoder, tags)
        state = {"epochs_done": 0, "best_f1": -1.0, "best_epoch": 0, "history": [],
                 "transferred": transferred}
    encoded = {name: encode_training(config, corpus.sentences, encoder, tags, log, lexicon)
               if name == "train" else encode_corpus(corpus.sentences, encoder, tags)
               for name, corpus in corpora.items()}
    view_targets = None
    if teachers:
        # the student view scores each batch anew: clean-text targets would go unused
        add_teacher_targets(encoded, teachers, unlabeled, encoder, tags, log,
                            config.temperature, clean_targets=config.teacher_view == "clean")
        model.soft_weight, model.temperature = config.soft_weight, config.temperature
        if config.teacher_view == "student":
            view_targets = student_view_targets(teachers, encoded["train"].texts,
                                                config.temperature)
            log("teacher view: each epoch the teachers score the text with the student's <unk>")
    model.adversarial = config.adversarial
    log(f"{describe(encoder)}, {len(tags)} tags, {model.count_params():,} parameters")

    fit = Fit(config, run, model, average, encoded, tags, view_targets)
    for row in epochs(fit, state, stop or StopRequest(), log):
        log(f"epoch {row['epoch']}/{config.epochs}  loss {row['loss']:.4f}  dev F1 "
            f"{row['dev_f1']:.4f}{'  *best' if row['improved'] else ''}  lr {row['lr']:.2e}  "
            f"{row['seconds']:.0f}s")
    return finish(run, config, encoded, tags, state, log)


def encode_training(config: TrainConfig, sentences, encoder, tags, log, base_lexicon=None):
    """The training sentences as the model reads them; with --lexicon-train-entities K, fold by
    fold, each with the lexicon (`base_lexicon`, the --lexicon as loaded) that holds only the
    other folds' entities."""
    from training.tf_input import EncodedCorpus, encode_corpus

    if not (config.lexicon_train_entities and encoder.lexicon):
        return encode_corpus(sentences, encoder, tags, config.max_len)
    from data.encoding.inputs import InputEncoder
    from data.lexicon.train_entities import fold_lexicons
    from data.lexicon.words import load_lexicon

    if base_lexicon is None:  # called on its own; train() passes the one it loaded
        base_lexicon = load_lexicon(config.lexicon)
    parts = []  # (char priors, if on, keep the full lexicon's table: one frozen table)
    for start, end, lexicon in fold_lexicons(base_lexicon, sentences,
                                             config.lexicon_train_entities):
        fold_encoder = InputEncoder(encoder.chars, encoder.bigrams,
                                    encoder.lexicon.with_lexicon(lexicon))
        parts.append(encode_corpus(sentences[start:end], fold_encoder, tags, config.max_len))
    log(f"training entities in the lexicon: {len(encoder.lexicon.lexicon):,} words; "
        f"{len(parts)} folds, each encoded with the others' entities")
    return EncodedCorpus(inputs={name: [row for part in parts for row in part.inputs[name]]
                                 for name in parts[0].inputs},
                         tag_ids=[ids for part in parts for ids in part.tag_ids],
                         texts=[text for part in parts for text in part.texts])


def add_teacher_targets(encoded, teachers, unlabeled, encoder, tags, log,
                        temperature: float = 1.0, clean_targets: bool = True) -> None:
    """Soft targets on the training sentences, then the raw texts as teacher-tagged sentences
    with theirs (deterministic: the same on a resumed run). Without clean_targets only the
    raw texts' hard tags are added: the soft targets come per batch (the student view)."""
    from training.tf_input import encode_corpus

    train = encoded["train"]
    if clean_targets:
        attach_teacher_targets(train, teachers, log, temperature)
    if unlabeled:
        sentences, marginals = pseudo_labelled(teachers, unlabeled, tags, temperature)
        extra = encode_corpus(sentences, encoder, tags)
        for name, arrays in extra.inputs.items():
            train.inputs[name] = train.inputs[name] + arrays
        train.tag_ids += extra.tag_ids
        train.texts += extra.texts
        if clean_targets:
            train.soft_targets += [m for m, s in zip(marginals, sentences) if s.text]
        log(f"training on {len(train)} sentences ({len(extra)} tagged by the teachers)")


@dataclass
class Fit:
    """What the epochs work on: the run's settings, folder, network and data."""
    config: TrainConfig
    run: Path
    model: object
    average: object  # the weight average (training/averaging.py), or None
    encoded: dict  # split name -> EncodedCorpus
    tags: object
    view_targets: object = None  # the student view's per-batch teacher targets


def epochs(fit: Fit, state: dict, stop: StopRequest, log):
    """Train epoch after epoch until early stopping, checkpointing each; yields each epoch's
    figures (unrounded, with `improved`). `state` is the checkpointed state, updated in place."""
    from training.averaging import nothing_applied
    from training.predict import score_corpus
    from training.tf_input import passes_per_epoch, training_dataset

    config, run, model, average, encoded, tags = (fit.config, fit.run, fit.model, fit.average,
                                                  fit.encoded, fit.tags)
    passes = passes_per_epoch(len(encoded["train"]), config.batch_size, config.epoch_min_steps)
    if passes > 1:
        log(f"small training set: one epoch = {passes} passes over it "
            f"(at least {config.epoch_min_steps} steps, --epoch-min-steps)")
    for epoch in range(state["epochs_done"], config.epochs):
        if epoch - state["best_epoch"] >= config.patience and state["best_epoch"] > 0:
            break
        started = time.time()
        # each frozen epoch and the thaw get a new optimizer, so --resume continues exactly
        if epoch <= config.init_frozen_epochs and state.get("transferred"):
            freeze = epoch < config.init_frozen_epochs
            set_frozen(model, state["transferred"], freeze,
                       new_optimizer(config, config.learning_rate(epoch)))
            log(f"epoch {epoch + 1}: " + ("the layers from --init-from frozen" if freeze
                                          else "every layer trains"))
        lr = config.learning_rate(epoch)
        model.optimizer.learning_rate.assign(lr)
        dataset, steps = training_dataset(encoded["train"], config.batch_size, config.seed,
                                          epoch, config.unk_rate, passes, fit.view_targets)
        progress = Progress(steps, epoch, config.epochs)
        callbacks = [progress.callback(), stop.callback()]
        callbacks += [average.callback()] if average else []
        history = model.fit(dataset, epochs=1, verbose=0, callbacks=callbacks)
        stop.check()  # a half-finished epoch is neither scored nor checkpointed
        loss = float(history.history["loss"][-1])
        with average.applied() if average else nothing_applied():
            dev_f1 = score_corpus(model, encoded["dev"], tags)["micro"]["f1"]
            improved = dev_f1 > state["best_f1"]
            if improved:
                with atomic_path(run / MODEL, ".keras") as partial:
                    model.save(partial)
        seconds = time.time() - started
        state["history"].append({"epoch": epoch + 1, "loss": round(loss, 5),
                                 "dev_f1": round(dev_f1, 5), "lr": lr,
                                 "seconds": round(seconds, 1)})
        if improved:
            state["best_f1"], state["best_epoch"] = dev_f1, epoch + 1
        state["epochs_done"] = epoch + 1
        save_checkpoint(run, model, state, average)
        write_history(run, state["history"])
        yield {"epoch": epoch + 1, "loss": loss, "dev_f1": dev_f1, "lr": lr,
               "seconds": seconds, "improved": improved}


def finish(run: Path, config, encoded, tags, state, log) -> dict:
    import keras

    from training.predict import score_corpus

    best = keras.models.load_model(run / MODEL, compile=False)
    # The file saved during training carries Adam's state (3x the weights): keep weights only.
    with atomic_path(run / MODEL, ".keras") as partial:
        best.save(partial)
    metrics = {"best_epoch": state["best_epoch"], "epochs_run": state["epochs_done"],
               "train_seconds": round(sum(row["seconds"] for row in state["history"]), 1),
               "parameters": best.count_params(),
               "dev": score_corpus(best, encoded["dev"], tags)}
    if "test" in encoded:
        metrics["test"] = score_corpus(best, encoded["test"], tags)
    save_json(run / METRICS, metrics)
    shutil.rmtree(run / CHECKPOINT_DIR, ignore_errors=True)
    summary = f"best epoch {state['best_epoch']}: dev F1 {metrics['dev']['micro']['f1']:.4f}"
    if "test" in metrics:
        summary += f", test F1 {metrics['test']['micro']['f1']:.4f}"
    log(f"{summary}; artifacts in {run}")
    return metrics
