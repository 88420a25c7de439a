"""Rebuilding a MaskRNN under another compute precision (Keras mixed-precision policy) or deployment switch."""
from __future__ import annotations

from typing import Any, Mapping, Optional

import keras

from maskrnn_tf.model.maskrnn import MaskRNN

PRECISIONS = ("float32", "bfloat16", "float16")
# MaskRNNConfig fields a trained network can be run with changed: what is done with its outputs, not what it
# learned to read (input scales, the flow reference, the warp, the box deltas' weights: changed, the same weights
# compute another function, which set_weights cannot notice).
DEPLOYMENT_SWITCHES = ("apply_localization", "box_enlarge", "mask_threshold")


def compute_dtypes(layer: keras.layers.Layer) -> set:
    """Compute dtypes of the leaf layers with weights under `layer` (nested models included)."""
    children = getattr(layer, "layers", None)
    if not children:
        return {layer.compute_dtype} if layer.weights else set()
    out = set()
    for child in children:
        out |= compute_dtypes(child)
    return out


def rebuild_with_precision(
    model: MaskRNN, precision: str, overrides: Optional[Mapping[str, Any]] = None
) -> MaskRNN:
    """A copy of `model` built under the Keras policy for `precision` with the same (float32) weights.

    overrides: deployment switches (`DEPLOYMENT_SWITCHES`: apply_localization, box_enlarge, mask_threshold) to
      change on the copy; any other MaskRNNConfig field raises ValueError naming it (a trained network's weights
      only mean what they learned under its own settings).
    Returns `model` itself when every layer with weights already computes in `precision` and `overrides`
    changes nothing. Otherwise the network
    is rebuilt under `mixed_<precision>` (or float32): variables stay float32, compute runs in the lower
    precision and the model casts its outputs back to float32; weights are copied one to one. Needed after
    `keras.models.load_model`, which rebuilds the nested VGG trunks under the global policy (float32), whatever
    the policy the model was trained with. The global policy is restored after.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; choose one of {PRECISIONS}.")
    compute = "float32" if precision == "float32" else precision
    config = model.config.override(dict(overrides or {}))
    changed = sorted(k for k in (overrides or {}) if getattr(config, k) != getattr(model.config, k))
    learned = [k for k in changed if k not in DEPLOYMENT_SWITCHES]
    if learned:
        raise ValueError(
            f"rebuild: {', '.join(learned)} cannot be changed on a trained network: its weights were learned with "
            f"{', '.join(f'{k}={getattr(model.config, k)!r}' for k in learned)}, and they change what the network "
            f"reads or computes. Only the deployment switches {', '.join(DEPLOYMENT_SWITCHES)} can be; train a "
            "network with the other setting instead.")
    same_dtypes = compute_dtypes(model) == {compute} and model.compute_dtype == compute
    if same_dtypes and config == model.config:
        return model
    policy = "float32" if precision == "float32" else f"mixed_{precision}"
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        # The weights are copied below, so nothing is downloaded or read again; the config keeps where the
        # training started from.
        copy = MaskRNN(config, read_vgg_weights=False)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    try:
        copy.set_weights(model.get_weights())
    except ValueError as err:
        raise ValueError(
            f"rebuild: the network's weights do not fit a copy built from its own config ({err}); load the "
            "model with the maskrnn_tf version that saved it."
        ) from err
    return copy
