"""DAVIS semi-supervised evaluation of a results folder: J and F per object (and T for DAVIS-2016).

Protocol (davis2017-evaluation): for each sequence the first and the last frame are dropped, every object
1..N of the first ground-truth frame gets per-frame J and F over the remaining frames, and `db_statistics`
turns them into mean / recall / decay. Global numbers average over objects; J&F-Mean = (J-Mean + F-Mean) / 2.

Void pixels (DAVIS-2017, id 255) are scored as background by default, as davis2017-evaluation scores them (its
semi-supervised evaluation passes no void mask to J and F): the numbers compare with published ones.
`exclude_void=True` leaves them out of J and F instead (a result is then not penalised for labelling them).
"""
from __future__ import annotations

import concurrent.futures
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from maskrnn_tf.data.sequences import repeated_names
from maskrnn_tf.metrics.boundary import db_eval_boundary
from maskrnn_tf.metrics.davis_dataset import (
    SequenceSpec,
    check_outside_dataset,
    detect_year,
    list_sequences,
    load_ground_truth,
    load_results,
    resolve_davis_root,
)
from maskrnn_tf.metrics.errors import DatasetLayoutError, EvaluationInputError, MissingResultsError
from maskrnn_tf.metrics.region import db_eval_iou
from maskrnn_tf.metrics.statistics import db_statistics
from maskrnn_tf.metrics.temporal import ShapeContextConfig, temporal_stability


@dataclass(frozen=True)
class EvaluationConfig:
    """What and how to evaluate. `year=None` detects the layout; `compute_t=None` means T for DAVIS-2016 only."""

    split: str = "val"
    year: Optional[int] = None
    resolution: str = "480p"
    sequences: Optional[Tuple[str, ...]] = None  # a subset of the split; None = all
    processes: int = 1  # worker processes over sequences; 1 = in this process
    skip_first_last: bool = True  # the DAVIS protocol; False scores every frame
    exclude_void: bool = False  # True: void pixels out of J and F (the released tool counts them as background)
    compute_t: Optional[bool] = None
    bound_th: float = 0.008
    shape_context: ShapeContextConfig = field(default_factory=ShapeContextConfig)


@dataclass
class ObjectResult:
    """Per-frame J and F of one object (evaluated frames only), and its T when computed."""

    sequence: str
    object_id: int
    j: np.ndarray
    f: np.ndarray
    t: Optional[float] = None

    @property
    def name(self) -> str:
        """`<seq>_<objid>`, the official per-sequence row name."""
        return f"{self.sequence}_{self.object_id}"

    @property
    def j_stats(self) -> Tuple[float, float, float]:
        """J (mean, recall, decay)."""
        return db_statistics(self.j)

    @property
    def f_stats(self) -> Tuple[float, float, float]:
        """F (mean, recall, decay)."""
        return db_statistics(self.f)


@dataclass
class SequenceResult:
    """All objects of one sequence and the frame names that were scored."""

    name: str
    frames: Tuple[str, ...]
    objects: List[ObjectResult]
    # Scored frames read as grey 0/255 masks (object 1): davis2017-evaluation reads 255 as object 255 and exits.
    binary_frames: Tuple[str, ...] = ()


@dataclass
class EvaluationResults:
    """The whole evaluation: per-sequence results in split order, plus notes for the user."""

    split: str
    year: Optional[int]  # None for SegTrack v2
    sequences: List[SequenceResult]
    notes: List[str] = field(default_factory=list)

    @property
    def objects(self) -> List[ObjectResult]:
        """Every evaluated object, in order."""
        return [o for s in self.sequences for o in s.objects]

    @property
    def has_t(self) -> bool:
        """Whether T was computed for at least one object."""
        return any(o.t is not None for o in self.objects)

    def global_metrics(self) -> Dict[str, float]:
        """Official global columns (plus `T-Mean` over objects with a finite T, when T was computed)."""
        objects = self.objects
        j = np.array([o.j_stats for o in objects], np.float64).reshape(-1, 3)
        f = np.array([o.f_stats for o in objects], np.float64).reshape(-1, 3)
        j_mean, j_recall, j_decay = (float(np.mean(j[:, k])) if len(j) else math.nan for k in range(3))
        f_mean, f_recall, f_decay = (float(np.mean(f[:, k])) if len(f) else math.nan for k in range(3))
        out = {
            "J&F-Mean": (j_mean + f_mean) / 2,
            "J-Mean": j_mean,
            "J-Recall": j_recall,
            "J-Decay": j_decay,
            "F-Mean": f_mean,
            "F-Recall": f_recall,
            "F-Decay": f_decay,
        }
        if self.has_t:
            ts = [o.t for o in objects if o.t is not None and not math.isnan(o.t)]
            out["T-Mean"] = float(np.mean(ts)) if ts else math.nan
        return out

    def per_sequence_rows(self) -> List[Dict[str, object]]:
        """One row per object: Sequence, J-Mean, F-Mean (and T, None when not computed)."""
        rows = []
        for o in self.objects:
            row: Dict[str, object] = {"Sequence": o.name, "J-Mean": o.j_stats[0], "F-Mean": o.f_stats[0]}
            if self.has_t:
                row["T"] = o.t
            rows.append(row)
        return rows


