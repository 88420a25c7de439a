"""Plain-Python readers for the DAVIS and SegTrack v2 folder layouts (no TensorFlow).

Both the tfds builders and the inference code use these: a `Sequence` lists the frame files and mask files of
one video; `load_masks` decodes the masks into object ids and checks them. Every layout problem raises
`DatasetLayoutError` (or `maskrnn_tf.io.ImageReadError` for an unreadable file) naming the file, what is wrong
and what to do.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import re
import shutil
from typing import Collection, Dict, List, Optional, Tuple, Type, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from maskrnn_tf.io import VOID_ID, ImageReadError
from maskrnn_tf.io.cache_dirs import user_cache_dir
from maskrnn_tf.io.id_images import COLOUR, grey_annotation_mode, read_annotation_ids
from maskrnn_tf.io.list_files import read_list_lines

DAVIS_LAYOUT = """\
Expected layout (the official DAVIS archives, extracted or as the zip itself):
  <manual_dir>/DAVIS-data.zip                  (DAVIS-2016, from https://davischallenge.org)
  <manual_dir>/DAVIS-2017-trainval-480p.zip    (DAVIS-2017 train+val, 480p)
  <manual_dir>/DAVIS-2017-trainval-Full-Resolution.zip (optional, full resolution)
or extracted, with or without the top-level DAVIS/ folder:
  <manual_dir>/[DAVIS/]JPEGImages/480p/<seq>/00000.jpg
  <manual_dir>/[DAVIS/]Annotations/480p/<seq>/00000.png
  <manual_dir>/[DAVIS/]ImageSets/480p/{train,val,trainval}.txt   (2016: "/JPEGImages/... /Annotations/..." lines)
  <manual_dir>/[DAVIS/]ImageSets/2017/{train,val}.txt            (2017: one sequence name per line)
  <manual_dir>/[DAVIS/]Annotations/db_info.yml                   (2016: attributes and eval_t, optional)"""

SEGTRACK_LAYOUT = """\
Expected layout (SegTrack v2, extracted, with or without a top-level SegTrackv2/ folder):
  <manual_dir>/ImageSets/all.txt            ("*<seq>" lines)
  <manual_dir>/ImageSets/<seq>.txt          (a path prefix line, then one frame name per line)
  <manual_dir>/JPEGImages/<seq>/<frame>.{png,bmp,jpg}
  <manual_dir>/GroundTruth/<seq>/<frame>.png        (one object)
  <manual_dir>/GroundTruth/<seq>/<k>/<frame>.png    (object k = 1, 2, ...)"""

_FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class DatasetLayoutError(ValueError):
    """A dataset folder does not have the expected layout or content."""


@dataclasses.dataclass(frozen=True)
class Sequence:
    """One annotated video on disk.

    Attributes:
      name: sequence name (e.g. "blackswan").
      dataset: cache namespace shared by sequences with identical frames (e.g. "davis-480p", "segtrack_v2").
      frame_paths: one path per frame, in temporal order.
      mask_paths: per frame, the mask files: one id map (DAVIS) or one binary file per object (SegTrack
        multi-object; layer k is object k + 1).
      num_objects: number of objects N (ids 1..N; 255 = void).
      mask_layers: True when `mask_paths[t]` holds one binary mask per object.
      eval_t: DAVIS-2016 `eval_t` flag (None when unknown).
      attributes: DAVIS attributes (empty when unknown).
    """

    name: str
    dataset: str
    frame_paths: Tuple[str, ...]
    mask_paths: Tuple[Tuple[str, ...], ...]
    num_objects: int
    mask_layers: bool = False
    eval_t: Optional[bool] = None
    attributes: Tuple[str, ...] = ()

    @property
    def num_frames(self) -> int:
        return len(self.frame_paths)


def repeated_names(names: List[str]) -> List[str]:
    """The names that occur more than once in `names` (a --sequences list), in order of first repeat."""
    seen, repeated = set(), []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


def chosen_names(available: Collection[str], names: Optional[Collection[str]], where: str,
                 error: Type[Exception] = ValueError) -> List[str]:
    """`names` (a --sequences list) in their order, all of `available` when None; raises `error` for a name
    `where` (e.g. "DAVIS-2017 val") does not list, a name given twice, or an empty list."""
    if names is None:
        return list(available)
    if not names:
        raise error("--sequences is empty: name the sequences, or leave it out for the whole split.")
    listed = set(available)
    unknown = [n for n in names if n not in listed]
    if unknown:
        which = (f"sequence '{unknown[0]}' is" if len(unknown) == 1 else
                 "sequences " + ", ".join(f"'{n}'" for n in unknown) + " are")
        raise error(f"{which} not in {where}; choose from {sorted(listed)}.")
    repeated = repeated_names(list(names))
    if repeated:
        raise error(f"sequence(s) {repeated} named more than once in --sequences; name each once.")
    return list(names)


def image_size(path: str) -> Tuple[int, int]:
    """(height, width) of an image file from its header, as `read_frame` gives it (an EXIF Orientation that turns
    the picture by 90 degrees swaps the two), raising ImageReadError when unreadable."""
    if not os.path.isfile(path):
        raise ImageReadError(f"{path}: file not found.")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in (5, 6, 7, 8):  # transposed or turned by 90 degrees
                width, height = height, width
    except (UnidentifiedImageError, OSError) as err:
        raise ImageReadError(f"{path}: unreadable image ({err}); replace it with a valid JPEG/PNG/BMP file.") from err
    return height, width


def _frame_digits(path: str) -> Optional[str]:
    """The trailing digits of a frame file's stem (None without any)."""
    match = re.search(r"(\d+)$", os.path.splitext(os.path.basename(path))[0])
    return match.group(1) if match else None


def _frame_number(path: str) -> Optional[int]:
    digits = _frame_digits(path)
    return int(digits) if digits is not None else None


def check_contiguous(paths: List[str], what: str) -> None:
    """Raises DatasetLayoutError when the trailing numbers of `paths` do not increase by exactly 1."""
    numbers = [_frame_number(p) for p in paths]
    if any(n is None for n in numbers):
        return  # names without numbers: order comes from the list file, nothing to check
    widths = {len(_frame_digits(p)) for p in paths}
    for previous, current, path, before in zip(numbers, numbers[1:], paths[1:], paths):
        if current == previous:
            raise DatasetLayoutError(
                f"{path}: frame {current} twice ({os.path.basename(before)} and {os.path.basename(path)}) in "
                f"{what}; keep one image per frame.")
        if current != previous + 1 and sorted(numbers) == list(range(min(numbers), max(numbers) + 1)) \
                and len(widths) == 1:
            # Padded names out of order: only a list file orders frames otherwise than by name.
            later, earlier = next((b, a) for a, b, na, nb in zip(paths, paths[1:], numbers, numbers[1:]) if nb < na)
            raise DatasetLayoutError(
                f"{earlier}: the frames of {what} are listed out of order ({os.path.basename(earlier)} before "
                f"{os.path.basename(later)}): the dataset's ImageSets list file gives them in that order; list them "
                "by frame number.")
        if current != previous + 1 and sorted(numbers) == list(range(min(numbers), max(numbers) + 1)):
            raise DatasetLayoutError(
                f"{path}: the frame names of {what} are not zero-padded ({os.path.basename(before)} sorts before "
                f"{os.path.basename(path)}), so they sort out of order here and in the DAVIS tools; name the frames "
                "as DAVIS does: 00000.jpg, 00001.jpg, ... (the masks likewise).")
        if current != previous + 1:
            raise DatasetLayoutError(
                f"{path}: non-contiguous frame numbering in {what} (frame {current} follows {previous}); "
                "every frame from the first to the last must be present -- restore the missing frames."
            )


def _check_sizes(sequence: Sequence, first_mask_only: bool = False) -> None:
    sizes: Dict[Tuple[int, int], List[str]] = {}  # (height, width) -> the frames of that size
    for index, (frame, masks) in enumerate(zip(sequence.frame_paths, sequence.mask_paths)):
        frame_size = image_size(frame)
        sizes.setdefault(frame_size, []).append(frame)
        for mask in masks if index == 0 or not first_mask_only else ():
            mask_size = image_size(mask)
            if mask_size != frame_size:
                raise DatasetLayoutError(
                    f"{mask}: mask size {mask_size[1]}x{mask_size[0]} differs from its frame {frame} "
                    f"({frame_size[1]}x{frame_size[0]}); masks must have the size of their frames."
                )
    if len(sizes) > 1:
        shown = "; ".join(f"{w}x{h}: {frames[0]}" + (f" and {len(frames) - 1} more" if len(frames) > 1 else "")
                          for (h, w), frames in sizes.items())
        raise DatasetLayoutError(
            f"sequence {sequence.name}: frames of different sizes ({shown}); all frames of a video must have the same "
            "size."
        )


def validate_sequence(sequence: Sequence, first_mask_only: bool = False) -> None:
    """Checks files exist, are readable, have matching sizes and contiguous numbering (headers only).

    `first_mask_only`: of the masks, only the first frame's must exist (what semi-supervised segmenting reads;
    DAVIS-2017 test-dev and test-challenge ship no others).
    """
    if not sequence.frame_paths:
        raise DatasetLayoutError(f"sequence {sequence.name}: no frames listed.")
    for index, (frame, masks) in enumerate(zip(sequence.frame_paths, sequence.mask_paths)):
        if not os.path.isfile(frame):
            raise DatasetLayoutError(f"{frame}: missing frame of sequence {sequence.name}.")
        for mask in masks if index == 0 or not first_mask_only else ():
            if not os.path.isfile(mask):
                raise DatasetLayoutError(
                    f"{mask}: missing mask for frame {frame}; every frame needs its ground-truth mask."
                )
    check_contiguous(list(sequence.frame_paths), f"sequence {sequence.name}")
    _check_sizes(sequence, first_mask_only)


def read_ids(sequence: Sequence, index: int) -> np.ndarray:
    """Object ids [H, W] uint8 of frame `index` (0 background, 1..N objects, 255 void)."""
    paths = sequence.mask_paths[index]
    if not sequence.mask_layers:
        # Grey annotations are ids or binary for the whole sequence, as its first frame says.
        return read_annotation_ids(paths[0], grey_annotation_mode(sequence.mask_paths[0][0]))
    ids = None
    for k in range(len(paths)):
        layer = read_layer(sequence, index, k)
        if ids is None:
            ids = np.zeros(layer.shape, np.uint8)
        # Later objects win where annotations overlap (SegTrack layers may touch at their borders).
        ids[layer > 0] = k + 1
    return ids


def read_layer(sequence: Sequence, index: int, k: int) -> np.ndarray:
    """Object k's (0-based) own mask of frame `index` in a sequence of one mask per object (SegTrack), bool [H, W]:
    read as any annotation (0/255, 0/1, anti-aliased, DAVIS colours; refused otherwise), the grey values as the
    object's first mask says, foreground where the id is not 0."""
    first = sequence.mask_paths[0][k]
    return read_annotation_ids(sequence.mask_paths[index][k], grey_annotation_mode(first)) > 0


def load_masks(sequence: Sequence) -> np.ndarray:
    """All masks of a sequence as ids [T, H, W] uint8, checking ids against `num_objects`.

    Raises DatasetLayoutError when the first frame's ids skip an object (e.g. 1 and 3 but no 2) or a frame
    holds an id above `num_objects` (other than 255 = void).
    """
    masks = []
    for t in range(sequence.num_frames):
        ids = read_ids(sequence, t)
        present = np.unique(ids)
        objects = present[(present != 0) & (present != VOID_ID)]
        if objects.size and objects.max() > sequence.num_objects:
            raise DatasetLayoutError(
                f"{sequence.mask_paths[t][0]}: object id {int(objects.max())} exceeds the {sequence.num_objects} "
                f"object(s) of the first frame of {sequence.name}; ids must be 1..N as in the first frame "
                "(255 = void)."
            )
        masks.append(ids)
    return np.stack(masks)


def first_frame_objects(mask_path: str, gaps: bool = False) -> int:
    """Number of objects N in a first-frame id map: its highest id, raising when its ids skip a value. With `gaps`
    a skipped id is an object absent from the first frame, as davis2017-evaluation counts objects (1..the highest
    id), and is not refused: segmenting starts from the ids present and writes them as they are."""
    ids = read_annotation_ids(mask_path)
    present = [int(v) for v in np.unique(ids) if v not in (0, VOID_ID)]
    if gaps:
        return max(present, default=0)
    if present != list(range(1, len(present) + 1)):
        missing = sorted(set(range(1, max(present) + 1)) - set(present))
        raise DatasetLayoutError(
            f"{mask_path}: palette ids {present} skip {missing}; the first-frame objects must be numbered "
            "1..N without gaps (0 = background, 255 = void)."
        )
    return len(present)


def _find_root(manual_dir: str, marker: str, layout: str, names: Tuple[str, ...]) -> str:
    if manual_dir and os.path.isfile(manual_dir):  # "does not exist" would send the user looking for a typo
        raise DatasetLayoutError(f"manual directory {manual_dir!r} is a file, not a folder: give the folder that holds "
                                 f"it (an official DAVIS zip is read from the folder it is in).\n{layout}")
    if not manual_dir or not os.path.isdir(manual_dir):
        raise DatasetLayoutError(f"manual directory {manual_dir!r} does not exist.\n{layout}")
    candidates = [manual_dir] + [os.path.join(manual_dir, n) for n in names]
    for candidate in candidates:
        if os.path.isdir(os.path.join(candidate, marker)):
            return candidate
    raise DatasetLayoutError(f"{manual_dir}: no {marker}/ folder found (looked in {candidates}).\n{layout}")


# Each official zip unpacks into DAVIS/: extracted into DAVIS-2016/ and DAVIS-2017/ (`unzip -d`), the tree is one deeper.
_DAVIS_FOLDERS = ("DAVIS", "DAVIS-2016", "DAVIS-2017", os.path.join("DAVIS-2016", "DAVIS"),
                  os.path.join("DAVIS-2017", "DAVIS"))


def _davis_split_folder(year: int, resolution: str) -> str:
    """Where a DAVIS tree of `year` keeps its split files (what `read_davis_sequence_list` reads)."""
    return os.path.join("ImageSets", "2017" if year == 2017 else resolution)


def find_davis_root(directory: str, resolution: str = "480p", year: Optional[int] = None,
                    strict: bool = False) -> str:
    """The folder holding `JPEGImages/<resolution>` under `directory` (itself or its DAVIS/, DAVIS-2016/ or
    DAVIS-2017/ child, or the DAVIS/ inside one of the last two). With `year`, the one whose ImageSets hold that year's split files comes first (a DAVIS-2016
    and a DAVIS-2017 folder side by side); `strict` raises DatasetLayoutError when none does."""
    if year is not None and directory and os.path.isdir(directory):
        candidates = [directory] + [os.path.join(directory, n) for n in _DAVIS_FOLDERS]
        splits = _davis_split_folder(year, resolution)
        for candidate in candidates:
            if (os.path.isdir(os.path.join(candidate, "JPEGImages", resolution))
                    and os.path.isdir(os.path.join(candidate, splits))):
                return candidate
        if strict:
            raise DatasetLayoutError(f"{directory}: no DAVIS-{year} folder (JPEGImages/{resolution}/ with {splits}/) "
                                     f"found (looked in {candidates}).\n{DAVIS_LAYOUT}")
    return _find_root(directory, os.path.join("JPEGImages", resolution), DAVIS_LAYOUT, _DAVIS_FOLDERS)


# The official archives (https://davischallenge.org), by year and resolution.
DAVIS_ARCHIVES = {
    (2016, "480p"): "DAVIS-data.zip",
    (2017, "480p"): "DAVIS-2017-trainval-480p.zip",
    (2017, "Full-Resolution"): "DAVIS-2017-trainval-Full-Resolution.zip",
}


def default_extract_dir() -> str:
    """$XDG_CACHE_HOME/maskrnn_tf/extracted (~/.cache/... when unset or relative): where official zips are extracted."""
    return os.path.join(user_cache_dir(), "extracted")


# Errors writing an extraction (no room, no permission), not reading the zip.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


def resolve_davis_dir(manual_dir: str, year: int, resolution: str = "480p",
                      extract_dir: Optional[str] = None, force_extraction: bool = False) -> str:
    """The folder to read DAVIS from: `manual_dir` when it holds the extracted data (with or without DAVIS/);
    else, when it holds the official zip of `year`, that zip extracted once into
    `<extract_dir>/<zip name>-<size>-<mtime>/` (a hidden temporary folder renamed into place, so an interrupted
    extraction is never taken for whole; nothing is written into `manual_dir`); with `force_extraction`
    extracted again, the new folder replacing the old one whole (tfds' FORCE_REDOWNLOAD). Every call finding the
    zip removes the temporary folders killed runs left beside the extraction. Otherwise `manual_dir`, whose
    readers then raise DatasetLayoutError with the expected layout."""
    import zipfile
    import zlib

    from maskrnn_tf.io.tmp_dirs import (building_dir, clean_stale_tmp_beside, hidden_prefix, make_owned_tmp_dir,
                                        replace_dir, restore_interrupted_replace)

    try:
        find_davis_root(manual_dir, resolution, year=year, strict=True)
        return manual_dir
    except DatasetLayoutError:
        pass
    name = DAVIS_ARCHIVES.get((year, resolution))
    archive = os.path.join(manual_dir, name) if name and manual_dir else None
    if archive is None or not os.path.isfile(archive):
        return manual_dir
    stat = os.stat(archive)
    parent = extract_dir or default_extract_dir()
    target = os.path.join(parent, f"{os.path.splitext(name)[0]}-{stat.st_size}-{stat.st_mtime_ns}")
    old_prefix = hidden_prefix(os.path.basename(target), "old")
    if os.path.isdir(parent):
        # Partial extractions of killed runs (GBs for a real zip), forced or not: every call, as the early return
        # below skips building_dir's sweep and a forced one builds beside it. One listing of `parent`.
        clean_stale_tmp_beside(parent, os.path.basename(target))
        # A forced extraction killed between its two renames: the old folder goes back.
        restore_interrupted_replace(parent, old_prefix, target)
    replace = force_extraction and os.path.isdir(target)
    if os.path.isdir(target) and not replace:
        return target
    try:  # read first: a zip this user may not read is no extraction folder's fault
        opened = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, zlib.error, OSError) as err:
        raise DatasetLayoutError(_unreadable_zip(archive, manual_dir, err)) from err

    def extract_into(folder: str) -> None:
        try:
            opened.extractall(folder)  # member names with .. or a leading / are made safe by zipfile
        except (zipfile.BadZipFile, zlib.error) as err:
            raise DatasetLayoutError(_unreadable_zip(archive, manual_dir, err)) from err

    try:
        with opened:
            if replace:  # the old folder stays whole until the new one is: replace_dir swaps them
                tmp = make_owned_tmp_dir(parent, hidden_prefix(os.path.basename(target), "tmp"))
                try:
                    extract_into(tmp)
                    replace_dir(tmp, target, old_prefix)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
            else:
                with building_dir(target) as tmp:  # an interrupted extraction is never whole
                    extract_into(tmp)
    except OSError as err:
        # Another process (the flow CLI beside a training) renamed its whole extraction into place first: use it.
        if os.path.isdir(target) and not replace:
            return target
        if err.errno not in _NO_ROOM:
            raise
        # Writing failed, not reading: the zip is fine, the place it is extracted to is not.
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            advice = "free space there" + ("" if extract_dir else " or set XDG_CACHE_HOME to a folder with room")
        else:
            advice = "choose a folder you may write in" + ("" if extract_dir else " (XDG_CACHE_HOME)")
        raise DatasetLayoutError(
            f"{archive}: cannot extract it into {parent} ({err.strerror}); {advice} (the zip itself is fine), or put "
            f"the extracted folder in {manual_dir} instead.") from err
    return target


