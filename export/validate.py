"""Validate an exported file against the Keras model it came from.

Reported as optimum's exporters do: the largest emissions difference on valid positions of a
ragged batch and of up to 1,000 dev sentences, and whether Viterbi gives identical tags on
the whole dev set. Quantized files are expected to differ: for them dev F1 is compared.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data.corpus.formats import read_corpus
from data.metrics import entity_scores
from training.tf_input import EncodedCorpus, encode_corpus, inference_batches
from data.decoding.viterbi import viterbi_decode
from models.tagger import emissions_function

SAMPLE_SENTENCES = 1000


def onnx_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ragged_batch(corpus: EncodedCorpus, size: int = 8) -> np.ndarray:
    """Indices of `size` sentences spread from the shortest to the longest."""
    order = np.argsort([len(ids) for ids in corpus.char_ids], kind="stable")
    return order[np.linspace(0, len(order) - 1, size).astype(int)]


def emissions_both(session, keras_fn, corpus, indices_batches):
    """Yield (lengths, keras emissions, onnx emissions) per batch."""
    from training.tf_input import batch_arrays

    for indices in indices_batches:
        inputs, _ = batch_arrays(corpus, indices)
        keras_out = keras_fn(inputs).numpy()
        onnx_out = session.run(["emissions"], inputs)[0]
        lengths = np.array([len(corpus.char_ids[i]) for i in indices])
        yield lengths, keras_out, onnx_out


def max_valid_difference(batches) -> float:
    worst = 0.0
    for lengths, keras_out, onnx_out in batches:
        valid = np.arange(keras_out.shape[1])[None, :] < lengths[:, None]
        worst = max(worst, float(np.abs(keras_out - onnx_out)[valid].max(initial=0.0)))
    return worst


def decode_all(session, corpus: EncodedCorpus, batch_size: int = 128) -> list[np.ndarray]:
    predicted = [None] * len(corpus)
    for indices, inputs in inference_batches(corpus, batch_size):
        emissions, transitions = session.run(["emissions", "transitions"], inputs)
        lengths = np.array([len(corpus.char_ids[i]) for i in indices])
        tag_ids, _ = viterbi_decode(emissions, transitions, lengths)
        for row, index in enumerate(indices):
            predicted[index] = tag_ids[row, :lengths[row]]
    return predicted


def in_graph_tags(session, corpus: EncodedCorpus, batch_size: int = 128) -> list[np.ndarray]:
    predicted = [None] * len(corpus)
    for indices, inputs in inference_batches(corpus, batch_size):
        tag_ids = session.run(["tag_ids"], inputs)[0]
        for row, index in enumerate(indices):
            predicted[index] = tag_ids[row, :len(corpus.char_ids[index])]
    return predicted


def validate_export(run, paths: list[Path], dev_path: Path, atol: float, log=print) -> bool:
    from training.predict import predict_tag_ids

    dev = encode_corpus(read_corpus(dev_path).sentences, run.encoder, run.tags)
    keras_fn = emissions_function(run.model)
    keras_tags = predict_tag_ids(run.model, dev)
    gold = [run.tags.decode(ids) for ids in dev.tag_ids]
    keras_f1 = entity_scores(gold, [run.tags.decode(t) for t in keras_tags])["micro"]["f1"]
    sample = np.arange(min(SAMPLE_SENTENCES, len(dev)))
    sample_batches = [sample[i:i + 64] for i in range(0, len(sample), 64)]
    ok = True
    fp32_f1 = None
    for path in paths:
        session = onnx_session(path)
        ragged = max_valid_difference(emissions_both(session, keras_fn, dev, [ragged_batch(dev)]))
        sampled = max_valid_difference(emissions_both(session, keras_fn, dev, sample_batches))
        onnx_tags = decode_all(session, dev)
        same = sum(np.array_equal(a, b) for a, b in zip(keras_tags, onnx_tags))
        f1 = entity_scores(gold, [run.tags.decode(t) for t in onnx_tags])["micro"]["f1"]
        quantized = ".int8." in path.name
        log(f"{path.name}: max |emissions diff| {ragged:.2e} (ragged batch), {sampled:.2e} "
            f"({len(sample)} dev sentences); identical tags on {same}/{len(dev)} dev sentences; "
            f"dev F1 {f1:.4f} (Keras {keras_f1:.4f})")
        if quantized:
            log(f"  int8 dev F1 - fp32 dev F1 = {f1 - (fp32_f1 if fp32_f1 is not None else keras_f1):+.4f}")
            continue
        fp32_f1 = f1
        if "tag_ids" in [value.name for value in session.get_outputs()]:
            in_graph = in_graph_tags(session, dev)
            agree = sum(np.array_equal(a, b) for a, b in zip(onnx_tags, in_graph))
            log(f"  in-graph Viterbi: identical to numpy Viterbi on {agree}/{len(dev)} sentences")
            ok = ok and agree == len(dev)
        if max(ragged, sampled) > atol:
            log(f"  FAILED: emissions differ by more than {atol:g}")
            ok = False
        if same != len(dev):
            log(f"  FAILED: {len(dev) - same} dev sentences decode to other tags than Keras")
            ok = False
    log("validation passed" if ok else "validation FAILED")
    return ok
