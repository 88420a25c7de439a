"""Geometric augmentation applied identically to frames, id masks and flows (pure TensorFlow ops).

One random similarity transform per clip (resize, rotation, crop position, horizontal flip) is expressed as
an affine map from output pixel coordinates to input pixel coordinates (pixel centres at integers):

    p_in = c_in + d + A (p_out - c_out),   A = (1 / s) R(theta) F,

with s the scale, R a rotation, F = diag(-1, 1) for a flip, c the image centres and d the crop shift. All
frames of a clip use the same map, so a flow vector f measured in input pixels becomes A^-1 f in output
pixels (a flip negates u, a resize by s scales by s, a rotation rotates the vector) and warping the
augmented mask of frame t-1 with the augmented flow still lands on the augmented mask of frame t.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Tuple

import tensorflow as tf

from maskrnn_tf.io import VOID_ID


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Random geometric augmentation.

    Attributes:
      crop_size: (height, width) of the output.
      min_scale, max_scale: random resize factor range, relative to the scale at which the input just
        covers the crop (1.0 = fit: the smaller of the two ratios covers the crop exactly).
      max_rotation_deg: rotation uniform in [-max, max] degrees.
      flip: random horizontal flip with probability 0.5.
      random: False gives the deterministic fit-and-centre-crop (evaluation).
      color_jitter: strength of one random photometric change per clip (`sample_color_jitter`), the same on
        every frame of the clip; 0 = none. Flows are not recomputed: they come from the unchanged frames.
      antialias: frames shrunk by the transform are first area-averaged to about the output scale (as OpenCV's
        INTER_AREA, which segment and validation downscale with), then sampled bilinearly; without it bilinear
        sampling alone reads 2x2 of every s x s input pixels (aliasing at the DAVIS recipe's ~0.5 scale).
    """

    crop_size: Tuple[int, int] = (64, 96)
    min_scale: float = 0.9
    max_scale: float = 1.2
    max_rotation_deg: float = 10.0
    flip: bool = True
    random: bool = True
    color_jitter: float = 0.0
    antialias: bool = False

    def __post_init__(self) -> None:
        if not self.color_jitter >= 0:
            raise ValueError(f"AugmentConfig.color_jitter must be >= 0, got {self.color_jitter}.")


def sample_transform(seed: tf.Tensor, input_size: tf.Tensor, config: AugmentConfig) -> tf.Tensor:
    """Samples the affine map of one clip: a float32 [2, 3] matrix [A | b] with p_in = A p_out + b.

    Args:
      seed: int32/int64 [2] stateless seed.
      input_size: int [2] (height, width) of the input frames.
      config: the augmentation ranges.
    """
    height = tf.cast(input_size[0], tf.float32)
    width = tf.cast(input_size[1], tf.float32)
    out_h, out_w = float(config.crop_size[0]), float(config.crop_size[1])
    fit = tf.maximum(out_h / height, out_w / width)
    if config.random:
        u = tf.random.stateless_uniform([5], seed=seed, dtype=tf.float32)
        scale = fit * (config.min_scale + (config.max_scale - config.min_scale) * u[0])
        theta = math.radians(config.max_rotation_deg) * (2.0 * u[1] - 1.0)
        flip = tf.cast(u[2] < 0.5, tf.float32) if config.flip else tf.constant(0.0)
        shift_u = 2.0 * u[3:5] - 1.0
    else:
        scale, theta, flip, shift_u = fit, tf.constant(0.0), tf.constant(0.0), tf.zeros([2])
    sign = 1.0 - 2.0 * flip
    cos, sin = tf.cos(theta), tf.sin(theta)
    # A = (1/s) R F: columns of R scaled by the flip sign on x.
    a = tf.reshape(tf.stack([cos * sign, -sin, sin * sign, cos]), [2, 2]) / scale
    # The crop window may move by the slack between the scaled image and the crop (0 when it does not fit).
    slack = tf.maximum(tf.stack([width * scale - out_w, height * scale - out_h]), 0.0) / (2.0 * scale)
    shift = slack * shift_u
    c_in = tf.stack([(width - 1.0) / 2.0, (height - 1.0) / 2.0])
    c_out = tf.constant([(out_w - 1.0) / 2.0, (out_h - 1.0) / 2.0])
    b = c_in + shift - tf.linalg.matvec(a, c_out)
    return tf.concat([a, b[:, None]], axis=1)


