"""The gradient update shared by training and online finetuning: loss scaling, clipping, non-finite gradients.

Under float16 the optimizer is a `keras.optimizers.LossScaleOptimizer`. Its protocol, followed here:
  1. `scale_loss(optimizer, loss)` INSIDE the `tf.GradientTape` block (a product taken after the block
     closed is not recorded, and the gradient of an unrecorded target is None for every weight);
  2. `apply_clipped(...)` with the gradients of that scaled loss: it unscales them, clips the true gradient by
     its global norm, scales them back and hands them to the LossScaleOptimizer, which unscales them again,
     skips the update when they are not finite and adapts its scale.
Without loss scaling (float32, bfloat16) the scale is 1 and a non-finite gradient becomes a zero gradient.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import keras
import tensorflow as tf


def is_loss_scaling(optimizer: keras.optimizers.Optimizer) -> bool:
    """True when `optimizer` is a LossScaleOptimizer (float16 training)."""
    return isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


def loss_scale(optimizer: keras.optimizers.Optimizer) -> Union[tf.Tensor, float]:
    """The current loss scale of `optimizer` (float32 tensor), or 1.0 without loss scaling."""
    if not is_loss_scaling(optimizer):
        return 1.0
    return tf.cast(optimizer.scale_loss(1.0), tf.float32)


def scale_loss(optimizer: keras.optimizers.Optimizer, loss: tf.Tensor) -> tf.Tensor:
    """`loss` times the current loss scale (unchanged without loss scaling). Call it inside the tape."""
    return optimizer.scale_loss(loss) if is_loss_scaling(optimizer) else loss


def zero_unless_finite(grads, norm: tf.Tensor):
    """`grads` if their global `norm` is finite, else zeros: the gradient is dropped, not the update (Adam
    still steps along its decayed first moment, as after any zero gradient). A non-finite gradient (seen in
    bfloat16 about once per 100 steps, with a finite loss) would otherwise poison every weight through the
    global-norm clip."""
    finite = tf.math.is_finite(norm)
    return [tf.where(finite, g, tf.zeros_like(g)) for g in grads]


def apply_clipped(optimizer: keras.optimizers.Optimizer, scaled_grads: Sequence[Optional[tf.Tensor]],
                  variables: Sequence[tf.Variable], clip_norm: float, replicas: int = 1) -> tf.Tensor:
    """Applies one update from the gradients of `scale_loss(optimizer, loss)`; returns the true global norm.

    scaled_grads: one per variable (None = no gradient, treated as zero), already summed over replicas.
    clip_norm: global-norm clip of the true (unscaled) gradient; 0 disables clipping.
    replicas: replicas in sync; the Keras optimizer sums its replicas' gradients again, so each replica hands
      it 1/replicas of the summed gradient.
    The returned norm is +inf or NaN when the gradient is not finite; the gradient is then dropped: without loss
    scaling the update runs on a zero gradient (Adam's decayed momentum, its iteration counted), with it the
    LossScaleOptimizer skips the update and halves the scale.
    """
    grads: List[tf.Tensor] = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                              for g, v in zip(scaled_grads, variables)]
    scale = loss_scale(optimizer)
    unscaled = [g / scale for g in grads]
    if clip_norm > 0:
        unscaled, norm = tf.clip_by_global_norm(unscaled, clip_norm)
    else:
        norm = tf.linalg.global_norm(unscaled)
    # Re-applying the scale is what a LossScaleOptimizer expects: it divides by it, and checks finiteness itself.
    final = [g * (scale / replicas) for g in unscaled]
    if not is_loss_scaling(optimizer):
        final = zero_unless_finite(final, norm)
    optimizer.apply_gradients(zip(final, variables))
    return norm
