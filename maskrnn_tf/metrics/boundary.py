"""Boundary accuracy F, with the semantics of davis2017-evaluation's `db_eval_boundary` / `f_measure`.

Boundaries come from `seg2bmap` (D. Martin's rule from the Berkeley segmentation benchmark: a pixel is on the
boundary when it differs from its east, south or south-east neighbour, i.e. boundaries sit half a pixel towards
the origin). A boundary pixel of one mask is matched when a boundary pixel of the other lies within the
tolerance disk (radius ceil(bound_th * image diagonal) pixels; 8 px at 854x480).
"""
from __future__ import annotations

import math
from typing import Optional, Union

import cv2
import numpy as np


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map (bool, same shape) of a mask [H, W] or a stack [..., H, W].

    A pixel is a boundary pixel when its value differs from the east, south or south-east neighbour (pixels
    outside the image count as background for these shifts). In the last row only the east neighbour is
    compared, in the last column only the south one, and the bottom-right pixel is never a boundary.
    The image border itself is therefore only a boundary on the last row/column, as in the original.
    The original's optional rescaling to another (width, height) is not provided: the evaluation never uses it.
    """
    seg = np.asarray(seg).astype(bool)
    if seg.ndim < 2:
        raise ValueError(f"seg2bmap: mask must be [H, W] or [..., H, W], got shape {seg.shape}.")
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[..., :, :-1] = seg[..., :, 1:]
    south[..., :-1, :] = seg[..., 1:, :]
    south_east[..., :-1, :-1] = seg[..., 1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[..., -1, :] = seg[..., -1, :] ^ east[..., -1, :]
    bmap[..., :, -1] = seg[..., :, -1] ^ south[..., :, -1]
    bmap[..., -1, -1] = False
    return bmap


def boundary_tolerance(shape: tuple, bound_th: float = 0.008) -> int:
    """Matching radius in pixels: `bound_th` itself when >= 1, else ceil(bound_th * sqrt(H^2 + W^2))."""
    if bound_th >= 1:
        if float(bound_th) != int(bound_th):
            # The original builds a disk from a fractional radius, which gives an even-sized, off-centre kernel.
            raise ValueError(f"bound_th={bound_th}: a tolerance >= 1 is a pixel radius and must be an integer.")
        return int(bound_th)
    height, width = shape[-2], shape[-1]
    return int(math.ceil(bound_th * math.hypot(height, width)))


def disk(radius: int) -> np.ndarray:
    """Disk structuring element (uint8, (2r+1) x (2r+1)): offsets with dx^2 + dy^2 <= r^2."""
    offsets = np.arange(-radius, radius + 1)
    return ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius**2).astype(np.uint8)


def f_measure(
    segmentation: np.ndarray,
    annotation: np.ndarray,
    void_pixels: Optional[np.ndarray] = None,
    bound_th: float = 0.008,
) -> float:
    """Boundary F-measure of one frame [H, W] (note the argument order: prediction first, as the original)."""
    segmentation = np.asarray(segmentation).astype(bool)
    annotation = np.asarray(annotation).astype(bool)
    if void_pixels is not None:
        valid = ~np.asarray(void_pixels).astype(bool)
        # Void pixels are cleared from both masks before taking boundaries (the original's rule).
        segmentation = segmentation & valid
        annotation = annotation & valid
    radius = boundary_tolerance(segmentation.shape, bound_th)
    kernel = disk(radius)
    seg_boundary = seg2bmap(segmentation)
    gt_boundary = seg2bmap(annotation)
    seg_dilated = cv2.dilate(seg_boundary.astype(np.uint8), kernel).astype(bool)
    gt_dilated = cv2.dilate(gt_boundary.astype(np.uint8), kernel).astype(bool)
    n_seg = int(seg_boundary.sum())
    n_gt = int(gt_boundary.sum())
    if n_seg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_seg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_seg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = float(np.sum(seg_boundary & gt_dilated)) / n_seg
        recall = float(np.sum(gt_boundary & seg_dilated)) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def db_eval_boundary(
    annotation: np.ndarray,
    segmentation: np.ndarray,
    void_pixels: Optional[np.ndarray] = None,
    bound_th: float = 0.008,
) -> Union[float, np.ndarray]:
    """Boundary F-measure of a frame [H, W] (float) or of every frame of a stack [T, H, W] ([T] array).

    Precision = fraction of predicted boundary pixels within the tolerance of a ground-truth boundary pixel,
    recall = the converse; F = 2PR / (P + R), 0 when P + R = 0. Empty boundaries: both empty -> F = 1;
    exactly one empty -> F = 0 (P or R is 0). Void pixels are removed from both masks first.
    """
    annotation = np.asarray(annotation)
    segmentation = np.asarray(segmentation)
    if annotation.shape != segmentation.shape:
        raise ValueError(
            f"db_eval_boundary: annotation {annotation.shape} and segmentation {segmentation.shape} differ."
        )
    if void_pixels is not None and np.shape(void_pixels) != annotation.shape:
        raise ValueError(
            f"db_eval_boundary: void_pixels {np.shape(void_pixels)} and annotation {annotation.shape} differ."
        )
    if annotation.ndim == 2:
        return f_measure(segmentation, annotation, void_pixels, bound_th)
    if annotation.ndim == 3:
        out = np.zeros(annotation.shape[0], np.float64)
        for t in range(annotation.shape[0]):
            void_t = None if void_pixels is None else void_pixels[t]
            out[t] = f_measure(segmentation[t], annotation[t], void_t, bound_th)
        return out
    raise ValueError(f"db_eval_boundary: masks must be [H, W] or [T, H, W], got shape {annotation.shape}.")