def evaluated_frame_indices(n_frames: int, skip_first_last: bool = True) -> List[int]:
    """Indices of the scored frames: 1..n-2 under the DAVIS protocol, else all."""
    return list(range(1, n_frames - 1)) if skip_first_last else list(range(n_frames))


def evaluate_sequence(
    davis_root: str,
    results_dir: str,
    sequence: Union[SequenceSpec, str],
    config: EvaluationConfig = EvaluationConfig(),
    with_t: Optional[bool] = None,
) -> SequenceResult:
    """J and F (and T) for every object of one sequence, given as a name of the split or a `SequenceSpec`.

    `with_t=None` applies the config's rule (DAVIS-2016 `eval_t` flags); T is computed on consecutive predicted
    masks of the scored frames, as the DAVIS-2016 Python tool pairs them (maskrnn_tf.metrics.temporal).
    """
    davis_root = resolve_davis_root(davis_root, config.year, config.resolution)
    if isinstance(sequence, str):  # read alone: another sequence of the split may be broken
        (spec,) = list_sequences(davis_root, config.split, _year(davis_root, config), config.resolution, (sequence,))
    else:
        spec = sequence
    if with_t is None:
        with_t = _wants_t(spec, _year(davis_root, config), config.compute_t)
    indices = evaluated_frame_indices(len(spec.frames), config.skip_first_last)
    if not indices:
        # The frames are the annotations (DAVIS-2017): one may be a test-dev sequence whose JPEGImages/ is absent.
        first_only = (" (if its other frames are not annotated, as in DAVIS-2017 test-dev and test-challenge, it "
                      "cannot be scored locally at all: the DAVIS evaluation server scores those)"
                      if len(spec.frames) == 1 else "")
        raise EvaluationInputError(
            f"sequence '{spec.name}' has {len(spec.frames)} annotated frame{'s' if len(spec.frames) != 1 else ''}; "
            f"the DAVIS protocol drops the first and the last, leaving none to score: score every frame with "
            f"--all_frames{first_only}."
        )
    gt, void, object_ids = load_ground_truth(spec, indices)
    return score_sequence(results_dir, spec, indices, gt, void, object_ids, config, with_t)


def score_sequence(
    results_dir: str,
    spec: Any,
    indices: List[int],
    gt: np.ndarray,
    void: np.ndarray,
    object_ids: Tuple[int, ...],
    config: EvaluationConfig,
    with_t: bool = False,
    gt_objects: Optional[np.ndarray] = None,
) -> SequenceResult:
    """J and F (and T when `with_t`) per object of one sequence, given its ground truth ids [T', H, W] and void
    of the frames `indices`; the results are read from `<results_dir>/<spec.name>/<frame>.png` (any spec with
    `name` and `frames`: DAVIS or SegTrack v2). `gt_objects` (bool [N, T', H, W], in `object_ids` order) scores
    each object against its own mask instead of `gt == id`: SegTrack v2's layers overlap."""
    binary_frames: List[str] = []
    pred = load_results(results_dir, spec, indices, object_ids, gt.shape[1:], binary_frames)
    void_arg = void if config.exclude_void else None
    objects = []
    for k, obj in enumerate(object_ids):
        gt_obj = gt == obj if gt_objects is None else gt_objects[k]
        pred_obj = pred == obj
        j = np.asarray(db_eval_iou(gt_obj, pred_obj, void_arg), np.float64)
        f = np.asarray(db_eval_boundary(gt_obj, pred_obj, void_arg, config.bound_th), np.float64)
        t = temporal_stability(pred_obj, config.shape_context) if with_t else None
        objects.append(ObjectResult(spec.name, obj, j, f, t))
    return SequenceResult(spec.name, tuple(spec.frames[i] for i in indices), objects, tuple(binary_frames))


def _year(davis_root: str, config: EvaluationConfig) -> int:
    year = config.year if config.year is not None else detect_year(davis_root, config.split)
    if year not in (2016, 2017):
        raise ValueError(f"year must be 2016 or 2017, got {year}.")
    return year


def _wants_t(spec: SequenceSpec, year: int, compute_t: Optional[bool]) -> bool:
    if compute_t is False or (compute_t is None and year != 2016):
        return False
    return True if spec.eval_t is None else spec.eval_t


