"""MaskRNN with the first-frame colour prior input (MaskRNNConfig.color_prior_input)."""
import keras
import numpy as np
import pytest

from maskrnn_tf.inference.color_gate import color_bins
from maskrnn_tf.model import MaskRNN, MaskRNNConfig

TINY = MaskRNNConfig(width=0.125, fc_units=32, color_prior_input=True)


def _inputs(h=30, w=50, seed=0):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (h, w, 3)).astype(np.float32)
    flows = [rng.normal(0, 1.5, (h, w, 2)).astype(np.float32) for _ in range(2)]
    prev = np.zeros((2, h, w), np.float32)
    prev[0, 4:14, 6:20] = 1.0
    prev[1, 16:27, 25:46] = 1.0
    tables = rng.uniform(0, 1, (2, 4096)).astype(np.float32)
    return frame, flows[0], flows[1], prev, tables


def test_the_appearance_stream_reads_the_prior_at_the_mask_scale():
    """The fifth channel (after RGB and the mask): (table[bin(pixel)] - 0.5) * mask_input_scale, one table per object."""
    keras.utils.set_random_seed(0)
    m = MaskRNN(TINY)
    frame, flow_prev, flow_next, prev, tables = _inputs()
    seen = {}
    stream = m.appearance_stream

    def record(x, training=False):
        seen["x"] = np.array(x)
        return stream(x, training=training)

    object.__setattr__(m, "appearance_stream", record)
    try:
        m.step(frame, flow_prev, flow_next, prev, color_model=tables)
    finally:
        object.__setattr__(m, "appearance_stream", stream)
    x = seen["x"]
    assert x.shape == (2, 30, 50, 5)
    bins = color_bins(frame.astype(np.uint8), 16, space="rgb")
    for i in range(2):
        np.testing.assert_allclose(x[i, ..., 4], (tables[i][bins] - 0.5) * TINY.mask_input_scale, rtol=1e-6)


def test_the_prior_changes_the_output_and_is_required():
    keras.utils.set_random_seed(1)
    m = MaskRNN(TINY)
    frame, flow_prev, flow_next, prev, tables = _inputs()
    a = m.step(frame, flow_prev, flow_next, prev, color_model=tables)["logits"].numpy()
    b = m.step(frame, flow_prev, flow_next, prev, color_model=1.0 - tables)["logits"].numpy()
    assert np.abs(a - b).max() > 1e-3
    with pytest.raises(ValueError, match="color_model"):
        m.step(frame, flow_prev, flow_next, prev)


def test_keras_round_trip_keeps_the_prior_input(tmp_path):
    keras.utils.set_random_seed(2)
    m = MaskRNN(TINY.override({"color_prior_band": 0.1}))
    args = _inputs()
    want = m.step(*args[:4], color_model=args[4])["probs"].numpy()
    m.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.config.color_prior_input and loaded.config.color_prior_band == 0.1
    np.testing.assert_array_equal(loaded.step(*args[:4], color_model=args[4])["probs"].numpy(), want)


@pytest.mark.parametrize("band", [0.0, -0.1, 1.5])
def test_a_band_outside_0_1_is_refused(band):
    with pytest.raises(ValueError, match="color_prior_band"):
        MaskRNNConfig(color_prior_band=band)
