"""Box operations for the localization net.

Convention: boxes are float [..., 4] = (y1, x1, y2, x2) in pixel-edge coordinates of the frame: pixel
(row, col) covers [row, row + 1) x [col, col + 1), so the tight box of a mask whose rows run from r0 to r1
is y1 = r0, y2 = r1 + 1. Deltas follow the same order: (ty, tx, th, tw), the Fast R-CNN encoding.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import tensorflow as tf

DEFAULT_DELTA_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # the 0.1, 0.1, 0.2, 0.2 target normalisation, inverted
_MIN_SIZE = 1.0  # one pixel: keeps log() and divisions finite for degenerate boxes
_MAX_LOG_SCALE = 4.135166556742356  # log(1000 / 16), as in Detectron: bounds exp() when decoding


def mask_to_box(mask: tf.Tensor, threshold: float = 0.5) -> Tuple[tf.Tensor, tf.Tensor]:
    """Tight box of ``mask > threshold`` for each map of a batch.

    Args:
      mask: [N, H, W] or [N, H, W, 1] probabilities or binary masks.
      threshold: a pixel belongs to the object when its value is strictly greater.

    Returns:
      boxes [N, 4] float32 (y1, x1, y2, x2), zeros for an empty mask; valid [N] bool, False when empty.
    """
    mask = tf.convert_to_tensor(mask)
    if mask.shape.rank == 4:
        mask = mask[..., 0]
    on = tf.cast(mask, tf.float32) > threshold
    rows = tf.reduce_any(on, axis=2)  # [N, H]
    cols = tf.reduce_any(on, axis=1)  # [N, W]
    valid = tf.reduce_any(rows, axis=1)

    def extent(any_along: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        size = tf.shape(any_along)[1]
        index = tf.range(size, dtype=tf.int32)[None]
        first = tf.reduce_min(tf.where(any_along, index, size), axis=1)
        last = tf.reduce_max(tf.where(any_along, index, -1), axis=1)
        return tf.cast(first, tf.float32), tf.cast(last + 1, tf.float32)

    y1, y2 = extent(rows)
    x1, x2 = extent(cols)
    boxes = tf.stack([y1, x1, y2, x2], axis=-1)
    boxes = tf.where(valid[:, None], boxes, tf.zeros_like(boxes))
    return boxes, valid


def _centre_size(boxes: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    h = tf.maximum(boxes[..., 2] - boxes[..., 0], _MIN_SIZE)
    w = tf.maximum(boxes[..., 3] - boxes[..., 1], _MIN_SIZE)
    cy = 0.5 * (boxes[..., 0] + boxes[..., 2])
    cx = 0.5 * (boxes[..., 1] + boxes[..., 3])
    return cy, cx, h, w


def box_iou(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Intersection over union of paired boxes [..., 4] (y1, x1, y2, x2) -> [...]; 0 where both are empty."""
    a = tf.cast(a, tf.float32)
    b = tf.cast(b, tf.float32)
    height = tf.maximum(tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]), 0.0)
    width = tf.maximum(tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = height * width

    def area(box):
        return tf.maximum(box[..., 2] - box[..., 0], 0.0) * tf.maximum(box[..., 3] - box[..., 1], 0.0)

    return tf.math.divide_no_nan(inter, area(a) + area(b) - inter)


def encode_box_deltas(
    boxes: tf.Tensor, anchors: tf.Tensor, weights: Sequence[float] = DEFAULT_DELTA_WEIGHTS
) -> tf.Tensor:
    """Fast R-CNN regression targets (ty, tx, th, tw) of `boxes` relative to `anchors`, times `weights`."""
    boxes = tf.cast(boxes, tf.float32)
    anchors = tf.cast(anchors, tf.float32)
    by, bx, bh, bw = _centre_size(boxes)
    ay, ax, ah, aw = _centre_size(anchors)
    wy, wx, wh, ww = weights
    return tf.stack(
        [wy * (by - ay) / ah, wx * (bx - ax) / aw, wh * tf.math.log(bh / ah), ww * tf.math.log(bw / aw)],
        axis=-1,
    )


def decode_box_deltas(
    deltas: tf.Tensor, anchors: tf.Tensor, weights: Sequence[float] = DEFAULT_DELTA_WEIGHTS
) -> tf.Tensor:
    """Inverse of `encode_box_deltas`: boxes (y1, x1, y2, x2) from deltas and anchors."""
    deltas = tf.cast(deltas, tf.float32)
    anchors = tf.cast(anchors, tf.float32)
    ay, ax, ah, aw = _centre_size(anchors)
    wy, wx, wh, ww = weights
    cy = deltas[..., 0] / wy * ah + ay
    cx = deltas[..., 1] / wx * aw + ax
    h = tf.exp(tf.minimum(deltas[..., 2] / wh, _MAX_LOG_SCALE)) * ah
    w = tf.exp(tf.minimum(deltas[..., 3] / ww, _MAX_LOG_SCALE)) * aw
    return tf.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], axis=-1)