def _unreadable_zip(archive: str, manual_dir: str, err: BaseException) -> str:
    """The message for an official zip that cannot be read: damaged, or not readable by this user."""
    if isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM):
        return f"{archive}: this user may not read it ({err.strerror}); change its permissions or copy it."
    return (f"{archive}: not a readable zip ({err}); download it again from https://davischallenge.org or put the "
            f"extracted folder in {manual_dir} instead.")


def davis_year(directory: str, resolution: str = "480p") -> int:
    """2017 when the DAVIS tree (JPEGImages/<resolution>) under `directory` has ImageSets/2017, else 2016."""
    root = find_davis_root(directory, resolution)
    return 2017 if os.path.isdir(os.path.join(root, "ImageSets", "2017")) else 2016


def _read_db_info(root: str) -> Dict[str, dict]:
    path = os.path.join(root, "Annotations", "db_info.yml")
    if not os.path.isfile(path):
        return {}
    import yaml  # local: only DAVIS-2016 trees carry this file

    try:
        with open(path, encoding="utf-8") as f:
            info = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        raise DatasetLayoutError(f"{path}: not valid YAML ({err}).") from err
    return {s["name"]: s for s in info.get("sequences", []) if isinstance(s, dict) and "name" in s}


def _read_lines(path: str, layout: str) -> List[str]:
    """The non-empty lines of a list file (ImageSets), stripped; UTF-8 with or without a byte order mark."""
    if not os.path.isfile(path):
        raise DatasetLayoutError(f"{path}: split file not found.\n{layout}")
    return read_list_lines(path, DatasetLayoutError)


