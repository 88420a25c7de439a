"""Losses against NumPy references computed the naive way (probabilities, explicit sums)."""
import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.ops import encode_box_deltas
from maskrnn_tf.training.losses import (balanced_bce_per_example, bce_per_example, frame_losses,
                                        localization_loss_per_example, smooth_l1, soft_jaccard_per_example)


def _bce_reference(logits, labels, void):
    out = []
    for x, y, v in zip(logits.astype(np.float64), labels, void):
        keep = v == 0
        p = 1 / (1 + np.exp(-x))
        fg, bg = keep & (y == 1), keep & (y == 0)
        n_pos, n_neg = fg.sum(), bg.sum()
        n = max(n_pos + n_neg, 1)
        loss = (n_neg / n) * -np.log(p[fg]).sum() + (n_pos / n) * -np.log(1 - p[bg]).sum()
        out.append(loss / n)
    return np.array(out)


def test_balanced_bce_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (3, 6, 7)).astype(np.float32)
    labels = (rng.uniform(size=(3, 6, 7)) < 0.3).astype(np.float32)
    void = (rng.uniform(size=(3, 6, 7)) < 0.2).astype(np.uint8)
    void[2] = 1  # everything void: the example contributes 0
    got = balanced_bce_per_example(logits, labels, void).numpy()
    np.testing.assert_allclose(got, _bce_reference(logits, labels, void), rtol=1e-5, atol=1e-7)
    assert got[2] == 0.0
    # Void pixels are really excluded: changing logits there changes nothing.
    logits2 = np.where(void == 1, 100.0, logits).astype(np.float32)
    np.testing.assert_allclose(balanced_bce_per_example(logits2, labels, void).numpy(), got, rtol=1e-6)


def test_balanced_bce_is_stable_for_large_logits():
    logits = np.array([[[200.0, -200.0]]], np.float32)
    labels = np.array([[[0.0, 1.0]]], np.float32)  # both confidently wrong
    got = balanced_bce_per_example(logits, labels).numpy()
    # N+ = N- = 1, N = 2: (1/2 * 200 + 1/2 * 200) / 2 = 100
    np.testing.assert_allclose(got, [100.0], rtol=1e-6)
    assert np.isfinite(got).all()


def test_smooth_l1_values():
    x = np.array([-3.0, -1.0, -0.5, 0.0, 0.25, 1.0, 2.0], np.float32)
    ref = np.where(np.abs(x) < 1, 0.5 * x ** 2, np.abs(x) - 0.5)
    np.testing.assert_allclose(smooth_l1(x).numpy(), ref, rtol=1e-6)


def test_localization_loss_against_reference_and_validity():
    weights = (10.0, 10.0, 5.0, 5.0)
    proposals = np.array([[10, 10, 30, 40], [0, 0, 20, 20]], np.float32)
    gt = np.array([[12, 8, 33, 41], [5, 5, 10, 10]], np.float32)
    deltas = np.array([[0.5, -1.0, 2.0, 0.1], [1.0, 1.0, 1.0, 1.0]], np.float32)
    valid = np.array([True, False])
    # Hand-computed targets (box centres/sizes), not via encode_box_deltas.
    ph, pw = 20.0, 30.0
    pcy, pcx = 20.0, 25.0
    gh, gw = 21.0, 33.0
    gcy, gcx = 22.5, 24.5
    t = np.array([10 * (gcy - pcy) / ph, 10 * (gcx - pcx) / pw, 5 * np.log(gh / ph), 5 * np.log(gw / pw)])
    np.testing.assert_allclose(encode_box_deltas(gt, proposals, weights).numpy()[0], t, rtol=1e-5)
    d = deltas[0] - t
    ref0 = np.where(np.abs(d) < 1, 0.5 * d ** 2, np.abs(d) - 0.5).sum()
    got = localization_loss_per_example(deltas, proposals, gt, valid, weights).numpy()
    np.testing.assert_allclose(got, [ref0, 0.0], rtol=1e-5)


