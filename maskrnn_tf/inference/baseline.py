"""The flow-propagation baseline: no learning, the first-frame mask warped from frame to frame.

Each step moves the previous binary mask of every object into the current frame with the flow t -> t-1
(bilinear) and thresholds it at 0.5. Used with `propagate`, it exercises reading, flow, writing and scoring
end to end, and it is the floor a learned model must beat.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import tensorflow as tf

from maskrnn_tf.ops import mask_to_box, warp_masks


def flow_propagation_step(
    frame: np.ndarray,
    flow_to_prev: np.ndarray,
    flow_to_next: np.ndarray,
    prev_probs: np.ndarray,
    prev_boxes: np.ndarray,
    threshold: float = 0.5,
) -> Dict[str, np.ndarray]:
    """One baseline step with the `StepFn` signature (frame, flow_to_next and prev_boxes are unused).

    Returns probs [N, H, W] 0/1 float32 (warped previous mask > threshold) and their tight boxes [N, 4].
    """
    del frame, flow_to_next, prev_boxes  # the baseline only moves the mask
    warped = warp_masks(np.asarray(prev_probs, np.float32), np.asarray(flow_to_prev, np.float32))
    probs = tf.cast(warped > threshold, tf.float32)
    return {"probs": probs.numpy(), "boxes": mask_to_box(probs)[0].numpy()}