def enlarge_boxes(boxes: tf.Tensor, scale: float = 1.25) -> tf.Tensor:
    """Scales each box's height and width by `scale` about its centre."""
    boxes = tf.cast(boxes, tf.float32)
    cy = 0.5 * (boxes[..., 0] + boxes[..., 2])
    cx = 0.5 * (boxes[..., 1] + boxes[..., 3])
    half_h = 0.5 * scale * (boxes[..., 2] - boxes[..., 0])
    half_w = 0.5 * scale * (boxes[..., 3] - boxes[..., 1])
    return tf.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w], axis=-1)


def clip_boxes(boxes: tf.Tensor, height, width) -> tf.Tensor:
    """Clips boxes to the frame [0, height] x [0, width]."""
    boxes = tf.cast(boxes, tf.float32)
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    y1 = tf.clip_by_value(boxes[..., 0], 0.0, h)
    x1 = tf.clip_by_value(boxes[..., 1], 0.0, w)
    y2 = tf.clip_by_value(boxes[..., 2], 0.0, h)
    x2 = tf.clip_by_value(boxes[..., 3], 0.0, w)
    return tf.stack([y1, x1, y2, x2], axis=-1)


def boxes_to_normalized(boxes: tf.Tensor, height, width) -> tf.Tensor:
    """Pixel-edge boxes to the normalized form of `tf.image.crop_and_resize`.

    crop_and_resize samples the image at pixel-centre coordinate ``n * (size - 1)``; pixel-edge coordinate
    e is pixel-centre coordinate e - 0.5, so n = (e - 0.5) / (size - 1): the crop spans the box's outer edges
    (RoIAlign-style continuous coordinates) on a map of `height` x `width` cells. For a feature map of stride s
    use `boxes_on_feature_map`: normalized by the frame's size, a box lands up to about half a cell off on it where
    the sides are multiples of s, more where they are not (0.84 of a cell at 854 for s = 16: the map's cells cover
    floor(size / s) * s pixels, each s of them).
    """
    boxes = tf.cast(boxes, tf.float32)
    h = tf.maximum(tf.cast(height, tf.float32) - 1.0, 1.0)
    w = tf.maximum(tf.cast(width, tf.float32) - 1.0, 1.0)
    return tf.stack(
        [(boxes[..., 0] - 0.5) / h, (boxes[..., 1] - 0.5) / w,
         (boxes[..., 2] - 0.5) / h, (boxes[..., 3] - 0.5) / w],
        axis=-1,
    )


def boxes_on_feature_map(boxes: tf.Tensor, stride: int, map_height, map_width) -> tf.Tensor:
    """Pixel-edge boxes of the frame to `crop_and_resize`'s normalized form on a feature map of `stride` (cell j
    covers pixels j * stride to (j + 1) * stride): edge e is the map's edge coordinate e / stride."""
    return boxes_to_normalized(tf.cast(boxes, tf.float32) / float(stride), map_height, map_width)


def _sample_coordinates(start: tf.Tensor, end: tf.Tensor, size: tf.Tensor, count: int) -> tf.Tensor:
    """[N, count] sample positions (pixel-centre units) of crop_and_resize along one axis."""
    extent = tf.cast(size - 1, tf.float32)
    if count > 1:
        steps = tf.range(count, dtype=tf.float32)[None, :]
        return start[:, None] * extent + steps * ((end - start) * extent / (count - 1))[:, None]
    return (0.5 * (start + end) * extent)[:, None]


