"""F (db_eval_boundary) and seg2bmap against hand cases and a distance-transform reference."""
import numpy as np
import pytest
from scipy import ndimage

from maskrnn_tf.metrics import boundary_tolerance, db_eval_boundary, seg2bmap


def reference_f(gt: np.ndarray, pred: np.ndarray, radius: float) -> float:
    """F by Euclidean distance transform: a boundary pixel matches when the other boundary is <= radius away."""
    bg, bp = seg2bmap(gt), seg2bmap(pred)
    ng, npred = bg.sum(), bp.sum()
    if ng == 0 and npred == 0:
        return 1.0
    if ng == 0 or npred == 0:
        return 0.0
    dist_to_g = ndimage.distance_transform_edt(~bg)
    dist_to_p = ndimage.distance_transform_edt(~bp)
    precision = np.sum(bp & (dist_to_g <= radius)) / npred
    recall = np.sum(bg & (dist_to_p <= radius)) / ng
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_seg2bmap_single_pixel():
    seg = np.zeros((3, 3), bool)
    seg[1, 1] = True
    expected = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]], bool)
    np.testing.assert_array_equal(seg2bmap(seg), expected)


def test_seg2bmap_block_and_borders():
    seg = np.zeros((4, 4), bool)
    seg[1:3, 1:3] = True
    expected = np.array(
        [[1, 1, 1, 0],
         [1, 0, 1, 0],
         [1, 1, 1, 0],
         [0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(seg2bmap(seg), expected)
    # Full mask: the image border is only a boundary on the last row/column rule -> nothing here.
    assert not seg2bmap(np.ones((3, 4), bool)).any()
    # Object touching the bottom-right corner: last row / column rule (compare east / south only).
    corner = np.zeros((3, 3), bool)
    corner[1:, 1:] = True
    expected_corner = np.array([[1, 1, 1], [1, 0, 0], [1, 0, 0]], bool)
    np.testing.assert_array_equal(seg2bmap(corner), expected_corner)


def test_seg2bmap_stack_is_per_frame():
    rng = np.random.default_rng(1)
    stack = rng.random((3, 6, 7)) > 0.5
    out = seg2bmap(stack)
    for t in range(3):
        np.testing.assert_array_equal(out[t], seg2bmap(stack[t]))


def test_tolerance_is_8px_at_davis_resolution():
    assert boundary_tolerance((480, 854)) == 8
    assert boundary_tolerance((480, 854), bound_th=3) == 3
    with pytest.raises(ValueError, match="integer"):
        boundary_tolerance((480, 854), bound_th=2.5)


@pytest.mark.parametrize("shift,expected", [(0, 1.0), (8, 1.0), (9, 0.0)])
def test_horizontal_edge_matched_up_to_8px(shift, expected):
    gt = np.zeros((480, 854), bool)
    gt[:240] = True  # boundary = row 239 only
    pred = np.zeros((480, 854), bool)
    pred[: 240 + shift] = True
    assert db_eval_boundary(gt, pred) == expected


def test_diagonal_offsets_use_a_disk():
    # A one-pixel object has a 2x2 boundary block (seg2bmap). Offsetting it by (8, 8) leaves the closest
    # boundary pixels 7 px apart in x and y: sqrt(98) = 9.9 > 8, so a disk matches nothing (a square
    # 17x17 kernel would match). Offset (6, 7): closest pair at (5, 6), 7.8 px -> partly matched.
    gt = np.zeros((480, 854), bool)
    gt[100, 100] = True
    far = np.zeros_like(gt)
    far[108, 108] = True
    near = np.zeros_like(gt)
    near[106, 107] = True
    assert db_eval_boundary(gt, far) == reference_f(gt, far, 8) == 0.0
    assert db_eval_boundary(gt, near) == pytest.approx(reference_f(gt, near, 8))
    assert 0.0 < db_eval_boundary(gt, near) < 1.0


def test_empty_cases():
    empty = np.zeros((20, 30), bool)
    obj = np.zeros((20, 30), bool)
    obj[5:10, 5:12] = True
    assert db_eval_boundary(empty, empty) == 1.0
    assert db_eval_boundary(obj, empty) == 0.0
    assert db_eval_boundary(empty, obj) == 0.0


def test_random_shapes_match_reference():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:120, :160]
    for _ in range(5):
        cy, cx, r = rng.integers(30, 90), rng.integers(30, 130), rng.integers(8, 28)
        gt = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        pred = np.roll(gt, tuple(rng.integers(-6, 7, size=2)), axis=(0, 1)) | (rng.random(gt.shape) > 0.995)
        radius = boundary_tolerance(gt.shape)
        assert db_eval_boundary(gt, pred) == pytest.approx(reference_f(gt, pred, radius), abs=1e-12)
        assert 0.0 < db_eval_boundary(gt, pred) < 1.0


def test_void_pixels_removed_before_boundaries():
    gt = np.zeros((60, 60), bool)
    gt[10:30, 10:30] = True
    pred = gt.copy()
    pred[40:55, 40:55] = True  # spurious blob ...
    void = np.zeros_like(gt)
    void[38:58, 38:58] = True  # ... entirely inside void
    assert db_eval_boundary(gt, pred) < 1.0
    assert db_eval_boundary(gt, pred, void) == 1.0


def test_stack_matches_per_frame():
    gt = np.zeros((3, 40, 50), bool)
    gt[:, 10:20, 10:30] = True
    pred = np.roll(gt, 4, axis=2)
    pred[2] = False
    out = db_eval_boundary(gt, pred, bound_th=2)
    assert out.shape == (3,)
    for t in range(3):
        assert out[t] == pytest.approx(reference_f(gt[t], pred[t], 2))
    assert out[2] == 0.0
