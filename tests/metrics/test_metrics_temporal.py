"""Temporal stability T: properties and the shape-context building blocks."""
import itertools
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
from maskrnn_tf.metrics.temporal import chi2_cost, contour_points, sample_points
from shape_context_reference import brute_force_pair_cost  # tests/metrics/shape_context_reference.py

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


def test_chi2_cost_hand_computed():
    h = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    g = np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [0.25, 0.25, 0.5]])
    # 0.5 * sum (h - g)^2 / (h + g), empty bins of both (0/0) counting 0.
    want = np.array([
        [0.5 * (1 / 1 + 1 / 1), 0.5 * (0.25 / 1.5 + 0.25 / 0.5), 0.5 * (0.5625 / 1.25 + 0.0625 / 0.25 + 0.25 / 0.5)],
        [0.5 * (0.25 / 0.5 + 0.25 / 1.5), 0.0, 0.5 * (0.0625 / 0.75 + 0.0625 / 0.75 + 0.25 / 0.5)],
    ])
    np.testing.assert_allclose(chi2_cost(h, g), want, rtol=1e-12)


def test_sample_points_takes_evenly_spaced_indices():
    points = np.arange(20, dtype=float).reshape(10, 2)
    # linspace(0, 10, 4, endpoint=False) = 0, 2.5, 5, 7.5 -> rounded half to even: 0, 2, 5, 8.
    np.testing.assert_array_equal(sample_points(points, 4), points[[0, 2, 5, 8]])
    np.testing.assert_array_equal(sample_points(points, 10), points)
    np.testing.assert_array_equal(sample_points(points, 12), points)


def test_pair_is_the_minimum_mean_cost_over_all_one_to_one_matchings():
    # Shapes one or two pixels thick: every pixel is a contour pixel, so the contours are known by hand.
    bar = np.zeros((6, 7), bool)
    bar[1:3, 1:4] = True  # 2 x 3: 6 contour pixels
    ell = np.zeros((6, 7), bool)
    ell[1:4, 1:4] = True
    ell[1:3, 3] = False  # an L of 7 pixels
    for mask in (bar, ell):
        xy = {tuple(p) for p in contour_points(mask).astype(int)}
        assert xy == {(x, y) for y, x in zip(*np.nonzero(mask))}
    config = ShapeContextConfig(n_points=7, n_radial=3, n_angular=4)
    # n = min(7, 6, 7) = 6: the L's 7 points are sampled at indices round(7 * k / 6) = 0, 1, 2, 4, 5, 6.
    desc_a = shape_context(contour_points(bar), config)
    desc_b = shape_context(contour_points(ell)[[0, 1, 2, 4, 5, 6]], config)

    def chi2(h, g):
        return 0.5 * sum((x - y) ** 2 / (x + y) for x, y in zip(h, g) if x + y > 0)

    best = min(np.mean([chi2(desc_a[i], desc_b[j]) for i, j in enumerate(perm)])
               for perm in itertools.permutations(range(6)))
    assert best > 0.05
    assert temporal_stability_pair(bar, ell, config) == pytest.approx(best, rel=1e-12)
    # Swapped, the longer contour comes first: it is still sampled down to the shorter one's 6 points (the
    # cost is symmetric, so the value is the same), not kept whole against 6.
    assert temporal_stability_pair(ell, bar, config) == pytest.approx(best, rel=1e-12)
    # The shared brute-force reference (used by the evaluation tests) agrees both ways.
    assert brute_force_pair_cost(bar, ell, config) == pytest.approx(best, rel=1e-12)
    assert brute_force_pair_cost(ell, bar, config) == pytest.approx(best, rel=1e-12)


def test_contour_points_are_the_longest_contour_as_davis_2016_takes_it():
    """DAVIS-2016's T describes one contour per mask, the longest (`get_longest_cont`, Python and MATLAB tools);
    all contours were concatenated here. A ring's points are its outer border pixels (a ring pixel with a
    4-neighbour outside the disc), not the hole's; of two squares, the larger square's perimeter pixels."""
    from scipy import ndimage

    r2 = (XX[:40, :40] - 20) ** 2 + (YY[:40, :40] - 20) ** 2
    ring = (r2 <= 12 ** 2) & (r2 > 5 ** 2)
    disc = r2 <= 12 ** 2
    outer = disc & ~ndimage.binary_erosion(disc, ndimage.generate_binary_structure(2, 1))
    hole_border = ring & ~ndimage.binary_erosion(ring, ndimage.generate_binary_structure(2, 1)) & ~outer
    assert hole_border.sum() > 20  # the premise: the hole has a contour of its own
    points = contour_points(ring).astype(int)
    assert {(x, y) for x, y in points} == {(x, y) for y, x in zip(*np.nonzero(outer))}
    assert len(points) == outer.sum()  # each outer border pixel once
    squares = np.zeros((30, 30), bool)
    squares[2:12, 3:13] = True  # 10 x 10: 36 perimeter pixels
    squares[20:23, 20:23] = True  # 3 x 3: 8
    points = contour_points(squares).astype(int)
    assert len(points) == 36
    assert {(x, y) for x, y in points} == {(x, y) for y in range(2, 12) for x in range(3, 13)
                                          if y in (2, 11) or x in (3, 12)}


def test_t_follows_the_longest_contour_so_specks_leave_it_unchanged():
    """A disc moving by whole pixels keeps its contour (T = 0) also with a speck beside it that comes and goes:
    DAVIS-2016 describes the longest contour only. Concatenated with the speck's points, T was 1.2 here."""
    disc = [ellipse(20, 20, cx=50 + 3 * t, cy=60) for t in range(4)]
    specks = [d.copy() for d in disc]
    specks[1][10:13, 120:123] = True
    specks[3][100:102, 10:12] = True
    assert temporal_stability(np.stack(specks)) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(temporal_stability_pairs(np.stack(specks)), 0.0, atol=1e-12)


def test_sequence_values_are_on_the_davis_2016_scale():
    """DAVIS-2016's evaluation multiplies each pair's matching cost by 5 (its loader's `magic_number`) before the
    mean that published T numbers report; T-Mean here was the bare cost, a fifth of that scale."""
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 12:26] = 1
    bent = mask.copy()
    bent[10:18, 26:34] = 1
    pair = temporal_stability_pair(mask, bent)
    assert pair > 0.01
    np.testing.assert_allclose(temporal_stability_pairs(np.stack([mask, bent])), [5.0 * pair])
    assert temporal_stability(np.stack([mask, bent, mask])) == pytest.approx(5.0 * pair)
