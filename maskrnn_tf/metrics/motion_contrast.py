"""How well flow magnitude tells the annotated objects from their background: per object and frame, the AUC with
which |flow| ranks object pixels above background pixels, for the raw flow and for the flow minus its median
(`model.flow_reference='median'`, what the flow stream then sees).

An AUC near 1: the object moves faster than its background; near 0: slower (a camera that follows the object
leaves it still and sweeps the background); 0.5: magnitude does not separate them. A network learning from few
videos gets a consistent cue only where the AUC is on one side of 0.5 in most of them. No network involved.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.stats import rankdata

MEDIAN_STRIDE = 4  # as maskrnn_tf.ops.subtract_median_flow


def separation_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(a positive value > a negative one) + P(equal) / 2 (the Mann-Whitney U over n_pos * n_neg); NaN when
    either side is empty."""
    positives, negatives = np.ravel(positives), np.ravel(negatives)
    n_pos, n_neg = positives.size, negatives.size
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([positives, negatives]))  # ties get their average rank
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def median_relative_flow(flow: np.ndarray, stride: int = MEDIAN_STRIDE) -> np.ndarray:
    """flow [H, W, 2] minus the median of its every `stride`-th row and column, u and v apart (NumPy twin of
    `maskrnn_tf.ops.subtract_median_flow` for one image)."""
    flow = np.asarray(flow, np.float32)
    return flow - np.median(flow[::stride, ::stride].reshape(-1, 2), axis=0)


def frame_motion_aucs(ids: np.ndarray, flow: np.ndarray, num_objects: int) -> np.ndarray:
    """[num_objects, 2]: per object, the AUC of |flow| (column 0) and of |flow - median| (column 1) separating its
    pixels from the background's (id 0; other objects and void pixels left out). NaN for an absent object.

    ids: object ids [H, W] of frame t (0 background, 1..N objects, 255 void); flow: (u, v) [H, W, 2] of frame t.
    """
    ids = np.asarray(ids)
    flow = np.asarray(flow, np.float32)
    if flow.shape != ids.shape + (2,):
        raise ValueError(f"frame_motion_aucs: ids {ids.shape} and flow {flow.shape} must be [H, W] and [H, W, 2].")
    magnitudes = (np.hypot(flow[..., 0], flow[..., 1]),
                  np.hypot(*np.moveaxis(median_relative_flow(flow), -1, 0)))
    background = ids == 0
    out = np.full((num_objects, 2), np.nan)
    for k in range(num_objects):
        target = ids == k + 1
        for column, magnitude in enumerate(magnitudes):
            out[k, column] = separation_auc(magnitude[target], magnitude[background])
    return out


def sequence_motion_aucs(read_ids: Callable[[int], np.ndarray], flow: Callable[[int, int], np.ndarray],
                         num_frames: int, num_objects: int) -> np.ndarray:
    """`frame_motion_aucs` of frames 1..T-1 with their flow to the previous frame (the flow stream's first
    channel): [num_frames - 1, num_objects, 2]. `read_ids(t)` gives frame t's ids, `flow(a, b)` the flow a -> b."""
    if num_frames < 2:
        raise ValueError(f"sequence_motion_aucs: {num_frames} frame(s); a flow needs two.")
    return np.stack([frame_motion_aucs(read_ids(t), flow(t, t - 1), num_objects) for t in range(1, num_frames)])
