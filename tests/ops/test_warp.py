"""dense_image_warp against scipy.ndimage.map_coordinates and hand-made cases."""
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from maskrnn_tf.ops import dense_image_warp


def _reference(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """tfa semantics via SciPy: sample at (y - dy, x - dx), bilinear, edge values repeat."""
    b, h, w, c = image.shape
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = np.zeros_like(image, dtype=np.float64)
    for i in range(b):
        coords = [yy - flow[i, ..., 0].astype(np.float64), xx - flow[i, ..., 1].astype(np.float64)]
        for ch in range(c):
            out[i, ..., ch] = ndimage.map_coordinates(
                image[i, ..., ch].astype(np.float64), coords, order=1, mode="nearest"
            )
    return out


@pytest.mark.parametrize("shape", [(2, 9, 13, 3), (1, 16, 5, 1), (3, 7, 7, 5)])
def test_matches_scipy_float32_including_far_outside(shape):
    rng = np.random.default_rng(sum(shape))
    image = rng.random(shape).astype(np.float32)
    # Flows up to 3x the frame size point far outside: the border clamp must match mode='nearest'.
    flow = (rng.standard_normal(shape[:3] + (2,)) * max(shape[1:3]) * 1.5).astype(np.float32)
    got = dense_image_warp(image, flow).numpy()
    np.testing.assert_allclose(got, _reference(image, flow), atol=1e-5)


def test_integer_translation_is_an_exact_shift():
    image = np.arange(2 * 6 * 8 * 2, dtype=np.float32).reshape(2, 6, 8, 2)
    flow = np.zeros((2, 6, 8, 2), np.float32)
    flow[..., 0] = 2.0  # dy: output row y reads input row y - 2
    flow[..., 1] = -3.0  # dx: output col x reads input col x + 3
    got = dense_image_warp(image, flow).numpy()
    np.testing.assert_array_equal(got[:, 2:, :5], image[:, :-2, 3:])
    # Clamped rows/cols repeat the edge.
    np.testing.assert_array_equal(got[:, 0, :5], image[:, 0, 3:])


@pytest.mark.parametrize("dtype,atol", [(tf.bfloat16, 1e-2), (tf.float16, 2e-3)])
def test_low_precision_matches_reference(dtype, atol):
    rng = np.random.default_rng(7)
    image = rng.random((2, 30, 50, 3)).astype(np.float32)
    flow = (rng.standard_normal((2, 30, 50, 2)) * 10).astype(np.float32)
    image_lp = tf.cast(image, dtype)
    flow_lp = tf.cast(flow, dtype)
    got = dense_image_warp(image_lp, flow_lp)
    assert got.dtype == dtype
    # Reference on the rounded inputs: the warp itself must add no more than output rounding.
    ref = _reference(tf.cast(image_lp, tf.float32).numpy(), tf.cast(flow_lp, tf.float32).numpy())
    np.testing.assert_allclose(tf.cast(got, tf.float32).numpy(), ref, atol=atol)


def test_xla_and_tf_function_equal_eager():
    rng = np.random.default_rng(3)
    image = rng.random((2, 11, 17, 4)).astype(np.float32)
    flow = (rng.standard_normal((2, 11, 17, 2)) * 4).astype(np.float32)
    eager = dense_image_warp(image, flow).numpy()
    graph = tf.function(dense_image_warp)(image, flow).numpy()
    xla = tf.function(dense_image_warp, jit_compile=True)(image, flow).numpy()
    np.testing.assert_allclose(graph, eager, atol=1e-6)
    np.testing.assert_allclose(xla, eager, atol=1e-5)


def test_dynamic_shapes_in_tf_function():
    fn = tf.function(
        dense_image_warp,
        input_signature=[tf.TensorSpec([None, None, None, None]), tf.TensorSpec([None, None, None, 2])],
    )
    rng = np.random.default_rng(5)
    for shape in [(1, 5, 6, 2), (3, 8, 4, 1)]:
        image = rng.random(shape).astype(np.float32)
        flow = rng.standard_normal(shape[:3] + (2,)).astype(np.float32)
        np.testing.assert_allclose(fn(image, flow).numpy(), _reference(image, flow), atol=1e-5)


def test_gradients_match_numeric():
    rng = np.random.default_rng(11)
    image = tf.constant(rng.random((1, 5, 6, 2)), tf.float64)
    # Fractional flows away from integer kinks, so the numeric derivative is well defined.
    flow = tf.constant(rng.uniform(0.2, 0.8, (1, 5, 6, 2)) * rng.choice([-1, 1], (1, 5, 6, 2)), tf.float64)

    def f(img, flw):
        return tf.cast(dense_image_warp(tf.cast(img, tf.float32), tf.cast(flw, tf.float32)), tf.float64)

    theoretical, numeric = tf.test.compute_gradient(f, [image, flow], delta=1e-3)
    for t, n in zip(theoretical, numeric):
        np.testing.assert_allclose(t, n, atol=2e-3)
    # The flow gradient is not identically zero (the warp is differentiable in the flow).
    assert np.abs(theoretical[1]).max() > 1e-3


def test_rejects_bad_ranks():
    with pytest.raises(ValueError, match="4-D"):
        dense_image_warp(np.zeros((4, 4, 1), np.float32), np.zeros((1, 4, 4, 2), np.float32))
    with pytest.raises(ValueError, match="2 channels"):
        dense_image_warp(np.zeros((1, 4, 4, 1), np.float32), np.zeros((1, 4, 4, 3), np.float32))
