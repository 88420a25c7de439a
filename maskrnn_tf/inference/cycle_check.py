"""A label-free check of online finetuning on the video itself: forward-backward (cycle) consistency.

Online finetuning moves single videos far both ways (docs/RESULTS.md): it helps where the mask drifts slowly
and ruins fast or thin objects. The only label of the video is its first mask, so the check goes round a
cycle: propagate the first mask forward over the first K frames, then back from frame K to frame 0 over the
same frames in reverse order (the flows swap roles), and score the mask that comes back against the true first
mask (mean IoU over the objects, after the same fusion the results get). `cycle_checked_prepare` runs it with
the weights before and after finetuning and keeps the finetuned weights only when they go round at least as
well; the frames after the first are used without their labels, as semi-supervised VOS allows.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from maskrnn_tf.inference.first_mask import FirstMask
from maskrnn_tf.inference.propagation import (CARRY_MODES, MASK_THRESHOLD_KEY, AnyFlowFn, FlowFn, NamedFlowFn, StepFn,
                                              flow_between, propagate)
from maskrnn_tf.inference.finetune import first_ids_at_size, restore_weights
from maskrnn_tf.inference.video_reader import VideoSource, resize_frame, working_size

Prepare = Callable[[VideoSource, FirstMask], StepFn]


def _rows_of(step_fn: StepFn, rows: Sequence[int], total: int) -> StepFn:
    """`step_fn`, which runs on a batch of `total` objects, for the objects at `rows` of that batch: the others are
    given as empty rows (no mask, an empty box) and their outputs are dropped."""
    index = np.asarray(rows, np.int64)

    def step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes) -> Dict[str, Any]:
        prev_probs = np.asarray(prev_probs, np.float32)
        probs = np.zeros((total,) + prev_probs.shape[1:], np.float32)
        boxes = np.zeros((total, 4), np.float32)
        probs[index], boxes[index] = prev_probs, np.asarray(prev_boxes, np.float32)
        out = step_fn(frame, flow_to_prev, flow_to_next, probs, boxes)
        result = dict(out)
        result["probs"] = np.asarray(out["probs"], np.float32)[index]
        result["boxes"] = np.asarray(out["boxes"], np.float32)[index]
        if np.size(out.get(MASK_THRESHOLD_KEY, ())) == total:  # a served step's threshold, one per object row
            result[MASK_THRESHOLD_KEY] = np.asarray(out[MASK_THRESHOLD_KEY]).reshape(-1)[index]
        return result

    return step


def cycle_iou(step_fn: StepFn, frames: Sequence[np.ndarray], first_ids: np.ndarray, object_ids: Sequence[int],
              flow_fn: AnyFlowFn, stems: Optional[Sequence[str]] = None, threshold: float = 0.5,
              carry: str = "probs", step_ids: Optional[Sequence[int]] = None) -> float:
    """Mean IoU, over `object_ids`, of the true first mask and the mask propagated over `frames` (frame 0
    first) forward to the last frame and back to frame 0.

    Args:
      step_fn: the recurrent step (see `StepFn`).
      frames: uint8 RGB [H, W, 3] frames 0..K (K >= 1) at the size `step_fn` runs at.
      first_ids: [H, W] ids of frame 0 at that size.
      object_ids: the objects to follow (their order is the batch order of `step_fn`).
      flow_fn: flow between two frames, or a `NamedFlowFn` bound to the video (with `stems`).
      stems: the frames' name stems (for a `NamedFlowFn`).
      threshold: the fusion threshold.
      carry: what each step is given of the previous one (`propagate`'s carry; it refuses other values).
      step_ids: the objects `step_fn` runs on, in its batch order (default `object_ids`), when it must be given
        more than those followed: a colour prior network's step has the tables of every object of the first mask
        bound (`ColorPriorPrepare`), those lost at the working size too. The others are given as empty rows and
        their outputs dropped; the network runs each object on its own, so those followed go round as alone.
    """
    if len(frames) < 2:
        raise ValueError(f"cycle_iou needs at least 2 frames, got {len(frames)}.")
    if not object_ids:
        raise ValueError("cycle_iou needs at least one object.")
    if step_ids is not None and list(step_ids) != list(object_ids):
        missing = [i for i in object_ids if i not in list(step_ids)]
        if missing:
            raise ValueError(f"cycle_iou: object(s) {missing} are not among the step's objects {list(step_ids)}.")
        step_fn = _rows_of(step_fn, [list(step_ids).index(i) for i in object_ids], len(step_ids))
    first_ids = np.asarray(first_ids)
    first_probs = np.stack([first_ids == i for i in object_ids]).astype(np.float32)
    forward = list(propagate(step_fn, frames, first_probs, flow_fn, read_ahead=0, threshold=threshold,
                             stems=stems, carry=carry))
    last = forward[-1]
    # Back from frame K, starting from its fused prediction as binary masks (propagate takes the first boxes as
    # the tight boxes of its first masks, as for a true first mask).
    labels_k = last.labels
    start = np.stack([labels_k == n + 1 for n in range(len(object_ids))]).astype(np.float32)
    backward = list(propagate(step_fn, list(frames)[::-1], start, flow_fn, read_ahead=0, threshold=threshold,
                              stems=None if stems is None else list(stems)[::-1], carry=carry))
    labels_0 = backward[-1].labels
    ious: List[float] = []
    for n, object_id in enumerate(object_ids):
        truth, found = first_ids == object_id, labels_0 == n + 1
        union = np.logical_or(truth, found).sum()
        ious.append(float(np.logical_and(truth, found).sum() / union) if union else 1.0)
    return float(np.mean(ious))


def _flows_once(flow_fn: AnyFlowFn, clip: Sequence[np.ndarray], stems: Sequence[str]) -> FlowFn:
    """A flow function over the frames of `clip` (by identity) that computes each pair's flow once: the checks
    before and after finetuning, forward and back, ask for the same pairs."""
    index = {id(frame): i for i, frame in enumerate(clip)}
    flows: Dict[Tuple[int, int], np.ndarray] = {}

    def flow(frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        key = (index[id(frame_a)], index[id(frame_b)])
        if key not in flows:
            flows[key] = flow_between(flow_fn, frame_a, frame_b, stems[key[0]], stems[key[1]])
        return flows[key]

    return flow


def _timed(step_fn: StepFn, seconds: List[float]) -> StepFn:
    """`step_fn`, each call's wall time appended to `seconds`."""
    def step(*args, **kwargs):
        start = time.monotonic()
        out = step_fn(*args, **kwargs)
        seconds.append(time.monotonic() - start)
        return out
    return step


def cycle_checked_prepare(prepare: Prepare, model: Any, step_fn: StepFn, flow_fn: AnyFlowFn, max_size: Optional[int],
                          frames: int = 10, margin: float = 0.0, carry: str = "probs") -> Prepare:
    """Wraps an online-finetuning `prepare` callback (`finetuning_prepare`, `recurrent_finetuning_prepare`):
    per video, the cycle IoU over its first `frames` + 1 frames (`cycle_iou`) is measured with the weights the
    model has now and after `prepare` finetuned them; the finetuned weights stay only when their cycle IoU is
    at least the original's plus `margin`, otherwise the original weights are put back. Both cycles carry what
    `carry` says (`propagate`); segment gives "probs" whatever its --carry (docs/RESULTS.md).

    `prepare` must start every video from the weights the model has when this wrapper is made (both callbacks
    above do); `model` is anything with `weights` (variables). When `prepare` has a time budget (`reserve_s`, as
    `recurrent_finetuning_prepare`), what both checks cost is taken off it (the first check's wall time, with
    the frames and every flow of both, and its model part once more; the model's part at its median step's pace,
    so the step's one-time tracing is not charged to the first video), so that the finetuning and both checks fit
    the budget together. Objects lost at the working size (`labels_at_size`) are not scored, but the step is given
    their rows (empty), as segmenting gives them: a colour prior network's step has every object's table bound.
    The returned callback's `log` is `prepare.log` with, per video,
    "cycle_before", "cycle_after", "kept_finetuning" and "cycle_seconds" added; `results` is `prepare.results`
    when it has them.
    """
    if frames < 1:
        raise ValueError(f"cycle_checked_prepare: frames must be >= 1, got {frames}.")
    if carry not in CARRY_MODES:
        raise ValueError(f"cycle_checked_prepare: carry must be one of {CARRY_MODES}, got {carry!r}.")
    initial = [v.numpy() for v in model.weights]
    threshold = float(getattr(getattr(model, "config", None), "mask_threshold", 0.5))  # the model's fusion
    inner_log: Dict[str, Dict[str, object]] = getattr(prepare, "log", None)
    log: Dict[str, Dict[str, object]] = {} if inner_log is None else inner_log

    def clip_of(source: VideoSource, first: FirstMask):
        """(frames 0..K at the working size, first ids there, objects present, their flows computed once, every
        object of the first mask: the step's batch, as segmenting gives it, lost objects included)."""
        size = working_size(tuple(source.size), max_size)
        ids, present = first_ids_at_size(first, size)
        reader = source.frames()
        clip = [resize_frame(frame, size) for _, frame in zip(range(frames + 1), reader)]
        reader.close()
        if not present or len(clip) < 2:
            return None
        bound = flow_fn
        if isinstance(flow_fn, NamedFlowFn):
            bound = flow_fn.for_sequence(source.name, tuple(source.size))
        flows = _flows_once(bound, clip, source.frame_names[:len(clip)])
        # Every flow of both cycles, now (each frame's flow to the one before, then to the one after): the checks
        # after reuse them.
        for a, b in zip(clip, clip[1:]):
            flows(b, a)
        for a, b in zip(clip[::-1], clip[::-1][1:]):
            flows(b, a)
        return clip, ids, present, flows, list(first.object_ids)

    def cycle(clip, seconds: Optional[List[float]] = None) -> Optional[float]:
        """The clip's cycle IoU; with `seconds`, each step's wall time appended to it."""
        if clip is None:
            return None
        step = step_fn if seconds is None else _timed(step_fn, seconds)
        return cycle_iou(step, clip[0], clip[1], clip[2], clip[3], threshold=threshold, carry=carry,
                         step_ids=clip[4])

    def checked(source: VideoSource, first: FirstMask) -> StepFn:
        start = time.monotonic()
        restore_weights(model, initial)
        clip = clip_of(source, first)
        model_start = time.monotonic()
        step_seconds: List[float] = []
        before = cycle(clip, step_seconds)
        check_seconds = time.monotonic() - start
        if hasattr(prepare, "reserve_s"):  # a budgeted finetuning: both checks come out of its budget
            # This check (frames and flows included) and the next, which reuses the flows: the model's part again.
            # Less what a step took above the median step (the process's first step traces the model, which comes
            # on top of the budget, as finetuning's own tracing does), in both counts.
            excess = sum(step_seconds) - float(np.median(step_seconds)) * len(step_seconds) if step_seconds else 0.0
            prepare.reserve_s = check_seconds + (time.monotonic() - model_start) - 2 * excess  # type: ignore
        result = prepare(source, first)
        start = time.monotonic()
        after = cycle(clip)
        kept = before is None or after is None or after >= before + margin
        if not kept:
            restore_weights(model, initial)
        entry = log.setdefault(source.name, {})
        entry.update(cycle_before=None if before is None else round(before, 4),
                     cycle_after=None if after is None else round(after, 4), kept_finetuning=bool(kept),
                     cycle_seconds=round(check_seconds + time.monotonic() - start, 2))
        return result

    checked.log = log  # type: ignore[attr-defined]
    if hasattr(prepare, "results"):
        checked.results = prepare.results  # type: ignore[attr-defined]
    return checked
