"""Temporal stability T (DAVIS-2016), a documented Python 3 re-implementation.

The DAVIS-2016 benchmark measures how smoothly a predicted mask deforms from one frame to the next: contour
points of consecutive masks are described by shape contexts and matched, and the per-frame cost is the mean
matching cost. The original (a compiled MATLAB/C extension) matched with dynamic time warping along the
contour; this module follows the project brief instead and matches with the Hungarian algorithm, so its values
are comparable between runs of this code, not digit-for-digit with published T numbers.

Which tool it follows: the DAVIS-2016 Python evaluation (fperazzi/davis, `davis/dataset/loader.py`
`DAVISAnnotationLoader._eval` and `davis/measures/t_stability.py`), with which DAVIS-2016 numbers are usually
made. Its pairs are consecutive *predicted* masks of the scored frames 1..n-2 (n-3 pairs; a sequence of 3 frames
has none, T = NaN), each cost times 5, and the sequence T is the mean over the pairs that are not NaN
(`temporal_stability_pairs`, `temporal_stability`). The MATLAB code (davis-matlab `measures/eval_sequence.m`)
pairs differently: it starts from the first-frame annotation, so it also scores annotation -> frame 1 (n-2 pairs).
Both describe one contour per mask, the longest (`get_longest_cont`).

Procedure for a pair of binary masks (a, b):
1. contour points: of the contours `cv2.findContours` finds (outer and holes, no chain approximation), the one
   with the most points (`contour_points`); its points are neighbouring pixels, so the tools' upsampling (no gap
   above 3 px between points) has nothing to add. The tools take the contour with the most vertices after
   simplifying the polygons (3 px tolerance, `mask2polycont`): usually the same one, not always where a short
   contour is much more ragged than a long one.
   `n_points` (default 100) points are taken at evenly spaced indices; both masks use the same count
   n = min(n_points, len(contour_a), len(contour_b)) so the assignment is one-to-one (the tool describes every
   point of its upsampled contours: the sampling is this module's choice, with the Hungarian matching).
2. shape context of each point, as DAVIS-2016's `sc_compute` builds it (Belongie et al. 2002's log-polar
   histogram): the vectors from the point to every point of its own set, itself included, at radii normalised by
   the mean of the full n x n distance matrix (its zero diagonal included: (n-1)/n times the mean pairwise
   distance). Radial edges `logspace(log10(r_inner), log10(r_outer), n_radial)` (defaults 1/8, 1/4, 1/2, 1, 2);
   a radius r goes to radial bin k = number of edges <= r, so the `n_radial` (5) bins are r < 1/8, [1/8, 1/4),
   [1/4, 1/2), [1/2, 1), [1, 2), and r >= r_outer is dropped. Angular bin floor((angle mod 2*pi) / (2*pi /
   n_angular)) of `n_angular` (12), the angle measured from +x towards +y; the point itself (angle 0) counts in
   bin (0, 0). Each histogram is normalised to sum 1 (bin index = radial * n_angular + angular; the tool stores
   its bins in another order, which the chi-square cost does not see).
   Left from the tool: it divides by the sum + 2.2e-16 and adds 2.2e-16 to the cost's denominators (here: by
   the sum, and 0/0 := 0), a difference near float rounding; all points coinciding (mean distance 0) give empty
   histograms here, NaN radii (dropped, so empty histograms too) there.
3. cost C[i, j] = chi-square distance 0.5 * sum_k (h_i[k] - g_j[k])^2 / (h_i[k] + g_j[k]) (0/0 := 0), in [0, 1].
4. `scipy.optimize.linear_sum_assignment(C)`; the pair's cost is the mean cost of the matched pairs, and its value
   5 times that, as DAVIS-2016's evaluation scales it (`DAVIS2016_T_SCALE`).

Properties: 0 (up to float rounding) for identical shapes; invariant to translation (only relative vectors
enter) and approximately to scale; grows as the shape deforms; a speck or a hole beside the longest contour does
not enter. Lower is better.
Empty masks: a pair where either mask is empty has no contour and is skipped (NaN in the per-pair values);
the sequence T is the mean over the remaining pairs, NaN when none remains (or with fewer than two frames).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class ShapeContextConfig:
    """Shape-context parameters of the T measure."""

    n_points: int = 100
    n_radial: int = 5
    n_angular: int = 12
    r_inner: float = 0.125
    r_outer: float = 2.0


def contour_points(mask: np.ndarray) -> np.ndarray:
    """The points (x, y) of the longest contour of a binary mask [H, W] as float64 [N, 2] (N = 0 for an empty
    mask): of all contours, outer and holes, the one with the most points, the first found on a tie."""
    binary = np.ascontiguousarray(np.asarray(mask).astype(bool).astype(np.uint8))
    contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return np.zeros((0, 2), np.float64)
    # DAVIS-2016 describes one contour per mask, its longest (`get_longest_cont`): a speck or a hole beside the
    # object leaves T unchanged. max() keeps the first of equal lengths, as its strict comparison does.
    return max(contours, key=len).reshape(-1, 2).astype(np.float64)


def sample_points(points: np.ndarray, n: int) -> np.ndarray:
    """`n` points at evenly spaced indices along the (concatenated) contour."""
    if len(points) <= n:
        return points
    index = np.round(np.linspace(0, len(points), n, endpoint=False)).astype(np.int64)
    return points[index]


def radial_bins(radius: np.ndarray, config: ShapeContextConfig = ShapeContextConfig()) -> np.ndarray:
    """DAVIS-2016's radial bin of each normalised radius: the number of edges logspace(r_inner, r_outer, n_radial)
    at most r, so 0 below r_inner and `n_radial` (dropped) from r_outer on."""
    edges = np.logspace(np.log10(config.r_inner), np.log10(config.r_outer), config.n_radial)
    # sc_compute counts the edges above r (n_radial - this): the same bins, numbered from the outside in.
    return np.searchsorted(edges, radius, side="right")


def shape_context(points: np.ndarray, config: ShapeContextConfig = ShapeContextConfig()) -> np.ndarray:
    """Normalised log-polar histograms [N, n_radial * n_angular] of a point set [N, 2], as DAVIS-2016's
    `sc_compute` counts them (module doc, step 2): each point counts itself; radii over the full matrix's mean."""
    n = len(points)
    n_bins = config.n_radial * config.n_angular
    if n < 2:
        return np.zeros((n, n_bins), np.float64)
    delta = points[None, :, :] - points[:, None, :]  # [i, j] = p_j - p_i, the tool's direction
    dist = np.hypot(delta[..., 0], delta[..., 1])
    mean_dist = dist.mean()  # the zeros of the diagonal included, as the tool takes the mean
    if mean_dist <= 0:  # all points coincide
        return np.zeros((n, n_bins), np.float64)
    r_bin = radial_bins(dist / mean_dist, config)
    angle = np.mod(np.arctan2(delta[..., 1], delta[..., 0]), 2 * np.pi)
    # mod can round a tiny negative angle up to 2*pi: that is the last bin, not one past it.
    a_bin = np.minimum((angle / (2 * np.pi / config.n_angular)).astype(np.int64), config.n_angular - 1)
    keep = r_bin < config.n_radial  # beyond r_outer: dropped; the diagonal (r = 0) stays
    rows = np.broadcast_to(np.arange(n)[:, None], (n, n))[keep]
    flat = (r_bin * config.n_angular + a_bin)[keep]
    hist = np.zeros((n, n_bins), np.float64)
    np.add.at(hist, (rows, flat), 1.0)
    # Every point counts itself, so no sum is 0.
    return hist / hist.sum(axis=1, keepdims=True)