def davis_splits(root: str, year: int, resolution: str = "480p") -> List[str]:
    """Names of the splits whose ImageSets file exists under a DAVIS root."""
    folder = os.path.join(root, "ImageSets", resolution if year == 2016 else "2017")
    wanted = ("train", "val", "trainval") if year == 2016 else ("train", "val")
    return [s for s in wanted if os.path.isfile(os.path.join(folder, s + ".txt"))]


def _merged_davis_tree(root: str, resolution: str) -> bool:
    """Whether a DAVIS root holds both years' split folders, DAVIS-2016's ImageSets/<resolution> and DAVIS-2017's
    ImageSets/2017: both official zips extracted into one DAVIS/ folder, where the year extracted last replaced the
    other's Annotations/<resolution>/<seq>/. (DAVIS-2017 ships ImageSets/2016, its list of the 2016 sequences, so
    that folder says nothing.)"""
    return all(os.path.isdir(os.path.join(root, _davis_split_folder(year, resolution))) for year in (2016, 2017))


def _merged_tree_error(mask_path: str, root: str, resolution: str, found: str,
                       error: Type[Exception] = DatasetLayoutError) -> Exception:
    """The error for an annotation of the other DAVIS year in a merged tree (`_merged_davis_tree`)."""
    return error(
        f"{mask_path}: {found}. {root} holds both DAVIS-2016's ImageSets/{resolution} and DAVIS-2017's "
        f"ImageSets/2017: the two official zips were extracted into one folder, and the year extracted last replaced "
        f"the other's Annotations/{resolution}/<seq>/ of the sequences both hold. Extract the two years into separate "
        "folders (DAVIS-2016/ and DAVIS-2017/ side by side in the manual directory), or keep the zips there (each is "
        "then extracted on its own).")


