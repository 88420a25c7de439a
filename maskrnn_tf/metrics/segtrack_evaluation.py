"""SegTrack v2 evaluation of a results folder: mean IoU (SegTrack v2's measure) and F per object.

SegTrack v2 has no split: every sequence of `ImageSets/all.txt` is scored. An object is one ground-truth layer
(`GroundTruth/<seq>/<k>/` for object k, or the single `GroundTruth/<seq>/` folder, object 1); masks are grey or
RGB with anti-aliased edges, foreground where the grey value is above 127. Layers may overlap (a rider over the
bike): each object is scored against its whole layer, so no result (one id per pixel) is perfect there. The first
frame's annotation is the given input, so it is not scored (`all_frames=True` scores it too); unlike DAVIS the last
frame is kept. Per object, IoU is averaged over the scored frames (1 where the object and the prediction are both
empty); the dataset IoU is the mean over all objects of all sequences (the paper reports a mean IoU over SegTrack v2's
objects, 1.74 per video, without stating how it averages). Results are read like DAVIS results:
`<results>/<seq>/<frame stem>.png`, ids of the objects (palette or grey id PNGs, or 0/255 for one object).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from maskrnn_tf.data import sequences as layouts
from maskrnn_tf.metrics.errors import DatasetLayoutError, MissingResultsError
from maskrnn_tf.metrics.evaluation import EvaluationConfig, EvaluationResults, SequenceResult, score_sequence

SPLIT_NAME = "segtrackv2"  # the CSVs' <split>: global_results-segtrackv2.csv


@dataclasses.dataclass(frozen=True)
class SegTrackSpec:
    """One SegTrack v2 sequence for the evaluation: its name, frame stems (the result file names) and layout."""

    name: str
    frames: Tuple[str, ...]
    sequence: layouts.Sequence


def list_segtrack_sequences(root: str, sequences: Optional[Sequence[str]] = None) -> List[SegTrackSpec]:
    """The sequences of `ImageSets/all.txt` under `root` (or the named ones, in that order)."""
    if not os.path.isdir(root):
        raise DatasetLayoutError(f"{root}: SegTrack v2 folder not found; pass the extracted dataset folder.")
    try:
        listed = layouts.read_segtrack_sequence_list(root)
    except layouts.DatasetLayoutError as err:
        raise DatasetLayoutError(str(err)) from err
    specs = [SegTrackSpec(s.name, tuple(os.path.splitext(os.path.basename(p))[0] for p in s.frame_paths), s)
             for s in listed]
    if sequences is None:
        return specs
    by_name = {s.name: s for s in specs}
    chosen = layouts.chosen_names(list(by_name), sequences, f"{root}/ImageSets/all.txt", DatasetLayoutError)
    return [by_name[n] for n in chosen]


def segtrack_frame_indices(n_frames: int, all_frames: bool = False) -> List[int]:
    """The scored frames: all but the first (the given annotation), or every frame."""
    return list(range(n_frames)) if all_frames else list(range(1, n_frames))


def load_segtrack_ground_truth(spec: SegTrackSpec, frame_indices: Sequence[int]
                               ) -> Tuple[np.ndarray, np.ndarray, Tuple[int, ...]]:
    """(ids [T', H, W] uint8, void [T', H, W] bool (none in SegTrack), object ids 1..N) of the chosen frames.
    Where layers overlap the later object holds the pixel (an id map has one id per pixel): score objects
    against `load_segtrack_layers`."""
    labels = np.stack([layouts.read_ids(spec.sequence, i) for i in frame_indices])
    return labels, np.zeros(labels.shape, bool), tuple(range(1, spec.sequence.num_objects + 1))


def load_segtrack_layers(spec: SegTrackSpec, frame_indices: Sequence[int]) -> np.ndarray:
    """Each object's own ground truth, bool [N, T', H, W], overlaps kept (read as `read_ids` reads them)."""
    sequence = spec.sequence
    if not sequence.mask_layers:  # one object in one mask per frame
        return np.stack([layouts.read_ids(sequence, i) > 0 for i in frame_indices])[None]
    return np.stack([np.stack([layouts.read_layer(sequence, i, k) for i in frame_indices])
                     for k in range(sequence.num_objects)])


def evaluate_segtrack_sequence(root_results: str, spec: SegTrackSpec, all_frames: bool,
                               config: EvaluationConfig) -> SequenceResult:
    """IoU and F per object of one sequence."""
    indices = segtrack_frame_indices(len(spec.frames), all_frames)
    if not indices:
        raise MissingResultsError(f"sequence '{spec.name}' has one frame, the given annotation: nothing to score "
                                  "(all_frames / --all_frames scores it).")
    gt, void, object_ids = load_segtrack_ground_truth(spec, indices)
    return score_sequence(root_results, spec, indices, gt, void, object_ids, config, with_t=False,
                          gt_objects=load_segtrack_layers(spec, indices))


def evaluate_segtrack(
    root: str,
    results_dir: str,
    sequences: Optional[Sequence[str]] = None,
    all_frames: bool = False,
    processes: int = 1,
    config: EvaluationConfig = EvaluationConfig(),
) -> EvaluationResults:
    """Scores `<results_dir>/<seq>/<frame>.png` against SegTrack v2 at `root`; J-Mean is the dataset IoU.

    `config` supplies the boundary tolerance (`bound_th`); its DAVIS fields (split, year, frames, T) do not apply.
    """
    specs = list_segtrack_sequences(root, sequences)
    if not os.path.isdir(results_dir):
        raise MissingResultsError(
            f"{results_dir}: results folder not found; run the segmentation first (python -m maskrnn_tf.segment "
            f"--segtrack_root=... writes <results>/<sequence>/<frame>.png) or fix --results.")
    if processes <= 1 or len(specs) <= 1:
        scored = [evaluate_segtrack_sequence(results_dir, s, all_frames, config) for s in specs]
    else:
        with concurrent.futures.ProcessPoolExecutor(max_workers=min(processes, len(specs))) as pool:
            futures = [pool.submit(evaluate_segtrack_sequence, results_dir, s, all_frames, config) for s in specs]
            scored = [f.result() for f in futures]
    notes = ["SegTrack v2: J-Mean is the IoU averaged over frames, then over the objects of all sequences "
             + ("(every frame scored)." if all_frames else "(the first frame, the given annotation, not scored).")]
    return EvaluationResults(SPLIT_NAME, None, scored, notes)
