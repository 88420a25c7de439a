"""Writers of segmentation results: DAVIS-layout palette PNGs, probability maps, an overlay video.

Each writer receives full-resolution results one frame at a time; none keeps more than one frame.
"""
from __future__ import annotations

import logging
import os
from typing import Sequence, Tuple

import cv2
import numpy as np

from maskrnn_tf.io import write_palette_png
from maskrnn_tf.io.file_modes import apply_umask
from maskrnn_tf.io.tmp_dirs import clean_stale_tmp_beside, hidden_prefix, make_owned_tmp_file

PROBABILITY_FORMATS = ("npy", "png")


class MaskWriter:
    """Writes `<directory>/<frame name>.png`: indexed PNGs of object ids with the given palette."""

    def __init__(self, directory: str, palette: np.ndarray):
        self.directory = directory
        self.palette = np.asarray(palette, np.uint8)
        os.makedirs(directory, exist_ok=True)

    def write(self, name: str, ids: np.ndarray) -> None:
        write_palette_png(os.path.join(self.directory, name + ".png"), ids, self.palette)


class ProbabilityWriter:
    """Writes per-frame probability maps of the objects.

    "npy": `<directory>/<frame>.npy`, float16 [N, H, W] (object i = i-th id of `object_ids`);
    "png": `<directory>/<frame>_<object id>.png`, 8-bit grey, round(255 * p).
    """

    def __init__(self, directory: str, object_ids: Sequence[int], fmt: str = "npy"):
        if fmt not in PROBABILITY_FORMATS:
            raise ValueError(f"probability format must be one of {PROBABILITY_FORMATS}, got {fmt!r}.")
        self.directory = directory
        self.object_ids = tuple(object_ids)
        self.fmt = fmt
        os.makedirs(directory, exist_ok=True)

    def write(self, name: str, probs: np.ndarray) -> None:
        probs = np.clip(np.asarray(probs, np.float32), 0.0, 1.0)
        if self.fmt == "npy":
            np.save(os.path.join(self.directory, name + ".npy"), probs.astype(np.float16))
            return
        for object_id, prob in zip(self.object_ids, probs):
            grey = np.round(prob * 255.0).astype(np.uint8)
            path = os.path.join(self.directory, f"{name}_{object_id}.png")
            # OpenCV returns False instead of raising (a missing folder, a name over 255 bytes, a full disk): without
            # this the file would be missing from a results folder published as whole.
            if not cv2.imwrite(path, grey):
                raise OSError(f"{path}: OpenCV could not write this probability PNG (is the name over 255 bytes, "
                              "the folder gone or the disk full?).")


def overlay_frame(frame: np.ndarray, ids: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blends object colours into an RGB frame where ids > 0 and draws the object outlines."""
    colours = np.asarray(palette, np.uint8)[ids]
    objects = (ids > 0) & (ids != 255)
    out = frame.astype(np.float32)
    out[objects] = (1.0 - alpha) * out[objects] + alpha * colours[objects].astype(np.float32)
    out = out.astype(np.uint8)
    # Outline: pixels whose label differs from a 4-neighbour, so touching objects stay distinguishable.
    edge = np.zeros(ids.shape, bool)
    edge[:-1] |= ids[:-1] != ids[1:]
    edge[1:] |= ids[1:] != ids[:-1]
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    edge[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    edge &= objects
    out[edge] = colours[edge]
    return out


def check_overlay_folder(path: str) -> None:
    """Raises FileNotFoundError when the folder the overlay `path` goes in does not exist."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{path}: the overlay's folder {directory} does not exist; create it first.")


class OverlayWriter:
    """Writes an mp4 (mp4v) of the frames with the masks blended in; appears at `path` only on `close()` (or
    `finish()` then `publish()`, for a caller that publishes it together with other results)."""

    def __init__(self, path: str, size: Tuple[int, int], palette: np.ndarray, fps: float = 24.0):
        check_overlay_folder(path)
        self.path = os.path.abspath(path)
        directory = os.path.dirname(self.path)
        self.palette = np.asarray(palette, np.uint8)
        # Named after this process, so a run killed while writing leaves a file the next run can remove.
        name = os.path.basename(self.path)
        for removed in clean_stale_tmp_beside(directory, name):
            logging.getLogger(__name__).warning("removed %s, the partial overlay of an interrupted run", removed)
        self._tmp = make_owned_tmp_file(directory, hidden_prefix(name, "tmp"), ".mp4")
        # MPEG-4 takes a frame rate as a time base of 1000/N: an average rate of a variable-rate video such as
        # 108.303 is refused (after the run's work); two decimals, within 1-240, it takes.
        self.fps = min(max(round(float(fps), 2), 1.0), 240.0)
        # mp4v needs even sides: OpenCV dropped an odd frame's last column or row; edge pixels are repeated instead.
        self._pad = (size[0] % 2, size[1] % 2)
        even = (size[1] + self._pad[1], size[0] + self._pad[0])
        self._video = cv2.VideoWriter(self._tmp, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, even)
        if not self._video.isOpened():
            os.unlink(self._tmp)
            raise OSError(f"{path}: OpenCV cannot write an mp4v video here.")

    def write(self, frame: np.ndarray, ids: np.ndarray) -> None:
        """Appends one frame; raises OSError when OpenCV does not write it."""
        blended = overlay_frame(frame, ids, self.palette)
        if any(self._pad):
            blended = cv2.copyMakeBorder(blended, 0, self._pad[0], 0, self._pad[1], cv2.BORDER_REPLICATE)
        # OpenCV 5 returns False for a frame it could not write (OpenCV 4 returns None and cannot tell): raised, so
        # that the caller aborts the overlay instead of publishing one with frames missing.
        if self._video.write(cv2.cvtColor(blended, cv2.COLOR_RGB2BGR)) is False:
            raise OSError(f"{self.path}: OpenCV could not write a frame of this overlay (is the disk full?).")

    def close(self) -> None:
        """Finishes the file and moves it into place."""
        self.finish()
        self.publish()

    def finish(self) -> str:
        """Completes the file under its hidden temporary name (beside `path`) and returns that name."""
        self._video.release()
        apply_umask(self._tmp)  # mkstemp made it 0600
        return self._tmp

    def publish(self) -> None:
        """Moves the finished file to `path` (a rename: its size and mtime stay those of `finish()`)."""
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drops the partial (or finished, unpublished) file."""
        self._video.release()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)


def upsample_probs(probs: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Bilinear resize of [N, h, w] probabilities to size = (H, W)."""
    probs = np.asarray(probs, np.float32)
    if tuple(probs.shape[1:]) == tuple(size):
        return probs
    # cv2.resize handles up to 512 channels at once in [h, w, N] layout.
    out = [
        cv2.resize(np.ascontiguousarray(np.moveaxis(probs[i:i + 512], 0, -1)), (size[1], size[0]),
                   interpolation=cv2.INTER_LINEAR).reshape(size[0], size[1], -1)
        for i in range(0, probs.shape[0], 512)
    ]
    if not probs.shape[0]:
        return np.zeros((0,) + tuple(size), np.float32)
    return np.moveaxis(np.concatenate(out, axis=-1), -1, 0)

