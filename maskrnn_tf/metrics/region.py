"""Region similarity J (Jaccard index), with the semantics of davis2017-evaluation's `db_eval_iou`."""
from __future__ import annotations

from typing import Optional, Union

import numpy as np


def db_eval_iou(
    annotation: np.ndarray, segmentation: np.ndarray, void_pixels: Optional[np.ndarray] = None
) -> Union[float, np.ndarray]:
    """Jaccard index (IoU) of a binary segmentation against a binary annotation.

    Works on one frame [H, W] (returns a float) or a stack [T, H, W] (returns [T]): the sums run over the last
    two axes. Non-zero means foreground. Pixels where `void_pixels` is true are left out of both the
    intersection and the union. When the union is empty (both masks empty, or everything void) J = 1.
    """
    annotation = np.asarray(annotation)
    segmentation = np.asarray(segmentation)
    if annotation.shape != segmentation.shape:
        raise ValueError(
            f"db_eval_iou: annotation {annotation.shape} and segmentation {segmentation.shape} differ in shape."
        )
    if annotation.ndim < 2:
        raise ValueError(f"db_eval_iou: masks must be [H, W] or [..., H, W], got shape {annotation.shape}.")
    annotation = annotation.astype(bool)
    segmentation = segmentation.astype(bool)
    if void_pixels is None:
        valid = np.ones_like(annotation)
    else:
        void_pixels = np.asarray(void_pixels)
        if void_pixels.shape != annotation.shape:
            raise ValueError(
                f"db_eval_iou: void_pixels {void_pixels.shape} and annotation {annotation.shape} differ in shape."
            )
        valid = ~void_pixels.astype(bool)
    inters = np.sum(annotation & segmentation & valid, axis=(-2, -1))
    union = np.sum((annotation | segmentation) & valid, axis=(-2, -1))
    # Integer counts: union == 0 is exact (the official test is np.isclose on the same integers).
    empty = union == 0
    j = np.where(empty, 1.0, inters / np.maximum(union, 1))
    if j.ndim == 0:
        return float(j)
    return j.astype(np.float64)
