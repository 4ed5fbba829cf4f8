"""Viterbi decode inside the ONNX graph (`--decode-in-graph`), for runtimes with no Python.

Written directly in ONNX (two `Loop`s: forward max-sum with back-pointers, then backtracking)
rather than converted from TF: tf2onnx 1.17 converts `tf.scan(..., reverse=True)` wrongly.
Same arithmetic order and tie-breaking (first maximum) as `data.decoding.viterbi.viterbi_decode`.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TAG_IDS = "tag_ids"


def _const(graph_nodes, name, array):
    graph_nodes.append(helper.make_node("Constant", [], [name],
                                        value=numpy_helper.from_array(np.asarray(array), name)))
    return name


def _forward_body(num_tags: int) -> onnx.GraphProto:
    """Step t = i: score [B,N] -> new score, back-pointers [B,N] (scan output).

    Step 0 starts from zero scores with zero transitions, giving emissions[0] exactly; so the
    loop runs T times, never zero times (ORT cannot shape the outputs of an empty Loop)."""
    nodes = []
    zero = _const(nodes, "vf_zero", np.array(0, np.int64))
    axis2 = _const(nodes, "vf_axis2", np.array([2], np.int64))
    axis1 = _const(nodes, "vf_axis1", np.array([1], np.int64))
    stay = _const(nodes, "vf_stay", np.arange(num_tags, dtype=np.int64))
    nodes += [
        helper.make_node("Identity", ["vf_i"], ["vf_t"]),
        helper.make_node("Gather", ["viterbi_emissions_tbn", "vf_t"], ["vf_emission_t"], axis=0),
        helper.make_node("Greater", ["vf_t", zero], ["vf_not_first"]),
        helper.make_node("Cast", ["vf_not_first"], ["vf_transition_scale"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["transitions", "vf_transition_scale"], ["vf_transitions"]),
        helper.make_node("Unsqueeze", ["vf_score", axis2], ["vf_score_col"]),
        helper.make_node("Add", ["vf_score_col", "vf_transitions"], ["vf_candidates"]),
        helper.make_node("ArgMax", ["vf_candidates"], ["vf_best_previous"], axis=1, keepdims=0),
        helper.make_node("ReduceMax", ["vf_candidates"], ["vf_best"], axes=[1], keepdims=0),
        helper.make_node("Add", ["vf_best", "vf_emission_t"], ["vf_new_score"]),
        helper.make_node("Less", ["vf_t", "viterbi_lengths"], ["vf_active_b"]),
        helper.make_node("Unsqueeze", ["vf_active_b", axis1], ["vf_active"]),
        helper.make_node("Where", ["vf_active", "vf_new_score", "vf_score"], ["vf_score_out"]),
        helper.make_node("Where", ["vf_active", "vf_best_previous", stay], ["vf_backpointers"]),
        helper.make_node("Identity", ["vf_cond"], ["vf_cond_out"]),
    ]
    return helper.make_graph(
        nodes, "viterbi_forward",
        [helper.make_tensor_value_info("vf_i", TensorProto.INT64, []),
         helper.make_tensor_value_info("vf_cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("vf_score", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("vf_cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("vf_score_out", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("vf_backpointers", TensorProto.INT64, None)])


def _backward_body() -> onnx.GraphProto:
    """Step i reads the back-pointers of position k = T-1-i: tag at k -> tag at k-1 [B].

    Runs T times like the forward loop; the last step (k = 0) yields a meaningless value that
    the caller drops."""
    nodes = []
    one = _const(nodes, "vb_one", np.array(1, np.int64))
    axis1 = _const(nodes, "vb_axis1", np.array([1], np.int64))
    nodes += [
        helper.make_node("Sub", ["viterbi_time", one], ["vb_last_index"]),
        helper.make_node("Sub", ["vb_last_index", "vb_i"], ["vb_k"]),
        helper.make_node("Gather", ["viterbi_backpointers", "vb_k"], ["vb_pointers"], axis=0),
        helper.make_node("Unsqueeze", ["vb_tag", axis1], ["vb_tag_col"]),
        helper.make_node("GatherElements", ["vb_pointers", "vb_tag_col"], ["vb_previous_col"],
                         axis=1),
        helper.make_node("Squeeze", ["vb_previous_col", axis1], ["vb_previous"]),
        helper.make_node("Identity", ["vb_previous"], ["vb_previous_scan"]),
        helper.make_node("Identity", ["vb_cond"], ["vb_cond_out"]),
    ]
    return helper.make_graph(
        nodes, "viterbi_backward",
        [helper.make_tensor_value_info("vb_i", TensorProto.INT64, []),
         helper.make_tensor_value_info("vb_cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("vb_tag", TensorProto.INT64, None)],
        [helper.make_tensor_value_info("vb_cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("vb_previous", TensorProto.INT64, None),
         helper.make_tensor_value_info("vb_previous_scan", TensorProto.INT64, None)])


def add_viterbi_decode(model: onnx.ModelProto, num_tags: int) -> None:
    """Add output `tag_ids` int32 [batch, time] (0 past each length) from emissions,
    transitions and sequence_lengths already in the graph."""
    nodes = []
    zero = _const(nodes, "viterbi_zero", np.array(0, np.int64))
    one = _const(nodes, "viterbi_one", np.array(1, np.int64))
    axis0 = _const(nodes, "viterbi_axis0", np.array([0], np.int64))
    axis1 = _const(nodes, "viterbi_axis1", np.array([1], np.int64))
    minus_one = _const(nodes, "viterbi_minus_one", np.array([-1], np.int64))
    very_negative = _const(nodes, "viterbi_before_start", np.array([np.iinfo(np.int64).min],
                                                                    np.int64))
    zero_tags = _const(nodes, "viterbi_zero_tags", np.array(0, np.int64))
    _const(nodes, "viterbi_three", np.array([3], np.int64))
    _const(nodes, "viterbi_huge", np.array([np.iinfo(np.int64).max], np.int64))
    nodes += [
        helper.make_node("Transpose", ["emissions"], ["viterbi_emissions_tbn"], perm=[1, 0, 2]),
        helper.make_node("Shape", ["viterbi_emissions_tbn"], ["viterbi_shape"]),
        helper.make_node("Gather", ["viterbi_shape", zero], ["viterbi_time"], axis=0),
        helper.make_node("Cast", ["sequence_lengths"], ["viterbi_lengths"], to=TensorProto.INT64),
        helper.make_node("Slice", ["viterbi_shape", axis1, "viterbi_three", axis0],
                         ["viterbi_batch_tags"]),
        helper.make_node("ConstantOfShape", ["viterbi_batch_tags"], ["viterbi_zero_score"],
                         value=numpy_helper.from_array(np.array([0], np.float32))),
        helper.make_node("Loop", ["viterbi_time", "", "viterbi_zero_score"],
                         ["viterbi_final_score", "viterbi_backpointers"],
                         body=_forward_body(num_tags)),
        helper.make_node("ArgMax", ["viterbi_final_score"], ["viterbi_last_tag"], axis=1,
                         keepdims=0),
        helper.make_node("Loop", ["viterbi_time", "", "viterbi_last_tag"],
                         ["viterbi_first_tag", "viterbi_previous_tags"], body=_backward_body()),
        # Backtracking collected positions T-2 .. 0 and one meaningless value: reverse, drop
        # that value, append the last position.
        helper.make_node("Slice", ["viterbi_previous_tags", minus_one, very_negative, axis0,
                                   minus_one], ["viterbi_reversed_tags"]),
        helper.make_node("Slice", ["viterbi_reversed_tags", axis1, "viterbi_huge", axis0],
                         ["viterbi_leading_tags"]),
        helper.make_node("Unsqueeze", ["viterbi_last_tag", axis0], ["viterbi_last_row"]),
        helper.make_node("Concat", ["viterbi_leading_tags", "viterbi_last_row"],
                         ["viterbi_tags_tb"], axis=0),
        helper.make_node("Transpose", ["viterbi_tags_tb"], ["viterbi_tags_bt"], perm=[1, 0]),
        helper.make_node("Range", [zero, "viterbi_time", one], ["viterbi_positions"]),
        helper.make_node("Unsqueeze", ["viterbi_positions", axis0], ["viterbi_positions_row"]),
        helper.make_node("Unsqueeze", ["viterbi_lengths", axis1], ["viterbi_lengths_col"]),
        helper.make_node("Less", ["viterbi_positions_row", "viterbi_lengths_col"],
                         ["viterbi_valid"]),
        helper.make_node("Where", ["viterbi_valid", "viterbi_tags_bt", zero_tags],
                         ["viterbi_tags_masked"]),
        helper.make_node("Cast", ["viterbi_tags_masked"], [TAG_IDS], to=TensorProto.INT32),
    ]
    model.graph.node.extend(nodes)
    model.graph.output.append(helper.make_tensor_value_info(TAG_IDS, TensorProto.INT32,
                                                            ["batch", "time"]))
