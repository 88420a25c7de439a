"""Test-time augmentation by mirroring: each recurrent step runs on the frame and on its left-right mirror image,
and the two predictions (probabilities and boxes, mirrored back) are averaged before they are carried on.

A mirrored video is as plausible as the video (training flips clips too), so the network's two answers are two
estimates of the same mask, and the mean is what the next step warps. Costs a second model step per frame. On
the CPU recipe's held-out sequences it neither gained nor lost (docs/RESULTS.md): its errors there are not
ones a mirror image undoes.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from maskrnn_tf.inference.ensemble import mean_boxes
from maskrnn_tf.inference.propagation import MASK_THRESHOLD_KEY, StepFn, StepWrappedPrepare
from maskrnn_tf.ops import flip_flow_left_right


def _mirror_flow(flow: np.ndarray) -> np.ndarray:
    return flip_flow_left_right(np.asarray(flow, np.float32)).numpy()


def _nonempty(boxes: np.ndarray) -> np.ndarray:
    """[N] bool: the box has positive height and width."""
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def mirror_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """Boxes [N, 4] (y1, x1, y2, x2; columns x1..x2-1) in the mirrored frame of `width` columns. An empty box
    (x2 <= x1) stays empty."""
    boxes = np.asarray(boxes, np.float32)
    mirrored = np.stack([boxes[:, 0], width - boxes[:, 3], boxes[:, 2], width - boxes[:, 1]], axis=-1)
    return np.where(_nonempty(boxes)[:, None], mirrored, boxes).astype(np.float32)


def _mean_boxes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean of two [N, 4] box sets; where one box is empty, the other (both empty: b's)."""
    return mean_boxes([b, a])


def flip_averaged_step(step_fn: StepFn) -> StepFn:
    """A step function with the signature of `step_fn` that returns the mean of `step_fn` on the inputs and
    on their left-right mirror (mirrored back): 'probs' [N, H, W] and 'boxes' [N, 4]."""

    def run(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes) -> Dict[str, np.ndarray]:
        frame = np.asarray(frame)
        prev_probs = np.asarray(prev_probs, np.float32)
        width = frame.shape[1]
        plain = step_fn(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes)
        mirrored = step_fn(np.ascontiguousarray(frame[:, ::-1]), _mirror_flow(flow_to_prev), _mirror_flow(flow_to_next),
                           np.ascontiguousarray(prev_probs[:, :, ::-1]), mirror_boxes(prev_boxes, width))
        probs = (np.asarray(plain["probs"], np.float32) + np.asarray(mirrored["probs"], np.float32)[:, :, ::-1]) / 2.0
        boxes = _mean_boxes(np.asarray(plain["boxes"], np.float32),
                            mirror_boxes(np.asarray(mirrored["boxes"], np.float32), width))
        result = {"probs": probs, "boxes": boxes}
        if MASK_THRESHOLD_KEY in plain:  # a served step's own threshold (see `served_threshold`)
            result[MASK_THRESHOLD_KEY] = plain[MASK_THRESHOLD_KEY]
        return result

    return run


class FlipAveragedPrepare(StepWrappedPrepare):
    """A `prepare(source, first) -> step_fn` callback (online finetuning) whose steps are flip-averaged; the
    wrapped callback's attributes (`log`, its per-video finetuning record; `results`) are read through."""

    def __init__(self, prepare):
        super().__init__(prepare, flip_averaged_step)