# Ranges of `sample_color_jitter` at strength 1: log channel gains, brightness (0..255 units), log contrast and
# log saturation factors, each drawn uniformly in [-range, range].
JITTER_LOG_GAIN = 0.1
JITTER_BRIGHTNESS = 25.0
JITTER_LOG_CONTRAST = 0.25
JITTER_LOG_SATURATION = 0.4
_LUMA = (0.299, 0.587, 0.114)


def sample_color_jitter(seed: tf.Tensor, strength: float) -> tf.Tensor:
    """Parameters [6] of one clip's photometric change: R, G, B gains, brightness, contrast, saturation.

    Gains, contrast and saturation are factors exp(u * range * strength), brightness an offset u * 25 * strength,
    with u uniform in [-1, 1] (stateless, from `seed`); `apply_color_jitter` applies them.
    """
    u = 2.0 * tf.random.stateless_uniform([6], seed=seed, dtype=tf.float32) - 1.0
    ranges = tf.constant([JITTER_LOG_GAIN] * 3 + [JITTER_BRIGHTNESS, JITTER_LOG_CONTRAST, JITTER_LOG_SATURATION])
    v = u * ranges * float(strength)
    return tf.concat([tf.exp(v[:3]), v[3:4], tf.exp(v[4:])], axis=0)


def apply_color_jitter(frames: tf.Tensor, params: tf.Tensor) -> tf.Tensor:
    """Applies `sample_color_jitter`'s parameters to RGB frames [..., H, W, 3] in 0..255.

    In order: per-channel gains (a colour cast), the brightness offset, contrast about the mean of all the
    frames given (one clip: the change is the clip's, not each frame's), saturation about each pixel's luma
    (ITU-R 601 weights); clipped to [0, 255].
    """
    x = tf.cast(frames, tf.float32) * params[:3] + params[3]
    mean = tf.reduce_mean(x)
    x = mean + (x - mean) * params[4]
    luma = tf.reduce_sum(x * tf.constant(_LUMA), axis=-1, keepdims=True)
    x = luma + (x - luma) * params[5]
    return tf.clip_by_value(x, 0.0, 255.0)


def projective_transform(images: tf.Tensor, affine: tf.Tensor, out_size, interpolation: str,
                         fill: float) -> tf.Tensor:
    """Applies p_in = A p_out + b to [N, H, W, C] float32 images (TF's projective transform, no custom op)."""
    transform = tf.concat([tf.reshape(affine, [6]), tf.zeros([2])], axis=0)[None]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transform, output_shape=tf.cast(out_size, tf.int32),
        fill_value=tf.constant(fill, tf.float32), interpolation=interpolation, fill_mode="CONSTANT",
    )


