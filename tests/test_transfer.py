"""`pipeline.train --init-from RUN`: every layer whose role and shape match starts from RUN.

A learning rate of 0 keeps the weights where the transfer put them, so the saved run shows
the network as it was before training."""
import sys

import numpy as np
import pytest

from tests.conftest import FIXTURES, TINY, run_module


def train_from(source, out, train_file, *extra):
    return run_module("pipeline.train", "--train", train_file, "--dev", FIXTURES / "dev.txt",
                      "--out", out, "--epochs", "1", *TINY, "--init-from", source, "--lr", "0",
                      *extra, timeout=600)


def weights(run, layer):
    return getattr(run.model, layer).get_weights()


def assert_same(target, source, layer):
    for mine, theirs in zip(weights(target, layer), weights(source, layer), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-7)


def assert_rows_by_token(target, source, layer, vocab):
    source_rows = dict(zip(getattr(source.encoder, vocab).tokens, weights(source, layer)[0]))
    tokens = getattr(target.encoder, vocab).tokens
    table = weights(target, layer)[0]
    shared = [i for i, token in enumerate(tokens) if token in source_rows]
    np.testing.assert_allclose(table[shared], [source_rows[tokens[i]] for i in shared],
                               rtol=1e-6, atol=1e-7)
    return shared


@pytest.fixture(scope="module")
def relabelled(tmp_path_factory):
    """The fixture data with other type names: a new tag set over the same text."""
    folder = tmp_path_factory.mktemp("relabelled")
    path = folder / "train.txt"
    text = (FIXTURES / "train.txt").read_text(encoding="utf-8")
    path.write_text(text.replace("-PER", "-person").replace("-LOC", "-place"), encoding="utf-8")
    return path


def test_same_tag_set_starts_every_layer_from_the_source(trained_run, tmp_path):
    from training.run_files import load_run

    source_path, _ = trained_run
    result = train_from(source_path, tmp_path / "t", FIXTURES / "train.txt")
    assert result.returncode == 0, result.stderr[-3000:]
    source, target = load_run(source_path), load_run(tmp_path / "t")
    for layer in ("emission_dense", "crf"):
        assert_same(target, source, layer)
    for mine, theirs in zip(target.model.recurrent, source.model.recurrent, strict=True):
        for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for layer, vocab in (("char_embedding", "chars"), ("bigram_embedding", "bigrams")):
        shared = assert_rows_by_token(target, source, layer, vocab)
        # the new run also holds every source token, so its rows are all inherited
        assert len(shared) == len(getattr(source.encoder, vocab).tokens)
    assert f"init from {source_path}: copied bilstm_0, emissions, crf\n" in result.stdout


def test_a_new_tag_set_starts_fresh_emissions_and_crf(trained_run, relabelled, tmp_path):
    from training.run_files import load_run

    source_path, _ = trained_run
    result = train_from(source_path, tmp_path / "t", relabelled, "--dev", relabelled)
    assert result.returncode == 0, result.stderr[-3000:]
    source, target = load_run(source_path), load_run(tmp_path / "t")
    assert target.tags.tags != source.tags.tags
    for mine, theirs in zip(target.model.recurrent, source.model.recurrent, strict=True):
        for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for layer in ("emission_dense", "crf"):
        for mine, theirs in zip(weights(target, layer), weights(source, layer), strict=True):
            assert not np.allclose(mine, theirs)
    assert (f"init from {source_path}: copied bilstm_0; left emissions and crf (the tag sets "
            "differ)\n") in result.stdout


