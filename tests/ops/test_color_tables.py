"""The in-graph colour prior lookup against the NumPy fit's bins and hand-made tables."""
import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.inference.color_gate import color_bins, fit_color_model
from maskrnn_tf.ops.color_tables import color_prior, rgb_bins


def test_rgb_bins_match_the_numpy_fit_on_every_uint8_value():
    values = np.arange(256, dtype=np.uint8)
    frame = np.stack([values, values[::-1], np.roll(values, 77)], axis=-1)[None]  # [1, 256, 3]
    np.testing.assert_array_equal(rgb_bins(frame).numpy(), color_bins(frame, 16, space="rgb"))
    # Hand-made: (r // 16 * 16 + g // 16) * 16 + b // 16.
    assert rgb_bins(np.float32([[[255, 0, 17]]])).numpy()[0, 0] == (15 * 16 + 0) * 16 + 1


def test_rgb_bins_of_float_frames_floor_and_clip():
    """Augmented frames are float (bilinear): a value bins as its floor would, values outside 0..255 as the ends."""
    frame = np.float32([[[15.99, 16.0, 255.7], [-3.0, 300.0, 31.5]]])
    np.testing.assert_array_equal(rgb_bins(frame).numpy(), [[(0 * 16 + 1) * 16 + 15, (0 * 16 + 15) * 16 + 1]])


def test_color_prior_gathers_each_objects_own_table():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 6, 7, 3)).astype(np.float32)
    tables = rng.uniform(0, 1, (2, 4096)).astype(np.float32)
    got = color_prior(frames, tables).numpy()
    bins = color_bins(frames[0].astype(np.uint8), 16, space="rgb")
    np.testing.assert_array_equal(got[0], tables[0][bins])
    np.testing.assert_array_equal(got[1], tables[1][color_bins(frames[1].astype(np.uint8), 16, space="rgb")])
    with pytest.raises(ValueError, match="bins\\*\\*3"):
        color_prior(frames, tf.zeros([2, 100]))


def test_a_fitted_rgb_table_marks_the_objects_colour_above_the_backgrounds():
    """A red object on green: the prior is high on red pixels of another frame and low on green ones."""
    frame = np.zeros((40, 40, 3), np.uint8)
    frame[..., 1] = 200
    labels = np.zeros((40, 40), np.uint8)
    labels[10:20, 10:20] = 1
    frame[labels == 1] = (220, 10, 10)
    table = fit_color_model(frame, labels, [1], band=0.5, space="rgb")
    later = np.zeros((1, 4, 4, 3), np.float32)
    later[0, :2] = (221, 12, 9)  # the same bins as the object's red
    later[0, 2:, :, 1] = 201
    prior = color_prior(later, table).numpy()[0]
    assert prior[:2].min() > 0.99 and prior[2:].max() < 0.01


@pytest.mark.parametrize("shape,band,seed", [((40, 56), 0.1, 0), ((33, 21), 0.25, 1), ((48, 64), 0.03, 2)])
def test_the_graphs_fit_is_the_numpy_fit(shape, band, seed):
    """fit_color_tables (a server's first frame) against fit_color_model (OpenCV's distance transform): void and
    other objects excluded, each object's band around it."""
    from maskrnn_tf.ops.color_tables import fit_color_tables

    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, shape + (3,)).astype(np.uint8)
    labels = np.zeros(shape, np.uint8)
    h, w = shape
    labels[h // 5: h // 2, w // 6: w // 2] = 1
    labels[h // 2 + 2: h - 3, w // 2 + 1: w - 2] = 4
    labels[2:5, w - 6: w - 1] = 255
    frame[labels == 1] = np.clip(frame[labels == 1] // 2 + 128, 0, 255)  # object colours apart from the noise
    want = fit_color_model(frame, labels, [4, 1], band, space="rgb")
    got = fit_color_tables(frame, labels, np.int32([4, 1]), band).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