def _missing_sequence(frame_dir: str, name: str, list_path: str) -> str:
    """The error for a sequence a split file lists whose frame folder is missing (a subset of DAVIS kept with
    the official split files)."""
    return (f"{frame_dir}: missing frame folder of sequence {name} listed in {list_path}; restore the folder, or "
            f"remove {name}'s lines from {os.path.basename(list_path)} to use the sequences you have.")


def _davis2016_frames(root: str, list_path: str) -> Dict[str, List[Tuple[str, str]]]:
    """A DAVIS-2016 split file's (frame, mask) paths by sequence name, in the file's order."""
    frames: Dict[str, List[Tuple[str, str]]] = {}
    for line in _read_lines(list_path, DAVIS_LAYOUT):
        parts = line.split()
        if len(parts) != 2:
            raise DatasetLayoutError(
                f"{list_path}: line {line!r} should be '/JPEGImages/<res>/<seq>/<n>.jpg /Annotations/<res>/<seq>/<n>.png'."
            )
        frame, mask = (os.path.join(root, p.lstrip("/")) for p in parts)
        frames.setdefault(os.path.basename(os.path.dirname(frame)), []).append((frame, mask))
    return frames


def davis_split_names(root: str, year: int, split: str, resolution: str = "480p") -> List[str]:
    """The sequence names a DAVIS split file lists, in its order, without opening any sequence."""
    root = find_davis_root(root, resolution, year=year)
    if year == 2016:
        return list(_davis2016_frames(root, os.path.join(root, "ImageSets", resolution, f"{split}.txt")))
    return _davis2017_names(os.path.join(root, "ImageSets", "2017", f"{split}.txt"))


