"""Random perturbation of a ground-truth mask to mimic an imperfect previous prediction (stage A, finetuning).

Pure TensorFlow ops with stateless seeds, so the result is the same eagerly and inside tf.data. A perturbed
mask is the truth moved by a random similarity transform about its centroid (rescale, rotation,
translation), dilated or eroded, then elastically deformed by a smooth random displacement field. The
strength is reduced step by step (1, 0.6, 0.35, 0.15) until the IoU with the truth is inside
[min_iou, max_iou]; if no strength qualifies the truth itself is returned (IoU 1), so the result is always
at least `min_iou` from the truth.
"""
from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

from maskrnn_tf.data.augment import projective_transform
from maskrnn_tf.ops import dense_image_warp

_STRENGTHS = (1.0, 0.6, 0.35, 0.15)


@dataclasses.dataclass(frozen=True)
class PerturbConfig:
    """Ranges of the mask perturbation (at strength 1).

    Attributes:
      max_scale: rescale factor uniform in [1 - max_scale, 1 + max_scale] about the centroid.
      max_rotation_deg: rotation uniform in [-max, max] degrees about the centroid.
      max_translation: shift uniform in [-max, max] times the object's box height / width.
      max_dilation: dilation (> 0) or erosion (< 0) radius uniform in [-max, max] pixels (3x3 steps).
      elastic_alpha: amplitude in pixels of the elastic displacement field.
      elastic_grid: control points per side of that field (smooth: bilinear upsampling).
      min_iou, max_iou: accepted IoU range between the perturbed mask and the truth.
    """

    max_scale: float = 0.1
    max_rotation_deg: float = 8.0
    max_translation: float = 0.08
    max_dilation: int = 3
    elastic_alpha: float = 3.0
    elastic_grid: int = 4
    min_iou: float = 0.6
    max_iou: float = 1.0


def mask_iou(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """IoU of two binary [H, W] masks (1 when both are empty)."""
    a, b = a > 0.5, b > 0.5
    inter = tf.reduce_sum(tf.cast(a & b, tf.float32))
    union = tf.reduce_sum(tf.cast(a | b, tf.float32))
    return tf.where(union > 0, inter / tf.maximum(union, 1.0), 1.0)


def _morphology(mask: tf.Tensor, radius: tf.Tensor) -> tf.Tensor:
    """Dilates (radius > 0) or erodes (radius < 0) a [H, W] binary mask by |radius| 3x3 steps."""
    image = mask[None, :, :, None]
    sign = tf.where(radius >= 0, 1.0, -1.0)

    def body(i, x):
        # Erosion is a dilation of the negated mask.
        return i + 1, sign * tf.nn.max_pool2d(sign * x, 3, 1, "SAME")

    _, image = tf.while_loop(lambda i, x: i < tf.abs(radius), body, [tf.constant(0), image])
    return image[0, :, :, 0]


def _perturb_once(mask: tf.Tensor, seed: tf.Tensor, strength: tf.Tensor, config: PerturbConfig) -> tf.Tensor:
    size = tf.shape(mask)
    height, width = tf.cast(size[0], tf.float32), tf.cast(size[1], tf.float32)
    u = tf.random.stateless_uniform([6], seed=seed, minval=-1.0, maxval=1.0)
    ys, xs = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
    total = tf.maximum(tf.reduce_sum(mask), 1.0)
    cy, cx = tf.reduce_sum(mask * ys) / total, tf.reduce_sum(mask * xs) / total
    rows = tf.where(tf.reduce_any(mask > 0.5, axis=1))[:, 0]
    cols = tf.where(tf.reduce_any(mask > 0.5, axis=0))[:, 0]
    box_h = tf.cast(tf.reduce_max(rows) - tf.reduce_min(rows) + 1, tf.float32)
    box_w = tf.cast(tf.reduce_max(cols) - tf.reduce_min(cols) + 1, tf.float32)
    scale = 1.0 + strength * config.max_scale * u[0]
    theta = strength * math.radians(config.max_rotation_deg) * u[1]
    ty = strength * config.max_translation * box_h * u[2]
    tx = strength * config.max_translation * box_w * u[3]
    # Output -> input map: p_in = c + (1/s) R(-theta) (p_out - c - t).
    cos, sin = tf.cos(theta) / scale, tf.sin(theta) / scale
    a = tf.reshape(tf.stack([cos, sin, -sin, cos]), [2, 2])
    centre = tf.stack([cx, cy])
    b = centre - tf.linalg.matvec(a, centre + tf.stack([tx, ty]))
    affine = tf.concat([a, b[:, None]], axis=1)
    moved = projective_transform(mask[None, :, :, None], affine, size[:2], "BILINEAR", 0.0)[0, :, :, 0]
    moved = tf.cast(moved > 0.5, tf.float32)
    radius = tf.cast(tf.round(strength * config.max_dilation * u[4]), tf.int32)
    moved = _morphology(moved, radius)
    grid = config.elastic_grid
    field_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    coarse = tf.random.stateless_uniform([1, grid, grid, 2], seed=field_seed, minval=-1.0, maxval=1.0)
    field = tf.image.resize(coarse, size[:2], method="bilinear") * (strength * config.elastic_alpha)
    warped = dense_image_warp(moved[None, :, :, None], field)[0, :, :, 0]
    return tf.cast(warped > 0.5, tf.float32)


def perturb_mask(mask: tf.Tensor, seed: tf.Tensor, config: PerturbConfig = PerturbConfig()) -> tf.Tensor:
    """Randomly perturbs a binary mask [H, W] (float32 0/1) with a stateless [2] seed; returns [H, W] 0/1.

    The IoU of the result with `mask` lies in [config.min_iou, config.max_iou] whenever one of the tried
    strengths achieves it; otherwise the truth is returned. An empty mask stays empty.
    """
    mask = tf.cast(tf.convert_to_tensor(mask) > 0.5, tf.float32)
    seed = tf.cast(seed, tf.int64)
    strengths = tf.constant(_STRENGTHS, tf.float32)

    def cond(i, result, done):
        return tf.logical_and(i < len(_STRENGTHS), tf.logical_not(done))

    def body(i, result, done):
        candidate = _perturb_once(mask, tf.random.experimental.stateless_fold_in(seed, i), strengths[i], config)
        iou = mask_iou(candidate, mask)
        ok = tf.logical_and(iou >= config.min_iou, iou <= config.max_iou)
        return i + 1, tf.where(ok, candidate, result), ok

    if_empty = tf.logical_not(tf.reduce_any(mask > 0.5))
    _, result, _ = tf.while_loop(cond, body, [tf.constant(0), mask, if_empty])
    return result
