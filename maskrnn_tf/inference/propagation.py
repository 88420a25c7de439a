"""The propagation loop: one recurrent step per frame over a whole video, flow computed on the fly (or read
from precomputed files by frame name, see `NamedFlowFn`).

The loop only needs a `step_fn` with the signature of `MaskRNN.step` (a local model, the flow-propagation
baseline, or a client calling a model server), so every way of segmenting a video writes the same outputs.
Frames are read and flows computed on a background thread, a bounded number of frames ahead, so flow and
decoding overlap the model.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from maskrnn_tf.inference.background import prefetch
from maskrnn_tf.model import fuse_probabilities
from maskrnn_tf.ops import mask_to_box

# step_fn(frame [H,W,3], flow_to_prev [H,W,2], flow_to_next [H,W,2], prev_probs [N,H,W], prev_boxes [N,4])
#   -> mapping with at least 'probs' [N,H,W] and 'boxes' [N,4] (tensors or arrays), and optionally
#   'mask_threshold' [N] (the fusion threshold of the model that answered; see `served_threshold`).
StepFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], Mapping[str, Any]]
# flow_fn(frame_a, frame_b) -> [H,W,2] float32 (u, v) flow from frame a to frame b.
FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
CARRY_MODES = ("probs", "labels")  # what propagate feeds back as the next step's prev_probs
MASK_THRESHOLD_KEY = "mask_threshold"  # the export's step output of that name (export/serving_module.py)


class NamedFlowFn(abc.ABC):
    """A flow function that fetches precomputed flows by frame name (e.g. `.flo` files) instead of computing
    them from pixels. The loop calls it with the frames' name stems as well (see `propagate(stems=...)`).
    """

    @abc.abstractmethod
    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray, stem_a: str, stem_b: str) -> np.ndarray:
        """(u, v) flow from frame `stem_a` to frame `stem_b`, float32 at frame_a's size [H, W, 2]."""

    @abc.abstractmethod
    def for_sequence(self, sequence: str, full_size: Optional[Tuple[int, int]] = None) -> "NamedFlowFn":
        """The same flows for the video named `sequence` (precomputed files are grouped by sequence), whose frames
        are `full_size` (height, width) before any `--max_size` scaling, when known."""

    def check_flows(self, pairs: Sequence[Tuple[str, str]]) -> None:
        """Raises when a flow of `pairs` ((from, to) frame stems) cannot be read (a missing file), before the loop
        needs it; flows computed on demand have nothing to check."""


AnyFlowFn = Union[FlowFn, NamedFlowFn]


def flow_between(flow_fn: AnyFlowFn, frame_a: np.ndarray, frame_b: np.ndarray,
                 stem_a: Optional[str] = None, stem_b: Optional[str] = None) -> np.ndarray:
    """Calls `flow_fn` for the pair (a, b): with the frames' stems when it looks flows up by name."""
    if isinstance(flow_fn, NamedFlowFn):
        if stem_a is None or stem_b is None:
            raise ValueError(
                f"{type(flow_fn).__name__} reads precomputed flows by frame name; pass the frames' stems "
                "(propagate(..., stems=frame names))."
            )
        return flow_fn(frame_a, frame_b, stem_a, stem_b)
    return flow_fn(frame_a, frame_b)


@dataclasses.dataclass
class StepInput:
    """What the model sees at frame t (flows are zeros where the neighbouring frame does not exist)."""

    index: int
    frame: np.ndarray
    flow_to_prev: np.ndarray
    flow_to_next: np.ndarray


@dataclasses.dataclass
class FrameResult:
    """The prediction for frame `index`: probs [N, H, W] float32, boxes [N, 4] float32 (y1, x1, y2, x2).

    `labels` ([H, W] int32, 0 background, i + 1 = object i) is fused on first access, so callers that fuse
    at another size (after upsampling) do not pay for it.
    """

    index: int
    probs: np.ndarray
    boxes: np.ndarray
    threshold: float = 0.5
    _labels: Optional[np.ndarray] = dataclasses.field(default=None, repr=False)

    @property
    def labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = fuse(self.probs, self.threshold)
        return self._labels


def step_inputs(frames: Iterable[np.ndarray], flow_fn: AnyFlowFn, need_next_flow: bool = True,
                stems: Optional[Sequence[str]] = None) -> Iterator[StepInput]:
    """Pairs every frame with its flows to the previous and next frame, holding at most three frames.

    Frame 0 gets zero flows (the loop does not run the model on it); the last frame gets a zero flow to next.
    With `need_next_flow=False` the flow to the next frame is zeros everywhere (the baseline does not use it).
    `stems` (frame name stems, in order) are passed to a `NamedFlowFn`; other flow functions ignore them.
    """

    def stem(i: int) -> Optional[str]:
        return None if stems is None else stems[i]

    iterator = iter(frames)
    try:
        current = next(iterator)
    except StopIteration:
        return
    zeros = np.zeros(current.shape[:2] + (2,), np.float32)
    previous: Optional[np.ndarray] = None
    index = 0
    while current is not None:
        following = next(iterator, None)
        if previous is not None:
            flow_prev = flow_between(flow_fn, current, previous, stem(index), stem(index - 1))
        else:
            flow_prev = zeros
        if index == 0 or following is None or not need_next_flow:
            flow_next = zeros
        else:
            flow_next = flow_between(flow_fn, current, following, stem(index), stem(index + 1))
        yield StepInput(index, current, np.asarray(flow_prev, np.float32), np.asarray(flow_next, np.float32))
        previous, current, index = current, following, index + 1