def _davis2017_names(list_path: str) -> List[str]:
    """The sequence names of a DAVIS-2017 split file, refusing a name listed twice (read twice, it would be
    segmented into one folder twice and count twice in a mean; tfds refuses the second example late and
    without naming the file)."""
    names = _read_lines(list_path, DAVIS_LAYOUT)
    repeated = repeated_names(names)
    if repeated:
        raise DatasetLayoutError(f"{list_path}: lists {repeated} more than once; list each sequence once.")
    return names


def read_davis_sequence_list(root: str, year: int, split: str, resolution: str = "480p",
                             validate: Union[bool, str] = True,
                             names: Optional[Collection[str]] = None) -> List[Sequence]:
    """Sequences of a DAVIS split.

    Args:
      root: the DAVIS folder (or a folder containing DAVIS/); see `DAVIS_LAYOUT`.
      year: 2016 (binary masks, ImageSets/<resolution>/<split>.txt frame lists) or 2017 (palette masks,
        ImageSets/2017/<split>.txt sequence names).
      split: "train", "val" (or "trainval" for 2016).
      resolution: "480p" or "Full-Resolution".
      validate: check files, sizes and numbering now (headers only; ids are checked by `load_masks`);
        "first_mask" checks the frames and only the first frame's mask (segmenting test-dev needs no other).
        Only True (training's reading) refuses a first frame whose ids skip an object (1 and 3, or 2 alone): the
        others count objects as davis2017-evaluation does (`first_frame_objects` with gaps).
      names: read and check only these sequences of the split (in the split's order; names it does not list
        are left out: check them against `davis_split_names`), so that another one's broken files do not stop
        work on them.
    """
    if validate not in (True, False, "first_mask"):
        raise ValueError(f"validate must be True, False or 'first_mask', got {validate!r}.")
    if year not in (2016, 2017):
        raise ValueError(f"DAVIS year must be 2016 or 2017, got {year}.")
    root = find_davis_root(root, resolution, year=year)
    db_info = _read_db_info(root)
    dataset = f"davis-{resolution}"
    sequences: List[Sequence] = []
    if year == 2016:
        list_path = os.path.join(root, "ImageSets", resolution, f"{split}.txt")
        for name, pairs in _davis2016_frames(root, list_path).items():
            if names is not None and name not in names:
                continue
            frame_dir = os.path.dirname(pairs[0][0])
            if validate and not os.path.isdir(frame_dir):  # a whole sequence gone, not one frame
                raise DatasetLayoutError(_missing_sequence(frame_dir, name, list_path))
            check_merged_davis_annotation(root, 2016, pairs[0][1], resolution)
            info = db_info.get(name, {})
            sequences.append(Sequence(
                name=name, dataset=dataset, frame_paths=tuple(p[0] for p in pairs),
                mask_paths=tuple((p[1],) for p in pairs), num_objects=1,
                eval_t=info.get("eval_t"), attributes=tuple(info.get("attributes") or ()),
            ))
    else:
        list_path = os.path.join(root, "ImageSets", "2017", f"{split}.txt")
        for name in _davis2017_names(list_path):
            if names is not None and name not in names:
                continue
            frame_dir = os.path.join(root, "JPEGImages", resolution, name)
            mask_dir = os.path.join(root, "Annotations", resolution, name)
            if not os.path.isdir(frame_dir):
                raise DatasetLayoutError(_missing_sequence(frame_dir, name, list_path))
            # Hidden files are not frames: macOS leaves "._00000.jpg" AppleDouble files on exFAT/network drives.
            frame_paths = sorted(
                os.path.join(frame_dir, f) for f in os.listdir(frame_dir)
                if f.lower().endswith(_FRAME_EXTENSIONS) and not f.startswith(".")
            )
            if not frame_paths:
                raise DatasetLayoutError(f"{frame_dir}: no frames (expected 00000.jpg, 00001.jpg, ...).")
            mask_paths = tuple(
                (os.path.join(mask_dir, os.path.splitext(os.path.basename(f))[0] + ".png"),) for f in frame_paths
            )
            if not os.path.isfile(mask_paths[0][0]):
                raise DatasetLayoutError(f"{mask_paths[0][0]}: missing first-frame mask of sequence {name}.")
            check_merged_davis_annotation(root, 2017, mask_paths[0][0], resolution)
            info = db_info.get(name, {})
            sequences.append(Sequence(
                name=name, dataset=dataset, frame_paths=tuple(frame_paths), mask_paths=mask_paths,
                num_objects=first_frame_objects(mask_paths[0][0], gaps=validate is not True),
                eval_t=info.get("eval_t"), attributes=tuple(info.get("attributes") or ()),
            ))
    if validate:
        for sequence in sequences:
            validate_sequence(sequence, first_mask_only=validate == "first_mask")
    return sequences


