"""How well a flow carries the annotated masks: each object's mask in frame t-1, warped into frame t with the
flow t -> t-1 the way `MaskRNN` warps its previous prediction, scored by J against the mask of frame t.

One frame pair at a time (no recurrence, no network): a flow that loses an object here loses it for the model
too, and a sequence scored high here that the model still loses is lost by the network, not by the flow.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from maskrnn_tf.metrics.region import db_eval_iou

VOID_ID = 255


def warped_mask_ious(ids_prev: np.ndarray, ids_cur: np.ndarray, flow_cur_to_prev: np.ndarray,
                     num_objects: int) -> np.ndarray:
    """J [num_objects] of each object's frame t-1 mask warped into frame t, against its frame t mask.

    Args:
      ids_prev, ids_cur: object ids [H, W] of frames t-1 and t (0 background, 1..N objects, 255 void).
      flow_cur_to_prev: (u, v) flow [H, W, 2] from frame t to frame t-1.
      num_objects: N.

    Returns:
      float64 [N]; NaN for an object in neither frame. Void pixels of frame t are left out (as DAVIS does).
      The warp is `maskrnn_tf.ops.warp_with_flow` (bilinear), thresholded at 0.5 like the model's proposals.
    """
    from maskrnn_tf.ops import warp_masks

    ids_prev, ids_cur = np.asarray(ids_prev), np.asarray(ids_cur)
    flow = np.asarray(flow_cur_to_prev, np.float32)
    if ids_prev.shape != ids_cur.shape or flow.shape != ids_cur.shape + (2,):
        raise ValueError(f"warped_mask_ious: masks {ids_prev.shape}, {ids_cur.shape} and flow {flow.shape} must be "
                         "[H, W], [H, W] and [H, W, 2] of one size.")
    masks = np.stack([ids_prev == k for k in range(1, num_objects + 1)]).astype(np.float32)  # [N, H, W]
    warped = warp_masks(masks, flow).numpy()
    void = ids_cur == VOID_ID
    ious = np.full(num_objects, np.nan)
    for k in range(num_objects):
        target = ids_cur == k + 1
        if target.any() or masks[k].any():
            ious[k] = db_eval_iou(target, warped[k] > 0.5, void)
    return ious


def sequence_warp_ious(read_ids: Callable[[int], np.ndarray], flow: Callable[[int, int], np.ndarray],
                       num_frames: int, num_objects: int) -> np.ndarray:
    """`warped_mask_ious` of every consecutive pair of a video: [num_frames - 1, num_objects] (row t-1 is the
    pair t-1 -> t). `read_ids(t)` gives frame t's ids, `flow(a, b)` the flow from frame a to frame b."""
    if num_frames < 2:
        raise ValueError(f"sequence_warp_ious: {num_frames} frame(s); a flow needs two.")
    rows = []
    previous = read_ids(0)
    for t in range(1, num_frames):
        current = read_ids(t)
        rows.append(warped_mask_ious(previous, current, flow(t, t - 1), num_objects))
        previous = current
    return np.stack(rows)