class StepWrappedPrepare:
    """A `prepare(source, first) -> step_fn` callback (online finetuning) whose step functions are passed through
    `wrap(step_fn) -> step_fn` (test-time mirroring, the growth cap); the wrapped callback's attributes (`log`, its
    per-video finetuning record; `results`) are read through."""

    def __init__(self, prepare, wrap: Callable[[StepFn], StepFn]):
        self._prepare = prepare
        self._wrap = wrap

    def __getattr__(self, name):
        if name in ("_prepare", "_wrap"):  # not set yet (e.g. while copying): no recursion
            raise AttributeError(name)
        return getattr(self._prepare, name)

    def __call__(self, source, first) -> StepFn:
        return self._wrap(self._prepare(source, first))


def served_threshold(outputs: Mapping[str, np.ndarray], default: float) -> float:
    """The `mask_threshold` a step returned (the same on every object row), else `default` (a step without that
    output, or with no object row).

    Reading it from the step's own answer, not from a separate request, keeps every request of a video at the
    video's frame size: a batching model server fails a whole batch whose requests differ in H or W."""
    value = outputs.get(MASK_THRESHOLD_KEY)
    if value is None:
        return default
    value = np.asarray(value, np.float32).reshape(-1)
    return float(value[0]) if value.size else default


def fuse(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """[N, H, W] probabilities -> [H, W] int32 labels (see `maskrnn_tf.model.fuse_probabilities`)."""
    return np.asarray(fuse_probabilities(np.asarray(probs, np.float32), threshold))


def carried_masks(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """[N, H, W] probabilities -> [N, H, W] float32 0/1 masks of the fused labels (object i where `fuse` gives
    i + 1): each pixel belongs to at most one object, and only where its probability exceeds `threshold`."""
    probs = np.asarray(probs, np.float32)
    labels = fuse(probs, threshold)
    return (labels[None] == np.arange(1, probs.shape[0] + 1, dtype=labels.dtype)[:, None, None]).astype(np.float32)


def first_boxes(first_probs: np.ndarray) -> np.ndarray:
    """[N, 4] tight boxes of the first-frame masks (the first step's `prev_boxes`)."""
    return np.asarray(mask_to_box(np.asarray(first_probs, np.float32))[0], np.float32)


def propagate(
    step_fn: StepFn,
    frames: Iterable[np.ndarray],
    first_probs: np.ndarray,
    flow_fn: AnyFlowFn,
    *,
    need_next_flow: bool = True,
    read_ahead: int = 3,
    threshold: float = 0.5,
    stems: Optional[Sequence[str]] = None,
    carry: str = "probs",
) -> Iterator[FrameResult]:
    """Segments a video by running `step_fn` on every frame after the first, carrying the state.

    Args:
      step_fn: one recurrent step (see `StepFn`); objects are batched along its first axis.
      frames: the video's frames in order, uint8 RGB [H, W, 3] (any iterable: it is consumed once).
      first_probs: [N, H, W] float 0/1 masks of the N objects in frame 0.
      flow_fn: optical flow between two frames (see `FlowFn`), or a `NamedFlowFn` reading precomputed flows
        by frame name (needs `stems`, and binding to the video with `for_sequence`); runs on a background
        thread.
      need_next_flow: False skips the flow t -> t+1 (zeros are passed), for steps that ignore it.
      read_ahead: how many frames (with their flows) the background thread may prepare ahead; 0 = inline.
      threshold: the fusion threshold; a step that returns `mask_threshold` (a served export's steps do: the
        model's own threshold, one value per object row) replaces it from its first answer on.
      stems: the frames' name stems in order (e.g. `VideoSource.frame_names`), for a `NamedFlowFn`.
      carry: what the next step gets as `prev_probs`: "probs", the step's probabilities as they are (what stage B
        trains with), or "labels", one 0/1 mask per object of the fused, thresholded labels (`carried_masks`; the
        paper's y_{t-1}). The yielded results hold the step's probabilities either way.

    Yields:
      one FrameResult per frame; frame 0's is the given mask, frame t >= 1 comes from
      step_fn(frame_t, flow t->t-1, flow t->t+1 (zeros at the last frame), probs_{t-1}, boxes_{t-1}), with
      probs_0 = first_probs (as given) and boxes_0 = their tight boxes; with carry="labels", probs_{t-1} of t >= 2
      is `carried_masks` of frame t-1's probabilities at its threshold.
    """
    if carry not in CARRY_MODES:
        raise ValueError(f"carry must be 'probs' or 'labels', got {carry!r}.")
    probs = np.asarray(first_probs, np.float32)
    if probs.ndim != 3:
        raise ValueError(f"first_probs must be [N, H, W], got shape {probs.shape}.")
    boxes = first_boxes(probs)
    for item in prefetch(step_inputs(frames, flow_fn, need_next_flow, stems), read_ahead):
        if item.index == 0:
            if item.frame.shape[:2] != probs.shape[1:]:
                raise ValueError(
                    f"first mask size {probs.shape[2]}x{probs.shape[1]} differs from the frames "
                    f"({item.frame.shape[1]}x{item.frame.shape[0]})."
                )
            yield FrameResult(0, probs, boxes, threshold)
            continue
        carried = probs if carry == "probs" or item.index == 1 else carried_masks(probs, threshold)
        out = step_fn(item.frame, item.flow_to_prev, item.flow_to_next, carried, boxes)
        probs = np.asarray(out["probs"], np.float32)
        boxes = np.asarray(out["boxes"], np.float32)
        threshold = served_threshold(out, threshold)
        yield FrameResult(item.index, probs, boxes, threshold)
