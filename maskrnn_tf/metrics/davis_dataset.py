"""Reading a DAVIS root (2016 or 2017 layout) and a results folder for the evaluation.

DAVIS-2016: `ImageSets/480p/<split>.txt` lines "/JPEGImages/480p/<seq>/<frame>.jpg /Annotations/480p/<seq>/<frame>.png",
binary 0/255 masks (one object, id 1), `Annotations/db_info.yml` with the `eval_t` flag of each sequence.
DAVIS-2017: `ImageSets/2017/<split>.txt` lists sequence names, `Annotations/<resolution>/<seq>/*.png` are palette
PNGs (index = object id, 255 = void). A folder holding the DAVIS folder is read as segment reads it
(`resolve_davis_root`). The objects of a sequence are 1..max id of its first frame (the official
rule). Results: `<results>/<seq>/<frame>.png` (a lower-case extension: davis2017-evaluation opens exactly that
name), palette PNGs of object ids (maskrnn_tf.io.write_palette_png), or grey PNGs of ids (as davis2017-evaluation
reads them), grey 0/255 binary PNGs, or RGB PNGs in DAVIS palette colours
(`maskrnn_tf.io.id_images.read_result_ids`).
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from maskrnn_tf.io import VOID_ID, ImageReadError
from maskrnn_tf.io.id_images import grey_annotation_mode, read_annotation_ids, read_result_ids_and_0_255
from maskrnn_tf.io.list_files import read_list_lines
from maskrnn_tf.metrics.errors import (
    DatasetLayoutError,
    EvaluationInputError,
    ExtraFramesError,
    MissingResultsError,
    ResultNameError,
    SizeMismatchError,
    UnknownObjectError,
    UnreadableResultError,
)


@dataclass(frozen=True)
class SequenceSpec:
    """One ground-truth sequence: its name, frame names (file stems, in order) and annotation paths."""

    name: str
    frames: Tuple[str, ...]
    annotation_paths: Tuple[str, ...]
    eval_t: Optional[bool] = None  # DAVIS-2016 db_info.yml flag; None when unknown


def resolve_davis_root(davis_root: str, year: Optional[int] = None, resolution: str = "480p") -> str:
    """The DAVIS folder under `davis_root` that segment reads (`find_davis_root`: the folder itself or its DAVIS/,
    DAVIS-2016/ or DAVIS-2017/ child, with `year` the one holding that year's split files), so that a
    --davis_root segment takes is scored too. `davis_root` itself when none holds JPEGImages/ (scoring needs
    only ImageSets/ and Annotations/; the readers name what is missing)."""
    from maskrnn_tf.data.sequences import DatasetLayoutError as LayoutError, find_davis_root

    try:
        return find_davis_root(davis_root, resolution, year=year)
    except LayoutError:
        return davis_root


DATASET_FOLDERS = ("Annotations", "JPEGImages", "ImageSets")


def check_outside_dataset(davis_root: str, path: str, flag: str, what: str) -> None:
    """Raises EvaluationInputError when `path` is or lies inside one of the DAVIS folders of `davis_root`
    (`DATASET_FOLDERS`; links resolved). `what`: why that is wrong, for the message."""
    target = os.path.realpath(path)
    for part in DATASET_FOLDERS:
        folder = os.path.realpath(os.path.join(davis_root, part))
        if target == folder or target.startswith(folder.rstrip(os.sep) + os.sep):
            raise EvaluationInputError(f"{flag} {path} lies inside the dataset's {part} folder {folder}: {what}.")


def image_set_path(davis_root: str, split: str, year: int) -> str:
    """Path of the split list for a DAVIS year (2016: ImageSets/480p, 2017: ImageSets/2017)."""
    folder = "480p" if year == 2016 else "2017"
    return os.path.join(davis_root, "ImageSets", folder, f"{split}.txt")


def detect_year(davis_root: str, split: str) -> int:
    """2017 if ImageSets/2017/<split>.txt exists, else 2016 if ImageSets/480p/<split>.txt exists."""
    for year in (2017, 2016):
        if os.path.isfile(image_set_path(davis_root, split, year)):
            return year
    raise DatasetLayoutError(
        f"{davis_root}: neither {image_set_path(davis_root, split, 2017)} nor "
        f"{image_set_path(davis_root, split, 2016)} exists; pass the extracted DAVIS folder as --davis_root "
        f"and a split it contains as --split."
    )


def read_eval_t_flags(davis_root: str) -> Optional[Dict[str, bool]]:
    """`eval_t` per sequence from Annotations/db_info.yml, or None when the file is absent."""
    import yaml  # only needed for DAVIS-2016 roots

    path = os.path.join(davis_root, "Annotations", "db_info.yml")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "r", encoding="utf-8") as f:
            info = yaml.safe_load(f)
        return {str(s["name"]): bool(s.get("eval_t", False)) for s in info.get("sequences", [])}
    except (yaml.YAMLError, AttributeError, KeyError, TypeError) as err:
        raise DatasetLayoutError(
            f"{path}: not a DAVIS db_info.yml ({err}); restore the file from the DAVIS-2016 archive or delete it "
            f"(T is then computed for every sequence)."
        ) from err


def list_sequences(davis_root: str, split: str, year: int, resolution: str = "480p",
                   names: Optional[Sequence[str]] = None) -> List[SequenceSpec]:
    """The sequences of a split, in the order of the image set list, or those of `names` (a --sequences list),
    in that order. Only the sequences returned are read and checked: a broken one not asked for stops nothing.

    Raises:
      DatasetLayoutError: no such split, a name not in it, or a sequence whose annotations cannot be scored
        (none, a gap, the other year's, or the first frame's alone: test-dev).
    """
    from maskrnn_tf.data.sequences import check_merged_davis_annotation, chosen_names, repeated_names

    if not os.path.isdir(davis_root):
        raise DatasetLayoutError(f"{davis_root}: DAVIS root folder not found; pass the extracted dataset folder.")
    list_path = image_set_path(davis_root, split, year)
    if not os.path.isfile(list_path):
        raise DatasetLayoutError(
            f"{list_path}: split list not found; check --split and --year (DAVIS-{year} layout expected)."
        )
    lines = read_list_lines(list_path, DatasetLayoutError)  # a BOM dropped, UTF-16 refused naming the file
    if year == 2016:
        return _list_2016(davis_root, list_path, lines, split, names)
    repeated = repeated_names(lines)
    if repeated:  # counted twice in the means otherwise; segment and flow refuse the file alike
        raise DatasetLayoutError(f"{list_path}: lists {repeated} more than once; list each sequence once.")
    specs = []
    for name in chosen_names(lines, names, f"the DAVIS-{year} '{split}' split of {davis_root}",
                             DatasetLayoutError):
        folder = os.path.join(davis_root, "Annotations", resolution, name)
        paths = sorted(glob.glob(os.path.join(glob.escape(folder), "*.png")))  # a root like davis[17] is no pattern
        if not paths:
            raise DatasetLayoutError(
                f"{folder}: no annotation PNGs for sequence '{name}' listed in {list_path}; "
                f"extract the DAVIS annotations or remove the sequence from the list."
            )
        if len(paths) == 1:
            _check_not_first_frame_only(davis_root, name, split, resolution, paths[0])
        _check_contiguous(paths, f"the annotations of '{name}'")
        # In a merged DAVIS-2016/2017 tree the ground truth may be the other year's, scored as if it were this one's.
        check_merged_davis_annotation(davis_root, 2017, paths[0], resolution, DatasetLayoutError)
        frames = tuple(os.path.splitext(os.path.basename(p))[0] for p in paths)
        specs.append(SequenceSpec(name, frames, tuple(paths)))
    return specs


# The DAVIS-2017 splits shipped with the first frame's annotation alone; the DAVIS evaluation server scores them.
FIRST_FRAME_ONLY_SPLITS = ("test-dev", "test-challenge")


def _check_not_first_frame_only(davis_root: str, name: str, split: str, resolution: str, annotation: str) -> None:
    """Raises DatasetLayoutError when `annotation` is the only one of a sequence whose JPEGImages/ folder holds
    more frames (test-dev): taken for a 1-frame sequence, it was refused as too short for the protocol, then
    (with --all_frames) its valid results as frames 'not in the ground truth'. Without JPEGImages/ nothing tells."""
    frames_folder = os.path.join(davis_root, "JPEGImages", resolution, name)
    try:
        frames = [n for n in os.listdir(frames_folder)
                  if not n.startswith(".") and os.path.splitext(n)[1].lower() in (".jpg", ".jpeg")]
    except OSError:
        return
    if len(frames) <= 1:
        return
    if split in FIRST_FRAME_ONLY_SPLITS:
        what = f"the '{split}' split has first-frame annotations only"
        fix = ""
    else:
        what = (f"'{name}' of the '{split}' split has first-frame annotations only, as DAVIS-2017 test-dev and "
                "test-challenge have")
        fix = f" (if '{name}' should be annotated throughout, extract its annotations again)"
    raise DatasetLayoutError(
        f"{os.path.dirname(annotation)}: {os.path.basename(annotation)} is the only annotation of '{name}', whose "
        f"{frames_folder} holds {len(frames)} frames: {what}, so it cannot be scored locally (the DAVIS evaluation "
        f"server scores test-dev and test-challenge). Submit the results to the server, or score a split annotated "
        f"on every frame (e.g. --split=val){fix}.")


def _check_contiguous(paths: List[str], what: str) -> None:
    """The annotation files found are the frames: a gap would be taken for a result frame too many (or scored
    without a word when the results lack it as well); refused naming the file after it, as segment refuses it."""
    from maskrnn_tf.data.sequences import DatasetLayoutError as LayoutError, check_contiguous

    try:
        check_contiguous(paths, what)
    except LayoutError as err:
        raise DatasetLayoutError(str(err)) from err


def _list_2016(davis_root: str, list_path: str, lines: Sequence[str], split: str,
               names: Optional[Sequence[str]] = None) -> List[SequenceSpec]:
    """The DAVIS-2016 sequences of the list's lines (all of them or `names`); only those are checked."""
    from maskrnn_tf.data.sequences import check_merged_davis_annotation, chosen_names

    frames: Dict[str, List[Tuple[str, str]]] = {}
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if len(parts) != 2:
            raise DatasetLayoutError(
                f"{list_path}:{number}: expected '/JPEGImages/... /Annotations/...', got '{line}'."
            )
        rel = parts[1].lstrip("/")
        sequence = os.path.basename(os.path.dirname(rel))
        stem = os.path.splitext(os.path.basename(rel))[0]
        frames.setdefault(sequence, []).append((stem, os.path.join(davis_root, rel)))
    where = f"the DAVIS-2016 '{split}' split of {davis_root}"
    frames = {n: frames[n] for n in chosen_names(list(frames), names, where, DatasetLayoutError)}
    for items in frames.values():
        check_merged_davis_annotation(davis_root, 2016, items[0][1], error=DatasetLayoutError)  # as for 2017
    flags = read_eval_t_flags(davis_root)
    return [
        SequenceSpec(
            name,
            tuple(s for s, _ in items),
            tuple(p for _, p in items),
            None if flags is None else flags.get(name, False),
        )
        for name, items in frames.items()
    ]


def load_ground_truth(
    spec: SequenceSpec, frame_indices: Sequence[int]
) -> Tuple[np.ndarray, np.ndarray, Tuple[int, ...]]:
    """(ids [T', H, W] uint8 with void set to 0, void [T', H, W] bool, object ids) of the chosen frames.

    Objects are 1..max id of the sequence's first frame (void excluded), the official DAVIS rule.
    """
    grey_mode = grey_annotation_mode(spec.annotation_paths[0])
    first = read_annotation_ids(spec.annotation_paths[0], grey_mode)
    first_ids = first[first != VOID_ID]
    n_objects = int(first_ids.max()) if first_ids.size else 0
    labels = np.zeros((len(frame_indices),) + first.shape, np.uint8)
    for k, i in enumerate(frame_indices):
        ids = read_annotation_ids(spec.annotation_paths[i], grey_mode)
        if ids.shape != first.shape:
            raise DatasetLayoutError(
                f"{spec.annotation_paths[i]}: annotation is {ids.shape[1]}x{ids.shape[0]} but the first annotation "
                f"of '{spec.name}' ({spec.annotation_paths[0]}) is {first.shape[1]}x{first.shape[0]} (WxH); every "
                "annotation of a sequence has its frames' size: restore it from the dataset archive.")
        labels[k] = ids
    void = labels == VOID_ID
    labels = np.where(void, 0, labels).astype(np.uint8)
    return labels, void, tuple(range(1, n_objects + 1))


RESULT_EXTENSION = ".png"  # davis2017-evaluation opens exactly <results>/<seq>/<frame>.png


def _result_files(folder: str) -> Dict[str, str]:
    """Frame name -> result file name of the `<frame>.png` files in `folder`; hidden files (macOS's `._<name>`)
    are ignored. A `.PNG` (any other case) is refused: davis2017-evaluation opens `<frame>.png`, which on a
    case-sensitive file system (Linux) does not find it, so such a folder would get a score here that the
    benchmark tool cannot give."""
    present: Dict[str, str] = {}
    other_case: List[str] = []
    for name in sorted(os.listdir(folder)):
        if name.startswith("."):
            continue
        stem, ext = os.path.splitext(name)
        if ext == RESULT_EXTENSION:
            present[stem] = name
        elif ext.lower() == RESULT_EXTENSION:
            other_case.append(name)
    for name in other_case:
        stem = os.path.splitext(name)[0]
        if stem in present:
            raise ResultNameError(
                f"{folder}: frame {stem} has two result files ({present[stem]} and {name}); davis2017-evaluation "
                f"reads only {present[stem]}: remove {name} (or replace {present[stem]} with it, renamed)."
            )
    if other_case:
        example = other_case[0]
        raise ResultNameError(
            f"{folder}: {len(other_case)} result file(s) whose extension is not a lower-case .png (e.g. "
            f"{example}); davis2017-evaluation opens exactly <frame>.png, which does not find them on Linux: rename "
            f"them to lower-case .png (e.g. {example} -> {os.path.splitext(example)[0]}{RESULT_EXTENSION})."
        )
    return present


def _listed(names: Iterable[str], shown: int = 3) -> str:
    """The first `shown` file names, each whole (`00002.png, extra.png`)."""
    return ", ".join(list(names)[:shown])


def _check_not_flat_layout(results_dir: str, folder: str, name: str) -> None:
    """Raises MissingResultsError when PNG frames lie directly in `results_dir`: the layout segment --video
    writes for one video, which evaluate reads as no results for every sequence."""
    try:
        flat = sorted(n for n in os.listdir(results_dir)
                      if not n.startswith(".") and os.path.splitext(n)[1].lower() == RESULT_EXTENSION)
    except OSError:
        return
    if flat:
        raise MissingResultsError(
            f"{results_dir}: no results for sequence '{name}' ({folder} not found), but {len(flat)} PNG frames lie "
            f"directly in --results (e.g. {_listed(flat)}), a single video's layout (what segment --video writes); "
            "evaluate wants <results>/<sequence>/<frame>.png: move them into a sub-folder named after their "
            f"sequence (e.g. {folder}/ if they are '{name}'), or give the --results holding one such sub-folder per "
            "sequence.")


def _check_not_jpeg(folder: str, name: str, missing: Sequence[str]) -> None:
    """Raises MissingResultsError when the missing frames are there as JPEGs: lossy compression blends the ids
    on the objects' edges into other values, so masks are PNG (what davis2017-evaluation reads too)."""
    wanted = set(missing)
    jpegs = sorted(n for n in os.listdir(folder) if not n.startswith(".") and
                   os.path.splitext(n)[1].lower() in (".jpg", ".jpeg") and os.path.splitext(n)[0] in wanted)
    if jpegs:
        raise MissingResultsError(
            f"{folder}: {len(missing)} evaluated frame(s) of '{name}' have no PNG result but JPEGs were found (e.g. "
            f"{_listed(jpegs)}); masks must be PNG (lossless: JPEG compression changes the ids on the objects' "
            "edges, and converting the JPEGs does not restore them): write the masks again as PNGs of ids, as "
            "segment does (maskrnn_tf.io.write_palette_png).")


def load_results(
    results_dir: str,
    spec: SequenceSpec,
    frame_indices: Sequence[int],
    object_ids: Sequence[int],
    shape: Tuple[int, int],
    binary_frames: Optional[List[str]] = None,
) -> np.ndarray:
    """Predicted ids [T', H, W] of the chosen frames from `<results_dir>/<seq>/<frame>.png`, validated.

    `binary_frames`, when given, receives the names of the frames read as grey 0/255 masks (object 1), which
    davis2017-evaluation reads as object 255 and refuses: every frame is recorded, not a sample of them. The reader
    tells them (`read_result_ids_and_0_255`): no file is opened twice, whether the list is asked for or not."""
    folder = os.path.join(results_dir, spec.name)
    if not os.path.isdir(folder):
        _check_not_flat_layout(results_dir, folder, spec.name)
        raise MissingResultsError(
            f"{folder}: no results for sequence '{spec.name}'; segment it (one PNG per frame) or leave it out "
            f"with --sequences."
        )
    present = _result_files(folder)
    extra = sorted(set(present) - set(spec.frames))
    if extra:
        # One annotation and more results: a split annotated on first frames only (list_sequences names it when
        # JPEGImages/ tells), whose results are not to be removed.
        fix = ("if the ground truth is annotated on the first frame only (DAVIS-2017 test-dev, test-challenge), "
               "it cannot be scored locally (the DAVIS evaluation server scores it); else remove them or check "
               "that the results belong to this sequence" if len(spec.frames) == 1 else
               "remove them or check that the results belong to this sequence")
        raise ExtraFramesError(
            f"{folder}: {len(extra)} result frame(s) not in the ground truth of '{spec.name}' "
            f"(e.g. {_listed(present[f] for f in extra)}; frames are {spec.frames[0]}..{spec.frames[-1]}); {fix}."
        )
    missing = [spec.frames[i] for i in frame_indices if spec.frames[i] not in present]
    if missing:
        _check_not_jpeg(folder, spec.name, missing)
        raise MissingResultsError(
            f"{folder}: {len(missing)} evaluated frame(s) missing for '{spec.name}' (e.g. "
            f"{_listed(f + RESULT_EXTENSION for f in missing)}); write one PNG per frame named like the annotations."
        )
    known = set(object_ids) | {0}
    out = np.zeros((len(frame_indices),) + tuple(shape), np.uint8)
    for k, i in enumerate(frame_indices):
        path = os.path.join(folder, present[spec.frames[i]])
        try:
            pred, read_0_255 = read_result_ids_and_0_255(path, objects=len(object_ids))
        except ImageReadError as err:
            raise UnreadableResultError(str(err)) from err
        if pred.shape != tuple(shape):
            raise SizeMismatchError(
                f"{path}: result is {pred.shape[1]}x{pred.shape[0]} but the annotation is {shape[1]}x{shape[0]} "
                f"(WxH); write results at the annotation resolution."
            )
        unknown = sorted(set(np.unique(pred).tolist()) - known)
        if unknown:
            raise UnknownObjectError(
                f"{path}: object id(s) {unknown} not in the ground truth of '{spec.name}' (ids "
                f"{list(object_ids)}, 0 = background); label objects with their first-frame ids."
            )
        if binary_frames is not None and read_0_255:
            binary_frames.append(spec.frames[i])
        out[k] = pred
    return out
