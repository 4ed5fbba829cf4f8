"""Surgery on the tf2onnx graph: sequence lengths into the LSTM nodes, the CRF transitions as
an output, readable dynamic dimension names, and metadata."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEQUENCE_LENGTHS = "sequence_lengths"
LSTM_SEQUENCE_LENS_INPUT = 4


class ExportError(Exception):
    pass


def add_sequence_lengths(model: onnx.ModelProto) -> list[str]:
    """Compute lengths from char_ids (pad id 0) and feed them to every LSTM's sequence_lens.

    The unmasked export runs the backward direction over the padding too; ONNX's LSTM with
    sequence_lens reverses each sequence within its own length, which restores the meaning
    of the masked Keras model exactly. Returns the names of the LSTM nodes wired.
    """
    graph = model.graph
    if any(node.op_type == "Loop" for node in graph.node):
        raise ExportError("the converted graph has Loop nodes: the recurrence did not become a "
                          "native LSTM (was the model exported with masking?)")
    lstm_nodes = [node for node in graph.node if node.op_type == "LSTM"]
    if not lstm_nodes:
        raise ExportError("no LSTM node in the converted graph")
    graph.initializer.extend([
        numpy_helper.from_array(np.array(0, dtype=np.int32), "pad_id"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "time_axis"),
    ])
    length_nodes = [
        helper.make_node("Equal", ["char_ids", "pad_id"], ["is_pad"]),
        helper.make_node("Not", ["is_pad"], ["is_char"]),
        helper.make_node("Cast", ["is_char"], ["is_char_int"], to=TensorProto.INT32),
        helper.make_node("ReduceSum", ["is_char_int", "time_axis"], [SEQUENCE_LENGTHS],
                         keepdims=0),
    ]
    for node in lstm_nodes:
        while len(node.input) <= LSTM_SEQUENCE_LENS_INPUT:
            node.input.append("")
        node.input[LSTM_SEQUENCE_LENS_INPUT] = SEQUENCE_LENGTHS
    # Topological order: the length nodes go first (they depend on the graph input only).
    nodes = length_nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return [node.name for node in lstm_nodes]


def add_transitions_output(model: onnx.ModelProto, transitions: np.ndarray) -> None:
    tensor = numpy_helper.from_array(transitions.astype(np.float32), "transitions_value")
    model.graph.node.append(helper.make_node("Constant", [], ["transitions"], value=tensor))
    model.graph.output.append(helper.make_tensor_value_info(
        "transitions", TensorProto.FLOAT, list(transitions.shape)))


def name_dynamic_dims(model: onnx.ModelProto) -> None:
    """`batch` and `time` instead of tf2onnx's unk__N, on inputs and per-position outputs."""
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.name == "transitions":
            continue
        for dim, name in zip(dims, ("batch", "time")):
            dim.ClearField("dim_value")
            dim.dim_param = name


def set_metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
