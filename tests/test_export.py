"""The exported graph: native LSTM nodes, dynamic dims, metadata, parity with Keras."""
import json
from collections import Counter

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
tf = pytest.importorskip("tensorflow")

from data.corpus.formats import read_corpus  # noqa: E402
from training.tf_input import batch_arrays, encode_corpus  # noqa: E402
from data.decoding.viterbi import viterbi_decode  # noqa: E402
from tests.conftest import FIXTURES, run_module  # noqa: E402

pytestmark = pytest.mark.slow


def dims_of(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_graph_has_native_lstm_and_no_loop(exported):
    fp32, _, _ = exported
    model = onnx.load(fp32)
    node_types = Counter(node.op_type for node in model.graph.node)
    assert node_types["LSTM"] == 1 and node_types["Loop"] == 0 and node_types["Scan"] == 0
    for node in model.graph.node:
        if node.op_type == "LSTM":
            assert node.input[4] == "sequence_lengths"
    inputs = {value.name: dims_of(value) for value in model.graph.input}
    # the default model reads the jieba lexicon's flags: 4 sets x (5 classes + 4 length
    # buckets); trained on under 150k characters, also its char priors' row ids
    assert inputs == {"char_ids": ["batch", "time"], "bigram_ids": ["batch", "time"],
                      "lexicon_flags": ["batch", "time", 36],
                      "lexicon_char_prior_ids": ["batch", "time"]}
    outputs = {value.name: dims_of(value) for value in model.graph.output}
    num_tags = len(json.loads(next(p.value for p in model.metadata_props if p.key == "ner.tags")))
    assert outputs == {"emissions": ["batch", "time", num_tags],
                       "transitions": [num_tags, num_tags]}


def test_metadata_is_enough_to_serve(exported, trained_run):
    fp32, _, _ = exported
    run, _ = trained_run
    metadata = {p.key: p.value for p in onnx.load(fp32).metadata_props}
    assert json.loads(metadata["ner.tags"]) == json.loads((run / "tags.json").read_text())
    vocab = json.loads((run / "vocab.json").read_text())
    assert json.loads(metadata["ner.chars"]) == vocab["chars"]
    assert json.loads(metadata["ner.bigrams"]) == vocab["bigrams"]
    assert json.loads(metadata["ner.lexicon_features"]) == vocab["lexicon_features"]
    assert metadata["ner.lexicon"] == (run / "lexicon.json").read_text(encoding="utf-8")
    assert json.loads(metadata["ner.config"])["hidden_size"] == 16
    assert "dev" in json.loads(metadata["ner.metrics"])


def test_export_validation_report(exported):
    _, int8, stdout = exported
    assert "0 Loop" in stdout and "validation passed" in stdout
    assert "identical tags on 80/80 dev sentences" in stdout
    assert int8.exists()
    assert "DynamicQuantizeLSTM" in {n.op_type for n in onnx.load(int8).graph.node}


@pytest.fixture(scope="module")
def keras_and_onnx(exported, trained_run):
    import onnxruntime as ort

    from models.tagger import emissions_function
    from training.run_files import load_run

    run = load_run(trained_run[0])
    session = ort.InferenceSession(str(exported[0]), providers=["CPUExecutionProvider"])
    dev = encode_corpus(read_corpus(FIXTURES / "dev.txt").sentences, run.encoder, run.tags)
    return run, emissions_function(run.model), session, dev


def test_onnx_emissions_match_keras_on_a_ragged_batch(keras_and_onnx):
    run, keras_fn, session, dev = keras_and_onnx
    lengths = np.array([len(ids) for ids in dev.char_ids])
    indices = np.argsort(lengths)[np.linspace(0, len(lengths) - 1, 10).astype(int)]
    inputs, _ = batch_arrays(dev, indices)
    assert len(set(lengths[indices])) > 5  # genuinely ragged
    keras_out = keras_fn(inputs).numpy()
    onnx_out = session.run(["emissions"], inputs)[0]
    valid = inputs["char_ids"] != 0
    assert np.abs(keras_out - onnx_out)[valid].max() < 1e-4


def test_sentence_tags_do_not_depend_on_batch_company(keras_and_onnx):
    run, _, session, dev = keras_and_onnx
    transitions = run.model.crf.transitions.numpy()
    lengths = np.array([len(ids) for ids in dev.char_ids])
    short, longest = int(np.argmin(lengths)), int(np.argmax(lengths))
    assert lengths[longest] > 3 * lengths[short]
    alone, _ = batch_arrays(dev, [short])
    crowded, _ = batch_arrays(dev, [longest, short, longest])
    emissions_alone = session.run(["emissions"], alone)[0][0]
    emissions_crowded = session.run(["emissions"], crowded)[0][1, :lengths[short]]
    np.testing.assert_allclose(emissions_alone, emissions_crowded, atol=1e-5)
    tags_alone, _ = viterbi_decode(emissions_alone[None], transitions, lengths[[short]])
    tags_crowded, _ = viterbi_decode(session.run(["emissions"], crowded)[0], transitions,
                                     lengths[[longest, short, longest]])
    assert tags_alone[0].tolist() == tags_crowded[1, :lengths[short]].tolist()


def test_export_without_runs_is_a_clear_error(tmp_path):
    result = run_module("export.to_onnx", "--run", tmp_path / "missing", "--out", tmp_path / "x.onnx")
    assert result.returncode == 2
    assert "not a finished run folder" in result.stderr and "Traceback" not in result.stderr


def test_decode_in_graph_equals_numpy_viterbi(trained_run, tmp_path):
    import onnxruntime as ort

    out = tmp_path / "decode.onnx"
    result = run_module("export.to_onnx", "--run", trained_run[0], "--out", out,
                        "--decode-in-graph")
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "in-graph Viterbi: identical to numpy Viterbi on 80/80 sentences" in result.stdout
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for time_steps in (1, 2, 9, 40):
        char_ids = rng.integers(1, 200, size=(5, time_steps)).astype(np.int32)
        lengths = np.array([time_steps, 1, max(1, time_steps // 2), time_steps, 0])
        char_ids[np.arange(time_steps)[None, :] >= lengths[:, None]] = 0
        emissions, transitions, tag_ids = session.run(
            ["emissions", "transitions", "tag_ids"],
            {"char_ids": char_ids, "bigram_ids": char_ids, "lexicon_char_prior_ids": char_ids,
             "lexicon_flags": rng.integers(0, 2, size=(5, time_steps, 36)).astype(np.uint8)})
        expected, _ = viterbi_decode(emissions, transitions, lengths)
        np.testing.assert_array_equal(tag_ids, expected)


@pytest.fixture(scope="module")
def other_member(tmp_path_factory):
    """A second tiny run on the same file with other features (word embeddings, no char
    priors) and another seed, exported alone too: an ensemble member."""
    import subprocess

    from tests.conftest import ROOT, train_command

    out = tmp_path_factory.mktemp("runs") / "tiny-both"
    result = subprocess.run(train_command(out, 2, "--lexicon-features", "both",
                                          "--lexicon-char-priors", "off", "--seed", "7"),
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    alone = out.parent / "tiny-both.onnx"
    assert run_module("export.to_onnx", "--run", out, "--out", alone).returncode == 0
    return out, alone


def test_ensemble_is_one_file_averaging_its_members(trained_run, exported, other_member,
                                                    tmp_path):
    from serve.tagger import Tagger

    out = tmp_path / "ensemble.onnx"
    result = run_module("export.to_onnx", "--run", trained_run[0], "--run", other_member[0],
                        "--out", out, "--quantize", "int8", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "2 LSTM nodes with sequence_lens" in result.stdout
    assert "identical tags on 80/80 dev sentences" in result.stdout
    assert "validation passed" in result.stdout
    model = onnx.load(out)
    assert {value.name for value in model.graph.input} == {
        "char_ids", "bigram_ids", "lexicon_flags", "lexicon_char_prior_ids",
        "lexicon_word_ids", "lexicon_word_weights"}  # the union: each input computed once
    ensemble = Tagger.load(out)
    members = [Tagger.load(exported[0]), Tagger.load(other_member[1])]
    texts = [s.text for s in read_corpus(FIXTURES / "dev.txt").sentences]
    lengths = np.array([len(t) for t in texts])

    def emissions_of(tagger):  # each tagger reads the texts through its own encoder
        return tagger.emissions(texts, len(texts))

    averaged = np.mean([emissions_of(member) for member in members], axis=0)
    transitions = np.mean([member.transitions for member in members], axis=0)
    valid = np.arange(averaged.shape[1])[None, :] < lengths[:, None]
    np.testing.assert_allclose(emissions_of(ensemble)[valid], averaged[valid], atol=1e-5)
    np.testing.assert_allclose(ensemble.transitions, transitions, atol=1e-6)
    expected, _ = viterbi_decode(averaged, transitions, lengths)
    got = ensemble.tag_ids(texts)
    assert all(np.array_equal(g, e[:n]) for g, e, n in zip(got, expected, lengths))
    assert Tagger.load(out.with_suffix(".int8.onnx")).tag_ids(texts[:3])  # int8 serves too


def test_ensemble_members_must_share_their_vocabularies(trained_run, other_member, tmp_path):
    import shutil

    stranger = tmp_path / "stranger"
    shutil.copytree(other_member[0], stranger)
    vocab = json.loads((stranger / "vocab.json").read_text())
    vocab["chars"] = vocab["chars"][:-1]  # as if trained on another file
    (stranger / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    result = run_module("export.to_onnx", "--run", trained_run[0], "--run", stranger,
                        "--out", tmp_path / "x.onnx")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the members' character vocabularies differ" in result.stderr
    assert not (tmp_path / "x.onnx").exists()
