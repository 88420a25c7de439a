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


def fit_color_tables(frame: tf.Tensor, labels: tf.Tensor, object_ids: tf.Tensor, band: float,
                     bins: int = BINS, smoothing: float = 0.5) -> tf.Tensor:
    """float32 [N, bins**3]: the graph's `fit_color_model(frame, labels, object_ids, band, bins, space='rgb')`.

    For each object, p = h_obj / (h_obj + h_bg) per RGB bin, both histograms normalised after `smoothing` counts
    are added to every bin; h_bg counts the background pixels (label 0) within `band` x the frame's longer side of
    the object (Euclidean distance between pixel centres, as OpenCV's precise distance transform measures it).
    For a model server's first frame, where no NumPy runs.

    Args:
      frame: [H, W, 3] RGB 0..255 (uint8 or float).
      labels: [H, W] integer ids (0 background, 255 void: neither object nor background).
      object_ids: [N] the objects' ids.
      band: the background band's width, a fraction of the frame's longer side.
    """
    labels = tf.cast(labels, tf.int32)
    object_ids = tf.cast(object_ids, tf.int32)
    size = bins ** 3
    index = tf.reshape(rgb_bins(frame, bins), [-1])  # [H*W]
    shape = tf.shape(labels)
    radius = band * tf.cast(tf.maximum(shape[0], shape[1]), tf.float32)
    reach = tf.cast(tf.floor(radius), tf.int32)
    offsets = tf.cast(tf.range(-reach, reach + 1), tf.float32)
    disk = tf.cast(offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius ** 2, tf.float32)  # [2R+1, 2R+1]
    inside = tf.cast(tf.equal(labels[None], object_ids[:, None, None]), tf.float32)  # [N, H, W]
    # A pixel is within the radius of the object when the disk around it holds an object pixel.
    near = tf.nn.conv2d(inside[..., None], disk[..., None, None], strides=1, padding="SAME")[..., 0] > 0.5
    around = tf.cast(near & tf.equal(labels, 0)[None], tf.float32)

    def histogram(weights: tf.Tensor) -> tf.Tensor:  # [N, H, W] -> [N, size], normalised with smoothing
        counts = tf.map_fn(lambda w: tf.math.unsorted_segment_sum(tf.reshape(w, [-1]), index, size), weights)
        return (counts + smoothing) / (tf.reduce_sum(counts, axis=1, keepdims=True) + smoothing * size)

    obj, bg = histogram(inside), histogram(around)
    return obj / (obj + bg)
