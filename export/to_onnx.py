"""`python -m export.to_onnx`: export a trained run to one self-contained ONNX file.

The graph: `char_ids` (+ `bigram_ids`) int32 [batch, time] (+ the lexicon inputs
`lexicon_flags` uint8, `lexicon_word_ids` int32, `lexicon_word_weights` float32
[batch, time, width]) -> `emissions` float32
[batch, time, num_tags] and `transitions` [num_tags, num_tags]; with --decode-in-graph also
`tag_ids` int32 [batch, time] (Viterbi in the graph, 0 past each length).
Pad id is 0; sequence lengths are computed in the graph and
wired into every LSTM node's `sequence_lens`, so padding never changes a result.
Vocabularies, tags, config and metrics travel in the model's metadata_props.

After export the file is validated against the Keras model (as optimum's exporters do):
max |emissions difference| on valid positions (fail above --atol) and identical Viterbi tags
on the whole dev set. With no arguments: the newest run in runs/, to models/<run>.onnx.

`--run A --run B ...`: an ensemble in one file. The members (trained on the same training
file: same vocabularies and lexicon; their features may differ) have their emissions and
transitions averaged in the graph, their inputs are the union of the members', and the file
serves like any other; it is validated against the members' averaged Keras emissions.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path

from data.encoding.inputs import encoder_metadata
from data.files import DataError, atomic_path, check_output
from export.graph import (add_sequence_lengths, add_transitions_output, name_dynamic_dims,
                          set_metadata)
from export.viterbi_graph import add_viterbi_decode
from data.quiet import import_tensorflow_quietly

DEFAULT_OPSET = 17
FORMAT_VERSION = "1"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m export.to_onnx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, action="append",
                        help="run folder (default: newest in runs/); repeat it to export the "
                        "runs' average (an ensemble) as one file")
    parser.add_argument("--out", type=Path, help="output .onnx (default models/<run>.onnx)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--quantize", choices=["int8"],
                        help="also write <out>.int8.onnx (ONNX Runtime dynamic quantization)")
    parser.add_argument("--decode-in-graph", action="store_true",
                        help="add a `tag_ids` output: Viterbi inside the graph, for runtimes "
                        "without Python")
    parser.add_argument("--dev", type=Path, help="data to validate on (default: the run's dev)")
    parser.add_argument("--atol", type=float, default=1e-4,
                        help="largest emissions difference accepted (default 1e-4)")
    parser.add_argument("--no-validate", action="store_true", help="skip validation")
    parser.add_argument("--score-temperature", default="fit", metavar="fit|none|T",
                        help="entity-score temperature stored in the file: fitted on the dev "
                        "set (default), none (1), or a number; tags never change")
    return parser.parse_args(argv)


def convert(model, opset: int, decode_in_graph: bool = False):
    """tf2onnx from a concrete function of the *unmasked* copy of the model."""
    import tensorflow as tf
    import tf2onnx

    unmasked = model.unmasked_copy()
    signature = unmasked.input_specs()

    @tf.function(input_signature=[signature])
    def emissions_of(inputs):
        return {"emissions": unmasked(inputs, training=False)}

    model_proto, _ = tf2onnx.convert.from_function(emissions_of, input_signature=[signature],
                                                   opset=opset)
    lstm_nodes = add_sequence_lengths(model_proto)
    add_transitions_output(model_proto, model.crf.transitions.numpy())
    if decode_in_graph:
        add_viterbi_decode(model_proto, model.crf.num_tags)
    name_dynamic_dims(model_proto)
    return model_proto, lstm_nodes


def metadata_for(run) -> dict:
    """Everything serve needs to tag with the file alone, the lexicon's words included."""
    return {
        "ner.format_version": FORMAT_VERSION,
        **encoder_metadata(run.encoder),
        "ner.tags": json.dumps(run.tags.tags, ensure_ascii=False),
        "ner.max_len": str(run.config.max_len),
        "ner.config": json.dumps(run.config.__dict__, ensure_ascii=False),
        "ner.metrics": json.dumps(run.metrics, ensure_ascii=False),
        "ner.source_run": str(run.path),
    }


