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
from maskrnn_tf.metrics.temporal import chi2_cost, contour_points, radial_bins, sample_points
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
    # Four corners of a square, side 10. DAVIS-2016's rules (sc_compute): the mean distance is over the full 4 x 4
    # matrix, its zero diagonal included: 2 * (4 * 10 + 2 * 10 * sqrt(2)) / 16 = 8.536, so a side is at normalised
    # radius 1.172 and a diagonal at 1.657, both in the outermost radial bin 4 ([1, 2)); each point also counts
    # itself (radius 0, angle 0: bin (0, 0)).
    points = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    config = ShapeContextConfig(n_radial=5, n_angular=4)
    desc = shape_context(points, config)
    assert desc.shape == (4, 20)
    np.testing.assert_allclose(desc.sum(axis=1), 1.0)
    # Bin index = radial bin * 4 + angular bin (quarters from +x towards +y).
    # Point (0, 0): itself -> (0, 0); (10, 0) at angle 0 and (10, 10) at pi/4 -> (4, 0) twice; (0, 10) -> (4, 1).
    expected = np.zeros(20)
    expected[[0, 16, 17]] = [1 / 4, 2 / 4, 1 / 4]
    np.testing.assert_allclose(desc[0], expected)
    # Point (10, 0): itself; (0, 0) at pi -> (4, 2); (10, 10) at pi/2 and (0, 10) at 3*pi/4 -> (4, 1) twice.
    expected = np.zeros(20)
    expected[[0, 17, 18]] = [1 / 4, 2 / 4, 1 / 4]
    np.testing.assert_allclose(desc[1], expected)


def test_shape_context_follows_davis_2016_sc_compute_on_a_hand_computed_line():
    """DAVIS-2016's sc_compute: radial edges logspace(1/8, 2, 5) = 1/8, 1/4, 1/2, 1, 2 give five bins r < 1/8,
    [1/8, 1/4), [1/4, 1/2), [1/2, 1), [1, 2) (r >= 2 dropped); the normalising mean is over the full distance
    matrix, its zero diagonal included; each point counts itself (r = 0, angle 0). The module used six edges
    (r < 1/8 merged into [1/8, 0.22)) and left the diagonal out of both."""
    points = np.array([[0, 0], [1, 0], [4, 0], [10, 0]], float)
    desc = shape_context(points)  # the defaults: 5 radial x 12 angular bins
    # Pair distances 1, 4, 10, 3, 9, 6 (sum 33): mean over the 4 x 4 matrix 2 * 33 / 16 = 4.125. Normalised:
    # 1 -> 0.242 (bin 1), 3 -> 0.727 and 4 -> 0.970 (bin 3), 6 -> 1.455 (bin 4), 9 -> 2.18 and 10 -> 2.42 (dropped).
    # Angles: towards +x is 0 (angular bin 0), towards -x is pi (angular bin 6). Bin index = radial * 12 + angular.
    counts = np.zeros((4, 60))
    counts[0, [0 * 12 + 0, 1 * 12 + 0, 3 * 12 + 0]] = 1  # itself; (1, 0); (4, 0); (10, 0) dropped
    counts[1, [0 * 12 + 0, 1 * 12 + 6, 3 * 12 + 0]] = 1  # itself; (0, 0); (4, 0); (10, 0) dropped
    counts[2, [0 * 12 + 0, 3 * 12 + 6, 4 * 12 + 0]] = [1, 2, 1]  # itself; (0, 0) and (1, 0); (10, 0)
    counts[3, [0 * 12 + 0, 4 * 12 + 6]] = 1  # itself; (4, 0); (0, 0) and (1, 0) dropped
    np.testing.assert_allclose(desc, counts / counts.sum(axis=1, keepdims=True), rtol=1e-12)


def test_shape_context_radial_bins_follow_davis_2016():
    """Normalised radii 0.3 and 0.45 share DAVIS-2016's bin [1/4, 1/2); 0.1 (below 1/8) and 0.2 ([1/8, 1/4)) do
    not. A centre point sees four neighbours at those radii (0.1 and 0.2 towards 45 degrees, 0.3 and 0.45
    towards 195 degrees) when a sixth point, far away at 345 degrees, makes the full matrix's mean distance 1."""
    from scipy.optimize import brentq

    def polar(r, degrees):
        return [r * np.cos(np.radians(degrees)), r * np.sin(np.radians(degrees))]

    near = [[0.0, 0.0], polar(0.1, 45), polar(0.2, 45), polar(0.3, 195), polar(0.45, 195)]

    def full_mean(c):
        p = np.array(near + [polar(c, 345)])
        return np.mean(np.hypot(*(p[None] - p[:, None]).transpose(2, 0, 1)))

    c = brentq(lambda c: full_mean(c) - 1.0, 1.0, 10.0, xtol=1e-14)
    assert c > 2  # the far point is beyond r_outer from the centre: dropped there
    points = np.array(near + [polar(c, 345)])
    desc = shape_context(points)
    # Centre: itself (0, 0); 0.1 at 45 degrees (angular bin 1) -> (0, 1); 0.2 -> (1, 1); 0.3 and 0.45 at 195
    # degrees (angular bin 6) -> (2, 6) both. Five entries.
    counts = np.zeros(60)
    counts[[0, 0 * 12 + 1, 1 * 12 + 1, 2 * 12 + 6]] = [1, 1, 1, 2]
    np.testing.assert_allclose(desc[0], counts / 5, rtol=1e-12)
    # The bins of single radii: r_outer (2) itself is dropped (bin n_radial = 5).
    np.testing.assert_array_equal(radial_bins(np.array([0.0, 0.1, 0.2, 0.3, 0.45, 0.7, 1.5, 1.99, 2.0, 3.0])),
                                  [0, 0, 1, 2, 2, 3, 4, 4, 5, 5])


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
