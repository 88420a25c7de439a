"""VGG-16 convolutional trunk (conv1_1 .. conv5_3) for any number of input channels and widths.

Layer names are those of `keras.applications.VGG16` (block1_conv1 ...), so ImageNet weights map by name.
"""
from __future__ import annotations

import os
from typing import Dict, Optional

import keras
import numpy as np

# (block, number of convs, filters at width 1.0)
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
STAGE_LAYERS = {
    "conv1_2": "block1_conv2",
    "conv2_2": "block2_conv2",
    "conv3_3": "block3_conv3",
    "conv4_3": "block4_conv3",
    "conv5_3": "block5_conv3",
}
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def vgg_filters(base: int, width: float) -> int:
    """Filters of a VGG conv at a width multiplier (at least 1)."""
    return max(1, int(round(base * width)))


def build_vgg_trunk(input_channels: int, width: float = 1.0, name: str = "vgg16_trunk") -> keras.Model:
    """Functional VGG-16 trunk returning a dict of stage features conv1_2 ... conv5_3.

    Input: [B, H, W, input_channels] already preprocessed. 2x2 max-pools ('valid', as VGG16) between stages.
    """
    inputs = keras.Input((None, None, input_channels), name=f"{name}_input")
    x = inputs
    outputs: Dict[str, keras.KerasTensor] = {}
    for block, convs, filters in VGG16_BLOCKS:
        if block > 1:
            x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block - 1}_pool")(x)
        for i in range(1, convs + 1):
            x = keras.layers.Conv2D(
                vgg_filters(filters, width), 3, padding="same", activation="relu", name=f"block{block}_conv{i}"
            )(x)
        stage = f"conv{block}_{convs}"
        outputs[stage] = x
    return keras.Model(inputs, outputs, name=name)


def caffe_preprocess_rgb(rgb):
    """VGG's caffe preprocessing of an RGB tensor in 0..255: to BGR, minus the ImageNet BGR mean."""
    bgr = rgb[..., ::-1]
    return bgr - np.asarray(CAFFE_BGR_MEAN, np.float32)


class VGGWeightsError(ValueError):
    """VGG-16 weights are missing or do not fit the trunk."""


def _reference_vgg16(weights: str) -> keras.Model:
    if weights == "imagenet":
        # Downloads to ~/.keras/models when online; offline, pass a local .h5 path instead.
        try:
            return keras.applications.VGG16(include_top=False, weights="imagenet")
        except Exception as err:  # urllib, HTTP and file errors, whichever the download meets
            raise VGGWeightsError(
                f"the ImageNet VGG-16 weights could not be downloaded ({type(err).__name__}: {err}). Offline, "
                "pass the path of a keras.applications.VGG16(include_top=False) weights .h5 file instead."
            ) from err
    # `~` is the home folder, as in the other path flags (the shell leaves it alone after `--vgg_weights=`).
    path = os.path.expanduser(weights)
    if not os.path.isfile(path):
        raise VGGWeightsError(
            f"VGG-16 weights file {path!r} not found. Pass 'imagenet' (needs internet), None, or the path "
            "of a keras.applications.VGG16(include_top=False) weights .h5 file."
        )
    model = keras.applications.VGG16(include_top=False, weights=None)
    try:
        model.load_weights(path)
    except Exception as err:  # keras raises several types for a wrong file
        raise VGGWeightsError(
            f"{path}: not loadable as VGG16(include_top=False) weights ({err}). Save them with "
            "keras.applications.VGG16(include_top=False, ...).save_weights('vgg16.weights.h5')."
        ) from err
    return model


def check_vgg_weights(weights: Optional[str], width: float) -> None:
    """Raises VGGWeightsError unless `weights` (None, 'imagenet' or a .h5 path) can initialise trunks of
    `width`: run before anything is written, so a bad path is not stored in a run's config."""
    if weights is None:
        return
    if vgg_filters(64, width) != 64 or vgg_filters(512, width) != 512:
        raise VGGWeightsError(
            f"VGG-16 weights {weights!r} fit only full-width trunks (model width 1.0), not width {width}; "
            "set the width to 1.0 or train without pretrained weights."
        )
    _reference_vgg16(weights)


def load_vgg_weights(trunk: keras.Model, weights: Optional[str]) -> None:
    """Loads VGG-16 conv weights into `trunk` by layer name.

    A trunk with more than 3 input channels gets first-conv surgery: the RGB filters are copied (in the order
    the trunk expects: its first 3 input channels are the caffe-preprocessed BGR image) and the filters of the
    extra channels are zero, so the pretrained response is unchanged at step 0; one with fewer takes the first
    channels' filters (the flow stream reads its inputs through the image filters either way).
    """
    if weights is None:
        return
    reference = _reference_vgg16(weights)
    for block, convs, _ in VGG16_BLOCKS:
        for i in range(1, convs + 1):
            name = f"block{block}_conv{i}"
            try:
                source = reference.get_layer(name)
            except ValueError as err:
                raise VGGWeightsError(f"{weights}: layer {name} is missing from the VGG-16 weights.") from err
            kernel, bias = source.get_weights()
            target = trunk.get_layer(name)
            t_kernel, t_bias = (v.shape for v in target.weights)
            if name == "block1_conv1" and t_kernel[2] > kernel.shape[2] and t_kernel[3] == kernel.shape[3]:
                extra = np.zeros(tuple(t_kernel[:2]) + (t_kernel[2] - kernel.shape[2], t_kernel[3]), kernel.dtype)
                kernel = np.concatenate([kernel, extra], axis=2)
            elif name == "block1_conv1" and t_kernel[2] < kernel.shape[2] and t_kernel[3] == kernel.shape[3]:
                kernel = kernel[:, :, :t_kernel[2]]  # fewer inputs (a flow stream without the mask): the first ones
            if tuple(kernel.shape) != tuple(t_kernel) or tuple(bias.shape) != tuple(t_bias):
                raise VGGWeightsError(
                    f"{weights}: layer {name} has kernel {tuple(kernel.shape)}, bias {tuple(bias.shape)} but the "
                    f"trunk {trunk.name!r} expects {tuple(t_kernel)}, {tuple(t_bias)} (ImageNet weights need "
                    "width=1.0)."
                )
            target.set_weights([kernel, bias])
