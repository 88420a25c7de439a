"""`ResizeLike`: bilinear resize of a feature map to the exact spatial size of a reference tensor."""
from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="maskrnn_tf")
class ResizeLike(keras.layers.Layer):
    """Resizes `inputs[0]` to the height and width of `inputs[1]` (bilinear, any size, not only x2^k).

    stride: the feature map's stride in the reference (2^k after k 2x2 poolings), or None. A map of h rows after
      floored poolings covers the reference's first h * stride rows, each cell `stride` of them: with a stride
      it is resized to h * stride rows (cell j's centre lands on the centre of its rows) and its last rows are
      mirrored into the rest. Without one it is stretched over all the reference's rows, which shifts the cells
      by up to a cell when the size is no multiple of the stride (an 854-wide frame: conv5_3's 53 columns cover
      848 pixels; stretched, the last lands 6 pixels off). The two agree at multiples of the stride.
    """

    def __init__(self, stride: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        if stride is not None and int(stride) < 1:
            raise ValueError(f"ResizeLike: stride must be >= 1 or None, got {stride!r}.")
        self.stride = None if stride is None else int(stride)

    def call(self, inputs):
        features, reference = inputs
        size = tf.shape(reference)[1:3]
        if self.stride is None:
            resized = tf.image.resize(features, size, method="bilinear")
            return tf.cast(resized, features.dtype)
        covered = tf.shape(features)[1:3] * self.stride
        resized = tf.image.resize(features, covered, method="bilinear")
        rest = tf.maximum(size - covered, 0)  # fewer rows than a cell: its own rows, mirrored
        padded = tf.pad(resized, [[0, 0], [0, rest[0]], [0, rest[1]], [0, 0]], mode="SYMMETRIC")
        return tf.cast(padded[:, :size[0], :size[1], :], features.dtype)

    def compute_output_shape(self, input_shapes):
        features, reference = input_shapes
        return (features[0], reference[1], reference[2], features[3])

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}
