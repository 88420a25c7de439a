"""Box ops: tight boxes, Fast R-CNN deltas, enlarge/clip, normalized boxes and RoI pooling."""
import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.ops import (
    bilinear_crops,
    box_iou,
    box_mask,
    boxes_to_normalized,
    clip_boxes,
    decode_box_deltas,
    encode_box_deltas,
    enlarge_boxes,
    mask_to_box,
    roi_pool,
)


def test_mask_to_box_tight_and_empty():
    masks = np.zeros((3, 8, 10), np.float32)
    masks[0, 2:5, 3:7] = 1.0
    masks[1, 7, 9] = 0.9  # one pixel in the corner
    boxes, valid = mask_to_box(masks)
    np.testing.assert_array_equal(valid.numpy(), [True, True, False])
    np.testing.assert_array_equal(boxes.numpy(), [[2, 3, 5, 7], [7, 9, 8, 10], [0, 0, 0, 0]])
    # Threshold is strict: 0.5 is not foreground.
    _, valid = mask_to_box(np.full((1, 4, 4, 1), 0.5, np.float32))
    assert not valid.numpy()[0]


def test_encode_decode_round_trip_and_values():
    rng = np.random.default_rng(0)
    anchors = np.concatenate([rng.uniform(0, 50, (20, 2)), rng.uniform(0, 50, (20, 2))], 1)
    anchors[:, 2:] = anchors[:, :2] + rng.uniform(2, 40, (20, 2))
    boxes = anchors + rng.normal(0, 3, (20, 4))
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 2)
    deltas = encode_box_deltas(boxes, anchors)
    np.testing.assert_allclose(decode_box_deltas(deltas, anchors).numpy(), boxes, atol=1e-3)
    # Hand-computed: anchor (0,0,10,20) -> box (5,0,15,40): centre moves 5 in y (0.5 h), width doubles.
    d = encode_box_deltas([[5.0, 0.0, 15.0, 40.0]], [[0.0, 0.0, 10.0, 20.0]]).numpy()[0]
    np.testing.assert_allclose(d, [10 * 0.5, 10 * 0.5, 0.0, 5 * np.log(2.0)], atol=1e-6)


def test_enlarge_and_clip():
    out = enlarge_boxes([[10.0, 20.0, 30.0, 60.0]], 1.25).numpy()[0]
    np.testing.assert_allclose(out, [7.5, 15.0, 32.5, 65.0])
    np.testing.assert_allclose(clip_boxes([[-3.0, 5.0, 50.0, 70.0]], 40, 64).numpy()[0], [0, 5, 40, 64])


def test_box_mask_pixel_centres():
    m = box_mask(tf.constant([[1.0, 2.0, 3.0, 4.6]]), 5, 6).numpy()[0]
    expected = np.zeros((5, 6), np.float32)
    expected[1:3, 2:5] = 1.0  # centres 1.5, 2.5 and 2.5, 3.5, 4.5
    np.testing.assert_array_equal(m, expected)


def _bilinear(img: np.ndarray, y: float, x: float) -> np.ndarray:
    h, w = img.shape[:2]
    if y < 0 or y > h - 1 or x < 0 or x > w - 1:
        return np.zeros(img.shape[2:], img.dtype)  # crop_and_resize's extrapolation value
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ay, ax = y - y0, x - x0
    top = img[y0, x0] * (1 - ax) + img[y0, x1] * ax
    bottom = img[y1, x0] * (1 - ax) + img[y1, x1] * ax
    return top * (1 - ay) + bottom * ay


def _roi_pool_reference(features, norm, indices, k):
    """NumPy roi_pool: a 2k x 2k bilinear crop (crop_and_resize's sampling) max-pooled 2x2."""
    h, w = features.shape[1:3]
    out = []
    for n in range(len(norm)):
        y1, x1, y2, x2 = norm[n]
        crop = np.zeros((2 * k, 2 * k, features.shape[3]), np.float32)
        for i in range(2 * k):
            for j in range(2 * k):
                y = y1 * (h - 1) + i * (y2 - y1) * (h - 1) / (2 * k - 1)
                x = x1 * (w - 1) + j * (x2 - x1) * (w - 1) / (2 * k - 1)
                crop[i, j] = _bilinear(features[indices[n]], y, x)
        out.append(crop.reshape(k, 2, k, 2, -1).max(axis=(1, 3)))
    return np.stack(out)


def test_roi_pool_matches_numpy_reference():
    rng = np.random.default_rng(4)
    features = rng.random((2, 9, 12, 3)).astype(np.float32)
    pixel_boxes = np.array([[1.0, 2.0, 7.0, 11.0], [0.0, 0.0, 9.0, 12.0], [3.5, 4.0, 5.0, 6.0]], np.float32)
    indices = np.array([1, 0, 1], np.int32)
    norm = boxes_to_normalized(pixel_boxes, 9, 12).numpy()
    k = 3
    got = roi_pool(features, norm, indices, output_size=k).numpy()
    assert got.shape == (3, k, k, 3)
    np.testing.assert_allclose(got, _roi_pool_reference(features, norm, indices, k), atol=1e-5)


def test_full_frame_box_normalizes_to_pixel_edges():
    norm = boxes_to_normalized([[0.0, 0.0, 9.0, 12.0]], 9, 12).numpy()[0]
    np.testing.assert_allclose(norm, [-0.5 / 8, -0.5 / 11, 8.5 / 8, 11.5 / 11])


