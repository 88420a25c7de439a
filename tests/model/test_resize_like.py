"""ResizeLike: exact output size, values against tf.image.resize, config round trip."""
import keras
import numpy as np

from maskrnn_tf.model import ResizeLike


def test_resizes_to_reference_and_round_trips(tmp_path):
    x = np.random.default_rng(0).random((2, 3, 4, 5)).astype(np.float32)
    ref = np.zeros((2, 13, 17, 1), np.float32)
    layer = ResizeLike(name="r")
    out = np.asarray(layer([x, ref]))
    assert out.shape == (2, 13, 17, 5)
    import tensorflow as tf

    np.testing.assert_allclose(out, tf.image.resize(x, (13, 17)).numpy(), atol=1e-6)
    a, b = keras.Input((None, None, 5)), keras.Input((None, None, 1))
    model = keras.Model([a, b], ResizeLike(name="r")([a, b]))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(loaded([x, ref])), out)
    assert ResizeLike.from_config(layer.get_config()).name == "r"


def test_with_a_stride_each_cell_lands_on_the_pixels_it_covers(tmp_path):
    """Side outputs were stretched over the whole frame: at 243 rows conv5_3's 15 cells cover 240, and stretched
    over 243 the last cell's centre moved 2.9 rows (at an 854-wide frame's last column 5.9) from its pixels'."""
    import tensorflow as tf

    rows = 15
    features = np.zeros((1, rows, 1, 1), np.float32)
    features[0, 14, 0, 0] = 1.0  # the last cell: rows 224..239, centre 231.5
    reference = np.zeros((1, 243, 1, 1), np.float32)
    aligned = np.asarray(ResizeLike(stride=16)([features, reference]))[0, :, 0, 0]
    stretched = np.asarray(ResizeLike()([features, reference]))[0, :, 0, 0]
    assert aligned.shape == (243,) and np.argmax(aligned) in (231, 232)
    # Bilinear with half-pixel centres: 1 - |d| / 16 rows from the centre 231.5 towards row 215.5, 1 past it.
    np.testing.assert_allclose(aligned[216:232], 1 - (231.5 - np.arange(216, 232)) / 16, atol=1e-6)
    np.testing.assert_allclose(aligned[232:240], 1.0, atol=1e-6)
    centre = np.sum(np.arange(243) * stretched) / stretched.sum()
    assert abs(centre - 231.5) > 2.0  # the stretched map's peak is rows off (the defect)
    # At a multiple of the stride both are tf.image.resize to the full size.
    exact = np.zeros((1, 240, 1, 1), np.float32)
    np.testing.assert_allclose(np.asarray(ResizeLike(stride=16)([features, exact])),
                               tf.image.resize(features, (240, 1)).numpy(), atol=1e-6)
    # The rows past the covered ones mirror the last ones.
    np.testing.assert_allclose(aligned[240:243], aligned[239:236:-1], atol=1e-6)
    layer = ResizeLike(stride=16, name="r16")
    assert ResizeLike.from_config(layer.get_config()).stride == 16
    a, b = keras.Input((None, None, 1)), keras.Input((None, None, 1))
    model = keras.Model([a, b], ResizeLike(stride=16, name="r")([a, b]))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(loaded([features, reference]))[0, :, 0, 0], aligned, atol=1e-6)