def test_another_vocabulary_and_lexicon_transfer_what_matches(trained_run, tmp_path):
    """Trained on other text (another vocabulary and tag set) without the lexicon: shared
    tokens' rows are copied, the Bi-LSTM (another input width) is left, and the log says so."""
    from training.run_files import load_run

    source_path, _ = trained_run
    result = train_from(source_path, tmp_path / "t", FIXTURES / "dev.txt", "--no-lexicon")
    assert result.returncode == 0, result.stderr[-3000:]
    source, target = load_run(source_path), load_run(tmp_path / "t")
    own = {char for line in (FIXTURES / "dev.txt").read_text(encoding="utf-8").splitlines()
           for char in line[:1] if line.strip()}
    assert own <= set(target.encoder.chars.tokens)
    shared = assert_rows_by_token(target, source, "char_embedding", "chars")
    rows = len(target.encoder.chars.tokens)
    assert f"init from {source_path}: {len(shared):,} of {rows:,} character rows\n" \
        in result.stdout
    assert (f"init from {source_path}: copied no other layer; left emissions and crf (the tag "
            "sets differ); bilstm_0 (its shapes differ: another lexicon, hidden size or input "
            "width)\n") in result.stdout
    first_input = target.model.recurrent[0].get_weights()[0]
    assert first_input.shape != source.model.recurrent[0].get_weights()[0].shape


def test_auto_char_priors_follow_the_source_so_the_bilstm_can_transfer():
    """Small training text turns char priors on, but a source trained without them keeps
    them off (the Bi-LSTM's input width must match); an explicit choice still wins."""
    from types import SimpleNamespace

    from data.corpus.formats import read_corpus
    from models.config import TrainConfig
    from training.loop import build_vocabularies

    corpora = {"train": read_corpus(FIXTURES / "train.txt")}
    source_encoder = SimpleNamespace(chars=SimpleNamespace(tokens=["<pad>", "<unk>", "鼂"]),
                                     bigrams=SimpleNamespace(tokens=["<pad>", "<unk>", "鼂鼂"]))
    source = SimpleNamespace(config=TrainConfig(lexicon_char_priors="off"),
                             encoder=source_encoder)
    followed = TrainConfig()
    encoder, _ = build_vocabularies(followed, corpora, source=source)
    assert followed.lexicon_char_priors == "off" and encoder.lexicon.char_prior_chars is None
    assert encoder.chars.tokens[-1] == "鼂" and encoder.bigrams.tokens[-1] == "鼂鼂"
    alone = TrainConfig()
    build_vocabularies(alone, corpora)
    assert alone.lexicon_char_priors == "on"
    explicit = TrainConfig(lexicon_char_priors="on")
    build_vocabularies(explicit, corpora, source=source)
    assert explicit.lexicon_char_priors == "on"