def check_merged_davis_annotation(root: str, year: int, mask_path: str, resolution: str = "480p",
                                  error: Type[Exception] = DatasetLayoutError) -> None:
    """Raises `error` when `mask_path`, the first annotation of a DAVIS-`year` sequence under `root`, is the other
    year's in a merged tree (`_merged_davis_tree`; nothing is checked outside one): for DAVIS-2017 a grey mask
    (DAVIS-2016's 0/255 form: every object would read as one; a grey id map in a DAVIS-2017 tree of its own reads
    as ids), for DAVIS-2016 a mask of several objects (DAVIS-2017's, which a DAVIS-2016 reading takes for one
    object and then fails on id 2 as if the masks were wrong). Training's readers and evaluate call it."""
    if not os.path.isfile(mask_path) or not _merged_davis_tree(root, resolution):
        return  # a missing annotation is named where the annotations are read
    if year == 2017:
        if grey_annotation_mode(mask_path) != COLOUR:
            raise _merged_tree_error(mask_path, root, resolution,
                                     "a grey annotation (DAVIS-2016's 0/255 form) where DAVIS-2017 has palette "
                                     "PNGs of object ids, so its objects would read as one", error)
        return
    ids = read_annotation_ids(mask_path, grey_annotation_mode(mask_path))
    objects = [int(v) for v in np.unique(ids) if v not in (0, VOID_ID)]
    if len(objects) > 1:
        raise _merged_tree_error(mask_path, root, resolution,
                                 f"a DAVIS-2017 annotation of {len(objects)} objects (ids {objects}) where DAVIS-2016 "
                                 "has one object per sequence", error)