def test_localization_gradient_is_finite_when_the_object_is_gone():
    # An empty target (object cropped out by augmentation) gives a zero gt box: log(0) targets. The loss of that
    # example is masked to 0, and its gradient must be 0 too, not NaN (tf.where's unselected-branch trap).
    proposals = tf.constant([[10, 10, 30, 40], [0, 0, 20, 20]], tf.float32)
    gt = tf.constant([[12, 8, 33, 41], [0, 0, 0, 0]], tf.float32)
    deltas = tf.Variable([[0.5, -1.0, 2.0, 0.1], [1.0, 1.0, 1.0, 1.0]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(localization_loss_per_example(deltas, proposals, gt, tf.constant([True, False]),
                                                           (10.0, 10.0, 5.0, 5.0)))
    grad = tape.gradient(loss, deltas).numpy()
    assert np.isfinite(loss.numpy()) and np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[1], 0.0)
    d = np.array([0.5, -1.0, 2.0, 0.1]) - encode_box_deltas(gt[:1], proposals[:1]).numpy()[0]
    np.testing.assert_allclose(grad[0], np.clip(d, -1, 1), rtol=1e-5)  # smooth-L1 derivative


def test_localization_loss_skips_proposals_that_miss_the_object_with_min_iou():
    """A proposal of 2x2 pixels inside a 100x100 object gives targets of 10 * 24.5 and 5 * log(50): a loss of
    about 527 that the clipped update would follow. With min_iou = 0.5 (Fast R-CNN's rule) it counts 0, the
    well-placed proposal (IoU 0.81) counts as before, and the skipped one gets no gradient."""
    weights = (10.0, 10.0, 5.0, 5.0)
    proposals = tf.constant([[10, 10, 100, 100], [0, 0, 2, 2]], tf.float32)
    gt = tf.constant([[0, 0, 100, 100], [0, 0, 100, 100]], tf.float32)
    deltas = tf.Variable(tf.zeros([2, 4]))
    valid = tf.constant([True, True])
    everything = localization_loss_per_example(deltas, proposals, gt, valid, weights).numpy()
    t = np.array([10 * 24.5, 10 * 24.5, 5 * np.log(50.0), 5 * np.log(50.0)])  # centres 1 -> 50, per 2 px
    np.testing.assert_allclose(everything[1], (t - 0.5).sum(), rtol=1e-5)
    with tf.GradientTape() as tape:
        kept = localization_loss_per_example(deltas, proposals, gt, valid, weights, min_iou=0.5)
        total = tf.reduce_sum(kept)
    np.testing.assert_allclose(kept.numpy(), [everything[0], 0.0], rtol=1e-6)
    grad = tape.gradient(total, deltas).numpy()
    np.testing.assert_array_equal(grad[1], 0.0)
    assert np.abs(grad[0]).sum() > 0
    # The rule goes through frame_losses (the training steps pass loss.loc_min_iou).
    target = np.zeros((2, 100, 100), np.float32)
    target[:] = 1.0
    outputs = {"logits": tf.zeros([2, 100, 100]), "deltas": deltas, "proposals": proposals}
    out = frame_losses(outputs, target, None, weights, seg_weight=1.0, loc_weight=1.0, loc_min_iou=0.5)
    np.testing.assert_allclose(out["loc"].numpy(), [everything[0], 0.0], rtol=1e-6)


@pytest.mark.parametrize("loc_weight", [0.0, 2.0])
def test_frame_losses_weights(loc_weight):
    rng = np.random.default_rng(1)
    target = np.zeros((2, 16, 16), np.float32)
    target[:, 4:10, 3:12] = 1
    outputs = {"logits": tf.constant(rng.normal(size=(2, 16, 16)).astype(np.float32)),
               "deltas": tf.constant(rng.normal(size=(2, 4)).astype(np.float32)),
               "proposals": tf.constant([[2.0, 2.0, 12.0, 14.0], [0.0, 0.0, 16.0, 16.0]])}
    out = frame_losses(outputs, target, None, (10.0, 10.0, 5.0, 5.0), seg_weight=0.5, loc_weight=loc_weight)
    gt = np.array([[4.0, 3.0, 10.0, 12.0]] * 2, np.float32)
    loc_ref = localization_loss_per_example(outputs["deltas"], outputs["proposals"], gt, np.array([True, True]),
                                            (10.0, 10.0, 5.0, 5.0)).numpy()
    if loc_weight == 0:
        np.testing.assert_array_equal(out["loc"].numpy(), [0.0, 0.0])
    else:
        np.testing.assert_allclose(out["loc"].numpy(), loc_ref, rtol=1e-6)
        assert loc_ref.min() > 0
    seg_ref = _bce_reference(outputs["logits"].numpy(), target, np.zeros_like(target))
    np.testing.assert_allclose(out["total"].numpy(), 0.5 * seg_ref + loc_weight * out["loc"].numpy(), rtol=1e-5)


def _plain_bce_reference(logits, labels, void):
    out = []
    for x, y, v in zip(logits.astype(np.float64), labels, void):
        keep = v == 0
        p = 1 / (1 + np.exp(-x))
        terms = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        out.append(terms[keep].sum() / max(keep.sum(), 1))
    return np.array(out)


def test_plain_bce_matches_numpy_and_differs_from_balanced():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, (3, 6, 7)).astype(np.float32)
    labels = (rng.uniform(size=(3, 6, 7)) < 0.2).astype(np.float32)
    void = (rng.uniform(size=(3, 6, 7)) < 0.2).astype(np.uint8)
    void[2] = 1
    got = bce_per_example(logits, labels, void).numpy()
    np.testing.assert_allclose(got, _plain_bce_reference(logits, labels, void), rtol=1e-5, atol=1e-7)
    assert got[2] == 0.0
    # Unlike the balanced loss, an error on a background pixel costs as much as one on a foreground pixel.
    one_fg = np.array([[[0.0, 0.0, 0.0, 0.0]]], np.float32)
    y = np.array([[[1.0, 0.0, 0.0, 0.0]]], np.float32)
    np.testing.assert_allclose(bce_per_example(one_fg, y).numpy(), [np.log(2.0)], rtol=1e-6)
    # balanced: (3/4 * log2 + 1/4 * 3 log2) / 4
    np.testing.assert_allclose(balanced_bce_per_example(one_fg, y).numpy(), [1.5 * np.log(2.0) / 4], rtol=1e-6)
    # A frame without the object: the balanced loss weights its background by the absent foreground's share,
    # 0, so false positives there cost nothing; the plain loss charges them (softplus(2) per pixel).
    gone = np.full((1, 1, 4), 2.0, np.float32)
    np.testing.assert_allclose(bce_per_example(gone, np.zeros_like(gone)).numpy(), [np.log1p(np.exp(2.0))], rtol=1e-6)
    assert balanced_bce_per_example(gone, np.zeros_like(gone)).numpy().tolist() == [0.0]