def chi2_cost(h: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Chi-square distances [N, M] between histograms h [N, K] and g [M, K]."""
    num = (h[:, None, :] - g[None, :, :]) ** 2
    den = h[:, None, :] + g[None, :, :]
    return 0.5 * np.sum(np.divide(num, den, out=np.zeros_like(num), where=den > 0), axis=-1)


def temporal_stability_pair(
    mask_a: np.ndarray, mask_b: np.ndarray, config: ShapeContextConfig = ShapeContextConfig()
) -> float:
    """Mean shape-context matching cost between the contours of two masks [H, W]; NaN if either is empty."""
    points_a = contour_points(mask_a)
    points_b = contour_points(mask_b)
    n = min(config.n_points, len(points_a), len(points_b))
    if n == 0:
        return float("nan")
    desc_a = shape_context(sample_points(points_a, n), config)
    desc_b = shape_context(sample_points(points_b, n), config)
    cost = chi2_cost(desc_a, desc_b)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


# DAVIS-2016's evaluation multiplies each pair's matching cost by 5 (its loader's "magic_number") before taking the
# mean that published T numbers report.
DAVIS2016_T_SCALE = 5.0


def temporal_stability_pairs(masks: np.ndarray, config: ShapeContextConfig = ShapeContextConfig()) -> np.ndarray:
    """Per consecutive pair (t, t+1) values [T-1] of a binary mask stack [T, H, W] (NaN for skipped pairs): the
    pair's matching cost (`temporal_stability_pair`) times DAVIS2016_T_SCALE, DAVIS-2016's scale."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"temporal_stability: masks must be [T, H, W], got shape {masks.shape}.")
    return DAVIS2016_T_SCALE * np.array(
        [temporal_stability_pair(masks[t], masks[t + 1], config) for t in range(masks.shape[0] - 1)],
        dtype=np.float64,
    )


def temporal_stability(masks: np.ndarray, config: ShapeContextConfig = ShapeContextConfig()) -> float:
    """Sequence T of a binary mask stack [T, H, W]: mean over valid consecutive pairs (NaN if none)."""
    values = temporal_stability_pairs(masks, config)
    valid = values[~np.isnan(values)]
    return float(valid.mean()) if valid.size else float("nan")
