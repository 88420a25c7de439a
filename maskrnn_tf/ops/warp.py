"""`dense_image_warp` with tensorflow-addons' exact signature and semantics, in core TensorFlow ops.

tfa's contract: ``output[b, y, x, c] = image[b, y - flow[b, y, x, 0], x - flow[b, y, x, 1], c]``
(channel 0 of ``flow`` is dy), bilinear, query points clamped to the border so edge values repeat.
Sampling coordinates are always computed in float32: in bfloat16 a pixel coordinate of a 480x854 frame
has no fractional bits left, which would make the warp useless under mixed precision.
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf


def _interpolate_bilinear(grid: tf.Tensor, query_y: tf.Tensor, query_x: tf.Tensor) -> tf.Tensor:
    """Bilinear lookup with clamped coordinates.

    grid: [B, H, W, C] float32. query_y, query_x: [B, H, W] float32 (in pixels). Returns [B, H, W, C].
    """
    shape = tf.shape(grid)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    # tfa clamps the floor to [0, size - 2] and alpha to [0, 1]: a point past the border takes the edge value.
    max_y = tf.cast(tf.maximum(height - 2, 0), tf.float32)
    max_x = tf.cast(tf.maximum(width - 2, 0), tf.float32)
    floor_y = tf.clip_by_value(tf.floor(query_y), 0.0, max_y)
    floor_x = tf.clip_by_value(tf.floor(query_x), 0.0, max_x)
    alpha_y = tf.clip_by_value(query_y - floor_y, 0.0, 1.0)[..., None]
    alpha_x = tf.clip_by_value(query_x - floor_x, 0.0, 1.0)[..., None]
    y0 = tf.cast(floor_y, tf.int32)
    x0 = tf.cast(floor_x, tf.int32)
    # For a 1-pixel-high (or wide) image the "+1" neighbour is the same pixel.
    y1 = tf.minimum(y0 + 1, height - 1)
    x1 = tf.minimum(x0 + 1, width - 1)

    flat = tf.reshape(grid, [-1, channels])
    base = tf.reshape(tf.range(batch) * height * width, [-1, 1, 1])

    def gather(yy: tf.Tensor, xx: tf.Tensor) -> tf.Tensor:
        return tf.gather(flat, base + yy * width + xx)

    top_left, top_right = gather(y0, x0), gather(y0, x1)
    bottom_left, bottom_right = gather(y1, x0), gather(y1, x1)
    top = top_left + alpha_x * (top_right - top_left)
    bottom = bottom_left + alpha_x * (bottom_right - bottom_left)
    return top + alpha_y * (bottom - top)


def dense_image_warp(image: tf.Tensor, flow: tf.Tensor, name: Optional[str] = None) -> tf.Tensor:
    """Image warping using per-pixel flow vectors (tensorflow-addons' `dense_image_warp`).

    Args:
      image: 4-D float `Tensor` [batch, height, width, channels] (float32, float16 or bfloat16).
      flow: 4-D float `Tensor` [batch, height, width, 2]; channel 0 is dy, channel 1 is dx.
      name: optional name scope.

    Returns:
      `image` sampled at (y - flow[..., 0], x - flow[..., 1]), bilinear, clamped to the border; same dtype
      and shape as `image`.
    """
    with tf.name_scope(name or "dense_image_warp"):
        image = tf.convert_to_tensor(image)
        flow = tf.convert_to_tensor(flow)
        if image.shape.rank is not None and image.shape.rank != 4:
            raise ValueError(f"dense_image_warp: image must be 4-D [B, H, W, C], got shape {image.shape}.")
        if flow.shape.rank is not None and flow.shape.rank != 4:
            raise ValueError(f"dense_image_warp: flow must be 4-D [B, H, W, 2], got shape {flow.shape}.")
        if flow.shape[-1] is not None and flow.shape[-1] != 2:
            raise ValueError(f"dense_image_warp: flow needs 2 channels (dy, dx), got {flow.shape[-1]}.")
        shape = tf.shape(image)
        height, width = shape[1], shape[2]
        grid_y, grid_x = tf.meshgrid(
            tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij"
        )
        flow32 = tf.cast(flow, tf.float32)
        query_y = grid_y[None] - flow32[..., 0]
        query_x = grid_x[None] - flow32[..., 1]
        warped = _interpolate_bilinear(tf.cast(image, tf.float32), query_y, query_x)
        return tf.cast(warped, image.dtype)