def _two_frames(seed):
    """Targets [2, 8, 8] (a 2x5 object), a model's outputs on them (random logits, zero deltas, one whole-frame
    proposal each) and the box-delta weights, for frame_losses."""
    rng = np.random.default_rng(seed)
    target = np.zeros((2, 8, 8), np.float32)
    target[:, 2:4, 1:6] = 1
    outputs = {"logits": tf.constant(rng.normal(size=(2, 8, 8)).astype(np.float32)),
               "deltas": tf.zeros((2, 4)), "proposals": tf.constant([[0.0, 0.0, 8.0, 8.0]] * 2)}
    return target, outputs, (10.0, 10.0, 5.0, 5.0)


def test_frame_losses_class_balance_switch():
    target, outputs, weights = _two_frames(3)
    plain = frame_losses(outputs, target, None, weights, 1.0, 0.0, class_balance=False)["seg"].numpy()
    balanced = frame_losses(outputs, target, None, weights, 1.0, 0.0)["seg"].numpy()
    zeros = np.zeros_like(target)
    np.testing.assert_allclose(plain, _plain_bce_reference(outputs["logits"].numpy(), target, zeros), rtol=1e-5)
    np.testing.assert_allclose(balanced, _bce_reference(outputs["logits"].numpy(), target, zeros), rtol=1e-5)


