"""Online finetuning on the first frame of the video to segment (the paper's online finetuning).

Both nets train for N iterations on augmented views of the first frame (the data component's finetune
pipeline: the same augmentations as offline training, the previous mask being the perturbed first-frame
mask, no recurrence), with Adam on a decaying learning rate and the training losses.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from maskrnn_tf.data.pipelines import make_finetune_dataset
from maskrnn_tf.inference.finetune_layers import FINETUNE_LAYERS, finetuned_variables
from maskrnn_tf.inference.first_mask import FirstMask, labels_at_size
from maskrnn_tf.inference.propagation import AnyFlowFn, NamedFlowFn, StepFn, flow_between
from maskrnn_tf.inference.video_reader import VideoSource, resize_frame, working_size
from maskrnn_tf.model import MaskRNN
from maskrnn_tf.model.rebuild import compute_dtypes
from maskrnn_tf.ops import mask_to_box
from maskrnn_tf.training.losses import frame_losses
from maskrnn_tf.training.gradient_update import apply_clipped, is_loss_scaling, scale_loss

# float16 starts its loss scale high (2^15) and halves it at each step whose gradient overflows; such a step is
# skipped, not counted as an iteration and its batch used again, up to this many times per finetuning.
MAX_SKIPPED = 30


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Online finetuning settings.

    Attributes:
      steps: iterations (0 skips finetuning).
      learning_rate: initial Adam learning rate; it decays exponentially to `final_lr_fraction` of it.
      final_lr_fraction: learning rate at the last step relative to the first.
      batch_size: objects per iteration (0 = all objects of the video, at most 4).
      seg_weight, loc_weight: loss weights (as in training).
      class_balance: class-balanced BCE (the paper's) or plain BCE; use what the model was trained with.
      iou_weight, loc_min_iou: a soft Jaccard term's weight and the box loss's IoU floor (`LossConfig`; 0 =
        none, the paper's); use what the model was trained with.
      clip_norm: global gradient-norm clipping (0 disables).
      seed: augmentation / perturbation seed.
      layers: the weights the updates train (`finetune_layers.FINETUNE_LAYERS`: "all", "block5" or "heads").
    """

    steps: int = 200
    learning_rate: float = 1e-5
    final_lr_fraction: float = 0.1
    batch_size: int = 0
    seg_weight: float = 1.0
    loc_weight: float = 1.0
    class_balance: bool = True
    iou_weight: float = 0.0
    loc_min_iou: float = 0.0
    clip_norm: float = 10.0
    seed: int = 0
    layers: str = "all"

    def __post_init__(self) -> None:
        if self.layers not in FINETUNE_LAYERS:
            raise ValueError(f"FinetuneConfig: layers must be one of {', '.join(FINETUNE_LAYERS)}: {self}.")
        if self.steps < 0 or self.learning_rate <= 0 or not 0 < self.final_lr_fraction <= 1:
            raise ValueError(f"FinetuneConfig: need steps >= 0, learning_rate > 0, 0 < final_lr_fraction <= 1: {self}.")


def _batch_losses(model: MaskRNN, batch, config: FinetuneConfig, training: bool):
    prev = tf.cast(batch["prev_mask"], tf.float32)
    boxes, _ = mask_to_box(prev)
    inputs = {"frame": batch["frame"], "flow_to_prev": batch["flow_to_prev"],
              "flow_to_next": batch["flow_to_next"], "prev_probs": prev, "prev_boxes": boxes}
    if "color_model" in batch:
        inputs["color_model"] = tf.cast(batch["color_model"], tf.float32)
    out = model(inputs, training=training)
    losses = frame_losses(out, batch["mask"], batch.get("void"), model.config.delta_weights,
                          config.seg_weight, config.loc_weight, class_balance=config.class_balance,
                          loc_min_iou=config.loc_min_iou, iou_weight=config.iou_weight)
    return tf.reduce_mean(losses["total"])


def build_optimizer(optimizer: keras.optimizers.Optimizer, variables: Sequence[tf.Variable]) -> Dict[int, np.ndarray]:
    """Builds `optimizer` for `variables`; returns its fresh state for `reset_optimizer`: the few variables that do
    not start at zero (under float16 the loss scale; zeroed, every gradient would be 0/0 and every update skipped)."""
    if not optimizer.built:  # TrainSteps builds the optimizer it is given (a LossScaleOptimizer builds only once)
        optimizer.build(variables)
    return {id(v): v.numpy() for v in optimizer.variables if np.any(v.numpy() != 0)}


def reset_optimizer(optimizer: keras.optimizers.Optimizer, start: Dict[int, np.ndarray]) -> None:
    """Puts back the fresh state `build_optimizer` returned (Adam's moments and count at zero, the loss scale at
    its start), so that every video is finetuned as by a new optimizer without tracing the update again."""
    for variable in optimizer.variables:
        start_value = start.get(id(variable))
        variable.assign(tf.zeros_like(variable) if start_value is None else start_value)


