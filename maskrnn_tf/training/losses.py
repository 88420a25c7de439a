"""The training losses (the paper's section 3.4): class-balanced BCE on logits and smooth-L1 on box deltas; a soft
Jaccard term beside the BCE (`loss.iou_weight`, not the paper's).

Both return one value per batch element (shape [B]) so that a distributed loop can sum them and divide by the
global batch size.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import tensorflow as tf

from maskrnn_tf.ops import box_iou, encode_box_deltas, mask_to_box


def balanced_bce_per_example(logits: tf.Tensor, labels: tf.Tensor, void: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Class-balanced binary cross-entropy (OSVOS), one value per example, normalised by the pixel count.

    With N+ foreground, N- background and N = N+ + N- valid pixels of an example,
      L = [ (N-/N) sum_fg -log p + (N+/N) sum_bg -log(1-p) ] / N,
    computed from logits in the stable form (-log sigmoid(x) = softplus(-x), -log(1 - sigmoid(x)) =
    softplus(x)). Void pixels (void != 0) are left out of everything. An example without valid pixels gives 0,
    and so does one with a single class: each class is weighted by the other's share, so a frame whose object
    is gone (or covers it all) trains nothing, false positives there included. That is the paper's loss;
    `bce_per_example` (loss.class_balance=False, the CPU recipe's) trains such frames too.

    Args:
      logits: [B, H, W] float. labels: [B, H, W] 0/1. void: optional [B, H, W] (non-zero = ignore).
    Returns:
      [B] float32.
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.float32)
    valid = tf.ones_like(labels) if void is None else 1.0 - tf.cast(tf.not_equal(void, 0), tf.float32)
    fg = labels * valid
    bg = (1.0 - labels) * valid
    n_fg = tf.reduce_sum(fg, axis=[1, 2])
    n_bg = tf.reduce_sum(bg, axis=[1, 2])
    n = tf.maximum(n_fg + n_bg, 1.0)
    loss_fg = tf.reduce_sum(fg * tf.nn.softplus(-logits), axis=[1, 2])
    loss_bg = tf.reduce_sum(bg * tf.nn.softplus(logits), axis=[1, 2])
    return ((n_bg / n) * loss_fg + (n_fg / n) * loss_bg) / n


def bce_per_example(logits: tf.Tensor, labels: tf.Tensor, void: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Plain binary cross-entropy averaged over the valid pixels of each example (no class balancing).

    L = [ sum_fg -log p + sum_bg -log(1-p) ] / N over the N valid pixels (void != 0 left out); an example
    without valid pixels gives 0. Args as `balanced_bce_per_example`; returns [B] float32.
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.float32)
    valid = tf.ones_like(labels) if void is None else 1.0 - tf.cast(tf.not_equal(void, 0), tf.float32)
    per_pixel = labels * tf.nn.softplus(-logits) + (1.0 - labels) * tf.nn.softplus(logits)
    n = tf.maximum(tf.reduce_sum(valid, axis=[1, 2]), 1.0)
    return tf.reduce_sum(valid * per_pixel, axis=[1, 2]) / n


def soft_jaccard_per_example(logits: tf.Tensor, labels: tf.Tensor, void: Optional[tf.Tensor] = None,
                             smooth: float = 1.0) -> tf.Tensor:
    """1 - soft IoU of the probabilities with the mask, one value per example (the Jaccard index J that DAVIS
    scores, made differentiable with p = sigmoid(logits) for the hard mask):

      L = 1 - (sum p y + smooth) / (sum p + sum y - sum p y + smooth)

    over the valid pixels (void != 0 left out). Unlike a per-pixel mean it weighs the summed probability outside
    the object against the object's size: with saturated probabilities a mask grown to twice a small object's area
    costs half of the loss's range. With soft ones every background pixel's probability counts in the union, so it
    also pushes diffuse background probability towards 0, and a frame's loss grows with its area; a frame without
    the object gives S / (S + smooth) for S the summed probability (near 0 only for S well under `smooth`). Args as
    `balanced_bce_per_example`; returns [B] float32.
    """
    probs = tf.sigmoid(tf.cast(logits, tf.float32))
    labels = tf.cast(labels, tf.float32)
    if void is not None:
        valid = 1.0 - tf.cast(tf.not_equal(void, 0), tf.float32)
        probs, labels = probs * valid, labels * valid
    both = tf.reduce_sum(probs * labels, axis=[1, 2])
    union = tf.reduce_sum(probs, axis=[1, 2]) + tf.reduce_sum(labels, axis=[1, 2]) - both
    return 1.0 - (both + smooth) / (union + smooth)


def smooth_l1(x: tf.Tensor, beta: float = 1.0) -> tf.Tensor:
    """Elementwise smooth-L1 (Huber with threshold `beta`): 0.5 x^2 / beta if |x| < beta else |x| - beta/2."""
    ax = tf.abs(x)
    return tf.where(ax < beta, 0.5 * tf.square(ax) / beta, ax - 0.5 * beta)


def localization_loss_per_example(
    deltas: tf.Tensor, proposals: tf.Tensor, gt_boxes: tf.Tensor, gt_valid: tf.Tensor,
    delta_weights: Sequence[float], min_iou: float = 0.0,
) -> tf.Tensor:
    """Smooth-L1 between predicted deltas and the Fast R-CNN targets of the gt box w.r.t. the proposals.

    Summed over (ty, tx, th, tw); zero where the gt box is not valid (object absent) and, with `min_iou` > 0,
    where the proposal's IoU with the gt box is below it (Fast R-CNN regresses only from proposals that overlap
    the object: from a proposal of a few pixels the targets run into the hundreds and the clipped update is all
    theirs). Returns [B] float32. The targets are constants (no gradient flows into the proposals).
    """
    targets = tf.stop_gradient(encode_box_deltas(gt_boxes, tf.stop_gradient(proposals), delta_weights))
    per = tf.reduce_sum(smooth_l1(tf.cast(deltas, tf.float32) - targets), axis=-1)
    keep = gt_valid
    if min_iou > 0:
        keep = keep & (box_iou(tf.stop_gradient(proposals), gt_boxes) >= min_iou)
    return tf.where(keep, per, tf.zeros_like(per))


def frame_losses(
    outputs: Dict[str, tf.Tensor], target: tf.Tensor, void: Optional[tf.Tensor], delta_weights: Sequence[float],
    seg_weight: float, loc_weight: float, class_balance: bool = True, loc_min_iou: float = 0.0,
    iou_weight: float = 0.0,
) -> Dict[str, tf.Tensor]:
    """Per-example losses [B] of one frame: 'seg', 'loc' (zeros when loc_weight == 0) and weighted 'total'.

    'seg' is the class-balanced BCE (class_balance=True, the paper's) or the plain BCE, plus `iou_weight` times
    the soft Jaccard loss (`soft_jaccard_per_example`) when it is above 0. The gt box is the tight box of the
    target mask with void pixels removed.
    """
    seg_fn = balanced_bce_per_example if class_balance else bce_per_example
    seg = seg_fn(outputs["logits"], target, void)
    if iou_weight:
        seg = seg + iou_weight * soft_jaccard_per_example(outputs["logits"], target, void)
    if loc_weight:
        clean = tf.cast(target, tf.float32)
        if void is not None:
            clean = clean * (1.0 - tf.cast(tf.not_equal(void, 0), tf.float32))
        gt_boxes, gt_valid = mask_to_box(clean, 0.5)
        loc = localization_loss_per_example(outputs["deltas"], outputs["proposals"], gt_boxes, gt_valid,
                                            delta_weights, loc_min_iou)
    else:
        loc = tf.zeros_like(seg)
    return {"seg": seg, "loc": loc, "total": seg_weight * seg + loc_weight * loc}
