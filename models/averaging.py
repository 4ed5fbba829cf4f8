"""Exponential moving average of the trainable weights, for evaluation and the saved model.

The averaged weights generalise better than the last step's (Adam's noise is averaged out);
they are swapped in to score dev and to save the best model, then swapped out to go on
training. Early steps use a shorter average, (1 + step) / (10 + step), as tf.train does.
"""
from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf


class WeightAverage:
    def __init__(self, model, decay: float):
        self.model, self.decay = model, decay
        self.variables = list(model.trainable_variables)
        self.shadows = [tf.Variable(v.value, trainable=False) for v in self.variables]
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)

    @tf.function
    def update(self):
        self.steps.assign_add(1)
        steps = tf.cast(self.steps, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + steps) / (10.0 + steps))
        for shadow, variable in zip(self.shadows, self.variables):
            shadow.assign(decay * shadow + (1.0 - decay) * tf.convert_to_tensor(variable))

    def callback(self) -> keras.callbacks.Callback:
        average = self

        class Update(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                average.update()

        return Update()

    @contextlib.contextmanager
    def applied(self):
        """Inside the block the model holds the averaged weights."""
        backup = [v.numpy() for v in self.variables]
        for variable, shadow in zip(self.variables, self.shadows):
            variable.assign(shadow)
        try:
            yield
        finally:
            for variable, value in zip(self.variables, backup):
                variable.assign(value)

    def state(self) -> dict[str, np.ndarray]:
        arrays = {f"shadow_{i}": s.numpy() for i, s in enumerate(self.shadows)}
        return {**arrays, "steps": np.array(self.steps.numpy())}

    def restore(self, arrays) -> None:
        for i, shadow in enumerate(self.shadows):
            shadow.assign(arrays[f"shadow_{i}"])
        self.steps.assign(int(arrays["steps"]))


@contextlib.contextmanager
def nothing_applied():
    yield
