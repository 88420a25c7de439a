"""Recurrent online finetuning: BPTT on clips dreamt from the first frame of the video to segment.

Static finetuning (`finetune.py`) trains the stage A regime: one frame, a perturbed true mask as the previous mask. The
network runs recurrently, on its own warped predictions, so here it finetunes in that regime: every step unrolls one
dreamt clip (`maskrnn_tf.data.dreaming`, exact flows and masks) for the video's objects (all of them, or
`objects_per_update` in turns), starting from the true first mask and feeding each prediction (probabilities and boxes)
to the next frame, with gradients through time and through the warps, both streams and the localization head, and the
training losses. The unrolled step is stage B's (`TrainSteps.clip_step`): same losses, clipping and skipping of
non-finite updates. A wall-time budget stops it early.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from maskrnn_tf.data.dreaming import (DreamConfig, DreamtClip, dream_clip_with_flow, inpaint_background,
                                      video_motion)
from maskrnn_tf.data.flow_backends import estimated_flow_fn
from maskrnn_tf.inference.finetune import (MAX_SKIPPED, build_optimizer, first_frame_and_flow, first_ids_at_size,
                                          reset_optimizer, restore_weights)
from maskrnn_tf.inference.finetune_layers import FINETUNE_LAYERS, finetuned_variables
from maskrnn_tf.inference.first_mask import FirstMask
from maskrnn_tf.inference.propagation import AnyFlowFn, StepFn
from maskrnn_tf.inference.video_reader import VideoSource, working_size
from maskrnn_tf.model import MaskRNN
from maskrnn_tf.training.config import DataConfig, LossConfig, OptimConfig, TrainConfig
from maskrnn_tf.training.gradient_update import is_loss_scaling
from maskrnn_tf.training.steps import TrainSteps, make_optimizer


@dataclasses.dataclass(frozen=True)
class RecurrentFinetuneConfig:
    """Recurrent online finetuning settings.

    Attributes:
      steps: at most this many updates (0 skips finetuning); one dreamt clip per pass over the objects (one update
        with all of them, or ceil(N / objects_per_update) updates in turns). Under
        float16 an update skipped for an overflow is retried on the same clip and not counted (at most
        MAX_SKIPPED in all).
      time_budget_s: wall time (dreaming and updates) after which no new update starts; an update starts
        only if the last one's duration still fits (0 = no budget). Tracing the unrolled step, once per
        finetuner and clip shape, is not charged: on the run that traces, the first update is charged as long
        as the second and the difference is reported as `trace_seconds`.
      num_clips: distinct dreamt clips, made on first use and cycled.
      dream: clip length and motion of the dreamt clips.
      match_video_motion: in `recurrent_finetuning_prepare`, set `dream`'s camera and object speeds per video
        from the flow of its first frame to the second (`DreamConfig.with_motion`); needs a flow function.
      dream_flow: the flows the dreamt clips feed the network: "exact" (the clip's own) or a flow backend that
        computes from pixels (`maskrnn_tf.data.flow_backends.FRAME_FLOWS`: "dis", "dis-fast", ...),
        estimated on the rendered frames (`dreaming.estimate_flows`) as the video's flows are; masks stay exact.
      learning_rate: initial Adam learning rate; it decays exponentially to `final_lr_fraction` of it.
      final_lr_fraction: learning rate at the last step relative to the first.
      seg_weight, loc_weight, class_balance, iou_weight, loc_min_iou: the training losses (`LossConfig`'s; use
        what the model was trained with).
      clip_norm: global gradient-norm clipping (0 disables).
      reverse_every_other: play every second clip backwards (exact: the flows swap; starts from the true
        mask of the clip's last frame).
      recompute: recompute each frame's activations in the backward pass (less memory, more time).
      crop: dream from a crop of the first frame of at most crop x crop pixels around the objects (0 = the
        whole frame): an update's cost grows with the pixels, so the budget holds more updates. Objects
        (with `crop_margin`) that do not fit in it are finetuned on the whole frame.
      crop_margin: room kept around the objects' box in the crop, per side, as a fraction of the box's side
        (the dreamt motion and some background context need it).
      seed: seeds the dreamt clips.
      objects_per_update: at most this many objects in one update (0 = every object of the video). Each object is
        a batch element carried through the clip's unrolled frames in both streams, so an update's memory grows
        with it (at 854x480 with the width-0.5 network, gigabytes per object); a video with more objects trains
        them in turns, this many at a time, cycling through them (static finetuning's batch is capped at 4 too).
        Fixed when a `RecurrentFinetuner` is built (its traced step's batch size).
      layers: the weights the updates train (`finetune_layers.FINETUNE_LAYERS`: "all", or the layers above the VGG
        trunks, "heads", or those and the trunks' last block, "block5"; segment's default, --finetune_layers=auto,
        passes "heads"). Fixed when a `RecurrentFinetuner` is built.
    """

    steps: int = 50
    time_budget_s: float = 60.0
    num_clips: int = 8
    dream: DreamConfig = DreamConfig(num_frames=5)
    match_video_motion: bool = False
    dream_flow: str = "exact"
    learning_rate: float = 1e-5
    final_lr_fraction: float = 0.1
    seg_weight: float = 1.0
    loc_weight: float = 1.0
    class_balance: bool = True
    iou_weight: float = 0.0
    loc_min_iou: float = 0.0
    clip_norm: float = 10.0
    reverse_every_other: bool = False
    recompute: bool = False
    crop: int = 0
    crop_margin: float = 0.25
    seed: int = 0
    objects_per_update: int = 4
    layers: str = "all"

    def __post_init__(self) -> None:
        if self.layers not in FINETUNE_LAYERS:
            raise ValueError(f"RecurrentFinetuneConfig: layers must be one of {', '.join(FINETUNE_LAYERS)}: {self}.")
        if self.objects_per_update < 0:
            raise ValueError(f"RecurrentFinetuneConfig: need objects_per_update >= 0 (0 = all): {self}.")
        if self.steps < 0 or self.time_budget_s < 0 or self.num_clips < 1:
            raise ValueError(f"RecurrentFinetuneConfig: need steps >= 0, time_budget_s >= 0, num_clips >= 1: {self}.")
        if self.crop < 0 or self.crop_margin < 0:
            raise ValueError(f"RecurrentFinetuneConfig: need crop >= 0 and crop_margin >= 0: {self}.")
        if self.learning_rate <= 0 or not 0 < self.final_lr_fraction <= 1:
            raise ValueError(f"RecurrentFinetuneConfig: need learning_rate > 0, 0 < final_lr_fraction <= 1: {self}.")
        try:
            estimated_flow_fn(self.dream_flow)
        except ValueError as err:
            raise ValueError(f"RecurrentFinetuneConfig: dream_flow must be 'exact' or a flow computed from "
                             f"pixels: {err}") from err


@dataclasses.dataclass(frozen=True)
class RecurrentFinetuneResult:
    """What a recurrent finetuning did.

    Attributes:
      losses: the loss of every update (per object, summed over the unrolled frames; NaN where the gradient
        was not finite and was dropped: a zero-gradient step, or under float16 a skipped one).
      seconds: wall time spent, everything included.
      step_seconds: the wall time of each update (on the run that traces, the first one includes tracing).
      dream_seconds: the part of it spent dreaming clips.
      stopped_by_budget: the time budget ended it before `steps` updates.
      trace_seconds: the part of `seconds` spent tracing (not charged to the budget; 0 once traced).
      window: (top, left, height, width) of the crop of the first frame the clips were dreamt from (None:
        the whole frame).
    """

    losses: List[float]
    seconds: float
    step_seconds: List[float]
    dream_seconds: float
    stopped_by_budget: bool
    trace_seconds: float = 0.0
    window: Optional[Tuple[int, int, int, int]] = None

    @property
    def steps(self) -> int:
        """Updates attempted (skipped ones included)."""
        return len(self.losses)

    @property
    def applied_updates(self) -> int:
        """Updates applied (a non-finite gradient skips its update)."""
        return int(np.isfinite(self.losses).sum())


def crop_window(ids: np.ndarray, object_ids: Sequence[int], crop: int,
                margin: float = 0.25) -> Optional[Tuple[int, int, int, int]]:
    """The (top, left, height, width) window of at most crop x crop pixels, centred on the box of the objects
    `object_ids` in `ids` grown by `margin` of its sides (plus 8 pixels) on every side and shifted inside the
    frame; None when that grown box does not fit in such a window, or the window is the whole frame."""
    ids = np.asarray(ids)
    height, width = ids.shape
    window_h, window_w = min(crop, height), min(crop, width)
    if crop <= 0 or (window_h, window_w) == (height, width):
        return None
    ys, xs = np.nonzero(np.isin(ids, list(object_ids)))
    if ys.size == 0:
        return None
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    grow_y, grow_x = margin * (bottom - top) + 8, margin * (right - left) + 8
    if bottom - top + 2 * grow_y > window_h or right - left + 2 * grow_x > window_w:
        return None
    y0 = int(round((top + bottom - window_h) / 2))
    x0 = int(round((left + right - window_w) / 2))
    return min(max(y0, 0), height - window_h), min(max(x0, 0), width - window_w), window_h, window_w


def clip_batch(clip: DreamtClip, object_ids: Sequence[int], color_model: Optional[np.ndarray] = None
               ) -> Dict[str, tf.Tensor]:
    """A stage B batch (objects on the batch axis, the clip's frames and flows shared) from a dreamt clip;
    `color_model` [N, 4096]: the objects' colour tables (a model with color_prior_input)."""
    n = len(object_ids)

    def shared(x: np.ndarray) -> tf.Tensor:
        return tf.tile(tf.constant(x, tf.float32)[None], [n] + [1] * x.ndim)

    masks = np.stack([clip.masks == i for i in object_ids]).astype(np.float32)
    batch = {"frames": shared(clip.frames), "flows_to_prev": shared(clip.flows_to_prev),
             "flows_to_next": shared(clip.flows_to_next), "masks": tf.constant(masks)}
    if color_model is not None:
        batch["color_model"] = tf.constant(color_model, tf.float32)
    return batch


def _train_steps(model: MaskRNN, num_objects: int, config: RecurrentFinetuneConfig) -> TrainSteps:
    """Stage B's train step on one device, configured with the finetuning's losses and optimizer."""
    train_config = TrainConfig(
        model=model.config,
        data=DataConfig(clip_batch_size=num_objects, clip_length=config.dream.num_frames),
        optim=OptimConfig(learning_rate=config.learning_rate, decay_steps=max(config.steps - 1, 1),
                          decay_rate=config.final_lr_fraction, clip_norm=config.clip_norm),
        loss=LossConfig(seg_weight=config.seg_weight, loc_weight=config.loc_weight,
                        class_balance=config.class_balance, loc_min_iou=config.loc_min_iou,
                        iou_weight=config.iou_weight),
        recompute=config.recompute,
    )
    policy = "mixed_float16" if model.compute_dtype == "float16" else "float32"
    # The schedule on the optimizer's own count (no `step`): a float16 update skipped for an overflow is retried
    # and not counted here, so the rate decays over the updates applied.
    optimizer = make_optimizer(train_config, policy)
    return TrainSteps(model, optimizer, train_config, tf.distribute.get_strategy(),
                      tf.Variable(0, dtype=tf.int64, trainable=False), finetuned_variables(model, config.layers))


class DreamtClips:
    """The dreamt clips of one first frame, made on first use (the inpainted background is made once), with
    the config's `dream_flow`."""

    def __init__(self, frame: np.ndarray, ids: np.ndarray, config: RecurrentFinetuneConfig,
                 motion_size: Optional[float] = None):
        """`motion_size`: see `dream_clip` (a crop passes the whole frame's shorter side)."""
        self._frame, self._ids, self._config = np.asarray(frame, np.uint8), np.asarray(ids, np.uint8), config
        self._motion_size = motion_size
        self._flow_fn = estimated_flow_fn(config.dream_flow)
        self._background: Optional[np.ndarray] = None
        self._clips: Dict[int, DreamtClip] = {}
        self.seconds = 0.0

    def __getitem__(self, index: int) -> DreamtClip:
        index %= self._config.num_clips
        if index not in self._clips:
            start = time.monotonic()
            dream = self._config.dream
            if self._background is None:
                self._background = inpaint_background(self._frame, self._ids, dream.inpaint_dilation,
                                                      dream.inpaint_radius)
            seed = self._config.seed * 100003 + index
            self._clips[index] = dream_clip_with_flow(self._frame, self._ids, seed, dream, self._flow_fn,
                                                      background=self._background, motion_size=self._motion_size)
            self.seconds += time.monotonic() - start
        return self._clips[index]


def _checked_object_ids(first_ids: np.ndarray, object_ids: Sequence[int]) -> List[int]:
    object_ids = [int(i) for i in object_ids]
    if not object_ids:
        raise ValueError("recurrent_finetune: object_ids is empty; pass the ids of the first-frame objects.")
    missing = [i for i in object_ids if not np.any(np.asarray(first_ids) == i)]
    if missing:
        raise ValueError(f"recurrent_finetune: object ids {missing} are not in the first-frame mask "
                         "(at the processing size a tiny object can vanish: leave it out).")
    return object_ids


def objects_per_update(count: int, cap: int) -> int:
    """Objects an update trains for a video of `count` objects under `cap` (`objects_per_update`; 0 = all)."""
    return count if cap == 0 else min(count, cap)


class RecurrentFinetuner:
    """Recurrent finetuning of one model for videos with `num_objects` objects.

    The compiled stage B step is traced on the first update and reused by later runs on frames of the same
    size (tracing the unrolled step costs far more than an update); every run starts with a fresh optimizer.
    An update trains `batch_objects` of the objects (all, or `config.objects_per_update` in turns): a finetuner
    capped so also runs videos of any other object count that trains as many per update (`batch_size_for`).
    The losses, learning rate schedule, clipping and objects per update are fixed here; `config.steps`, `time_budget_s`,
    `num_clips`, `dream`, `reverse_every_other` and `seed` are read at each run (`self.config` may be replaced).
    """

    def __init__(self, model: MaskRNN, num_objects: int, config: RecurrentFinetuneConfig = RecurrentFinetuneConfig()):
        if num_objects < 1:
            raise ValueError(f"RecurrentFinetuner: num_objects must be >= 1, got {num_objects}.")
        self.model = model
        self.num_objects = num_objects
        self.config = config
        self._cap = config.objects_per_update
        self.batch_objects = self.batch_size_for(num_objects)
        self._steps = _train_steps(model, self.batch_objects, config)
        self._traced_shapes: set = set()  # clip shapes the unrolled step has run on
        # Built now so that its fresh state can be put back before every video.
        self._optimizer_start = build_optimizer(self._steps.optimizer, self._steps.variables)

    def batch_size_for(self, count: int) -> int:
        """Objects per update for a video of `count` objects under this finetuner's cap (its traced step's batch
        size when `count` is one it runs)."""
        return objects_per_update(count, self._cap)

    def _check(self, first_ids: np.ndarray, object_ids: Sequence[int]) -> List[int]:
        object_ids = _checked_object_ids(first_ids, object_ids)
        if self.batch_size_for(len(object_ids)) != self.batch_objects:
            raise ValueError(f"recurrent_finetune: {len(object_ids)} object ids for a finetuner whose updates train "
                             f"{self.batch_objects} objects (built for {self.num_objects}).")
        return object_ids

    def _group(self, index: int, count: int) -> List[int]:
        """The rows (object positions) update `index` trains of a video of `count` objects: all of them, or
        `batch_objects` in turns, each update starting where the last one ended (with 5 objects and 4 per update:
        0-3, then 4, 0, 1, 2, ...)."""
        g = self.batch_objects
        return list(range(count)) if g >= count else [(index * g + j) % count for j in range(g)]

    def _cropped(self, frame: np.ndarray, ids: np.ndarray, object_ids: Sequence[int]
                 ) -> Tuple[np.ndarray, np.ndarray, Optional[Tuple[int, int, int, int]]]:
        """The first frame and ids cut to the config's crop window (unchanged without one), and the window."""
        window = crop_window(ids, object_ids, self.config.crop, self.config.crop_margin)
        if window is None:
            return frame, ids, None
        top, left, height, width = window
        return frame[top:top + height, left:left + width], ids[top:top + height, left:left + width], window

    def _tables(self, frame: np.ndarray, ids: np.ndarray, object_ids: Sequence[int],
                given: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        """The objects' colour tables (None for a model without color_prior_input): `given` (segmenting's, from the
        video's first frame at its own size: `recurrent_finetuning_prepare`), else fitted on this whole frame."""
        if not self.model.config.color_prior_input:
            return None
        if given is not None:
            return np.asarray(given, np.float32)
        from maskrnn_tf.inference.color_gate import fit_color_model
        from maskrnn_tf.ops.color_tables import BINS

        return fit_color_model(frame, ids, object_ids, self.model.config.color_prior_band, bins=BINS, space="rgb")

    def _clips(self, frame: np.ndarray, ids: np.ndarray, object_ids: Sequence[int]
               ) -> Tuple[DreamtClips, Optional[Tuple[int, int, int, int]]]:
        """The dreamt clips of this first frame (of its crop window, moving as the whole frame does), and the window."""
        motion_size = float(min(np.shape(ids)[:2]))
        frame, ids, window = self._cropped(frame, ids, object_ids)
        return DreamtClips(frame, ids, self.config, motion_size), window

    def run(self, first_frame: np.ndarray, first_ids: np.ndarray, object_ids: Sequence[int],
            color_model: Optional[np.ndarray] = None) -> RecurrentFinetuneResult:
        """Finetunes the model in place on clips dreamt from this first frame; see `recurrent_finetune`.
        `color_model`: the objects' colour tables (a colour prior network; default: fitted on `first_frame`)."""
        start = time.monotonic()
        object_ids = self._check(first_ids, object_ids)
        config = self.config
        if config.steps == 0:
            return RecurrentFinetuneResult([], 0.0, [], 0.0, False)
        clips, window = self._clips(first_frame, first_ids, object_ids)
        tables = self._tables(first_frame, first_ids, object_ids, color_model)
        reset_optimizer(self._steps.optimizer, self._optimizer_start)  # a fresh Adam (schedule, loss scale) per video
        losses: List[float] = []
        durations: List[float] = []
        stopped = False
        tracing = False
        trace_seconds = 0.0
        loss_scaling = is_loss_scaling(self._steps.optimizer)
        skipped = 0
        index = 0
        while index < config.steps:
            now = time.monotonic()
            # Start an update only if one more (as long as the last) still fits in the budget. On the run that
            # traces the unrolled step (and runs the graph's one-time optimisation) the first update says
            # nothing of an update's cost: the second one always runs, and from then on the first is charged
            # as long as the second, so that the first video of a shape gets the updates the others get.
            if config.time_budget_s and durations and not (tracing and len(durations) == 1):
                if (now - start - trace_seconds) + durations[-1] > config.time_budget_s:
                    stopped = True
                    break
            rows = self._group(index, len(object_ids))
            # The clip and its direction go by the pass over the objects, not by the update: with objects in turns
            # the update count would pair each object with every other clip only (2 objects, 1 per update: clips
            # 0, 2, 4, ... for the first, always played forwards under reverse_every_other). A pass is ceil(N / g)
            # consecutive updates, whose >= N consecutive rows cover every object (by index * g // N, with 3 objects
            # 2 per update, the row-0 object trained in passes 0, 0, 2, 2, ...: clip 0, forwards only).
            passed = index // -(-len(object_ids) // self.batch_objects)
            batch = clip_batch(clips[passed], [object_ids[r] for r in rows], None if tables is None else tables[rows])
            shape = tuple(batch["frames"].shape)
            if index == 0 and shape not in self._traced_shapes:
                tracing = True
            reverse = tf.constant(config.reverse_every_other and passed % 2 == 1)
            out = self._steps.clip_step(batch, reverse)
            finite = bool(tf.math.is_finite(out["grad_norm"]))
            losses.append(float(out["loss"]) if finite else float("nan"))
            durations.append(time.monotonic() - now)
            self._traced_shapes.add(shape)
            if tracing and len(durations) == 2:
                trace_seconds = max(durations[0] - durations[1], 0.0)
            if not finite and loss_scaling and skipped < MAX_SKIPPED:
                # A float16 overflow at the current loss scale skipped the update and halved the scale: the
                # same clip again, not counted (every video starts at the initial scale, so each would
                # otherwise lose its first updates to it), as static finetuning does. The budget still holds.
                skipped += 1
                continue
            index += 1
        return RecurrentFinetuneResult(losses, time.monotonic() - start, durations, clips.seconds, stopped,
                                       trace_seconds, window)

    def loss(self, first_frame: np.ndarray, first_ids: np.ndarray, object_ids: Sequence[int],
             color_model: Optional[np.ndarray] = None) -> float:
        """The recurrent training loss on the config's dreamt clips (no update), per object, averaged over
        the clips: the yardstick of recurrent finetuning (it should fall as the model learns to follow the
        first frame's objects through their dreamt motion)."""
        object_ids = self._check(first_ids, object_ids)
        clips, _ = self._clips(first_frame, first_ids, object_ids)
        tables = self._tables(first_frame, first_ids, object_ids, color_model)
        total = 0.0
        g = self.batch_objects  # the objects in chunks of an update's size: the same memory cap
        for index in range(self.config.num_clips):
            for first in range(0, len(object_ids), g):
                rows = list(range(first, min(first + g, len(object_ids))))
                batch = clip_batch(clips[index], [object_ids[r] for r in rows],
                                   None if tables is None else tables[rows])
                total += float(tf.reduce_sum(self._steps.clip_losses(batch)["total"]))
        return total / (self.config.num_clips * len(object_ids))


def recurrent_finetune(
    model: MaskRNN,
    first_frame: np.ndarray,
    first_ids: np.ndarray,
    object_ids: Sequence[int],
    config: RecurrentFinetuneConfig = RecurrentFinetuneConfig(),
) -> RecurrentFinetuneResult:
    """Finetunes `model` in place by BPTT on clips dreamt from the first frame.

    Args:
      model: the network (its weights change).
      first_frame: uint8 RGB [H, W, 3] at the size the video is processed at.
      first_ids: uint8 ids [H, W] of the first frame (0 background, 255 void, which is inpainted away).
      object_ids: the ids of the objects to track (one batch element each: all of them together, or
        `config.objects_per_update` at a time in turns).
      config: see RecurrentFinetuneConfig.
    """
    object_ids = _checked_object_ids(first_ids, object_ids)
    return RecurrentFinetuner(model, len(object_ids), config).run(first_frame, first_ids, object_ids)


def recurrent_finetuning_prepare(
    model: MaskRNN, step_fn: StepFn, max_size: Optional[int],
    config: RecurrentFinetuneConfig = RecurrentFinetuneConfig(),
    finetuner_factory: Callable[[MaskRNN, int, RecurrentFinetuneConfig], RecurrentFinetuner] = RecurrentFinetuner,
    flow_fn: Optional[AnyFlowFn] = None,
) -> Callable[[VideoSource, FirstMask], StepFn]:
    """A `prepare` callback for `segment_video` / `segment_davis`: every video starts from the weights the
    model has now and is finetuned recurrently on clips dreamt from its own first frame (at the processing
    size) before `step_fn` (which wraps `model`) runs.

    One finetuner is kept per (objects per update, frame size), so the unrolled step is traced once per shape.
    `prepare.results` collects (video name, RecurrentFinetuneResult); `prepare.log` maps each video's name to
    {"updates", "skipped_updates", "seconds", "trace_seconds", "stopped_by_budget", "window"} (updates: those applied;
    skipped_updates: those whose gradient was not finite and was dropped; seconds: wall time of its finetuning,
    everything included; trace_seconds: the part of it spent tracing, on the first video of a shape; window:
    the crop dreamt from, or None), and with `config.match_video_motion` "motion": the (object, camera) motion
    measured on its first frame pair and "speeds": the (object, camera) speeds its clips got, times the
    defaults. That needs `flow_fn` (segment's: the flow the video is segmented with).
    `prepare.reserve_s` (0) is taken off the next video's time budget: a caller that works around the
    finetuning inside the same budget (the cycle check) sets it to what that work costs.
    """
    if config.match_video_motion and flow_fn is None:
        raise ValueError("recurrent_finetuning_prepare: match_video_motion measures the first frame pair's flow; "
                         "pass flow_fn.")
    initial = [v.numpy() for v in model.weights]
    finetuners: Dict[Tuple[int, int, int], RecurrentFinetuner] = {}
    results: List[Tuple[str, RecurrentFinetuneResult]] = []
    log: Dict[str, Dict[str, object]] = {}
    matched: Dict[str, Dict[str, List[float]]] = {}

    def finetune_video(source: VideoSource, first: FirstMask) -> Optional[RecurrentFinetuneResult]:
        """Restores the weights and finetunes them on this video (None when there is nothing to do)."""
        restore_weights(model, initial)
        if config.steps == 0:
            return None
        size = working_size(tuple(source.size), max_size)
        first_frame, flow = first_frame_and_flow(source, size, flow_fn if config.match_video_motion else None)
        ids, present = first_ids_at_size(first, size)
        if not present:  # nothing left to learn from at this size
            return None
        # Keyed by the objects an update trains: with objects in turns, videos of 4, 5 or 9 objects share one traced
        # step (each count had traced its own, ~40 s on a CPU).
        per_update = objects_per_update(len(present), config.objects_per_update)
        key = (per_update,) + tuple(size)
        if key not in finetuners:
            finetuners[key] = finetuner_factory(model, len(present), config)
        finetuner = finetuners[key]
        finetuner.config = config  # read at each run: this video's dreaming below, the config's otherwise
        if config.match_video_motion and flow is not None:
            motion = video_motion(flow, ids)  # every object together against the background
            dream = config.dream.with_motion(*motion)
            finetuner.config = dataclasses.replace(config, dream=dream)
            matched[source.name] = {"motion": [round(m, 5) for m in motion],
                                    "speeds": [round(dream.object_shift / config.dream.object_shift, 3),
                                               round(dream.camera_shift / config.dream.camera_shift, 3)]}
        reserve = float(prepare.reserve_s)  # type: ignore[attr-defined]
        if config.time_budget_s and reserve > 0:  # the budget covers the work around the finetuning too
            budget = max(config.time_budget_s - reserve, 1e-3)
            finetuner.config = dataclasses.replace(finetuner.config, time_budget_s=budget)
        tables = None
        if model.config.color_prior_input:  # segmenting's tables (the video's own size), for the objects trained
            from maskrnn_tf.inference.color_gate import first_frame_tables

            tables = first_frame_tables(source, first, model.config.color_prior_band, object_ids=present)
        if tables is None:  # a finetuner_factory's finetuner need not know of tables
            return finetuner.run(first_frame, ids, present)
        return finetuner.run(first_frame, ids, present, color_model=tables)

    def prepare(source: VideoSource, first: FirstMask) -> StepFn:
        start = time.monotonic()
        result = finetune_video(source, first)
        if result is not None:
            results.append((source.name, result))
        log[source.name] = {"updates": result.applied_updates if result else 0,
                            "skipped_updates": result.steps - result.applied_updates if result else 0,
                            "seconds": round(time.monotonic() - start, 2),
                            "trace_seconds": round(result.trace_seconds if result else 0.0, 2),
                            "stopped_by_budget": bool(result and result.stopped_by_budget),
                            "window": list(result.window) if result and result.window else None,
                            **matched.get(source.name, {})}
        return step_fn

    prepare.results = results  # type: ignore[attr-defined]
    prepare.log = log  # type: ignore[attr-defined]
    prepare.reserve_s = 0.0  # type: ignore[attr-defined]
    return prepare


def budget_note(log: Optional[Mapping[str, Mapping[str, Any]]], budget_s: float) -> Optional[str]:
    """A line for the console when the time budget ended recurrent finetuning before its steps on some videos
    (None otherwise): on how many videos and after how many applied updates (those a non-finite gradient skipped
    said apart). `log` is a finetuning callback's `log` (`recurrent_finetuning_prepare`'s, or an ensemble's,
    whose entries hold their networks' under "members").

    A slower CPU fits fewer updates in the same budget, so the results then depend on the machine; the line says
    how to run every update instead.
    """
    if not isinstance(log, Mapping) or not log:
        return None
    applied: List[int] = []  # per network the budget stopped, on each video
    skipped = videos = 0
    for entry in log.values():
        entries = [e for e in entry.get("members", [entry]) if isinstance(e, Mapping)]
        stopped = [e for e in entries if e.get("stopped_by_budget")]
        videos += bool(stopped)
        applied += [int(e.get("updates", 0)) for e in stopped]
        skipped += sum(int(e.get("skipped_updates", 0)) for e in stopped)
    if not applied:
        return None
    done = f"{min(applied)}" if min(applied) == max(applied) else f"{min(applied)}-{max(applied)}"
    also = f" ({skipped} more whose gradient was not finite and was dropped)" if skipped else ""
    return (f"online finetuning: the --finetune_budget of {budget_s:g} s per video ended it before its "
            f"--finetune_steps on {videos} of {len(log)} videos, after {done} applied updates{also}; a slower CPU "
            "fits fewer, so these results depend on this machine's speed. --finetune_budget=0 runs every update "
            "(slower; the same number of updates on any CPU, though the kernels' arithmetic still differs a little "
            "between CPU kinds, so can the cycle check's choice).")
