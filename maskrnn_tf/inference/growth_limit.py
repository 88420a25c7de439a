"""A cap on how fast each object's mask may grow from one frame to the next (`segment --max_growth`).

Without ImageNet features the CPU recipe's masks creep into background that moves or looks like the object (the
smoke behind a drifting car, the water around a duck) a few per cent a frame, and the recurrence carries the
creep on (docs/RESULTS.md, "What limits it"). The cap allows each object at frame t at most `max_growth` times the
area of its previous mask warped into frame t (and, for small objects, at least the square root of that area in
pixels more); of a larger prediction it keeps the pixels nearest the warped mask (inside it first, then by
distance, ties by probability) and sets the others to 0, so the probabilities written and those carried to the
next frame agree (the boxes are the step's). The cap holds back only what the network adds to the warped mask,
and every mask alike: one that should grow fast (an object coming closer or out of an occlusion, a rough first
mask) is held back too (1.1 lets a mask double in about 7 frames). On the CPU recipe's held-out sequences no cap
gained beyond noise (docs/RESULTS.md, "A cap on mask growth").
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

import cv2
import numpy as np

from maskrnn_tf.inference.propagation import StepFn, served_threshold
from maskrnn_tf.ops import warp_masks


def _check_max_growth(max_growth: float) -> None:
    if max_growth < 1.0:
        raise ValueError(f"max_growth must be at least 1 (a mask may keep its area), got {max_growth}.")


def allowed_area(previous: int, max_growth: float) -> int:
    """The most mask pixels an object of `previous` pixels may have in the next frame: `max_growth` times as many,
    or `previous + ceil(sqrt(previous))` where that is more (a small object's ring of edge pixels is more than a
    few per cent of it, and a fraction of a pixel of motion moves a soft edge across the threshold)."""
    return max(int(np.floor(max_growth * previous + 1e-6)), previous + int(np.ceil(np.sqrt(previous))))


def limit_growth(probs: np.ndarray, warped: np.ndarray, max_growth: float, threshold: float = 0.5) -> np.ndarray:
    """[N, H, W] probabilities with each object's mask (> `threshold`) cut to at most `allowed_area` of its warped
    previous mask (`warped` [N, H, W], > `threshold`).

    Of an object over the cap, the mask pixels are ranked by their distance to the warped mask (0 inside it;
    Euclidean), ties by probability (higher first), then by position; the first `allowed_area` are kept and the
    rest set to 0. An object whose warped mask is empty (lost) is left as it is. Returns a new
    float32 array; objects within the cap keep their probabilities unchanged.
    """
    _check_max_growth(max_growth)
    probs = np.array(probs, np.float32)
    warped = np.asarray(warped, np.float32)
    if probs.shape != warped.shape or probs.ndim != 3:
        raise ValueError(f"probs {probs.shape} and warped {warped.shape} must be the same [N, H, W] shape.")
    for i in range(probs.shape[0]):
        inside = warped[i] > threshold
        previous = int(np.count_nonzero(inside))
        mask = probs[i] > threshold
        allowed = allowed_area(previous, max_growth)
        if previous == 0 or np.count_nonzero(mask) <= allowed:
            continue
        # Distance of every pixel to the warped mask: distanceTransform measures to the nearest zero pixel.
        distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        ys, xs = np.nonzero(mask)
        order = np.lexsort((xs, ys, -probs[i, ys, xs], distance[ys, xs]))  # last key sorts first
        drop = order[allowed:]
        probs[i, ys[drop], xs[drop]] = 0.0
    return probs


def growth_limited_step(step_fn: StepFn, max_growth: float, threshold: float = 0.5, warp: bool = True) -> StepFn:
    """A step function with the signature of `step_fn` whose 'probs' are cut by `limit_growth` against the
    previous probabilities warped by the step's flow to the previous frame (not warped with `warp=False`, for a
    network that does not warp them: `MaskRNNConfig.warp_mask`); its other outputs pass through. The threshold
    is the one the step returns (`mask_threshold`, a served export's) or `threshold`."""
    _check_max_growth(max_growth)

    def run(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes) -> Dict[str, Any]:
        out: Mapping[str, Any] = step_fn(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes)
        limit = served_threshold(out, threshold)
        result = dict(out)
        prev_probs = np.asarray(prev_probs, np.float32)
        previous = np.asarray(warp_masks(prev_probs, flow_to_prev)) if warp else prev_probs
        result["probs"] = limit_growth(np.asarray(out["probs"], np.float32), previous, max_growth, limit)
        return result

    return run