def test_soft_jaccard_matches_numpy_and_hand_computed_cases():
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 3, (3, 6, 7)).astype(np.float32)
    labels = (rng.uniform(size=(3, 6, 7)) < 0.3).astype(np.float32)
    void = (rng.uniform(size=(3, 6, 7)) < 0.2).astype(np.uint8)
    got = soft_jaccard_per_example(logits, labels, void).numpy()
    expected = []
    for x, y, v in zip(logits.astype(np.float64), labels, void):
        keep = v == 0
        p = (1 / (1 + np.exp(-x)))[keep]
        y = y[keep]
        expected.append(1 - (np.sum(p * y) + 1) / (np.sum(p) + np.sum(y) - np.sum(p * y) + 1))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Hard cases (logits of +-30: p is 0 or 1 to float precision), smooth 1: a mask twice a 4-pixel object's
    # area, 1 - 5/9; the same mistake on a 1-pixel object, 1 - 2/3; a frame without the object and 3 false
    # positives, 1 - 1/4; nothing predicted where nothing is, 0.
    def hard(mask):
        return np.where(np.asarray(mask, bool), 30.0, -30.0).astype(np.float32)[None]

    obj = np.zeros((4, 4), np.float32)
    obj[0, :] = 1
    twice = obj.copy()
    twice[1, :] = 1
    np.testing.assert_allclose(soft_jaccard_per_example(hard(twice), obj[None]).numpy(), [1 - 5 / 9], rtol=1e-6)
    one, two = np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32)
    one[0, 0] = two[0, 0] = two[0, 1] = 1
    np.testing.assert_allclose(soft_jaccard_per_example(hard(two), one[None]).numpy(), [1 - 2 / 3], rtol=1e-6)
    three = np.zeros((4, 4), np.float32)
    three[3, :3] = 1
    empty = np.zeros((1, 4, 4), np.float32)
    np.testing.assert_allclose(soft_jaccard_per_example(hard(three), empty).numpy(), [1 - 1 / 4], rtol=1e-6)
    np.testing.assert_allclose(soft_jaccard_per_example(hard(empty[0]), empty).numpy(), [0.0], atol=1e-6)
    # Void pixels count for neither: a false positive on a void pixel costs nothing.
    void_px = np.zeros((1, 4, 4), np.uint8)
    void_px[0, 1, :] = 1
    np.testing.assert_allclose(soft_jaccard_per_example(hard(twice), obj[None], void_px).numpy(), [0.0], atol=1e-6)


def test_frame_losses_add_the_weighted_soft_jaccard_to_seg():
    target, outputs, weights = _two_frames(5)
    plain = frame_losses(outputs, target, None, weights, 2.0, 0.0, class_balance=False)
    with_iou = frame_losses(outputs, target, None, weights, 2.0, 0.0, class_balance=False, iou_weight=0.5)
    jaccard = soft_jaccard_per_example(outputs["logits"], target).numpy()
    np.testing.assert_allclose(with_iou["seg"].numpy(), plain["seg"].numpy() + 0.5 * jaccard, rtol=1e-6)
    np.testing.assert_allclose(with_iou["total"].numpy(), 2.0 * with_iou["seg"].numpy(), rtol=1e-6)
