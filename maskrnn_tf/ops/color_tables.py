"""The first-frame colour prior as a network input (`MaskRNNConfig.color_prior_input`): a per-object table of
colour shares, looked up at every pixel of a frame in the graph.

The table is fitted on the object's first annotated frame (`maskrnn_tf.inference.color_gate.fit_color_model`
with space 'rgb'): for each of BINS^3 RGB bins, the share p = h_obj / (h_obj + h_bg) of the object's colour
histogram against the background's within a band around it. The lookup bins a frame's R, G and B into BINS
levels each, as the NumPy fit does for uint8 frames, so training (augmented float frames), segmenting and a
server give the network the same map for the same pixels.
"""
from __future__ import annotations

import tensorflow as tf

BINS = 16  # levels per RGB channel: tables have BINS**3 = 4096 entries


def rgb_bins(frames: tf.Tensor, bins: int = BINS) -> tf.Tensor:
    """int32 [..., H, W] bin of every pixel of RGB frames [..., H, W, 3] in 0..255 (values outside are clipped):
    (r * bins + g) * bins + b with each channel cut into `bins` equal levels."""
    if 256 % bins:
        raise ValueError(f"bins must divide 256, got {bins}.")
    level = tf.cast(tf.floor(tf.clip_by_value(tf.cast(frames, tf.float32), 0.0, 255.0) / (256 // bins)), tf.int32)
    return (level[..., 0] * bins + level[..., 1]) * bins + level[..., 2]


def color_prior(frames: tf.Tensor, tables: tf.Tensor) -> tf.Tensor:
    """float32 [B, H, W]: each pixel's colour share in its object's table.

    Args:
      frames: [B, H, W, 3] RGB 0..255, one per object.
      tables: [B, bins**3] colour shares in 0..1, one per object (`fit_color_model(..., space='rgb')`).
    """
    tables = tf.cast(tables, tf.float32)
    size = tables.shape[-1]
    bins = BINS if size is None else round(size ** (1 / 3))
    if size is not None and bins ** 3 != size:
        raise ValueError(f"colour tables must have bins**3 entries per object, got {size}.")
    return tf.gather(tables, rgb_bins(frames, bins), batch_dims=1)
