"""The stage A (static) and stage B (recurrent, unrolled) training steps, distribution-aware.

Loss convention: per-example losses are summed and divided by the GLOBAL batch size on every replica, the
replica gradients are all-reduced (summed) here, clipped by their global norm, and handed to the optimizer.
That makes N replicas produce the same update as one device on the same global batch.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import keras
import tensorflow as tf

from maskrnn_tf.model import MaskRNN
from maskrnn_tf.ops import mask_to_box
from maskrnn_tf.training.config import TrainConfig
from maskrnn_tf.training.cooled_exponential_decay import CooledExponentialDecay
from maskrnn_tf.training.gradient_update import apply_clipped, is_loss_scaling, scale_loss
from maskrnn_tf.training.gradient_update import zero_unless_finite  # noqa: F401  (its former home)
from maskrnn_tf.training.losses import frame_losses


def make_optimizer(config: TrainConfig, policy: str, step: Optional[tf.Variable] = None) -> keras.optimizers.Optimizer:
    """Adam on an exponentially decaying learning rate, cooled to zero over the last optim.cooldown_steps
    (decoupled weight decay on the kernels with optim.weight_decay > 0); wrapped in a LossScaleOptimizer under
    float16.

    `step`: the run's step counter (steps done before the current one), which the schedule then follows instead
    of the optimizer's `iterations`: the LossScaleOptimizer does not count the updates it skips, so on
    `iterations` the schedule would lag the run by every skipped float16 step (and miss the end of its cooldown).
    """
    o = config.optim
    schedule = CooledExponentialDecay(o.learning_rate, o.decay_steps, o.decay_rate, config.total_steps,
                                      o.cooldown_steps)
    # Keras calls a learning rate that is a plain callable (not a schedule) with no argument.
    learning_rate = schedule if step is None else (lambda: schedule(step))
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, epsilon=o.epsilon,
                                      weight_decay=o.weight_decay or None)
    if o.weight_decay:
        # Decaying biases only shifts activations' offsets; the norm that regularises is the kernels'.
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> tf.Tensor:
    """The learning rate the next update uses."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return tf.convert_to_tensor(inner.learning_rate)


