"""A first-frame colour model that keeps each object's mask off background of other colours (`segment --color_gate`).

Without ImageNet features the CPU recipe's masks creep into background next to the object (the water around a
duck, the smoke behind a drifting car), and the recurrence carries the creep on (docs/RESULTS.md, "What limits
it"). The first frame and its mask say which colours are the object's and which are the background's around it:
for each object, a histogram of its pixels' CIELAB colours and one of the background pixels within a band around
it (pixels of no object, void excluded). At every later frame, an object keeps its probability only where the
object's histogram gives the pixel's colour a share above the threshold, p = h_obj / (h_obj + h_bg), with both
histograms normalised after half a count is added to every bin (so a colour neither saw gets
(n_bg + 2048) / (n_obj + n_bg + 4096) for n_obj object and n_bg band pixels: about 0.5 when the two are alike,
lower for an object much larger than its band); elsewhere it is set to 0, in what is segmented and in what is
carried to the next frame. The local band, not the whole frame, is the background that matters: it is what the
mask can creep into, and a colour common far away but absent near the object (the sky above a car) does not count
against the object.

It is the classic per-video colour model of interactive and video segmentation (GrabCut's, Video SnapCut's
global one), kept to what the first frame gives: no update, so a colour the object shows only later (a side
turned towards the light) or a background colour it shares (a black dog on dark ground) is cut or kept wrongly.
On the CPU recipe's held-out sequences it lifted a duck on water from 26 to 85 J and cost 2-7 J on two of the
other three; on the val sequences it lost with two of three trainings (docs/RESULTS.md, "A first-frame colour
gate"): `segment` keeps it off by default.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from maskrnn_tf.inference.first_mask import FirstMask
from maskrnn_tf.inference.propagation import StepFn
from maskrnn_tf.inference.video_reader import VideoSource

BINS = 16  # per CIELAB channel (16^3 bins): 16 levels of 8-bit L, a and b
SMOOTHING = 0.5  # counts added to every bin before normalising


def _check(threshold: float, band: float) -> None:
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"color gate threshold must be in (0, 1), got {threshold}.")
    if not 0.0 < band <= 1.0:
        raise ValueError(f"color gate band must be in (0, 1] (a fraction of the frame's longer side), got {band}.")


COLOR_SPACES = ("lab", "rgb")


def color_bins(frame: np.ndarray, bins: int = BINS, space: str = "lab") -> np.ndarray:
    """[H, W] int32 histogram bin of every pixel of a uint8 RGB frame: its CIELAB colour (OpenCV's 8-bit L, a, b;
    space 'lab') or its R, G, B (space 'rgb', what `maskrnn_tf.ops.color_tables` looks up in the graph), each
    channel cut into `bins` equal levels."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be uint8 RGB [H, W, 3], got {frame.dtype} {frame.shape}.")
    if 256 % bins:
        raise ValueError(f"bins must divide 256, got {bins}.")
    if space not in COLOR_SPACES:
        raise ValueError(f"space must be one of {COLOR_SPACES}, got {space!r}.")
    coded = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB) if space == "lab" else frame
    level = coded.astype(np.int32) // (256 // bins)
    return (level[..., 0] * bins + level[..., 1]) * bins + level[..., 2]


def fit_color_model(frame: np.ndarray, labels: np.ndarray, object_ids: Sequence[int], band: float,
                    bins: int = BINS, space: str = "lab") -> np.ndarray:
    """[N, bins^3] float32: for each object (id `object_ids[i]` in `labels`), the share of its colour histogram in
    each bin, p = h_obj / (h_obj + h_bg), against the background within `band` of it.

    Args:
      frame: the first frame, uint8 RGB [H, W, 3].
      labels: its [H, W] ids (0 background, 255 void: neither object nor background).
      object_ids: the objects' ids, in model order.
      band: the background band's width around each object, as a fraction of the frame's longer side (pixels of
        label 0 within that distance of the object, Euclidean).
      space: the colour space of the bins (`color_bins`).
    """
    labels = np.asarray(labels)
    if labels.shape != np.asarray(frame).shape[:2]:
        raise ValueError(f"labels {labels.shape} and frame {np.asarray(frame).shape[:2]} differ in size.")
    _check(0.5, band)
    index = color_bins(frame, bins, space)
    radius = band * max(labels.shape)
    tables = []
    for object_id in object_ids:
        inside = labels == object_id
        # distanceTransform measures each pixel's distance to the nearest zero pixel: the object's pixels are 0.
        distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        around = (labels == 0) & (distance <= radius)
        counts = [np.bincount(index[where], minlength=bins ** 3).astype(np.float64) for where in (inside, around)]
        obj, bg = ((c + SMOOTHING) / (c.sum() + SMOOTHING * bins ** 3) for c in counts)
        tables.append(obj / (obj + bg))
    return np.asarray(tables, np.float32).reshape(len(tables), bins ** 3)


