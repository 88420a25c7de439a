"""`ResizeLike`: bilinear resize of a feature map to the exact spatial size of a reference tensor."""
from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="maskrnn_tf")
class ResizeLike(keras.layers.Layer):
    """Resizes `inputs[0]` to the height and width of `inputs[1]` (bilinear, any size, not only x2^k)."""

    def call(self, inputs):
        features, reference = inputs
        size = tf.shape(reference)[1:3]
        resized = tf.image.resize(features, size, method="bilinear")
        return tf.cast(resized, features.dtype)

    def compute_output_shape(self, input_shapes):
        features, reference = input_shapes
        return (features[0], reference[1], reference[2], features[3])

    def get_config(self):
        return super().get_config()