def find_segtrack_root(directory: str) -> str:
    """The folder holding `GroundTruth/` and `JPEGImages/` under `directory` (itself or SegTrackv2/)."""
    root = _find_root(directory, "GroundTruth", SEGTRACK_LAYOUT, ("SegTrackv2", "SegTrackv2-sample"))
    if not os.path.isdir(os.path.join(root, "JPEGImages")):
        raise DatasetLayoutError(f"{root}: no JPEGImages/ folder beside GroundTruth/.\n{SEGTRACK_LAYOUT}")
    return root


def _find_with_extension(folder: str, stem: str, extensions: Tuple[str, ...]) -> Optional[str]:
    for ext in extensions:
        for candidate in (stem + ext, stem + ext.upper()):
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                return path
    return None


def read_segtrack_sequence_list(root: str, validate: bool = True) -> List[Sequence]:
    """All SegTrack v2 sequences listed in ImageSets/all.txt (single- and multi-object layouts)."""
    root = find_segtrack_root(root)
    all_path = os.path.join(root, "ImageSets", "all.txt")
    names = [entry.lstrip("*").strip() for entry in _read_lines(all_path, SEGTRACK_LAYOUT)]  # "*": several objects
    repeated = repeated_names(names)
    if repeated:  # scored twice (two rows, counted twice in the means) otherwise; the DAVIS lists are refused alike
        raise DatasetLayoutError(f"{all_path}: lists {repeated} more than once; list each sequence once.")
    sequences = []
    for name in names:
        list_path = os.path.join(root, "ImageSets", f"{name}.txt")
        lines = _read_lines(list_path, SEGTRACK_LAYOUT)
        # The first line is a path prefix such as "/JPEGImages/bmx/"; frame names follow.
        stems = [line for line in lines[1:]] if lines and "/" in lines[0] else lines
        stems = [os.path.splitext(s)[0] for s in stems]
        frame_dir = os.path.join(root, "JPEGImages", name)
        frame_paths = []
        for stem in stems:
            path = _find_with_extension(frame_dir, stem, _FRAME_EXTENSIONS)
            if path is None:
                raise DatasetLayoutError(
                    f"{os.path.join(frame_dir, stem)}.(png|bmp|jpg): missing frame listed in {list_path}."
                )
            frame_paths.append(path)
        gt_dir = os.path.join(root, "GroundTruth", name)
        layers = sorted((d for d in os.listdir(gt_dir) if os.path.isdir(os.path.join(gt_dir, d)) and d.isdigit()),
                        key=int) if os.path.isdir(gt_dir) else []
        if not os.path.isdir(gt_dir):
            raise DatasetLayoutError(f"{gt_dir}: missing ground-truth folder of sequence {name}.\n{SEGTRACK_LAYOUT}")
        if layers and [int(d) for d in layers] != list(range(1, len(layers) + 1)):
            raise DatasetLayoutError(
                f"{gt_dir}: object folders {layers} skip an id; they must be 1, 2, ..., N."
            )
        mask_dirs = [os.path.join(gt_dir, d) for d in layers] or [gt_dir]
        mask_paths = []
        for stem in stems:
            row = []
            for mask_dir in mask_dirs:
                path = _find_with_extension(mask_dir, stem, (".png", ".bmp", ".jpg"))
                if path is None:
                    raise DatasetLayoutError(
                        f"{os.path.join(mask_dir, stem)}.png: missing mask for frame {stem} of {name}."
                    )
                row.append(path)
            mask_paths.append(tuple(row))
        sequences.append(Sequence(
            name=name, dataset="segtrack_v2", frame_paths=tuple(frame_paths), mask_paths=tuple(mask_paths),
            num_objects=max(len(layers), 1), mask_layers=bool(layers),
        ))
    if validate:
        for sequence in sequences:
            validate_sequence(sequence)
    return sequences
