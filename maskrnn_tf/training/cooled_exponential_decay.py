"""The training learning rate: exponential decay, then a linear cooldown to zero over the last steps."""
from __future__ import annotations

from typing import Any, Dict

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="maskrnn_tf")
class CooledExponentialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`initial * rate ** (step / decay_steps)`, multiplied over the last `cooldown_steps` of `total_steps` by a
    factor falling linearly from 1 to 0 (`(total_steps - step) / cooldown_steps`).

    With cooldown_steps = 0 it is Keras' ExponentialDecay (continuous, not staircase). The cooldown ends a run
    at a low rate instead of wherever the decay left it, so the last weights are not one noisy step away from
    better ones.
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, total_steps: int = 0,
                 cooldown_steps: int = 0):
        super().__init__()
        if cooldown_steps < 0 or cooldown_steps > max(total_steps, 0):
            raise ValueError(f"cooldown_steps={cooldown_steps}: must be between 0 and the run's {total_steps} "
                             "steps (stage_a_steps + stage_b_steps).")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.decay_rate = float(decay_rate)
        self.total_steps = int(total_steps)
        self.cooldown_steps = int(cooldown_steps)

    def __call__(self, step) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        rate = self.initial_learning_rate * tf.pow(self.decay_rate, step / float(self.decay_steps))
        if not self.cooldown_steps:
            return rate
        left = (float(self.total_steps) - step) / float(self.cooldown_steps)
        return rate * tf.clip_by_value(left, 0.0, 1.0)

    def get_config(self) -> Dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "total_steps": self.total_steps,
                "cooldown_steps": self.cooldown_steps}
