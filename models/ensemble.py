"""Several trained taggers as one: their emissions and transitions averaged.

Viterbi over the averaged scores is the ensemble's decode, so the ensemble is an ordinary
tagger to everything downstream: `export.to_onnx --run A --run B` writes it as one .onnx file
that `serve` reads like any other (its inputs: the union of the members', computed once by
data.encoding.merged_encoder). Duck-types what export and prediction use of BiLSTMCRF:
`input_specs`, calling it, `unmasked_copy`, and `crf.transitions` / `crf.num_tags`.
What it buys and costs on MSRA: docs/results.md, "Ensembles".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass
class AveragedCRF:
    transitions: tf.Tensor
    num_tags: int


class TaggerEnsemble:
    def __init__(self, members: list):
        self.members = members
        transitions = np.mean([m.crf.transitions.numpy() for m in members], axis=0)
        self.crf = AveragedCRF(tf.constant(transitions, tf.float32), members[0].crf.num_tags)

    def input_specs(self) -> dict[str, tf.TensorSpec]:
        specs = {}
        for member in self.members:
            for name, spec in member.input_specs().items():
                if name in specs and specs[name].shape.as_list() != spec.shape.as_list():
                    raise ValueError(f"the members' `{name}` inputs differ in shape")
                specs[name] = spec
        return specs

    def __call__(self, inputs, training=False):
        emissions = [member({name: inputs[name] for name in member.input_specs()},
                            training=training) for member in self.members]
        return tf.add_n(emissions) / len(emissions)

    def unmasked_copy(self) -> "TaggerEnsemble":
        return TaggerEnsemble([member.unmasked_copy() for member in self.members])