def calibrate(run, outputs: list[Path], dev: Path, choice: str) -> None:
    """Store the entity-score temperature (fitted on dev with the fp32 file) in every file."""
    from export.calibrate import fit_temperature, store_temperature
    from export.validate import onnx_session

    if choice == "none":
        return
    if choice == "fit":
        from data.corpus.formats import read_corpus
        from training.tf_input import encode_corpus

        corpus = encode_corpus(read_corpus(dev).sentences, run.encoder, run.tags)
        gold = [run.tags.decode(ids) for ids in corpus.tag_ids]
        temperature, fit = fit_temperature(onnx_session(outputs[0]), corpus, gold,
                                           run.tags.tags)
        if fit["log_loss"] != fit["log_loss"]:  # nan: nothing to fit on
            print(f"entity-score temperature 1: {dev} gives {fit['entities']} predicted "
                  "entities, too few (or all right or all wrong) to fit one")
        else:
            print(f"entity-score temperature {temperature:g}, fitted on {dev} "
                  f"({fit['entities']} predicted entities; log loss {fit['log_loss']:.4f}, at "
                  f"1: {fit['log_loss_at_1']:.4f})")
    else:
        try:
            temperature = float(choice)
        except ValueError:
            raise DataError("--score-temperature", None, f"{choice!r}: expected fit, none or "
                            "a positive number") from None
        if not temperature > 0:
            raise DataError("--score-temperature", None, f"{choice}: must be positive")
    for path in outputs:
        store_temperature(path, temperature)


def write_onnx(run, out: Path, opset: int = DEFAULT_OPSET, decode_in_graph: bool = False):
    """Convert a loaded run and write it, metadata included, atomically to `out`.

    Returns (model_proto, names of the LSTM nodes wired with sequence lengths)."""
    import onnx

    model_proto, lstm_nodes = convert(run.model, opset, decode_in_graph)
    set_metadata(model_proto, metadata_for(run))
    with atomic_path(out) as partial:
        onnx.save(model_proto, str(partial))
    return model_proto, lstm_nodes


class _QuietPreprocessingAdvice(logging.Filter):
    """ONNX Runtime's quantizer logs `Please consider to run pre-processing before
    quantization` on the root logger for every model: advice for CNNs (shape inference for
    conv graphs), not an error; our int8 file is checked against fp32 on dev right after."""

    def filter(self, record):
        return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = _QuietPreprocessingAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["LSTM", "MatMul", "Gather"])
    finally:
        logging.getLogger().removeFilter(quiet)


def ensemble_run(runs: list):
    """Loaded runs as one run-like object: the members' averaged model, their merged encoder,
    the first member's config; the metrics name every member."""
    from dataclasses import replace

    from data.encoding.inputs import merged_encoder
    from models.ensemble import TaggerEnsemble
    from training.run_files import check_one_tag_set

    check_one_tag_set(runs, "an ensemble's members")
    members = [str(run.path) for run in runs]
    return replace(runs[0], path=Path("+".join(members)),
                   model=TaggerEnsemble([run.model for run in runs]),
                   encoder=merged_encoder([run.encoder for run in runs]),
                   metrics={"ensemble": {member: run.metrics
                                         for member, run in zip(members, runs)}})


def load_runs(paths: list[Path]):
    """One run, or several as an ensemble (ValueError / FileNotFoundError for the user)."""
    from training.run_files import load_run

    runs = [load_run(path) for path in paths]
    return runs[0] if len(runs) == 1 else ensemble_run(runs)


def main(argv=None) -> int:
    from data.corpus.formats import DataError
    from training.run_files import newest_run

    args = parse_args(argv)
    import_tensorflow_quietly()
    from export.validate import validate_export

    run_paths = args.run or [newest_run()]
    if run_paths[0] is None:
        print("error: no finished run in runs/: train one with python -m pipeline.train",
              file=sys.stderr)
        return 2
    try:
        run = load_runs(run_paths)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = args.out or Path("models") / f"{'+'.join(Path(p).name for p in run_paths)}.onnx"
    try:  # before the export's minutes of work
        check_output(out, create_parent=True)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started = time.time()
    model_proto, lstm_nodes = write_onnx(run, out, args.opset, args.decode_in_graph)
    node_types = Counter(node.op_type for node in model_proto.graph.node)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {time.time() - started:.0f}s; "
          f"{len(lstm_nodes)} LSTM nodes with sequence_lens, {node_types.get('Loop', 0)} Loop")
    print("nodes: " + ", ".join(f"{op} {n}" for op, n in sorted(node_types.items())))
    outputs = [out]
    if args.quantize:
        quantized = out.with_suffix(".int8.onnx")
        quantize_int8(out, quantized)
        print(f"wrote {quantized} ({quantized.stat().st_size / 1e6:.2f} MB, int8 dynamic)")
        outputs.append(quantized)
    dev = args.dev or Path(run.config.dev)
    try:
        calibrate(run, outputs, dev, args.score_temperature)
        if args.no_validate:
            return 0
        ok = validate_export(run, outputs, dev, args.atol, log=print)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
