"""Rebuilding a MaskRNN under another compute precision (Keras mixed-precision policy)."""
from __future__ import annotations

import keras

from maskrnn_tf.model.maskrnn import MaskRNN

PRECISIONS = ("float32", "bfloat16", "float16")


def _all_compute_dtypes(layer: keras.layers.Layer) -> set:
    """Compute dtypes of the leaf layers with weights under `layer` (nested models included)."""
    children = getattr(layer, "layers", None)
    if not children:
        return {layer.compute_dtype} if layer.weights else set()
    out = set()
    for child in children:
        out |= _all_compute_dtypes(child)
    return out


def rebuild_with_precision(model: MaskRNN, precision: str) -> MaskRNN:
    """A copy of `model` built under the Keras policy for `precision` with the same (float32) weights.

    Returns `model` itself when every layer with weights already computes in `precision`. Otherwise the network
    is rebuilt under `mixed_<precision>` (or float32): variables stay float32, compute runs in the lower
    precision and the model casts its outputs back to float32; weights are copied one to one. Needed after
    `keras.models.load_model`, which rebuilds the nested VGG trunks under the global policy (float32), whatever
    the policy the model was trained with. The global policy is restored after.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; choose one of {PRECISIONS}.")
    compute = "float32" if precision == "float32" else precision
    if _all_compute_dtypes(model) == {compute} and model.compute_dtype == compute:
        return model
    policy = "float32" if precision == "float32" else f"mixed_{precision}"
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        # vgg_weights=None: the weights are copied below, so nothing must be downloaded or read again.
        copy = MaskRNN(model.config.override({"vgg_weights": None}))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(model.get_weights())
    return copy
