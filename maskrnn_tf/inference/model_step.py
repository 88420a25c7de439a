"""A local MaskRNN as the propagation loop's step function, compiled once for any size and object count."""
from __future__ import annotations

from typing import Dict

import numpy as np
import tensorflow as tf

from maskrnn_tf.inference.propagation import StepFn
from maskrnn_tf.model import MaskRNN


def model_step_fn(model: MaskRNN, jit_compile: bool = False) -> StepFn:
    """Wraps `model.step` (inference mode) in one tf.function with dynamic shapes; returns NumPy outputs.

    Dynamic dimensions keep a single trace across videos of different sizes and object counts.
    """

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, 3], tf.float32),
            tf.TensorSpec([None, None, 2], tf.float32),
            tf.TensorSpec([None, None, 2], tf.float32),
            tf.TensorSpec([None, None, None], tf.float32),
            tf.TensorSpec([None, 4], tf.float32),
        ],
        jit_compile=jit_compile or None,
        reduce_retracing=True,
    )
    def step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes):
        out = model.step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes, training=False)
        return {"probs": out["probs"], "boxes": out["boxes"]}

    def run(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes) -> Dict[str, np.ndarray]:
        out = step(
            np.asarray(frame, np.float32), np.asarray(flow_to_prev, np.float32),
            np.asarray(flow_to_next, np.float32), np.asarray(prev_probs, np.float32),
            np.asarray(prev_boxes, np.float32),
        )
        return {k: v.numpy() for k, v in out.items()}

    return run
