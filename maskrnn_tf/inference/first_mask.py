"""The first-frame mask of a video: object ids, the palette to write results with, one-hot maps."""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Optional, Tuple

import numpy as np

from maskrnn_tf.io import VOID_ID, davis_palette
from maskrnn_tf.io.id_images import grey_annotation_mode, read_annotation_ids, read_label_image

_LOG = logging.getLogger(__name__)


def resize_nearest(maps: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of label or 0/1 maps [..., H, W] to `size` (height, width): each output pixel
    takes the input pixel under its centre, so values stay exactly as they were. The one resize of first-frame
    masks: the seed of the segmentation and the targets of online finetuning must be the same pixels."""
    maps = np.asarray(maps)
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    rows = ((np.arange(size[0]) + 0.5) * maps.shape[-2] / size[0]).astype(int)
    cols = ((np.arange(size[1]) + 0.5) * maps.shape[-1] / size[1]).astype(int)
    return maps[..., rows, :][..., cols]


def labels_at_size(labels: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """A first-frame id map [H, W] at the processing `size` (height, width): nearest-neighbour (`resize_nearest`),
    except that an object on which no cell centre falls (smaller than a cell of the downscale, e.g. a ball in a
    4K frame under --max_size) takes the cells its pixels lie in, so that it is tracked instead of dropped. A cell
    is taken from background, void, or an object that keeps another cell (the objects of fewest cells choose
    first); an object left without one (each of its cells is another object's only one) is named in a warning."""
    small = np.array(resize_nearest(labels, size), copy=True)
    if small.shape == labels.shape:
        return small
    kept, counts = np.unique(small, return_counts=True)
    cells = dict(zip(kept.tolist(), counts.tolist()))
    missing = [int(i) for i in np.unique(labels) if i not in (0, VOID_ID) and i not in cells]
    where = {}
    for object_id in missing:
        rows, cols = np.nonzero(labels == object_id)
        where[object_id] = sorted(set(zip((rows * size[0] // labels.shape[0]).tolist(),
                                          (cols * size[1] // labels.shape[1]).tolist())))
    for object_id in sorted(missing, key=lambda i: len(where[i])):  # the fewest cells choose first
        for row, col in where[object_id]:
            holder = int(small[row, col])
            if holder in (0, VOID_ID) or cells.get(holder, 0) > 1:
                cells[holder] -= 1
                small[row, col] = object_id
                cells[object_id] = cells.get(object_id, 0) + 1
    lost = [i for i in missing if not cells.get(i)]
    if lost:
        _LOG.warning("object(s) %s of the first mask are smaller than a pixel at the processing size %dx%d and "
                     "share it with other objects: they are not tracked; give a larger --max_size (0 = full size).",
                     lost, size[1], size[0])
    return small


class MaskError(ValueError):
    """The first-frame mask does not fit the video or holds no object."""


@dataclasses.dataclass(frozen=True)
class FirstMask:
    """A first-frame annotation.

    Attributes:
      labels: [H, W] uint8 ids as given (0 background, object ids, 255 void).
      object_ids: the N object ids present, ascending; model object i is `object_ids[i]`.
      palette: [256, 3] uint8 colours for the output PNGs (the input's palette, else DAVIS's).
    """

    labels: np.ndarray
    object_ids: Tuple[int, ...]
    palette: np.ndarray

    @property
    def num_objects(self) -> int:
        return len(self.object_ids)

    def one_hot(self, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """[N, H, W] float32 0/1 maps, one per object (void is background for every object); at the processing
        `size` (height, width) when given, every object kept (`labels_at_size`)."""
        labels = self.labels if size is None else labels_at_size(self.labels, size)
        ids = np.asarray(self.object_ids, np.uint8)[:, None, None]
        return (labels[None] == ids).astype(np.float32)

    def index_to_id(self) -> np.ndarray:
        """[N + 1] uint8 lookup from fused labels (0 background, i + 1 object i) to object ids."""
        return np.asarray((0,) + tuple(self.object_ids), np.uint8)


def read_first_mask(path: str | os.PathLike, frame_size: Optional[Tuple[int, int]] = None) -> FirstMask:
    """Reads a first-frame mask: a palette PNG whose index is the object id, a grey mask (binary when it has
    one non-zero value, e.g. 0/1 or 0/255; ids when all values are below 128), or an RGB mask with one flat
    colour per object (see `maskrnn_tf.io.id_images.read_label_image`).

    Raises:
      ImageReadError: the file is missing or unreadable.
      MaskError: its size differs from `frame_size` = (height, width), or it holds no object.
    """
    path = os.fspath(path)
    labels, palette = read_label_image(path)
    return _first_mask(path, labels, palette, frame_size)


def read_first_annotation(path: str | os.PathLike, frame_size: Optional[Tuple[int, int]] = None) -> FirstMask:
    """A data set's first annotation as the first mask, read as its ground truth is (`read_annotation_ids` in the
    sequence's `grey_annotation_mode`), so the results hold the ids evaluation scores: a binary annotation saved as
    RGB in one palette grey is object 1 there, where `read_first_mask` (a user's mask) takes DAVIS colours 56/7/63.

    Raises: as `read_first_mask`.
    """
    from maskrnn_tf.io import read_palette

    path = os.fspath(path)
    return _first_mask(path, read_annotation_ids(path, grey_annotation_mode(path)), read_palette(path), frame_size)


def _first_mask(path: str, labels: np.ndarray, palette: Optional[np.ndarray],
                frame_size: Optional[Tuple[int, int]]) -> FirstMask:
    """The FirstMask of `labels` read from `path`, checked against the frames' size and for an object."""
    if frame_size is not None and tuple(labels.shape) != tuple(frame_size):
        raise MaskError(
            f"{path}: mask size {labels.shape[1]}x{labels.shape[0]} differs from the video's frames "
            f"({frame_size[1]}x{frame_size[0]}); give the mask of the video's first frame at its resolution."
        )
    present = np.unique(labels)
    object_ids = tuple(int(v) for v in present if v not in (0, VOID_ID))
    if not object_ids:
        raise MaskError(
            f"{path}: the mask holds no object (only background/void); paint the objects to track with "
            "ids 1..N (palette PNG), in flat colours on black (RGB), or as white on black (binary mask)."
        )
    return FirstMask(labels=labels, object_ids=object_ids, palette=davis_palette() if palette is None else palette)

