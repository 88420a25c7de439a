"""J (db_eval_iou) on hand-computed masks."""
import numpy as np
import pytest

from maskrnn_tf.metrics import db_eval_iou


def test_hand_computed_overlap():
    gt = np.zeros((4, 5), bool)
    gt[1:3, 1:4] = True  # 6 pixels
    pred = np.zeros((4, 5), bool)
    pred[1:3, 2:5] = True  # 6 pixels, 4 shared
    assert db_eval_iou(gt, pred) == pytest.approx(4 / 8)


def test_both_empty_is_one_and_one_empty_is_zero():
    empty = np.zeros((3, 3), np.uint8)
    one = np.zeros((3, 3), np.uint8)
    one[1, 1] = 1
    assert db_eval_iou(empty, empty) == 1.0
    assert db_eval_iou(one, empty) == 0.0
    assert db_eval_iou(empty, one) == 0.0


def test_one_pixel_and_thin_objects():
    a = np.zeros((5, 5), bool)
    a[2, 2] = True
    assert db_eval_iou(a, a) == 1.0
    line = np.zeros((5, 9), bool)
    line[2, :] = True  # 9 px thin line
    shifted = np.zeros((5, 9), bool)
    shifted[3, :] = True
    assert db_eval_iou(line, shifted) == 0.0
    partial = np.zeros((5, 9), bool)
    partial[2, :3] = True
    assert db_eval_iou(line, partial) == pytest.approx(3 / 9)


def test_void_pixels_excluded():
    gt = np.zeros((4, 4), bool)
    gt[:2, :2] = True  # 4 px
    pred = gt.copy()
    pred[2:, 2:] = True  # 4 extra px, all void
    void = np.zeros((4, 4), bool)
    void[2:, 2:] = True
    assert db_eval_iou(gt, pred) == pytest.approx(4 / 8)
    assert db_eval_iou(gt, pred, void) == 1.0
    # Everything void -> empty union -> 1 (official rule).
    assert db_eval_iou(gt, pred, np.ones((4, 4), bool)) == 1.0


def test_stack_matches_per_frame():
    rng = np.random.default_rng(0)
    gt = rng.random((6, 7, 8)) > 0.5
    pred = rng.random((6, 7, 8)) > 0.5
    gt[3] = pred[3] = False
    void = rng.random((6, 7, 8)) > 0.8
    out = db_eval_iou(gt, pred, void)
    assert out.shape == (6,)
    for t in range(6):
        valid = ~void[t]
        union = np.sum((gt[t] | pred[t]) & valid)
        expected = 1.0 if union == 0 else np.sum(gt[t] & pred[t] & valid) / union
        assert out[t] == pytest.approx(expected)
    assert out[3] == 1.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="differ in shape"):
        db_eval_iou(np.zeros((3, 3)), np.zeros((3, 4)))
