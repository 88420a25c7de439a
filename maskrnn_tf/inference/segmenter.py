"""Segmenting a video (or every sequence of a DAVIS split) into a results folder.

`segment_frames` is the I/O-driving core shared by every caller (local model, baseline, a model-server
client): it streams the video through `propagate` and writes full-resolution palette PNGs (plus optional
probability maps and overlay video). `segment_video` / `segment_davis` / `segment_segtrack` add the atomic
output folder.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm import tqdm

from maskrnn_tf.inference.background import BackgroundWorker
from maskrnn_tf.inference.first_mask import FirstMask, MaskError, read_first_annotation, read_first_mask
from maskrnn_tf.inference.output_dir import (MARKER_FILE, OutputExistsError, UnsafeOutputError, atomic_output_dir,
                                             check_no_overlap, check_output_dir, check_writable_location)
from maskrnn_tf.inference.propagation import CARRY_MODES, AnyFlowFn, NamedFlowFn, StepFn, fuse, propagate
from maskrnn_tf.inference.video_reader import VideoSource, resize_frame, working_size
from maskrnn_tf.inference.writers import (MaskWriter, OverlayWriter, ProbabilityWriter, check_overlay_folder,
                                          upsample_probs)
from maskrnn_tf.io import VOID_ID, write_palette_png

PROBS_FOLDER = "probs"
_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SegmentOptions:
    """How a video is processed and what is written.

    Attributes:
      max_size: process frames (and flows) with their long side capped at this many pixels; masks are
        upsampled back to the input size. None or 0 = full size.
      need_next_flow: compute the flow t -> t+1 (False for steps that ignore it, e.g. the baseline).
      save_probs: None, "npy" (float16 [N, H, W] per frame) or "png" (8-bit per object) under `probs/`.
      read_ahead: frames (with their flows) prepared ahead on the background thread.
      write_queue: frames waiting to be written on the writer thread.
      threshold: the fusion threshold.
      progress: show a tqdm progress bar.
      min_size: the smallest short side the step accepts at the working size (the network's minimum;
        0 = any); smaller frames are refused before any work with the --max_size that would fit.
      carry: what each step gets of the previous frame: "probs" (the probabilities) or "labels" (the fused,
        thresholded masks); see `propagate`.
    """

    max_size: Optional[int] = None
    need_next_flow: bool = True
    save_probs: Optional[str] = None
    read_ahead: int = 3
    write_queue: int = 8
    threshold: float = 0.5
    progress: bool = True
    min_size: int = 0
    carry: str = "probs"

    def __post_init__(self) -> None:
        if self.carry not in CARRY_MODES:  # before any output is written
            raise ValueError(f"SegmentOptions.carry must be 'probs' or 'labels', got {self.carry!r}.")


class _FrameStash:
    """Full-resolution frames kept between the reader thread and the writer (only for the overlay)."""

    def __init__(self):
        self._frames: Dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def put(self, index: int, frame: np.ndarray) -> None:
        with self._lock:
            self._frames[index] = frame

    def pop(self, index: int) -> np.ndarray:
        with self._lock:
            return self._frames.pop(index)


def check_working_size(source: VideoSource, options: SegmentOptions) -> None:
    """Raises ValueError when `source`'s frames, capped at `options.max_size`, are below `options.min_size`."""
    height, width = working_size(tuple(source.size), options.max_size)
    if min(height, width) >= options.min_size:
        return
    full_h, full_w = source.size
    if min(full_h, full_w) < options.min_size:
        fix = f"the network needs frames of at least {options.min_size}x{options.min_size} pixels; upscale the video"
    else:
        needed = -(-options.min_size * max(full_h, full_w) // min(full_h, full_w))
        fix = f"pass --max_size={needed} or more (or 0 for the full size)"
    raise ValueError(f"{source.path}: frames of {full_w}x{full_h} are processed at {width}x{height}, below the "
                     f"network's minimum side of {options.min_size} pixels; {fix}.")


def check_flow_files(flow_fn: AnyFlowFn, source: VideoSource, options: SegmentOptions) -> None:
    """Raises FileNotFoundError when precomputed flows (`.flo` files) the loop will read for `source` are missing:
    found before any work, not when the loop reaches them. The flow to the previous frame of every frame; with
    `options.need_next_flow` (a network) every consecutive pair both ways (finetuning reads 0 -> 1 too)."""
    if not isinstance(flow_fn, NamedFlowFn):
        return
    stems = source.frame_names
    pairs = [(stems[t], stems[t - 1]) for t in range(1, len(stems))]
    if options.need_next_flow:
        pairs += [(stems[t], stems[t + 1]) for t in range(len(stems) - 1)]
    flow_fn.for_sequence(source.name, tuple(source.size)).check_flows(pairs)


def _working_frames(source: VideoSource, size, stash: Optional[_FrameStash]) -> Iterator[np.ndarray]:
    for index, frame in enumerate(source.frames()):
        if stash is not None:
            stash.put(index, frame)
        yield resize_frame(frame, size)


def segment_frames(
    step_fn: StepFn,
    source: VideoSource,
    first: FirstMask,
    flow_fn: AnyFlowFn,
    output_dir: str,
    options: SegmentOptions = SegmentOptions(),
    overlay_path: Optional[str] = None,
    description: Optional[str] = None,
    overlay: Optional[OverlayWriter] = None,
) -> int:
    """Segments `source` and writes `<output_dir>/<frame name>.png` for every frame; returns the frame count.

    Frame 0 is written as the given mask with its void (255) as background, as the DAVIS results are (the
    evaluation refuses ids the ground truth does not define); every other frame is the fused prediction, at
    the input size, with ids mapped back to the first mask's object ids and its palette. A `NamedFlowFn` (precomputed
    `.flo` files) reads the flows of the sequence `source.name` by frame name. Not atomic by itself (see
    `segment_video`). `overlay` (instead of `overlay_path`) is a writer the caller owns: the frames are
    written to it, and the caller finishes and publishes it (or aborts it).
    """
    if tuple(first.labels.shape) != tuple(source.size):
        raise ValueError(
            f"first mask size {first.labels.shape[1]}x{first.labels.shape[0]} differs from the frames of "
            f"{source.path} ({source.size[1]}x{source.size[0]})."
        )
    check_working_size(source, options)
    full_size = tuple(source.size)
    size = working_size(full_size, options.max_size)
    lookup = first.index_to_id()
    masks = MaskWriter(output_dir, first.palette)
    probs_writer = None
    if options.save_probs:
        probs_writer = ProbabilityWriter(os.path.join(output_dir, PROBS_FOLDER), first.object_ids, options.save_probs)
    owned = overlay is None and bool(overlay_path)
    if owned:
        overlay = OverlayWriter(overlay_path, full_size, first.palette, source.fps)
    stash = _FrameStash() if overlay is not None else None
    worker = BackgroundWorker(options.write_queue, name="writer")

    def write(index: int, probs: np.ndarray, threshold: float) -> None:
        # Runs on the writer thread: upsampling, fusion and encoding overlap the next model step.
        name = source.frame_names[index]
        if index == 0:
            ids = np.where(first.labels == VOID_ID, 0, first.labels).astype(np.uint8)
            full_probs = first.one_hot()
        else:
            full_probs = upsample_probs(probs, full_size)
            ids = lookup[fuse(full_probs, threshold)]
        masks.write(name, ids)
        if probs_writer is not None:
            probs_writer.write(name, full_probs)
        if overlay is not None:
            overlay.write(stash.pop(index), ids)

    if isinstance(flow_fn, NamedFlowFn):
        flow_fn = flow_fn.for_sequence(source.name, tuple(source.size))
    frames = _working_frames(source, size, stash)
    start = first.one_hot(size)
    lost = [row for row in range(len(start)) if not start[row].any()]
    if lost:  # not tracked (labels_at_size's warning): their rows stay in the step's batch, their outputs empty
        step_fn = _untracked(step_fn, lost)
    results = propagate(
        step_fn, frames, start, flow_fn,
        need_next_flow=options.need_next_flow, read_ahead=options.read_ahead, threshold=options.threshold,
        stems=source.frame_names, carry=options.carry,
    )
    count = 0
    try:
        bar = tqdm(results, total=source.num_frames, desc=description or os.path.basename(source.path),
                   unit="frame", disable=not options.progress, leave=False)
        for result in bar:
            # The result's threshold: options.threshold, or the one a served step returned with its answer.
            worker.submit(lambda index=result.index, probs=result.probs, threshold=result.threshold:
                          write(index, probs, threshold))
            count += 1
        worker.close()
    except BaseException:
        try:
            worker.close()
        except BaseException:  # noqa: BLE001 -- the first error is the one to report
            pass
        if owned:
            overlay.abort()
        raise
    if owned:
        overlay.close()
    return count


def _untracked(step_fn: StepFn, rows: Sequence[int]) -> StepFn:
    """`step_fn` with the probabilities of the object `rows` set to 0: objects lost at the working size. Their
    rows are kept (a colour prior network's step has every object's table bound) but must not be segmented: an
    empty previous mask makes the network fall back to a box of the whole frame, and what it found there would
    take pixels from the tracked objects in the fusion."""
    index = np.asarray(rows, np.int64)

    def step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes) -> Dict[str, Any]:
        out = dict(step_fn(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes))
        probs = np.array(out["probs"], np.float32)  # a copy: the step's own arrays stay as it returned them
        probs[index] = 0.0
        out["probs"] = probs
        return out

    return step


