"""A local MaskRNN as the propagation loop's step function, compiled once for any size and object count."""
from __future__ import annotations

from typing import Dict

import numpy as np
import tensorflow as tf

from maskrnn_tf.inference.propagation import StepFn
from maskrnn_tf.model import MaskRNN


def model_step_fn(model: MaskRNN, jit_compile: bool = False) -> StepFn:
    """Wraps `model.step` (inference mode) in one tf.function with dynamic shapes; returns NumPy outputs.

    Dynamic dimensions keep a single trace across videos of different sizes and object counts. A model with
    `color_prior_input` needs each video's colour tables: `run(..., color_model=[N, 4096])`, or bound for every
    call as `run.color_model`, which `maskrnn_tf.inference.color_gate.ColorPriorPrepare` sets per video.
    """
    prior = bool(model.config.color_prior_input)
    specs = [
        tf.TensorSpec([None, None, 3], tf.float32),
        tf.TensorSpec([None, None, 2], tf.float32),
        tf.TensorSpec([None, None, 2], tf.float32),
        tf.TensorSpec([None, None, None], tf.float32),
        tf.TensorSpec([None, 4], tf.float32),
    ] + ([tf.TensorSpec([None, None], tf.float32)] if prior else [])

    @tf.function(input_signature=specs, jit_compile=jit_compile or None, reduce_retracing=True,
                 autograph=False)
    def step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes, *color_model):
        out = model.step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes, training=False,
                         color_model=color_model[0] if color_model else None)
        return {"probs": out["probs"], "boxes": out["boxes"]}

    def run(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes, color_model=None) -> Dict[str, np.ndarray]:
        if color_model is None:
            color_model = run.color_model
        if prior and color_model is None:
            raise ValueError("this model was trained with a first-frame colour prior (color_prior_input): each "
                             "step needs the video's colour tables (color_model), fitted on its first frame.")
        tail = [np.asarray(color_model, np.float32)] if prior else []
        out = step(
            np.asarray(frame, np.float32), np.asarray(flow_to_prev, np.float32),
            np.asarray(flow_to_next, np.float32), np.asarray(prev_probs, np.float32),
            np.asarray(prev_boxes, np.float32), *tail,
        )
        return {k: v.numpy() for k, v in out.items()}

    run.color_model = None  # the current video's tables, when a caller binds them (ColorPriorPrepare)
    return run
