"""One stream of the binary segmentation net: VGG-16 trunk with OSVOS-style side outputs."""
from __future__ import annotations

from typing import Optional, Sequence

import keras

from maskrnn_tf.model.resize_like import ResizeLike
from maskrnn_tf.model.vgg_trunk import build_vgg_trunk, load_vgg_weights


def build_segmentation_stream(
    input_channels: int,
    width: float = 1.0,
    side_stages: Sequence[str] = ("conv2_2", "conv3_3", "conv4_3", "conv5_3"),
    side_channels: int = 16,
    vgg_weights: Optional[str] = None,
    name: str = "stream",
) -> keras.Model:
    """Functional model: preprocessed [B, H, W, C] -> {'logits': [B, H, W, 1], 'conv5_3': [B, h, w, c]}.

    Each side stage: 3x3 conv to `side_channels`, bilinear resize to the exact input size, each cell over the
    pixels it covers (`ResizeLike`'s stride); the resized maps are concatenated and a 1x1 conv gives the stream's
    logit map.
    """
    trunk = build_vgg_trunk(input_channels, width, name=f"{name}_vgg16")
    load_vgg_weights(trunk, vgg_weights)
    inputs = keras.Input((None, None, input_channels), name=f"{name}_input")
    features = trunk(inputs)
    sides = []
    for stage in side_stages:
        side = keras.layers.Conv2D(side_channels, 3, padding="same", name=f"side_{stage}")(features[stage])
        stride = 2 ** (int(stage[len("conv")]) - 1)  # conv<k>_*: after k - 1 poolings
        sides.append(ResizeLike(stride=stride, name=f"side_{stage}_resize")([side, inputs]))
    merged = sides[0] if len(sides) == 1 else keras.layers.Concatenate(name="side_concat")(sides)
    logits = keras.layers.Conv2D(1, 1, name="side_fuse")(merged)
    return keras.Model(inputs, {"logits": logits, "conv5_3": features["conv5_3"]}, name=name)
