"""Rebuilding a trained MaskRNN with a deployment switch changed (the ablation's 'Train' vs 'Apply' rows)."""
import keras
import numpy as np
import pytest

from maskrnn_tf.model import MaskRNN, MaskRNNConfig
from maskrnn_tf.model.rebuild import rebuild_with_precision
from maskrnn_tf.ops import box_mask, enlarge_boxes


def _inputs(h=24, w=40):
    rng = np.random.default_rng(3)
    prev = np.zeros((1, h, w), np.float32)
    prev[0, 5:12, 8:20] = 1.0
    return (rng.uniform(0, 255, (h, w, 3)).astype(np.float32), rng.normal(0, 1, (h, w, 2)).astype(np.float32),
            rng.normal(0, 1, (h, w, 2)).astype(np.float32), prev)


def test_switching_the_box_off_keeps_everything_but_the_restriction():
    keras.utils.set_random_seed(2)
    trained = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16))
    bare = rebuild_with_precision(trained, "float32", {"apply_localization": False})
    assert bare is not trained and not bare.config.apply_localization and trained.config.apply_localization
    for a, b in zip(bare.weights, trained.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    args = _inputs()
    on, off = trained.step(*args), bare.step(*args)
    for key in ("logits", "boxes", "deltas", "warped"):
        np.testing.assert_allclose(off[key].numpy(), on[key].numpy(), rtol=1e-5, atol=1e-5)
    sigmoid = 1.0 / (1.0 + np.exp(-on["logits"].numpy()))
    np.testing.assert_allclose(off["probs"].numpy(), sigmoid, rtol=1e-5, atol=1e-6)
    inside = box_mask(enlarge_boxes(on["boxes"], 1.25), 24, 40).numpy()
    np.testing.assert_allclose(on["probs"].numpy(), sigmoid * inside, rtol=1e-5, atol=1e-6)
    # Nothing to change: the same object comes back.
    assert rebuild_with_precision(trained, "float32", {"apply_localization": True}) is trained


def test_an_override_that_changes_the_weights_is_refused():
    trained = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16))
    with pytest.raises(ValueError, match="change the network's weights"):
        rebuild_with_precision(trained, "float32", {"use_flow_stream": False})
    with pytest.raises(ValueError, match="Unknown MaskRNNConfig field"):
        rebuild_with_precision(trained, "float32", {"apply_box": False})