@pytest.mark.parametrize("dtype, atol", [(tf.float32, 1e-6), (tf.bfloat16, 0.01)])
def test_roi_pool_keeps_dtype_and_values(dtype, atol):
    rng = np.random.default_rng(1)
    features = rng.random((1, 8, 8, 2)).astype(np.float32)
    norm = np.array([[0.0, 0.0, 1.0, 1.0], [0.25, 0.1, 0.8, 0.6]], np.float32)
    out = roi_pool(tf.cast(features, dtype), norm, [0, 0], output_size=2)
    assert out.dtype == dtype and out.shape == (2, 2, 2, 2)
    # bfloat16 inputs hold values to 2^-8 relative: the reference runs on the rounded inputs.
    rounded = tf.cast(tf.cast(features, dtype), tf.float32).numpy()
    np.testing.assert_allclose(tf.cast(out, tf.float32).numpy(), _roi_pool_reference(rounded, norm, [0, 0], 2),
                               atol=atol)


def _random_crop_case(seed):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(3, 7, 11, 4)).astype(np.float32)
    # Inside, straddling and outside the image, flipped (y2 < y1), and corners on pixel centres.
    boxes = rng.uniform(-0.4, 1.4, (12, 4)).astype(np.float32)
    boxes[0] = [0.0, 0.0, 1.0, 1.0]
    boxes[1] = [0.5, 0.25, 0.5, 0.75]
    boxes[2] = [0.9, 0.8, 0.1, 0.2]
    indices = rng.integers(0, 3, 12).astype(np.int32)
    return image, boxes, indices


@pytest.mark.parametrize("crop_size", [(1, 1), (3, 5), (14, 14)])
def test_bilinear_crops_equal_crop_and_resize_with_gradients(crop_size):
    image, boxes, indices = _random_crop_case(sum(crop_size))
    image, boxes = tf.constant(image), tf.constant(boxes)
    weights = tf.constant(np.random.default_rng(1).normal(size=(12, *crop_size, 4)).astype(np.float32))
    results = []
    for fn in (bilinear_crops, lambda *a: tf.image.crop_and_resize(*a, method="bilinear")):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([image, boxes])
            crops = fn(image, boxes, indices, crop_size)
            loss = tf.reduce_sum(crops * weights)
        results.append([crops, *tape.gradient(loss, [image, boxes])])
    (got, got_dimage, got_dboxes), (want, want_dimage, want_dboxes) = results
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    np.testing.assert_allclose(got_dimage.numpy(), want_dimage.numpy(), atol=1e-4)
    # Box gradients of the random boxes only: where a sample falls exactly on a pixel centre (rows 0-2) the
    # derivative jumps, and CropAndResize's own gradient kernel rounds the sample position differently.
    np.testing.assert_allclose(got_dboxes.numpy()[3:], want_dboxes.numpy()[3:], rtol=1e-3, atol=1e-3)


def test_bilinear_crops_compile_with_xla():
    image, boxes, indices = _random_crop_case(7)
    eager = bilinear_crops(image, boxes, indices, (6, 6)).numpy()
    compiled = tf.function(lambda i, b: bilinear_crops(i, b, indices, (6, 6)), jit_compile=True)(image, boxes)
    np.testing.assert_allclose(compiled.numpy(), eager, atol=1e-5)


def test_box_iou_against_pixel_counts():
    """IoU of paired boxes equals the IoU of the pixel sets they cover (integer boxes), 0 for disjoint or empty."""
    rng = np.random.default_rng(4)
    a = np.sort(rng.integers(0, 20, (50, 2, 2)), axis=1).transpose(0, 2, 1).reshape(50, 4)[:, [0, 2, 1, 3]]
    b = np.sort(rng.integers(0, 20, (50, 2, 2)), axis=1).transpose(0, 2, 1).reshape(50, 4)[:, [0, 2, 1, 3]]
    a, b = a.astype(np.float32), b.astype(np.float32)

    def pixels(box):
        m = np.zeros((20, 20), bool)
        m[int(box[0]):int(box[2]), int(box[1]):int(box[3])] = True
        return m

    expected = []
    for x, y in zip(a, b):
        union = (pixels(x) | pixels(y)).sum()
        expected.append((pixels(x) & pixels(y)).sum() / union if union else 0.0)
    np.testing.assert_allclose(box_iou(a, b).numpy(), expected, atol=1e-6)
    # Hand cases: overlap 5x5 of two 10x10 boxes = 25 / 175; a 2x2 box in a 100x100 one = 4 / 10000.
    np.testing.assert_allclose(box_iou([[0, 0, 10, 10], [0, 0, 2, 2]], [[5, 5, 15, 15], [0, 0, 100, 100]]).numpy(),
                               [25 / 175, 4 / 10000], rtol=1e-6)


def test_boxes_reach_the_conv5_3_cells_that_cover_them():
    """Normalized by the frame's size, a box lands off on a stride-16 map: rows 16..48 of a 64-row frame (cells 1 and
    2 of conv5_3's 4, edges at 0.5 and 2.5 in cell-centre units) were sampled from 0.74 to 2.26."""
    from maskrnn_tf.ops import boxes_on_feature_map

    cells = np.arange(4, dtype=np.float32)[None, :, None, None] * np.ones((1, 4, 4, 1), np.float32)  # value = row
    box = tf.constant([[16.0, 0.0, 48.0, 64.0]])
    ends = tf.image.crop_and_resize(cells, boxes_on_feature_map(box, 16, 4, 4), [0], (2, 1)).numpy()[0, :, 0, 0]
    np.testing.assert_allclose(ends, [0.5, 2.5], atol=1e-6)
    legacy = tf.image.crop_and_resize(cells, boxes_to_normalized(box, 64, 64), [0], (2, 1)).numpy()[0, :, 0, 0]
    np.testing.assert_allclose(legacy, [15.5 * 3 / 63, 47.5 * 3 / 63], atol=1e-6)  # the frame's mapping
