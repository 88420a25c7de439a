"""Validation J: the model runs the full recurrence (all objects of a video at once) from the first-frame
mask, the objects are fused by argmax, and each object's region similarity J is averaged over frames 1..T-1."""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from maskrnn_tf.metrics.region import db_eval_iou
from maskrnn_tf.model import MaskRNN
from maskrnn_tf.ops import mask_to_box


def segment_video(model: MaskRNN, step_fn, video: Dict[str, np.ndarray]) -> np.ndarray:
    """Label maps [T, H, W] int32 of a video (frame 0 = its ground truth), by the recurrence of `step_fn`."""
    masks = np.asarray(video["masks"])
    ids = [i for i in range(1, 255) if np.any(masks[0] == i)]
    labels = np.zeros(masks.shape, np.int32)
    labels[0] = np.where(np.isin(masks[0], ids), masks[0], 0)
    if not ids:
        return labels
    prev = tf.constant(np.stack([(masks[0] == i) for i in ids]).astype(np.float32))
    boxes, _ = mask_to_box(prev)
    extra = {}
    if model.config.color_prior_input:  # fitted on the first frame as stored, as training and segmenting fit it
        from maskrnn_tf.inference.color_gate import fit_color_model
        from maskrnn_tf.ops.color_tables import BINS

        first_frame, first_mask = video.get("first_frame", video["frames"][0]), video.get("first_mask", masks[0])
        extra["color_model"] = tf.constant(fit_color_model(np.asarray(first_frame, np.uint8), np.asarray(first_mask),
                                                           ids, model.config.color_prior_band, bins=BINS,
                                                           space="rgb"))
    for t in range(1, masks.shape[0]):
        out = step_fn(tf.constant(video["frames"][t], tf.float32), tf.constant(video["flows_to_prev"][t]),
                      tf.constant(video["flows_to_next"][t]), prev, boxes, **extra)
        prev, boxes = out["probs"], out["boxes"]
        fused = model.fuse(prev).numpy()
        # Fused label k is the k-th tracked object: map it back to its id.
        labels[t] = np.where(fused > 0, np.asarray(ids)[np.maximum(fused - 1, 0)], 0)
    return labels


def make_step_fn(model: MaskRNN):
    """A compiled inference step (retraces only when the object count or frame size changes)."""

    @tf.function(reduce_retracing=True)
    def step(frame, flow_prev, flow_next, prev, boxes, color_model=None):
        return model.step(frame, flow_prev, flow_next, prev, boxes, training=False, color_model=color_model)

    return step


def video_j(labels: np.ndarray, masks: np.ndarray) -> float:
    """Mean J over the objects of the first frame and frames 1..T-1 (void 255 excluded)."""
    ids = [i for i in range(1, 255) if np.any(masks[0] == i)]
    if not ids or masks.shape[0] < 2:
        return float("nan")
    void = masks[1:] == 255
    return float(np.mean([np.mean(db_eval_iou(masks[1:] == i, labels[1:] == i, void)) for i in ids]))


def evaluate(model: MaskRNN, videos: Sequence[Dict[str, np.ndarray]], step_fn=None
             ) -> Tuple[float, List[np.ndarray]]:
    """(mean J over videos, predicted label maps per video)."""
    step_fn = step_fn or make_step_fn(model)
    scores, predictions = [], []
    for video in videos:
        labels = segment_video(model, step_fn, video)
        predictions.append(labels)
        scores.append(video_j(labels, np.asarray(video["masks"])))
    return (float(np.nanmean(scores)) if scores else float("nan")), predictions
