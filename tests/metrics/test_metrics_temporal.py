"""Temporal stability T: properties and the shape-context building blocks."""
import math

import numpy as np
import pytest

from maskrnn_tf.metrics import (
    ShapeContextConfig,
    shape_context,
    temporal_stability,
    temporal_stability_pair,
    temporal_stability_pairs,
)

YY, XX = np.mgrid[:120, :160]


def ellipse(a, b, cx=80, cy=60):
    return ((XX - cx) / a) ** 2 + ((YY - cy) / b) ** 2 <= 1


def test_identical_shapes_give_zero():
    mask = ellipse(30, 20)
    assert temporal_stability_pair(mask, mask) == pytest.approx(0.0, abs=1e-12)
    assert temporal_stability(np.stack([mask] * 4)) == pytest.approx(0.0, abs=1e-12)


def test_translation_invariant():
    a = ellipse(30, 20)
    b = ellipse(30, 20, cx=95, cy=52)
    assert temporal_stability_pair(a, b) == pytest.approx(0.0, abs=1e-12)
    c = ellipse(30, 15)
    c_moved = ellipse(30, 15, cx=60, cy=70)
    assert temporal_stability_pair(a, c) == pytest.approx(temporal_stability_pair(a, c_moved), abs=1e-12)


def test_grows_with_deformation():
    circle = ellipse(30, 30)
    costs = [temporal_stability_pair(circle, ellipse(30 * r, 30 / r**0.5)) for r in (1.1, 1.3, 1.6, 2.0, 3.0)]
    assert costs[0] > 0
    assert all(a < b for a, b in zip(costs, costs[1:]))


def test_empty_masks_are_skipped():
    mask = ellipse(30, 20)
    empty = np.zeros_like(mask)
    moved = ellipse(30, 12)
    values = temporal_stability_pairs(np.stack([mask, empty, mask, moved]))
    assert math.isnan(values[0]) and math.isnan(values[1])
    assert temporal_stability(np.stack([mask, empty, mask, moved])) == pytest.approx(values[2])
    assert math.isnan(temporal_stability(np.stack([empty, empty])))
    assert math.isnan(temporal_stability(mask[None]))


def test_shape_context_histograms():
    # Four corners of a square: each point sees two neighbours at distance s and one at s*sqrt(2).
    points = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    config = ShapeContextConfig(n_radial=5, n_angular=4)
    desc = shape_context(points, config)
    assert desc.shape == (4, 20)
    np.testing.assert_allclose(desc.sum(axis=1), 1.0)
    # Point (0, 0): neighbours at angles 0 (east) and pi/2 (+y) and pi/4 -> angular bins 0, 1, 0.
    mean_d = (4 * 10 + 2 * 10 * np.sqrt(2)) / 6
    edges = np.logspace(np.log10(0.125), np.log10(2.0), 6)
    r_near = np.searchsorted(edges, 10 / mean_d, side="right") - 1
    r_far = np.searchsorted(edges, 10 * np.sqrt(2) / mean_d, side="right") - 1
    expected = np.zeros(20)
    expected[r_near * 4 + 0] += 1 / 3
    expected[r_near * 4 + 1] += 1 / 3
    expected[r_far * 4 + 0] += 1 / 3
    np.testing.assert_allclose(desc[0], expected)
