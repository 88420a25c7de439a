"""Flow helpers: moving masks with known flows, magnitude, resize and flip."""
import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.ops import flip_flow_left_right, flow_magnitude, resize_flow, subtract_median_flow, warp_with_flow


def test_moves_mask_into_the_next_frame():
    # Frame a: a square at rows 2..4, cols 3..5. The object moves by (dx, dy) = (+4, +1) from a to b,
    # so the flow from b to a is (u, v) = (-4, -1) everywhere.
    mask_a = np.zeros((1, 10, 14, 1), np.float32)
    mask_a[0, 2:5, 3:6] = 1.0
    flow_b_to_a = np.zeros((1, 10, 14, 2), np.float32)
    flow_b_to_a[..., 0] = -4.0
    flow_b_to_a[..., 1] = -1.0
    moved = warp_with_flow(mask_a, flow_b_to_a).numpy()
    expected = np.zeros_like(mask_a)
    expected[0, 3:6, 7:10] = 1.0
    np.testing.assert_array_equal(moved, expected)


def test_half_pixel_motion_interpolates():
    mask_a = np.zeros((1, 1, 6, 1), np.float32)
    mask_a[0, 0, 2] = 1.0
    flow = np.zeros((1, 1, 6, 2), np.float32)
    flow[..., 0] = -0.5  # b's pixel x matches a at x - 0.5
    moved = warp_with_flow(mask_a, flow).numpy()[0, 0, :, 0]
    np.testing.assert_allclose(moved, [0, 0, 0.5, 0.5, 0, 0])


def test_magnitude():
    flow = np.array([[[[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]]]], np.float32)
    np.testing.assert_allclose(flow_magnitude(flow).numpy()[..., 0], [[[5.0, 0.0, 1.0]]], atol=1e-5)


def test_resize_scales_vectors():
    flow = np.zeros((1, 4, 6, 2), np.float32)
    flow[..., 0] = 2.0
    flow[..., 1] = -1.0
    out = resize_flow(flow, (8, 3)).numpy()
    assert out.shape == (1, 8, 3, 2)
    np.testing.assert_allclose(out[..., 0], 1.0)  # width halves -> u halves
    np.testing.assert_allclose(out[..., 1], -2.0)  # height doubles -> v doubles


def test_flip_negates_u_and_mirrors():
    rng = np.random.default_rng(0)
    flow = rng.standard_normal((2, 3, 5, 2)).astype(np.float32)
    out = flip_flow_left_right(flow).numpy()
    np.testing.assert_allclose(out[..., 0], -flow[:, :, ::-1, 0])
    np.testing.assert_allclose(out[..., 1], flow[:, :, ::-1, 1])
    # Flipping twice is the identity.
    np.testing.assert_allclose(flip_flow_left_right(tf.constant(out)).numpy(), flow)


def test_flip_is_consistent_with_warping():
    # Warping then flipping equals flipping the image and the flow, then warping.
    rng = np.random.default_rng(1)
    image = rng.random((1, 6, 9, 1)).astype(np.float32)
    flow = (rng.standard_normal((1, 6, 9, 2)) * 2).astype(np.float32)
    a = tf.reverse(warp_with_flow(image, flow), axis=[2]).numpy()
    b = warp_with_flow(image[:, :, ::-1], flip_flow_left_right(flow)).numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("shape,stride", [((2, 9, 7, 2), 1), ((1, 4, 6, 2), 1), ((3, 33, 47, 2), 4), ((1, 8, 8, 2), 4)])
def test_subtract_median_flow_matches_numpy(shape, stride):
    """Per image, u and v apart, the median of every stride-th row and column (odd and even counts: numpy's mean of
    the two middle values) is subtracted from every pixel."""
    rng = np.random.default_rng(3)
    flow = rng.normal(0, 4, shape).astype(np.float32) + rng.normal(0, 10, (shape[0], 1, 1, 2)).astype(np.float32)
    want = flow - np.median(flow[:, ::stride, ::stride].reshape(shape[0], -1, 2), axis=1)[:, None, None, :]
    got = subtract_median_flow(tf.constant(flow), stride=stride).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_subtract_median_flow_of_a_panning_camera_leaves_the_object_moving():
    """A background panning by (3, -2) with a still object on a quarter of the frame: relative to the median the
    background is still and the object moves by (-3, 2); float16 in, float16 out."""
    flow = np.tile(np.float16([3.0, -2.0]), (1, 8, 8, 1))
    flow[0, 2:6, 2:6] = 0.0
    got = subtract_median_flow(tf.constant(flow))
    assert got.dtype == tf.float16
    want = np.zeros((1, 8, 8, 2), np.float32)
    want[0, 2:6, 2:6] = [-3.0, 2.0]
    np.testing.assert_array_equal(got.numpy(), want)