class StaticFinetuner:
    """Static online finetuning of one model with one config, video after video.

    The update is traced once per batch shape and reused by later videos (tracing the two-stream update costs
    more than many updates); every run starts from a fresh optimizer (Adam's moments and count at zero, the
    float16 loss scale at its start), so a run gives what a new `finetune` call gives.
    """

    def __init__(self, model: MaskRNN, config: FinetuneConfig = FinetuneConfig()):
        self.model = model
        self.config = config
        schedule = keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, decay_steps=max(config.steps - 1, 1), decay_rate=config.final_lr_fraction)
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
        if "float16" in compute_dtypes(model):
            # As in training: float16 gradients underflow without loss scaling.
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        variables = finetuned_variables(model, config.layers)
        self.optimizer = optimizer
        self._start = build_optimizer(optimizer, variables)

        @tf.function(reduce_retracing=True, autograph=False)
        def train_step(batch):
            with tf.GradientTape() as tape:
                loss = _batch_losses(model, batch, config, training=True)
                scaled = scale_loss(optimizer, loss)  # inside the tape, or it has no gradient
            norm = apply_clipped(optimizer, tape.gradient(scaled, variables), variables, config.clip_norm)
            return loss, tf.math.is_finite(norm)

        self._train_step = train_step

    def run(self, first_frame: np.ndarray, first_ids: np.ndarray, object_ids: Sequence[int],
            flow_to_next: Optional[np.ndarray] = None, color_model: Optional[np.ndarray] = None,
            step_seconds: Optional[List[float]] = None) -> List[float]:
        """Finetunes the model in place on this first frame; see `finetune`."""
        config, model = self.config, self.model
        if config.steps == 0:
            return []
        if model.config.color_prior_input and color_model is None:
            raise ValueError("this model takes a first-frame colour prior (color_prior_input): finetune needs the "
                             "objects' colour tables, color_model=first_frame_tables(...) or fit_color_model(...).")
        reset_optimizer(self.optimizer, self._start)  # a fresh optimizer for every video
        batch_size = config.batch_size or min(len(object_ids), 4)
        dataset = make_finetune_dataset(first_frame, first_ids, list(object_ids), flow_to_next=flow_to_next,
                                        seed=config.seed, batch_size=batch_size,
                                        color_model=color_model if model.config.color_prior_input else None)
        losses: List[float] = []
        skipped = 0
        last = time.monotonic()

        def timed(value: float) -> None:
            # A caller timing updates (bench finetune) needs them apart from this call's setup and tracing.
            nonlocal last
            losses.append(value)
            if step_seconds is not None:
                now = time.monotonic()
                step_seconds.append(now - last)
                last = now

        for batch in dataset.take(config.steps):
            loss, finite = self._train_step(batch)
            # A float16 overflow at the current loss scale skips the update and halves the scale: the same batch
            # again (at most MAX_SKIPPED times in all), so the updates see float32's batches in float32's order.
            while not bool(finite) and is_loss_scaling(self.optimizer) and skipped < MAX_SKIPPED:
                timed(float("nan"))
                skipped += 1
                loss, finite = self._train_step(batch)
            timed(float(loss) if bool(finite) else float("nan"))
        return losses


def finetune(
    model: MaskRNN,
    first_frame: np.ndarray,
    first_ids: np.ndarray,
    object_ids: Sequence[int],
    flow_to_next: Optional[np.ndarray] = None,
    config: FinetuneConfig = FinetuneConfig(),
    color_model: Optional[np.ndarray] = None,
    step_seconds: Optional[List[float]] = None,
) -> List[float]:
    """Finetunes `model` in place on the first frame; returns the loss of every iteration (NaN for an
    iteration whose gradient was not finite: its update was skipped).

    A model computing in float16 trains with dynamic loss scaling; an iteration that overflows at the current
    scale (the first ones usually do) is skipped without counting and its batch is used again at the halved
    scale, so it makes `config.steps` updates on float32's batches in up to `config.steps + MAX_SKIPPED`
    iterations (the list holds them all). Finetuning video after video, a `StaticFinetuner` traces its update once.

    Args:
      model: the network (its weights change).
      first_frame: uint8 RGB [H, W, 3] at the size the video is processed at.
      first_ids: uint8 ids [H, W] of the first frame (255 = void).
      object_ids: the ids of the objects to track.
      flow_to_next: optional flow from the first to the second frame [H, W, 2].
      config: see FinetuneConfig.
      color_model: [len(object_ids), 4096] the objects' first-frame colour tables, for a model with
        `color_prior_input` (required there): each augmented view is given its object's table.
      step_seconds: if given, the wall time of every iteration is appended to it (one per loss; the first
        includes tracing the update, the others fetching their batch).
    """
    if config.steps == 0:  # no optimizer built for nothing
        return []
    return StaticFinetuner(model, config).run(first_frame, first_ids, object_ids, flow_to_next, color_model,
                                              step_seconds)


