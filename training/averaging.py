"""Exponential moving average of the trainable weights, for evaluation and the saved model.

The averaged weights generalise better than the last step's (Adam's noise is averaged out);
they are swapped in to score dev and to save the best model, then swapped out to go on
training. Early steps use a shorter average, decay capped at (1 + step) / (warmup + step) as
tf.train does with warmup 10 (on MSRA that cap, not the decay, then sets the average's span
for the first epochs). warmup 0: no cap; the average starts empty and is bias-corrected (divided by 1 - decay^steps,
as Adam's moments are), so it spans the last ~1/(1 - decay) steps from the start.
"""
from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf


class WeightAverage:
    def __init__(self, model, decay: float, warmup: int = 10):
        self.model, self.decay, self.warmup = model, decay, warmup
        self.variables = list(model.trainable_variables)
        self.shadows = [tf.Variable(v.value if warmup else tf.zeros_like(v.value),
                                    trainable=False) for v in self.variables]
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)

    @tf.function
    def update(self):
        self.steps.assign_add(1)
        steps = tf.cast(self.steps, tf.float32)
        decay = tf.constant(self.decay, tf.float32)
        if self.warmup:
            decay = tf.minimum(decay, (1.0 + steps) / (float(self.warmup) + steps))
        for shadow, variable in zip(self.shadows, self.variables):
            shadow.assign(decay * shadow + (1.0 - decay) * tf.convert_to_tensor(variable))

    def averaged(self) -> list[np.ndarray]:
        """The averaged weights (the model's own before the first update)."""
        steps = int(self.steps.numpy())
        if steps == 0:
            return [v.numpy() for v in self.variables]
        if self.warmup:
            scale = 1.0
        else:  # 1 / the weights' sum, from the float32 decay and 1 - decay that update() used
            decay = np.float64(np.float32(self.decay))
            rate = np.float64(np.float32(1.0) - np.float32(self.decay))
            scale = (1.0 - decay) / (rate * (1.0 - decay ** steps))
        return [(s.numpy() * scale).astype(s.dtype.as_numpy_dtype) for s in self.shadows]

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
        for variable, value in zip(self.variables, self.averaged()):
            variable.assign(value)
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