def test_make_own_trains_the_users_files_from_the_default():
    import subprocess

    from tests.conftest import ROOT

    dry = subprocess.run(["make", "-n", "own", "TRAIN=my/train.jsonl", "DEV=my/dev.jsonl",
                          "NAME=shop"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert ("-m pipeline.train --out runs/shop --train my/train.jsonl --dev my/dev.jsonl "
            "--init-from runs/default") in dry.stdout
    assert "-m export.to_onnx --run runs/shop --out models/shop.onnx" in dry.stdout
    missing = subprocess.run(["make", "-n", "own", "TRAIN=my/train.jsonl"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2
    assert "make own: give TRAIN=FILE and DEV=FILE (any accepted form)" in missing.stderr


def test_word_rows_are_named_in_the_order_the_model_reads_them():
    """warm_start.word_tokens names row i of the word embedding: the class rows, then the
    vocabulary's words, as LexiconFeatures numbers them."""
    from types import SimpleNamespace

    import numpy as np

    from data.lexicon.features import LexiconFeatures
    from data.lexicon.words import Lexicon
    from training.warm_start import word_tokens

    lexicon = Lexicon(["上海", "北京", "张三"], np.ones(3), np.array([1, 1, 2], np.int8),
                      ["OTHER", "LOC", "PER"], "test")
    features = LexiconFeatures(lexicon, "words", word_vocab=["张三", "北京"])
    tokens = word_tokens(SimpleNamespace(lexicon=features))
    assert len(tokens) == features.num_words
    for word, row in zip(lexicon.words, features.model_word_ids.tolist()):
        expected = word if word in features.word_vocab else \
            f"<class:{lexicon.type_names[lexicon.type_ids[lexicon.words.index(word)]]}>"
        assert tokens[row] == expected


def test_frozen_epochs_train_only_the_fresh_layers(trained_run, relabelled, tmp_path):
    """--init-frozen-epochs 1 at a real rate: after the epoch the layers from the source are
    still its own, while the fresh emissions and CRF have moved from where rate 0 leaves them."""
    from training.run_files import load_run

    source_path, _ = trained_run
    frozen = train_from(source_path, tmp_path / "frozen", relabelled, "--dev", relabelled,
                        "--lr", "0.01", "--init-frozen-epochs", "1")
    assert frozen.returncode == 0, frozen.stderr[-3000:]
    still = train_from(source_path, tmp_path / "still", relabelled, "--dev", relabelled)
    assert still.returncode == 0, still.stderr[-3000:]
    source, target, start = (load_run(path) for path in
                             (source_path, tmp_path / "frozen", tmp_path / "still"))
    for mine, theirs in zip(target.model.recurrent, source.model.recurrent, strict=True):
        for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for layer, vocab in (("char_embedding", "chars"), ("bigram_embedding", "bigrams")):
        assert_rows_by_token(target, source, layer, vocab)
    for layer in ("emission_dense", "crf"):
        for mine, initial in zip(weights(target, layer), weights(start, layer), strict=True):
            assert not np.allclose(mine, initial)
    assert "epoch 1: the layers from --init-from frozen\n" in frozen.stdout
    assert "the layers from --init-from frozen" not in still.stdout


def test_frozen_layers_thaw_with_a_new_optimizer(trained_run):
    import keras

    from training.run_files import load_run
    from training.warm_start import set_frozen

    model = load_run(trained_run[0]).model
    model.compile(optimizer="adam")
    everything = {variable.path for variable in model.trainable_variables}
    named = {variable.path for name in ("bilstm_0", "char_embedding")
             for variable in model.get_layer(name).weights}
    set_frozen(model, ["bilstm_0", "char_embedding"], True, keras.optimizers.Adam())
    left = {variable.path for variable in model.trainable_variables}
    assert named and left and left == everything - named
    first = model.optimizer
    set_frozen(model, ["bilstm_0", "char_embedding"], False, keras.optimizers.Adam())
    assert {variable.path for variable in model.trainable_variables} == everything
    assert model.optimizer is not first and int(model.optimizer.iterations) == 0


def test_resume_inside_or_after_the_frozen_epochs_continues_exactly(trained_run, relabelled, tmp_path):
    from tests.conftest import kill_at_epoch
    from tests.test_train import comparable_history, weights_of

    source_path, _ = trained_run
    flags = ["--train", relabelled, "--dev", relabelled, "--epochs", "3", *TINY, "--init-from",
             source_path, "--lr", "0.01", "--init-frozen-epochs", "2"]
    whole = run_module("pipeline.train", *flags, "--out", tmp_path / "whole", timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert ("epoch 2: the layers from --init-from frozen\n" in whole.stdout
            and "epoch 3: every layer trains\n" in whole.stdout)
    for killed_after, next_line in ((1, "epoch 2: the layers from --init-from frozen\n"),
                                    (2, "epoch 3: every layer trains\n")):  # inside, at thaw
        resumed = tmp_path / f"resumed{killed_after}"
        kill_at_epoch([sys.executable, "-m", "pipeline.train", *map(str, flags), "--out",
                       str(resumed)], killed_after, 3)
        result = run_module("pipeline.train", *flags, "--out", resumed, "--resume", timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert next_line in result.stdout
        assert comparable_history(resumed) == comparable_history(tmp_path / "whole")
        for a, b in zip(weights_of(resumed), weights_of(tmp_path / "whole"), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("flags", [["--init-frozen-epochs", "2"],
                                   ["--init-frozen-epochs", "-1", "--init-from", "runs/x"]])
def test_frozen_epochs_need_a_run_to_start_from(flags):
    result = run_module("pipeline.train", *flags, "--train", FIXTURES / "train.txt",
                        "--dev", FIXTURES / "dev.txt")
    assert result.returncode == 2
    assert result.stderr.endswith(f"init_frozen_epochs must be 0, or above with init_from (a run "
                                  f"to start from), got {flags[1]}\n")