def first_frame_loss(
    model: MaskRNN, first_frame: np.ndarray, first_ids: np.ndarray, object_ids: Sequence[int],
    config: FinetuneConfig = FinetuneConfig(), color_model: Optional[np.ndarray] = None,
) -> float:
    """The training loss on the un-augmented first frame (previous mask = the true mask), objects averaged.

    A yardstick for finetuning: it should fall as the model fits the first frame. `color_model`: the objects'
    colour tables [N, 4096], for a model with `color_prior_input`.
    """
    ids = np.asarray(first_ids)
    masks = np.stack([(ids == i).astype(np.float32) for i in object_ids])
    void = np.broadcast_to(ids == 255, masks.shape).astype(np.float32)
    n, (h, w) = len(object_ids), ids.shape
    batch = {
        "frame": np.broadcast_to(np.asarray(first_frame, np.float32), (n, h, w, 3)),
        "flow_to_prev": np.zeros((n, h, w, 2), np.float32),
        "flow_to_next": np.zeros((n, h, w, 2), np.float32),
        "prev_mask": masks, "mask": masks, "void": void,
    }
    if color_model is not None:
        batch["color_model"] = np.asarray(color_model, np.float32)
    return float(_batch_losses(model, {k: tf.constant(v) for k, v in batch.items()}, config, training=False))


def finetune_on_video(
    model: MaskRNN,
    source: VideoSource,
    first: FirstMask,
    flow_fn: Optional[AnyFlowFn],
    max_size: Optional[int] = None,
    config: FinetuneConfig = FinetuneConfig(),
    finetuner: Optional[StaticFinetuner] = None,
) -> List[float]:
    """Finetunes `model` on the first frame of `source` at the processing size; returns the losses.

    Reads only the first two frames (the second gives the flow to next the flow stream is trained with);
    a `NamedFlowFn` reads that flow for the sequence `source.name` by frame name instead. A model with a
    first-frame colour prior gets the tables segmenting gives it (fitted at the video's own size).
    `finetuner`: a `StaticFinetuner` of `model` and `config` to run (its update traced once for many videos).
    """
    if config.steps == 0:
        return []
    size = working_size(tuple(source.size), max_size)
    first_frame, flow = first_frame_and_flow(source, size, flow_fn)
    ids, present = first_ids_at_size(first, size)
    if not present:  # no object at this size: training on empty masks would teach "background"
        return []
    tables = None
    if model.config.color_prior_input:
        from maskrnn_tf.inference.color_gate import first_frame_tables

        tables = first_frame_tables(source, first, model.config.color_prior_band, object_ids=present)
    if finetuner is None:
        return finetune(model, first_frame, ids, present, flow, config, color_model=tables)
    return finetuner.run(first_frame, ids, present, flow, color_model=tables)


def first_frame_and_flow(source: VideoSource, size: Tuple[int, int], flow_fn: Optional[AnyFlowFn]
                         ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """The first frame of `source` at the processing `size` and its flow to the second frame (None for a
    one-frame video or without `flow_fn`). Reads only those two frames; a `NamedFlowFn` reads the flow for the
    sequence `source.name` by frame name."""
    frames = source.frames()
    first_frame = resize_frame(next(frames), size)
    second = next(frames, None) if flow_fn is not None else None
    frames.close()
    if second is None:
        return first_frame, None
    if isinstance(flow_fn, NamedFlowFn):
        flow_fn = flow_fn.for_sequence(source.name, tuple(source.size))
    stems = source.frame_names
    return first_frame, flow_between(flow_fn, first_frame, resize_frame(second, size), stems[0], stems[1])


def first_ids_at_size(first: FirstMask, size: Tuple[int, int]) -> Tuple[np.ndarray, List[int]]:
    """The first-frame ids at the processing size (the pixels the segmentation is seeded with, every object kept:
    `labels_at_size`) and the object ids present there."""
    ids = labels_at_size(first.labels, size)
    return ids, [i for i in first.object_ids if np.any(ids == i)]


def restore_weights(model, values: Sequence[np.ndarray]) -> None:
    """Puts `values` (a snapshot of `model.weights`, in order) back into the model's variables."""
    for variable, value in zip(model.weights, values):
        variable.assign(value)


def finetuning_prepare(
    model: MaskRNN, step_fn: StepFn, flow_fn: Optional[AnyFlowFn], max_size: Optional[int],
    config: FinetuneConfig = FinetuneConfig(),
) -> Callable[[VideoSource, FirstMask], StepFn]:
    """A `prepare` callback for `segment_video` / `segment_davis`: every video starts from the weights the
    model has now and is finetuned on its own first frame before `step_fn` (which wraps `model`) runs.

    `prepare.log` maps each video's name to {"updates", "seconds"} (wall time of its finetuning)."""
    initial = [v.numpy() for v in model.weights]
    log: Dict[str, Dict[str, float]] = {}
    finetuner = StaticFinetuner(model, config) if config.steps else None  # one traced update for every video

    def prepare(source: VideoSource, first: FirstMask) -> StepFn:
        start = time.monotonic()
        restore_weights(model, initial)
        losses = finetune_on_video(model, source, first, flow_fn, max_size, config, finetuner)
        log[source.name] = {"updates": int(np.sum(np.isfinite(losses))),
                            "seconds": round(time.monotonic() - start, 2)}
        return step_fn

    prepare.log = log  # type: ignore[attr-defined]
    return prepare
