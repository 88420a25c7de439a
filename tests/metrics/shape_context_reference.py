"""A brute-force reference of the T pair cost, shared by the T tests: the documented procedure written out,
with the matching found by trying every one-to-one assignment (no Hungarian solver), so for small point counts."""
import itertools

import numpy as np

from maskrnn_tf.metrics.temporal import contour_points, shape_context


def sampled_contour(mask, n):
    """`n` contour points at indices round(len * k / n), k = 0..n-1 (all of them when there are at most n)."""
    points = contour_points(mask)
    if len(points) <= n:
        return points
    return points[np.round(np.linspace(0, len(points), n, endpoint=False)).astype(int)]


def chi2(h, g):
    """0.5 * sum (h - g)^2 / (h + g) over the bins where h + g > 0."""
    return 0.5 * sum((x - y) ** 2 / (x + y) for x, y in zip(h, g) if x + y > 0)


def brute_force_pair_cost(mask_a, mask_b, config):
    """Minimum mean chi-square cost over all one-to-one matchings of the two masks' shape contexts, both
    contours sampled to n = min(n_points, len_a, len_b) points."""
    n = min(config.n_points, len(contour_points(mask_a)), len(contour_points(mask_b)))
    assert n <= 8, "brute force: keep n_points small"
    desc_a = shape_context(sampled_contour(mask_a, n), config)
    desc_b = shape_context(sampled_contour(mask_b, n), config)
    cost = np.array([[chi2(h, g) for g in desc_b] for h in desc_a])
    perms = np.array(list(itertools.permutations(range(n))))
    return float(cost[np.arange(n), perms].mean(axis=1).min())