def area_prefiltered(frames: tf.Tensor, affine: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Frames [T, H, W, C] area-resized to the scale `affine` samples them at, with the map onto them.

    The transform reads s = sqrt|det A| input pixels per output pixel; when s > 1 the frames are area-averaged to
    round(H / s) x round(W / s) (tf.image.resize 'area': box means, OpenCV's INTER_AREA) and the map is composed
    with that resize (pixel centres at integers: p_small = k (p_in + 1/2) - 1/2 on each axis), so every output
    pixel still lands where it did. Otherwise the frames and the map are returned unchanged.
    """
    a = affine[:, :2]
    shrink = tf.sqrt(tf.abs(tf.linalg.det(a)))
    size = tf.cast(tf.shape(frames)[1:3], tf.float32)

    def shrunk():
        small_size = tf.maximum(tf.cast(tf.round(size / shrink), tf.int32), 1)
        small = tf.image.resize(tf.cast(frames, tf.float32), small_size, method="area")
        k = tf.cast(small_size, tf.float32) / size
        k_xy = tf.stack([k[1], k[0]])  # the map's rows are x (width) then y (height)
        moved = tf.concat([a * k_xy[:, None], (k_xy * (affine[:, 2] + 0.5) - 0.5)[:, None]], axis=1)
        return small, moved

    return tf.cond(shrink > 1.0, shrunk, lambda: (tf.cast(frames, tf.float32), affine))


def apply_transform(frames: tf.Tensor, maps: Dict[str, tf.Tensor], flows: Dict[str, tf.Tensor], affine: tf.Tensor,
                    out_size, antialias: bool = False
                    ) -> Tuple[tf.Tensor, Dict[str, tf.Tensor], tf.Tensor, Dict[str, tf.Tensor]]:
    """Transforms a clip consistently.

    Args:
      frames: [T, H, W, 3] float32.
      maps: dict of binary [T, H, W] maps (an object's mask, the void map): resampled bilinearly and
        thresholded at 0.5, which follows a moved boundary more closely than nearest-neighbour ids.
      flows: dict of [T, H, W, 2] float32 (u, v) flows in input pixels.
      affine: [2, 3] from `sample_transform`.
      out_size: (h, w).
      antialias: frames the map shrinks are area-averaged first (`area_prefiltered`); maps and flows are not
        (masks are thresholded, flows are smooth).

    Returns:
      frames [T, h, w, 3] (bilinear, 0 outside), maps dict [T, h, w] float32 0/1, inside [T, h, w] float32
      (1 where the output pixel comes from inside the input image), flows dict [T, h, w, 2] in output pixels.
    """
    frames_in, frames_affine = area_prefiltered(frames, affine) if antialias else (tf.cast(frames, tf.float32), affine)
    frames_out = projective_transform(frames_in, frames_affine, out_size, "BILINEAR", 0.0)
    maps_out = {}
    for key, value in maps.items():
        moved = projective_transform(tf.cast(value, tf.float32)[..., None], affine, out_size, "BILINEAR", 0.0)
        maps_out[key] = tf.cast(moved[..., 0] > 0.5, tf.float32)
    ones = tf.ones_like(frames[:1, :, :, :1], dtype=tf.float32)
    inside = projective_transform(ones, affine, out_size, "NEAREST", 0.0)[..., 0]
    inside = tf.repeat(inside, tf.shape(frames)[0], axis=0)
    inverse = tf.linalg.inv(affine[:, :2])
    flows_out = {}
    for key, flow in flows.items():
        moved = projective_transform(tf.cast(flow, tf.float32), affine, out_size, "BILINEAR", 0.0)
        # Vectors transform by A^-1: out[..., i] = sum_j inverse[i, j] * moved[..., j].
        flows_out[key] = tf.einsum("ij,...j->...i", inverse, moved)
    return frames_out, maps_out, inside, flows_out


def object_maps(ids: tf.Tensor, object_id: tf.Tensor) -> Dict[str, tf.Tensor]:
    """{'mask': 1 where ids == object_id, 'void': 1 where ids == 255}, float32 [..., H, W]."""
    return {
        "mask": tf.cast(tf.equal(ids, tf.cast(object_id, ids.dtype)), tf.float32),
        "void": tf.cast(tf.equal(ids, tf.cast(VOID_ID, ids.dtype)), tf.float32),
    }


def finish_void(void: tf.Tensor, inside: tf.Tensor) -> tf.Tensor:
    """The void map of the output: ground-truth void, or outside the input image."""
    return tf.maximum(void, 1.0 - inside)
