"""Optical-flow helpers. Flows are (u, v) = (dx, dy) per pixel, the OpenCV / Middlebury order.

``flow_a_to_b[y, x]`` is the displacement from pixel (x, y) of frame a to its match in frame b.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from maskrnn_tf.ops.warp import dense_image_warp


def flow_magnitude(flow: tf.Tensor) -> tf.Tensor:
    """Per-pixel Euclidean length of a (u, v) flow [..., 2] -> [..., 1], in float32-safe arithmetic."""
    flow = tf.convert_to_tensor(flow)
    flow32 = tf.cast(flow, tf.float32)
    magnitude = tf.sqrt(tf.reduce_sum(tf.square(flow32), axis=-1, keepdims=True) + 1e-12)
    return tf.cast(magnitude, flow.dtype)


def subtract_median_flow(flow: tf.Tensor, stride: int = 4) -> tf.Tensor:
    """A (u, v) flow [B, H, W, 2] minus its per-image median: the motion relative to the dominant one, the
    camera's where the background covers most of the frame. A camera that follows the object leaves the object
    still and the background moving in the raw flow; relative to the median, the object moves in both cases.

    The median is taken, u and v apart, over every `stride`-th row and column (as numpy.median of
    flow[:, ::stride, ::stride]: the mean of the two middle values for an even count); sorting every pixel
    would cost a sixth of a training step at 240x432, and 1/16 of them estimates the median as well.
    """
    flow = tf.convert_to_tensor(flow)
    flow32 = tf.cast(flow, tf.float32)
    sample = flow32[:, ::stride, ::stride, :]
    shape = tf.shape(sample)
    count = shape[1] * shape[2]
    values = tf.sort(tf.reshape(tf.transpose(sample, [0, 3, 1, 2]), [shape[0], 2, count]), axis=-1)
    middle = tf.gather(values, tf.stack([(count - 1) // 2, count // 2]), axis=-1)  # [B, 2, 2]
    median = tf.reduce_mean(middle, axis=-1)  # [B, 2]
    return tf.cast(flow32 - median[:, None, None, :], flow.dtype)


def warp_with_flow(image_a: tf.Tensor, flow_b_to_a: tf.Tensor) -> tf.Tensor:
    """Moves `image_a` (a mask or any map of frame a) into frame b.

    Args:
      image_a: [B, H, W, C] map of frame a.
      flow_b_to_a: [B, H, W, 2] (u, v) flow from frame b to frame a: pixel (x, y) of b matches
        (x + u, y + v) of a.

    Returns:
      [B, H, W, C]: ``out[y, x] = image_a[y + v, x + u]`` (bilinear, border-clamped).
    """
    flow_b_to_a = tf.convert_to_tensor(flow_b_to_a)
    # dense_image_warp samples at (y - dy, x - dx) with channel 0 = dy: swap to (v, u) and negate.
    return dense_image_warp(image_a, -tf.reverse(flow_b_to_a, axis=[-1]))


def warp_masks(masks, flow_b_to_a) -> tf.Tensor:
    """N maps of frame a [N, H, W] moved into frame b by one flow [H, W, 2] from b to a, shared by all N
    (`warp_with_flow` on each); float32 [N, H, W]."""
    masks = tf.convert_to_tensor(masks, tf.float32)
    flow = tf.convert_to_tensor(flow_b_to_a, tf.float32)
    flow = tf.tile(flow[None], [tf.shape(masks)[0], 1, 1, 1])
    return warp_with_flow(masks[..., None], flow)[..., 0]


def resize_flow(flow: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
    """Bilinear resize of a (u, v) flow [B, H, W, 2] to `size` = (h, w), scaling u by w/W and v by h/H."""
    flow = tf.convert_to_tensor(flow)
    shape = tf.shape(flow)
    new_h, new_w = size[0], size[1]
    scale_u = tf.cast(new_w, tf.float32) / tf.cast(shape[2], tf.float32)
    scale_v = tf.cast(new_h, tf.float32) / tf.cast(shape[1], tf.float32)
    resized = tf.image.resize(tf.cast(flow, tf.float32), [new_h, new_w], method="bilinear")
    resized = resized * tf.stack([scale_u, scale_v])
    return tf.cast(resized, flow.dtype)


def flip_flow_left_right(flow: tf.Tensor) -> tf.Tensor:
    """Horizontal flip of a (u, v) flow [..., H, W, 2]: the field is mirrored and u changes sign."""
    flow = tf.convert_to_tensor(flow)
    flipped = tf.reverse(flow, axis=[-2])
    return flipped * tf.constant([-1.0, 1.0], dtype=flow.dtype)