class TrainSteps:
    """Builds and runs the compiled train steps for one model/optimizer under one strategy.

    `static_step(batch)` and `clip_step(batch, reverse)` take distributed batches (from
    `strategy.experimental_distribute_dataset`) and return globally reduced scalars
    {'loss', 'seg', 'loc', 'grad_norm'}. `variables`: the variables the updates train (default: all the model's
    trainable variables; online finetuning may train fewer, `inference.finetune_layers`).
    """

    def __init__(self, model: MaskRNN, optimizer: keras.optimizers.Optimizer, config: TrainConfig,
                 strategy: tf.distribute.Strategy, global_step: tf.Variable,
                 variables: Optional[Sequence[tf.Variable]] = None):
        self.model = model
        self._variables = None if variables is None else list(variables)
        self.optimizer = optimizer
        self.config = config
        self.strategy = strategy
        self.global_step = global_step
        self._loss_scaling = is_loss_scaling(optimizer)
        if not optimizer.built:  # else the first traced step makes its variables, and TensorFlow traces it twice
            with strategy.scope():  # distributed as the model's are
                optimizer.build(self.variables)
        self.static_step = tf.function(self._static_step, jit_compile=False, autograph=False)
        self.clip_step = tf.function(self._clip_step, jit_compile=False, autograph=False)
        # XLA goes on the per-replica computation (the cross-replica parts are not compilable).
        self._static_replica = tf.function(self._static_replica_fn, jit_compile=config.jit_compile or None,
                                            autograph=False)
        self._clip_replica = tf.function(self._clip_replica_fn, jit_compile=config.jit_compile or None,
                                          autograph=False)
        self._frame_fn = self._one_frame
        if config.recompute:
            self._frame_fn = tf.recompute_grad(self._one_frame)

    # -- losses ----------------------------------------------------------------------------------------------
    def _losses(self, outputs: Dict[str, tf.Tensor], target: tf.Tensor, void: Optional[tf.Tensor]):
        c = self.config
        return frame_losses(outputs, target, void, self.model.config.delta_weights, c.loss.seg_weight,
                            c.loss.loc_weight, class_balance=c.loss.class_balance, loc_min_iou=c.loss.loc_min_iou,
                            iou_weight=c.loss.iou_weight)

    def static_losses(self, batch: Dict[str, tf.Tensor], training: bool = True) -> Dict[str, tf.Tensor]:
        """Per-example losses [B] of a stage A batch (the perturbed previous mask is fed as prev_probs)."""
        prev = tf.cast(batch["prev_mask"], tf.float32)
        boxes, _ = mask_to_box(prev)
        inputs = {"frame": batch["frame"], "flow_to_prev": batch["flow_to_prev"],
                  "flow_to_next": batch["flow_to_next"], "prev_probs": prev, "prev_boxes": boxes}
        if "color_model" in batch:
            inputs["color_model"] = batch["color_model"]
        outputs = self.model(inputs, training=training)
        return self._losses(outputs, batch["mask"], batch.get("void"))

    def _one_frame(self, frame, flow_prev, flow_next, prev_probs, prev_boxes, *color_model):
        # color_model: none, or the batch's colour tables [B, 4096] (a model with color_prior_input); a varargs
        # tail, as tf.recompute_grad passes tensors only.
        inputs = {"frame": frame, "flow_to_prev": flow_prev, "flow_to_next": flow_next,
                  "prev_probs": prev_probs, "prev_boxes": prev_boxes}
        if color_model:
            inputs["color_model"] = color_model[0]
        out = self.model(inputs, training=True)
        return out["logits"], out["probs"], out["boxes"], out["proposals"], out["deltas"]

    def clip_losses(self, batch: Dict[str, tf.Tensor], reverse: tf.Tensor = False) -> Dict[str, tf.Tensor]:
        """Per-example losses [B] of a stage B batch, summed over frames 1..T-1 of the unrolled recurrence.

        Frame 0's mask (or the batch's `seed_masks`, see `make_clip_dataset`) seeds the recurrence; each
        prediction (probs and boxes) is fed back as the next frame's previous prediction and the model warps it
        with the flow: gradients flow through time and through the warps (nothing is stopped). `reverse` plays
        the clip backwards (exact: the flows swap), each element whose last frame holds its object. With
        data.clip_burn_in = k the first k predicted frames are a burn-in: no loss, and their last prediction seeds
        the rest as a constant (stop_gradient), so that the losses are those of a network carrying its own
        k-frame-old mask, at k forward passes' cost.
        """
        frames = tf.cast(batch["frames"], tf.float32)
        to_prev = tf.cast(batch["flows_to_prev"], tf.float32)
        to_next = tf.cast(batch["flows_to_next"], tf.float32)
        masks = tf.cast(batch["masks"], tf.float32)
        void = batch.get("void")
        # Per element: a clip whose object is gone by its last frame plays forwards (backwards, it would start from
        # an empty mask and teach the network to make the object appear from nothing, which segmenting never asks).
        reverse = tf.logical_and(tf.convert_to_tensor(reverse), tf.reduce_any(masks[:, -1] > 0.5, axis=[1, 2]))

        def pick(backwards, forwards):
            """Per element, `backwards` where it plays backwards, else `forwards` (same shape [B, ...])."""
            where = tf.reshape(reverse, [-1] + [1] * (len(forwards.shape) - 1))
            return tf.where(where, backwards, forwards)

        def maybe_reverse(x):
            return pick(tf.reverse(x, [1]), x)

        frames, masks = maybe_reverse(frames), maybe_reverse(masks)
        to_prev, to_next = pick(tf.reverse(to_next, [1]), to_prev), pick(tf.reverse(to_prev, [1]), to_next)
        if void is not None:
            void = maybe_reverse(void)
        length = frames.shape[1]
        if length is None:
            raise ValueError("Stage B clips need a static clip length (batch the clip dataset with a fixed T).")
        prev = masks[:, 0]
        if "seed_masks" in batch:  # perturbed seeds (data.clip_seed_fraction): [B, 2 = forwards/backwards, H, W]
            seeds = tf.cast(batch["seed_masks"], tf.float32)
            prev = pick(seeds[:, 1], seeds[:, 0])
        prev_boxes, _ = mask_to_box(prev)
        tables = (tf.cast(batch["color_model"], tf.float32),) if "color_model" in batch else ()
        burn_in = self.config.data.clip_burn_in
        if not 0 <= burn_in <= length - 2:
            raise ValueError(f"A stage B clip of {length} frames leaves no frame to learn from after a burn-in of "
                             f"{burn_in}: the clip dataset must give clip_length + clip_burn_in frames.")
        for t in range(1, burn_in + 1):
            _, probs, boxes, _, _ = self._one_frame(frames[:, t], to_prev[:, t], to_next[:, t], prev, prev_boxes,
                                                    *tables)
            prev, prev_boxes = tf.stop_gradient(probs), tf.stop_gradient(boxes)
        totals = None
        for t in range(burn_in + 1, length):  # unrolled: T is small and static, and the graph stays one function
            logits, probs, boxes, proposals, deltas = self._frame_fn(
                frames[:, t], to_prev[:, t], to_next[:, t], prev, prev_boxes, *tables)
            out = {"logits": logits, "probs": probs, "boxes": boxes, "proposals": proposals, "deltas": deltas}
            losses = self._losses(out, masks[:, t], None if void is None else void[:, t])
            totals = losses if totals is None else {k: totals[k] + losses[k] for k in losses}
            prev, prev_boxes = probs, boxes
        return totals

    # -- the updates -----------------------------------------------------------------------------------------
    @property
    def variables(self) -> List[tf.Variable]:
        """The variables the updates train."""
        return self.model.trainable_variables if self._variables is None else self._variables

    def _apply(self, scaled_grads) -> tf.Tensor:
        """All-reduces the replica gradients of the scaled loss and applies the clipped update."""
        variables = self.variables
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(scaled_grads, variables)]
        replicas = self.strategy.num_replicas_in_sync
        if replicas > 1:
            grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
        return apply_clipped(self.optimizer, grads, variables, self.config.optim.clip_norm, replicas)

    def _inject(self, loss: tf.Tensor) -> tf.Tensor:
        at = self.config.inject_nan_at_step
        if at is None:
            return loss
        # Steps are numbered from 1 (console, TensorBoard); global_step counts the ones done before this one.
        return tf.where(tf.equal(self.global_step + 1, at), tf.constant(float("nan")), loss)

    def _finish(self, losses: Dict[str, tf.Tensor], global_batch: int, tape_loss: tf.Tensor, norm):
        return {"loss": tape_loss, "seg": tf.reduce_sum(losses["seg"]) / global_batch,
                "loc": tf.reduce_sum(losses["loc"]) / global_batch, "grad_norm": norm}

    def _static_replica_fn(self, batch):
        global_batch = self.config.data.batch_size
        with tf.GradientTape() as tape:
            losses = self.static_losses(batch)
            loss = self._inject(tf.reduce_sum(losses["total"]) / global_batch)
            # Inside the tape: a loss scaled after it closed has no gradient (float16 applied zero updates).
            target = scale_loss(self.optimizer, loss)
        norm = self._apply(tape.gradient(target, self.variables))
        return self._finish(losses, global_batch, loss, norm)

    def _clip_replica_fn(self, batch, reverse):
        global_batch = self.config.data.clip_batch_size
        with tf.GradientTape() as tape:
            losses = self.clip_losses(batch, reverse)
            loss = self._inject(tf.reduce_sum(losses["total"]) / global_batch)
            # Inside the tape: a loss scaled after it closed has no gradient (float16 applied zero updates).
            target = scale_loss(self.optimizer, loss)
        norm = self._apply(tape.gradient(target, self.variables))
        return self._finish(losses, global_batch, loss, norm)

    def _reduce(self, per_replica: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        out = {}
        for key, value in per_replica.items():
            if key == "grad_norm":  # identical on every replica (computed after the all-reduce)
                out[key] = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
            else:
                out[key] = self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
        self.global_step.assign_add(1)
        return out

    def _static_step(self, batch):
        return self._reduce(self.strategy.run(self._static_replica_fn_maybe_jit, args=(batch,)))

    def _clip_step(self, batch, reverse):
        return self._reduce(self.strategy.run(self._clip_replica_fn_maybe_jit, args=(batch, reverse)))

    @property
    def _static_replica_fn_maybe_jit(self) -> Callable:
        return self._static_replica if self.config.jit_compile else self._static_replica_fn

    @property
    def _clip_replica_fn_maybe_jit(self) -> Callable:
        return self._clip_replica if self.config.jit_compile else self._clip_replica_fn
