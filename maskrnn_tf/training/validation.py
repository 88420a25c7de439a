"""Validation J: the model runs the full recurrence (all objects of a video at once) from the first-frame
mask, the objects are fused by argmax, and each object's region similarity J is averaged over frames 1..T-1.

As segment does, the objects are those of the first frame as stored (`full_masks`, when the video was resized
to the training size), seeded at the training size by `labels_at_size` (an object thinner than a cell there is
kept, not dropped), and scored at the stored size: the probabilities are upsampled (bilinear) and fused there,
against the ground truth as stored, as the DAVIS evaluation scores segment's results."""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from maskrnn_tf.io import VOID_ID
from maskrnn_tf.metrics.region import db_eval_iou
from maskrnn_tf.model import MaskRNN
from maskrnn_tf.ops import mask_to_box


def _object_ids(labels: np.ndarray) -> List[int]:
    """The object ids of an id map (0 background and 255 void excluded), ascending."""
    return [int(i) for i in np.unique(labels) if 0 < i < VOID_ID]


def segment_video(model: MaskRNN, step_fn, video: Dict[str, np.ndarray]) -> np.ndarray:
    """Label maps [T, H, W] int32 of a video at its (training) size, frame 0 its seed (`segment_video_sizes`)."""
    return segment_video_sizes(model, step_fn, video)[0]


def segment_video_sizes(model: MaskRNN, step_fn, video: Dict[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """(label maps [T, h, w] at the video's size, label maps [T, H, W] at the size of `full_masks`) by the
    recurrence of `step_fn`, as segment makes them at `--max_size` = the training size: the objects of the stored
    first frame, seeded by `labels_at_size`; an object it cannot place (every cell of its is another object's
    only one) gets an empty seed and no prediction (segment's `_untracked`), so that it scores 0, not nothing.
    Frame 0 holds the seed (void as background): the stored first frame at the stored size."""
    # Local imports: the inference package imports training modules.
    from maskrnn_tf.inference.first_mask import labels_at_size
    from maskrnn_tf.inference.writers import upsample_probs

    masks = np.asarray(video["masks"])
    full_first = np.asarray(video.get("full_masks", masks)[0])
    size, full_size = tuple(masks.shape[1:]), tuple(full_first.shape)
    ids = _object_ids(full_first)
    # Kept in the video dict: validation runs every eval_every steps, and labels_at_size warns of each object it
    # cannot place (once per run is enough).
    seed = video.get("seed_labels")
    if seed is None or tuple(np.shape(seed)) != size:
        seed = video["seed_labels"] = labels_at_size(full_first, size)
    labels = np.zeros(masks.shape, np.int32)
    full_labels = np.zeros((masks.shape[0],) + full_size, np.int32)
    labels[0] = np.where(np.isin(seed, ids), seed, 0)
    full_labels[0] = np.where(np.isin(full_first, ids), full_first, 0)
    if not ids:
        return labels, full_labels
    start = np.stack([(seed == i) for i in ids]).astype(np.float32)
    lost = np.array([not row.any() for row in start])
    prev = tf.constant(start)
    boxes, _ = mask_to_box(prev)
    extra = {}
    if model.config.color_prior_input:  # fitted on the first frame as stored, as training and segmenting fit it
        from maskrnn_tf.inference.color_gate import fit_color_model
        from maskrnn_tf.ops.color_tables import BINS

        first_frame, first_mask = video.get("first_frame", video["frames"][0]), video.get("first_mask", masks[0])
        extra["color_model"] = tf.constant(fit_color_model(np.asarray(first_frame, np.uint8), np.asarray(first_mask),
                                                           ids, model.config.color_prior_band, bins=BINS,
                                                           space="rgb"))
    lookup = np.asarray([0] + ids, np.int32)  # fused label k is the k-th tracked object: map it back to its id
    for t in range(1, masks.shape[0]):
        out = step_fn(tf.constant(video["frames"][t], tf.float32), tf.constant(video["flows_to_prev"][t]),
                      tf.constant(video["flows_to_next"][t]), prev, boxes, **extra)
        prev, boxes = out["probs"], out["boxes"]
        if lost.any():  # an unplaced object's row must not take pixels from the others (segment's `_untracked`)
            prev = tf.where(tf.constant(lost)[:, None, None], tf.zeros_like(prev), prev)
        labels[t] = lookup[model.fuse(prev).numpy()]
        if full_size == size:
            full_labels[t] = labels[t]
        else:
            full_probs = upsample_probs(tf.cast(prev, tf.float32).numpy(), full_size)  # bfloat16 runs too
            full_labels[t] = lookup[model.fuse(tf.constant(full_probs)).numpy()]
    return labels, full_labels


def make_step_fn(model: MaskRNN):
    """A compiled inference step (retraces only when the object count or frame size changes)."""

    @tf.function(reduce_retracing=True, autograph=False)
    def step(frame, flow_prev, flow_next, prev, boxes, color_model=None):
        return model.step(frame, flow_prev, flow_next, prev, boxes, training=False, color_model=color_model)

    return step


def video_j(labels: np.ndarray, masks: np.ndarray) -> float:
    """Mean J over the objects of the first frame and frames 1..T-1 (void 255 excluded)."""
    ids = _object_ids(masks[0])
    if not ids or masks.shape[0] < 2:
        return float("nan")
    void = masks[1:] == VOID_ID
    return float(np.mean([np.mean(db_eval_iou(masks[1:] == i, labels[1:] == i, void)) for i in ids]))


def evaluate(model: MaskRNN, videos: Sequence[Dict[str, np.ndarray]], step_fn=None
             ) -> Tuple[float, List[np.ndarray]]:
    """(mean J over videos, scored at the stored size; predicted label maps per video at the video's size)."""
    step_fn = step_fn or make_step_fn(model)
    scores, predictions = [], []
    for video in videos:
        labels, full_labels = segment_video_sizes(model, step_fn, video)
        predictions.append(labels)
        scores.append(video_j(full_labels, np.asarray(video.get("full_masks", video["masks"]))))
    return (float(np.nanmean(scores)) if scores else float("nan")), predictions