def gate_probs(probs: np.ndarray, frame: np.ndarray, model: np.ndarray, threshold: float) -> np.ndarray:
    """[N, H, W] probabilities set to 0 where object i's colour share (`fit_color_model`) of the pixel's colour in
    `frame` (uint8 RGB, same H, W) is at most `threshold`; a new float32 array."""
    probs = np.asarray(probs, np.float32)
    model = np.asarray(model, np.float32)
    if probs.ndim != 3 or probs.shape[0] != model.shape[0] or probs.shape[1:] != np.asarray(frame).shape[:2]:
        raise ValueError(f"probs {probs.shape} must be [N, H, W] with one colour model per object "
                         f"({model.shape[0]}) and the frame's size {np.asarray(frame).shape[:2]}.")
    bins = int(round(model.shape[1] ** (1 / 3)))
    share = model[:, color_bins(frame, bins)]  # [N, H, W]
    return np.where(share > threshold, probs, np.float32(0.0))


def color_gated_step(step_fn: StepFn, model: np.ndarray, threshold: float) -> StepFn:
    """A step function with the signature of `step_fn` whose 'probs' are `gate_probs` of the frame it is given:
    what is segmented and what the next step is given; its other outputs (boxes, threshold) pass through."""

    def run(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes) -> Dict[str, Any]:
        out: Mapping[str, Any] = step_fn(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes)
        result = dict(out)
        result["probs"] = gate_probs(out["probs"], frame, model, threshold)
        return result

    return run


def first_frame_of(source: VideoSource) -> np.ndarray:
    """The first frame of `source` (uint8 RGB at the video's own size); reads only that frame."""
    frames = source.frames()
    try:
        return next(frames)
    finally:
        frames.close()


class ColorGatedPrepare:
    """A `prepare(source, first) -> step_fn` callback that fits each video's colour model on its first frame and
    gates the step that `prepare` (online finetuning) or, without one, `step_fn` gives; the wrapped callback's
    attributes (`log`, `results`) are read through."""

    def __init__(self, step_fn: StepFn, prepare: Optional[Callable[[VideoSource, FirstMask], StepFn]],
                 threshold: float, band: float):
        _check(threshold, band)
        self._step_fn = step_fn
        self._prepare = prepare
        self._threshold = threshold
        self._band = band

    def __getattr__(self, name):
        if name.startswith("_"):  # not set yet (e.g. while copying): no recursion, nothing private read through
            raise AttributeError(name)
        if self._prepare is None:
            raise AttributeError(name)
        return getattr(self._prepare, name)

    def __call__(self, source: VideoSource, first: FirstMask) -> StepFn:
        step_fn = self._prepare(source, first) if self._prepare is not None else self._step_fn
        frame = first_frame_of(source)
        model = fit_color_model(frame, first.labels, first.object_ids, self._band)
        return color_gated_step(step_fn, model, self._threshold)


def first_frame_tables(source: VideoSource, first: FirstMask, band: float, max_size: Optional[int] = None,
                       object_ids: Optional[Sequence[int]] = None, frame: Optional[np.ndarray] = None) -> np.ndarray:
    """[N, 4096] the colour tables of a colour prior network for `object_ids` (default `first.object_ids`): fitted
    (RGB bins) on the first frame and its ids at the video's own size, as training fits them on its videos' frames
    (`max_size`: at that working size instead). `frame`: the source's first frame, if already read."""
    from maskrnn_tf.inference.first_mask import labels_at_size
    from maskrnn_tf.inference.video_reader import resize_frame, working_size
    from maskrnn_tf.ops.color_tables import BINS as PRIOR_BINS

    frame = first_frame_of(source) if frame is None else frame
    labels = first.labels
    if max_size:
        size = working_size(tuple(source.size), max_size)
        frame, labels = resize_frame(frame, size), labels_at_size(labels, size)
    ids = first.object_ids if object_ids is None else object_ids
    return fit_color_model(frame, labels, ids, band, bins=PRIOR_BINS, space="rgb")


class ColorPriorPrepare:
    """A `prepare(source, first) -> step_fn` callback for networks with `color_prior_input`: fits each video's
    colour tables (`first_frame_tables`) and binds them to each network's step (`networks`: (bound step, band)
    pairs, the steps `model_step_fn`'s, as `bound.color_model`; several with `segment --ensemble_models`, each
    given tables at its own band) before the wrapped `prepare` (online finetuning, its cycle check) runs, so that
    everything that steps the networks on this video sees them; returns what `prepare` gives, or `step_fn` (the
    networks' step, perhaps wrapped) without one. The wrapped callback's `log` and `results` are read through."""

    def __init__(self, networks: Sequence[Tuple[Callable[..., Mapping[str, Any]], float]], step_fn: StepFn,
                 prepare: Optional[Callable[[VideoSource, FirstMask], StepFn]]):
        if not networks:
            raise ValueError("ColorPriorPrepare needs at least one (step, band) pair.")
        for _, band in networks:
            _check(0.5, band)
        self._networks = list(networks)
        self._step_fn = step_fn
        self._prepare = prepare

    def __getattr__(self, name):
        if name.startswith("_") or self._prepare is None:
            raise AttributeError(name)
        return getattr(self._prepare, name)

    def __call__(self, source: VideoSource, first: FirstMask) -> StepFn:
        frame = first_frame_of(source)
        fitted: Dict[float, np.ndarray] = {}  # one fit per band
        for step, band in self._networks:
            if band not in fitted:
                fitted[band] = first_frame_tables(source, first, band, frame=frame)
            step.color_model = fitted[band]
        return self._prepare(source, first) if self._prepare is not None else self._step_fn