def evaluate_dataset(
    davis_root: str, results_dir: str, config: EvaluationConfig = EvaluationConfig()
) -> EvaluationResults:
    """Evaluates every sequence of the split (or `config.sequences`) found in `results_dir`. `davis_root` may be
    the folder holding the DAVIS folder, as for segment (`resolve_davis_root`)."""
    davis_root = resolve_davis_root(davis_root, config.year, config.resolution)
    year = _year(davis_root, config)
    repeated = repeated_names(list(config.sequences or ()))
    if repeated:
        raise DatasetLayoutError(f"sequence(s) {repeated} named more than once in --sequences; name each once "
                                 "(a repeat would count twice in the means).")
    # Only the chosen sequences are read (names not in the split refused): a broken one not asked for stops nothing.
    specs = list_sequences(davis_root, config.split, year, config.resolution, config.sequences)
    check_outside_dataset(davis_root, results_dir, "--results",
                          "results there are the ground truth, or sit among it (scoring the ground truth against "
                          "itself gives J = 1); give the folder segment wrote, outside the dataset's folders")
    if not os.path.isdir(results_dir):
        raise MissingResultsError(
            f"{results_dir}: results folder not found; run the segmentation first (it writes "
            f"<results>/<sequence>/<frame>.png) or fix --results."
        )
    notes = []
    wants_t = [_wants_t(s, year, config.compute_t) for s in specs]
    if any(w and s.eval_t is None for w, s in zip(wants_t, specs)):
        notes.append(
            "Annotations/db_info.yml not found: T computed for every sequence (DAVIS-2016 reports it only for "
            "sequences with eval_t: True)."
        )
    if config.processes <= 1 or len(specs) <= 1:
        sequences = [
            evaluate_sequence(davis_root, results_dir, s, config, w) for s, w in zip(specs, wants_t)
        ]
    else:
        workers = min(config.processes, len(specs))
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(evaluate_sequence, davis_root, results_dir, s, config, w) for s, w in zip(specs, wants_t)
            ]
            sequences = [fut.result() for fut in futures]
    if year == 2017:
        notes += _official_tool_notes(results_dir, sequences)
    return EvaluationResults(config.split, year, sequences, notes)


def _official_tool_notes(results_dir: str, sequences: List[SequenceResult]) -> List[str]:
    """Notes on results read here that davis2017-evaluation refuses. 0/255 masks (255 reads as object 255, above
    the sequence's objects, and it exits): any scored frame load_results read as one (`binary_frames`), so an
    empty or all-255 first frame does not hide the others. RGB and grey + alpha PNGs (it takes a PNG's pixel values
    as ids, and a colour or two-channel array fails its checks): judged on each sequence's first scored result file
    (frame 0 is scored by neither tool, so it may be anything). The notes never fail the scoring: a file that
    cannot be read again is skipped."""
    from PIL import Image

    rgb, grey_alpha = [], []
    binary = [sequence.name for sequence in sequences if sequence.binary_frames]
    for sequence in sequences:
        if not sequence.frames:
            continue
        path = os.path.join(results_dir, sequence.name, sequence.frames[0] + ".png")
        try:
            with Image.open(path) as image:
                if image.mode in ("RGB", "RGBA"):
                    rgb.append(sequence.name)
                elif image.mode == "LA":
                    grey_alpha.append(sequence.name)
        except (OSError, ValueError):  # removed or replaced since it was scored: no note, the scores stand
            continue
    notes = []
    if rgb:
        notes.append(f"RGB result PNGs ({_names(rgb)}) are scored here by their DAVIS palette colours, but "
                     "davis2017-evaluation cannot read them (it takes a PNG's pixel values as ids); save palette "
                     "PNGs of ids, as segment does (maskrnn_tf.io.write_palette_png), before scoring with it or "
                     "submitting.")
    if grey_alpha:
        notes.append(f"Grey and alpha (LA) result PNGs ({_names(grey_alpha)}) are scored here by their grey ids, "
                     "but davis2017-evaluation cannot read them (it takes a PNG's pixel values as ids, two per "
                     "pixel here); save palette PNGs of ids, as segment does (maskrnn_tf.io.write_palette_png), or "
                     "grey PNGs without alpha before scoring with it or submitting.")
    if binary:
        notes.append(f"0/255 result masks ({_names(binary)}) are scored here as object 1, but davis2017-evaluation "
                     "reads 255 as object 255 and exits; save ids (0 and 1) as palette or grey PNGs before scoring "
                     "with it or submitting.")
    return notes


def _names(sequences: List[str]) -> str:
    """The first five sequence names, with ' ...' when there are more."""
    return ", ".join(sequences[:5]) + (" ..." if len(sequences) > 5 else "")
