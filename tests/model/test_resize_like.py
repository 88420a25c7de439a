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