def _overlay_target(overlay_path: Optional[str], output_dir: str, tmp: str) -> Optional[str]:
    """Where the overlay is written: inside the temporary folder when it belongs inside the output (so it
    moves into place with the folder instead of being deleted with the old one), else at its path."""
    if not overlay_path:
        return None
    output, overlay = os.path.realpath(os.path.abspath(output_dir)), os.path.realpath(os.path.abspath(overlay_path))
    if not overlay.startswith(output + os.sep):
        return overlay_path
    inner = os.path.join(tmp, os.path.relpath(overlay, output))
    os.makedirs(os.path.dirname(inner), exist_ok=True)
    return inner


def _overlay_record(path: str, written: Optional[str] = None) -> Dict[str, object]:
    """What segment_run.json keeps of an overlay written outside the output folder: enough to tell later
    that the file at that path is still the one segment wrote (`written`: the finished file that is to be
    renamed to `path`, which keeps its size and mtime)."""
    stat = os.stat(written or path)
    return {"path": os.path.realpath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _recorded_overlays(output_dir: str) -> List[Dict[str, object]]:
    """The overlays outside `output_dir` that its segment_run.json names: its run's own (`overlay`) and those of
    the runs it replaced that were carried forward (`earlier_overlays`)."""
    try:
        with open(os.path.join(output_dir, MARKER_FILE), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return []
    if not isinstance(record, dict):
        return []
    earlier = record.get("earlier_overlays")
    entries = [record.get("overlay"), *(earlier if isinstance(earlier, list) else [])]
    return [entry for entry in entries if isinstance(entry, dict) and isinstance(entry.get("path"), str)]


def _overlay_written_by_segment(overlay_path: str, output_dir: str) -> bool:
    """Whether the file at `overlay_path` is, unchanged, an overlay that a run which wrote `output_dir` wrote (its
    segment_run.json names it)."""
    return _overlay_record(overlay_path) in _recorded_overlays(output_dir)


def _earlier_overlays(output_dir: str, overlay_path: Optional[str]) -> List[Dict[str, object]]:
    """The overlays (outside it) of the results in `output_dir` about to be replaced that are still there unchanged,
    other than `overlay_path` (this run's). They show the earlier masks, but may be wanted: they are kept, and
    the new segment_run.json names them so that `--overlay=<it> --overwrite` may still replace them."""
    this = os.path.realpath(overlay_path) if overlay_path else None
    kept: List[Dict[str, object]] = []
    for entry in _recorded_overlays(output_dir):
        path = str(entry["path"])
        if path == this or any(path == other["path"] for other in kept):
            continue
        try:
            unchanged = _overlay_record(path) == entry
        except OSError:  # gone: nothing to keep track of
            continue
        if unchanged:  # changed since, it is the user's: no longer segment's to replace
            kept.append(entry)
    return kept


def _carry_earlier_overlays(record: Dict[str, object], output_dir: str,
                            overlay_path: Optional[str] = None) -> List[Dict[str, object]]:
    """Notes in `record` the overlays `_earlier_overlays` keeps (read as late as possible: just before the new
    folder replaces the old one); returns them."""
    earlier = _earlier_overlays(output_dir, overlay_path)
    if earlier:
        record["earlier_overlays"] = earlier
    return earlier


def _warn_earlier_overlays(earlier: Sequence[Dict[str, object]], output_dir: str) -> None:
    for entry in earlier:
        _LOG.warning("%s: kept, but it shows the earlier masks, not those now in %s; rerun with --overlay=%s "
                     "--overwrite to redraw it (segment_run.json still names it), or delete it if it is not wanted.",
                     entry["path"], output_dir, entry["path"])


def check_overlay_path(overlay_path: str, output_dir: str, overwrite: bool,
                       inputs: Sequence[Tuple[str, Optional[str]]]) -> None:
    """Refuses an overlay path that is or holds an input, that would clash with the results, whose folder
    does not exist or cannot be written (outside the output folder), or that exists outside the output folder,
    unless `overwrite` and it is the unchanged overlay of a run that wrote the output folder (its own or one
    it carried forward, see `_earlier_overlays`)."""
    check_no_overlap(overlay_path, inputs, "--overlay")
    if not overlay_path.lower().endswith(".mp4"):  # written as MP4 and renamed: another name would lie about it
        raise ValueError(f"--overlay {overlay_path}: the overlay is an MP4 video (codec mp4v); give it a name ending "
                         "in .mp4.")
    output, overlay = os.path.realpath(os.path.abspath(output_dir)), os.path.realpath(os.path.abspath(overlay_path))
    if not overlay.startswith(output + os.sep):  # (inside --output its folders are made with the results)
        check_writable_location(overlay_path, "--overlay")  # now, not after the model has loaded and finetuned
        check_overlay_folder(overlay_path)
    if overlay == output:
        raise UnsafeOutputError(f"--overlay {overlay_path} is the --output folder; give the overlay a file name "
                                "such as <output>.mp4.")
    if overlay.startswith(output + os.sep):
        relative = os.path.relpath(overlay, output)
        if relative.lower().endswith((".png", ".json", ".npy")) or relative.split(os.sep)[0] == PROBS_FOLDER:
            raise UnsafeOutputError(f"--overlay {overlay_path} would clash with the results written in --output; "
                                    "name it like overlay.mp4.")
    elif os.path.lexists(overlay_path):
        if not overwrite:
            raise OutputExistsError(f"{overlay_path}: overlay already exists; choose another --overlay or pass "
                                    "--overwrite to replace it.")
        if os.path.islink(overlay_path) or not os.path.isfile(overlay_path):
            raise OutputExistsError(f"{overlay_path}: exists and is not a file; --overwrite only replaces an overlay "
                                    "segment wrote. Choose another --overlay.")
        if not _overlay_written_by_segment(overlay_path, output_dir):
            raise OutputExistsError(
                f"{overlay_path}: segment did not write this file (the {MARKER_FILE} of --output {output_dir} does "
                "not name it as its overlay, or it changed since), so --overwrite will not replace it. Choose "
                "another --overlay, or check the file and delete it yourself.")


def segment_video(
    step_fn: StepFn,
    video: str,
    first_mask: Union[str, FirstMask],
    flow_fn: AnyFlowFn,
    output_dir: str,
    options: SegmentOptions = SegmentOptions(),
    overlay_path: Optional[str] = None,
    overwrite: bool = False,
    prepare: Optional[Callable[[VideoSource, FirstMask], StepFn]] = None,
    inputs: Sequence[Tuple[str, Optional[str]]] = (),
    metadata: Optional[Dict[str, object]] = None,
    allow_partial_video: bool = False,
    first_mask_copy: Optional[str] = None,
) -> int:
    """Segments one video into `output_dir`, which appears only when complete.

    Args:
      step_fn: the recurrent step (ignored when `prepare` is given).
      video: a folder of frames or a video file.
      first_mask: the first frame's mask: a file (palette PNG of ids, or binary) or a FirstMask (e.g. made
        from boxes with `box_prompt.first_mask_from_boxes`).
      flow_fn: the flow backend (a `NamedFlowFn` reads the flows of the sequence named after the video's
        folder, or its file name without extension).
      output_dir: results folder; refused when it is, contains or lies inside an input (`video`,
        `first_mask`, `inputs`); an existing one is replaced only with `overwrite` and only when segment
        wrote it (see `check_output_dir`).
      options: see SegmentOptions.
      overlay_path: optional mp4 with the masks blended into the frames (may lie inside `output_dir`).
      prepare: optional callback (video, first mask) -> step_fn, e.g. online finetuning on the first frame.
      inputs: further (flag, path) inputs the outputs must not touch (the model, the .flo folder).
      metadata: extra fields for the folder's `segment_run.json`.
      allow_partial_video: segment the decodable prefix of a truncated video file (with a warning) instead
        of refusing it.
      first_mask_copy: also write the first mask as `<output_dir>/<first_mask_copy>` (a palette PNG), e.g. a
        mask made from boxes, for the user to inspect or correct and pass back as --first_mask.
    Returns the number of frames written.
    """
    mask_file = first_mask if isinstance(first_mask, str) else None
    inputs = [("--video", video), *([("--first_mask", mask_file)] if mask_file else []), *inputs]
    check_output_dir(output_dir, overwrite, inputs)
    if overlay_path:
        check_overlay_path(overlay_path, output_dir, overwrite, inputs)
    source = VideoSource(video, exclude=[mask_file] if mask_file else [], allow_partial=allow_partial_video)
    if isinstance(first_mask, FirstMask):
        first = first_mask
        if tuple(first.labels.shape) != tuple(source.size):
            raise MaskError(f"first mask size {first.labels.shape[1]}x{first.labels.shape[0]} differs from the "
                            f"frames of {video} ({source.size[1]}x{source.size[0]}).")
    else:
        first = read_first_mask(first_mask, source.size)
    check_working_size(source, options)
    check_flow_files(flow_fn, source, options)
    if prepare is not None:
        step_fn = prepare(source, first)
    record = {"video": os.path.abspath(video),
              "first_mask": os.path.abspath(mask_file) if mask_file else first_mask_copy,
              "object_ids": list(first.object_ids), **(metadata or {}), **_finetune_log(prepare)}
    # An overlay outside the output is finished beside its path but moved there only once the results it
    # goes with are in place: a run failing before (at the final check, say) leaves the old pair together.
    outside: Optional[OverlayWriter] = None
    try:
        with atomic_output_dir(output_dir, overwrite, inputs, record) as tmp:
            start = time.monotonic()
            overlay_target = _overlay_target(overlay_path, output_dir, tmp)
            if overlay_target and overlay_target == overlay_path:
                outside = OverlayWriter(overlay_path, tuple(source.size), first.palette, source.fps)
                overlay_target = None
            record["frames"] = segment_frames(step_fn, source, first, flow_fn, tmp, options, overlay_target,
                                              overlay=outside)
            if outside is not None:  # the record names it, as it will be once renamed
                record["overlay"] = _overlay_record(overlay_path, outside.finish())
                # Checked again, as the results folder is: the user may have put a file there meanwhile.
                check_overlay_path(overlay_path, output_dir, overwrite, inputs)
            record["segment_seconds"] = round(time.monotonic() - start, 2)
            if first_mask_copy:
                write_palette_png(os.path.join(tmp, first_mask_copy), first.labels, first.palette)
            earlier = _carry_earlier_overlays(record, output_dir, overlay_path)
    except BaseException:
        if outside is not None:
            outside.abort()
        raise
    if outside is not None:
        outside.publish()
    _warn_earlier_overlays(earlier, output_dir)
    return record["frames"]


def _finetune_log(prepare) -> Dict[str, object]:
    """{"finetune_log": prepare.log} when the prepare callback keeps one (per video: updates, seconds), the
    same dict, so that segment_run.json gets what it holds when the folder is complete."""
    log = getattr(prepare, "log", None)
    return {"finetune_log": log} if isinstance(log, dict) else {}


def segment_davis(
    davis_root: str,
    split: str,
    flow_fn: AnyFlowFn,
    output_dir: str,
    step_fn: Optional[StepFn] = None,
    options: SegmentOptions = SegmentOptions(),
    overwrite: bool = False,
    year: Optional[int] = None,
    prepare: Optional[Callable[[VideoSource, FirstMask], StepFn]] = None,
    sequences: Optional[List[str]] = None,
    inputs: Sequence[Tuple[str, Optional[str]]] = (),
    metadata: Optional[Dict[str, object]] = None,
) -> List[str]:
    """Segments every sequence of a DAVIS split into `<output_dir>/<seq>/<frame>.png` (atomic as a whole).

    The first frame's ground truth seeds each sequence. `prepare` (if given) builds the step for each
    sequence (online finetuning). A `NamedFlowFn` reads each sequence's flows under its DAVIS name.
    `output_dir` is checked like segment_video's (`davis_root` and `inputs` are the inputs it must not touch).
    Returns the sequence names.
    """
    from maskrnn_tf.data.sequences import (chosen_names, davis_split_names, davis_year,  # layouts only here
                                           find_davis_root, read_davis_sequence_list)

    inputs = [("--davis_root", davis_root), *inputs]
    check_output_dir(output_dir, overwrite, inputs)
    if year is None:
        year = davis_year(davis_root)
    split_names = davis_split_names(davis_root, year, split)
    if not split_names:  # an output folder with no sequence in it would be read as a (wrong) result
        list_path = os.path.join(find_davis_root(davis_root), "ImageSets", "2017" if year == 2017 else "480p",
                                 f"{split}.txt")
        raise ValueError(f"{list_path} lists no sequences: nothing to segment (check the file or --split).")
    chosen = chosen_names(split_names, sequences, f"DAVIS-{year} {split}")
    # Only the chosen sequences are opened: another one's broken files must not stop work on them.
    by_name = {s.name: s for s in read_davis_sequence_list(davis_root, year, split, validate="first_mask",
                                                           names=chosen)}  # test-dev has no other masks
    listed = [by_name[name] for name in chosen]
    record = {"davis_root": os.path.abspath(davis_root), "split": split, "year": year, **(metadata or {})}

    def first_mask(sequence, source: VideoSource) -> FirstMask:
        # Its ground truth: read as evaluate reads it, so the results hold the ids it scores.
        return read_first_annotation(sequence.mask_paths[0][0], source.size)

    return _segment_sequences(listed, first_mask, flow_fn, output_dir, step_fn, options, overwrite, prepare,
                              inputs, record, f"DAVIS-{year} {split}")


def segment_segtrack(
    segtrack_root: str,
    flow_fn: AnyFlowFn,
    output_dir: str,
    step_fn: Optional[StepFn] = None,
    options: SegmentOptions = SegmentOptions(),
    overwrite: bool = False,
    prepare: Optional[Callable[[VideoSource, FirstMask], StepFn]] = None,
    sequences: Optional[List[str]] = None,
    inputs: Sequence[Tuple[str, Optional[str]]] = (),
    metadata: Optional[Dict[str, object]] = None,
) -> List[str]:
    """Segments the sequences of a SegTrack v2 folder (`ImageSets/all.txt`) into `<output_dir>/<seq>/<frame>.png`.

    The first frame's ground-truth layers seed each sequence as objects 1..N (layer k is object k; a
    single-object sequence is object 1), the ids `python -m maskrnn_tf.evaluate --segtrack_root` scores. Otherwise
    as `segment_davis` (atomic as a whole, `prepare` per sequence, `NamedFlowFn` by sequence name).
    """
    from maskrnn_tf.data.sequences import chosen_names, read_ids, read_segtrack_sequence_list  # layouts only here
    from maskrnn_tf.io import davis_palette

    inputs = [("--segtrack_root", segtrack_root), *inputs]
    check_output_dir(output_dir, overwrite, inputs)
    listed = read_segtrack_sequence_list(segtrack_root)
    if not listed:
        raise ValueError(f"{segtrack_root}: ImageSets/all.txt lists no sequences: nothing to segment.")
    by_name = {s.name: s for s in listed}
    listed = [by_name[name] for name in chosen_names(list(by_name), sequences, "SegTrack v2")]
    record = {"segtrack_root": os.path.abspath(segtrack_root), **(metadata or {})}

    def first_mask(sequence, source: VideoSource) -> FirstMask:
        labels = read_ids(sequence, 0)
        present = tuple(int(v) for v in np.unique(labels) if v not in (0, VOID_ID))
        if not present:
            raise MaskError(f"{sequence.mask_paths[0][0]}: the first frame's ground truth of {sequence.name} holds "
                            "no object (every pixel at or below 127); SegTrack v2 starts from it.")
        if tuple(labels.shape) != tuple(source.size):
            raise MaskError(f"{sequence.mask_paths[0][0]}: mask size {labels.shape[1]}x{labels.shape[0]} differs "
                            f"from the frames of {sequence.name} ({source.size[1]}x{source.size[0]}).")
        return FirstMask(labels=labels, object_ids=present, palette=davis_palette())

    return _segment_sequences(listed, first_mask, flow_fn, output_dir, step_fn, options, overwrite, prepare,
                              inputs, record, "SegTrack v2")


def _segment_sequences(listed, first_mask, flow_fn: AnyFlowFn, output_dir: str, step_fn: Optional[StepFn],
                       options: SegmentOptions, overwrite: bool, prepare, inputs, record: Dict[str, object],
                       description: str) -> List[str]:
    """Segments `listed` (maskrnn_tf.data.sequences.Sequence) into `<output_dir>/<name>/`, atomic as a whole;
    `first_mask(sequence, source)` gives each sequence's FirstMask. Every first mask and working size is checked
    before the first sequence is segmented: the folder is written whole or not at all, so a bad input found at
    the last sequence would throw away the work on the others."""
    names: List[str] = []
    seconds: Dict[str, float] = {}
    record = {**record, "sequences": names, **_finetune_log(prepare), "segment_seconds": seconds}
    sources = [VideoSource(os.path.dirname(s.frame_paths[0]), frame_paths=list(s.frame_paths), name=s.name)
               for s in listed]
    firsts = [first_mask(sequence, source) for sequence, source in zip(listed, sources)]
    # Which object each probability row (--save_probs) and each result id is, per sequence: a first frame
    # without some object (a SegTrack layer that enters later) leaves it out of the run.
    record["object_ids"] = {s.name: [int(i) for i in first.object_ids] for s, first in zip(listed, firsts)}
    for source in sources:
        check_working_size(source, options)
        check_flow_files(flow_fn, source, options)
    with atomic_output_dir(output_dir, overwrite, inputs, record) as tmp:
        for sequence, source, first in tqdm(list(zip(listed, sources, firsts)), desc=description, unit="seq",
                                            disable=not options.progress):
            seq_step = prepare(source, first) if prepare is not None else step_fn
            if seq_step is None:
                raise ValueError("segmenting a dataset needs step_fn or prepare.")
            start = time.monotonic()
            segment_frames(seq_step, source, first, flow_fn, os.path.join(tmp, sequence.name), options,
                           description=sequence.name)
            seconds[sequence.name] = round(time.monotonic() - start, 2)
            names.append(sequence.name)
        earlier = _carry_earlier_overlays(record, output_dir)  # a single video's results replaced by a dataset's
    _warn_earlier_overlays(earlier, output_dir)
    return names
