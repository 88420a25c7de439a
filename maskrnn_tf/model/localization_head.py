"""Localization net head: two fully connected layers regressing Fast R-CNN deltas from RoI features."""
from __future__ import annotations

import keras


def build_localization_head(roi_size: int, channels: int, fc_units: int = 1024, name: str = "localization") -> keras.Model:
    """Functional model: RoI features [N, k, k, C] -> deltas [N, 4] (ty, tx, th, tw).

    The output layer starts at zero, so the first predicted box is the proposal itself.
    """
    inputs = keras.Input((roi_size, roi_size, channels), name=f"{name}_rois")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(fc_units, activation="relu", name="fc1")(x)
    deltas = keras.layers.Dense(4, kernel_initializer="zeros", name="deltas")(x)
    return keras.Model(inputs, deltas, name=name)
