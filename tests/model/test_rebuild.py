"""Rebuilding a trained MaskRNN with a deployment switch changed (the ablation's 'Train' vs 'Apply' rows)."""
import keras
import numpy as np
import pytest

from maskrnn_tf.model import MaskRNN, MaskRNNConfig
from maskrnn_tf.model.rebuild import rebuild_with_precision
from maskrnn_tf.ops import box_mask, decode_box_deltas, enlarge_boxes


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
    predicted = decode_box_deltas(on["deltas"], on["proposals"], trained.config.delta_weights)  # before clipping
    inside = box_mask(enlarge_boxes(predicted, 1.25), 24, 40).numpy()
    np.testing.assert_allclose(on["probs"].numpy(), sigmoid * inside, rtol=1e-5, atol=1e-6)
    # Nothing to change: the same object comes back.
    assert rebuild_with_precision(trained, "float32", {"apply_localization": True}) is trained


def test_an_override_that_changes_the_weights_is_refused():
    trained = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16))
    with pytest.raises(ValueError, match="use_flow_stream cannot be changed on a trained network"):
        rebuild_with_precision(trained, "float32", {"use_flow_stream": False})
    with pytest.raises(ValueError, match="Unknown MaskRNNConfig field"):
        rebuild_with_precision(trained, "float32", {"apply_box": False})


@pytest.mark.parametrize("field, value", [("delta_weights", (1.0, 1.0, 1.0, 1.0)), ("mask_input_scale", 1.0),
                                          ("flow_input_scale", 1.0), ("flow_reference", "median"),
                                          ("warp_mask", False), ("roi_feature_stride", 16)])
def test_settings_the_weights_were_learned_with_are_not_switched_on_a_trained_network(field, value):
    """Same shapes, another function: set_weights takes the weights, and the network would read its inputs (or
    decode its boxes) otherwise than it was trained to."""
    trained = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16))
    with pytest.raises(ValueError, match=f"{field} cannot be changed on a trained network.*deployment switches"):
        rebuild_with_precision(trained, "float32", {field: value})
    # The switches that act on the outputs are still taken, with the weights as they were.
    switched = rebuild_with_precision(trained, "float32", {"box_enlarge": 1.5, "mask_threshold": 0.4,
                                                           "apply_localization": False})
    assert (switched.config.box_enlarge, switched.config.mask_threshold) == (1.5, 0.4)
    for a, b in zip(switched.weights, trained.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_rebuilt_model_keeps_where_its_training_started():
    """rebuild_with_precision cleared config.vgg_weights (to read nothing again): the rebuilt model no longer
    recorded the ImageNet/.h5 start it was trained from."""
    trained = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16, vgg_weights="/data/vgg16.h5"), read_vgg_weights=False)
    rebuilt = rebuild_with_precision(trained, "bfloat16")
    assert rebuilt is not trained and rebuilt.config.vgg_weights == "/data/vgg16.h5"


def test_a_model_saved_in_mixed_precision_loads_in_one_precision(tmp_path):
    """Saved under mixed_bfloat16, the outer model came back with bfloat16 compute (its saved dtype) around float32
    sub-networks built under the global policy: its inputs were rounded to bfloat16 for float32 trunks, a network
    neither the saved one nor a float32 one."""
    keras.utils.set_random_seed(4)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        MaskRNN(MaskRNNConfig(width=0.125, fc_units=16)).save(str(tmp_path / "m.keras"))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    loaded = keras.models.load_model(str(tmp_path / "m.keras"))
    from maskrnn_tf.model.rebuild import compute_dtypes

    assert loaded.compute_dtype == "float32" and compute_dtypes(loaded) == {"float32"}
    args = _inputs()
    reference = rebuild_with_precision(loaded, "float32")
    np.testing.assert_array_equal(loaded.step(*args)["logits"].numpy(), reference.step(*args)["logits"].numpy())