def bilinear_crops(image: tf.Tensor, normalized_boxes: tf.Tensor, box_indices: tf.Tensor,
                   crop_size: Tuple[int, int]) -> tf.Tensor:
    """`tf.image.crop_and_resize(..., method="bilinear", extrapolation_value=0)` from gathers and arithmetic.

    The same sampling (box corner n at pixel-centre coordinate n * (size - 1), crop_size points spread evenly
    between the corners; a sample outside the image is 0) and the same gradients with respect to the image and
    the boxes, but XLA compiles it (CropAndResize has no XLA kernel, so a model using it cannot be jit-compiled).

    Args:
      image: [B, H, W, C] float32.
      normalized_boxes: [N, 4] (y1, x1, y2, x2) normalized as crop_and_resize takes them.
      box_indices: [N] int32 index into the batch of `image`.
      crop_size: (crop height, crop width).

    Returns:
      [N, crop height, crop width, C] float32.
    """
    image = tf.convert_to_tensor(image, tf.float32)
    boxes = tf.convert_to_tensor(normalized_boxes, tf.float32)
    box_indices = tf.convert_to_tensor(box_indices, tf.int32)
    height, width = tf.shape(image)[1], tf.shape(image)[2]
    crop_h, crop_w = int(crop_size[0]), int(crop_size[1])
    ys = _sample_coordinates(boxes[:, 0], boxes[:, 2], height, crop_h)  # [N, ch]
    xs = _sample_coordinates(boxes[:, 1], boxes[:, 3], width, crop_w)  # [N, cw]
    inside = ((ys >= 0) & (ys <= tf.cast(height - 1, tf.float32)))[:, :, None] & (
        (xs >= 0) & (xs <= tf.cast(width - 1, tf.float32)))[:, None, :]
    top, left = tf.floor(ys), tf.floor(xs)
    y_lerp = (ys - top)[:, :, None, None]  # ceil - floor is 1 except on a pixel centre, where the lerp is 0
    x_lerp = (xs - left)[:, None, :, None]

    def index(values: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(tf.cast(values, tf.int32), 0, size - 1)

    y0, y1 = index(top, height), index(tf.math.ceil(ys), height)
    x0, x1 = index(left, width), index(tf.math.ceil(xs), width)
    n = tf.shape(boxes)[0]
    batch = tf.broadcast_to(box_indices[:, None, None], [n, crop_h, crop_w])

    def gather(rows: tf.Tensor, cols: tf.Tensor) -> tf.Tensor:
        r = tf.broadcast_to(rows[:, :, None], [n, crop_h, crop_w])
        c = tf.broadcast_to(cols[:, None, :], [n, crop_h, crop_w])
        return tf.gather_nd(image, tf.stack([batch, r, c], axis=-1))

    top_left, top_right = gather(y0, x0), gather(y0, x1)
    bottom_left, bottom_right = gather(y1, x0), gather(y1, x1)
    upper = top_left + (top_right - top_left) * x_lerp
    lower = bottom_left + (bottom_right - bottom_left) * x_lerp
    crops = upper + (lower - upper) * y_lerp
    return tf.where(inside[..., None], crops, tf.zeros_like(crops))


def roi_pool(
    features: tf.Tensor, normalized_boxes: tf.Tensor, box_indices: tf.Tensor, output_size: int = 7
) -> tf.Tensor:
    """RoI pooling: a bilinear crop to 2k x 2k (crop_and_resize's sampling, `bilinear_crops`), then 2x2
    max-pool to k x k.

    Args:
      features: [B, h, w, C] feature map.
      normalized_boxes: [N, 4] boxes in crop_and_resize's normalized form (see `boxes_to_normalized`).
      box_indices: [N] int32 index into the batch of `features` for each box.
      output_size: k.

    Returns:
      [N, k, k, C] in the dtype of `features`.
    """
    crops = bilinear_crops(tf.cast(features, tf.float32), normalized_boxes, box_indices,
                           (2 * output_size, 2 * output_size))
    pooled = tf.nn.max_pool2d(crops, ksize=2, strides=2, padding="VALID")
    return tf.cast(pooled, features.dtype)


def box_mask(boxes: tf.Tensor, height, width) -> tf.Tensor:
    """[N, H, W] float32: 1 where the pixel centre lies inside the box, else 0."""
    boxes = tf.cast(boxes, tf.float32)
    ys = tf.range(height, dtype=tf.float32) + 0.5
    xs = tf.range(width, dtype=tf.float32) + 0.5
    inside_y = (ys[None, :] >= boxes[:, 0:1]) & (ys[None, :] <= boxes[:, 2:3])
    inside_x = (xs[None, :] >= boxes[:, 1:2]) & (xs[None, :] <= boxes[:, 3:4])
    return tf.cast(inside_y[:, :, None] & inside_x[:, None, :], tf.float32)
