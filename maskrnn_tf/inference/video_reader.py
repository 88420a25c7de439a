"""Reading a video as a stream of uint8 RGB frames: a folder of images or a video file (OpenCV).

Frames are decoded lazily, one at a time, so a long video is never held in memory (the propagation loop
adds a bounded read-ahead with `maskrnn_tf.inference.background.prefetch`).
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from maskrnn_tf.data.sequences import image_size
from maskrnn_tf.io import ImageReadError, read_frame
from maskrnn_tf.io.frame_files import list_frames

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
_LOG = logging.getLogger(__name__)

class VideoReadError(ImageReadError):
    """A video (frame folder or video file) is missing, empty or unreadable."""


class VideoSource:
    """A video on disk: a folder of frames or a video file decoded with OpenCV.

    A folder's frames are the images of its most common type, naturally sorted (`maskrnn_tf.io.frame_files`);
    `exclude` (the first mask) is never a frame; skipped images are listed in `skipped` and logged. A video
    file must decode to the frame count its container declares (a truncated or corrupt file is refused)
    unless `allow_partial`, which keeps the decodable prefix with a warning.

    Attributes:
      path: the folder or file.
      frame_names: one output name stem per frame ("00000", ...): the image stems for a folder, the
        zero-padded index for a video file.
      size: (height, width) of the frames.
      fps: frame rate (the file's for a video file, 24 for a folder).
      name: see the property (`name` overrides it, e.g. a DAVIS sequence name).
      skipped: images of the folder that are not frames.
    """

    def __init__(self, path: str | os.PathLike, frame_paths: Optional[List[str]] = None,
                 name: Optional[str] = None, exclude: Iterable[str] = (), allow_partial: bool = False):
        self.path = os.fspath(path)
        self._name = name
        self.skipped: List[str] = []
        self.allow_partial = allow_partial
        self._frame_paths: Optional[List[str]] = None
        if frame_paths is not None:
            if not frame_paths:
                raise VideoReadError(f"{self.path}: no frames listed.")
            self._frame_paths = list(frame_paths)
            self.fps = 24.0
        elif os.path.isdir(self.path):
            listing = list_frames(self.path, exclude)
            if not listing.paths:
                raise VideoReadError(
                    f"{self.path}: no frames found (expected images named like 00000.jpg with extensions "
                    f"{', '.join(FRAME_EXTENSIONS)}; the first mask is never a frame)."
                )
            self._frame_paths = listing.paths
            self.skipped = listing.skipped
            if listing.skipped:
                _LOG.warning("%s", listing.skipped_message())
            self.fps = 24.0
        elif os.path.isfile(self.path):
            self._open_video_file()
        else:
            raise VideoReadError(f"{self.path}: video not found (give a folder of frames or a video file).")
        if self._frame_paths is not None:
            self.frame_names = [os.path.splitext(os.path.basename(p))[0] for p in self._frame_paths]
            _refuse_shared_stems(self.path, self._frame_paths, self.frame_names)
            self.size = read_frame(self._frame_paths[0]).shape[:2]
            # From the headers, before any work: a frame of another size would otherwise stop the run only when
            # the loop reaches it (after the model has loaded and finetuned).
            for frame_path in self._frame_paths[1:]:
                height, width = image_size(frame_path)
                if (height, width) != tuple(self.size):
                    raise VideoReadError(_size_problem(frame_path, (height, width), self.size))

    def _open_video_file(self) -> None:
        capture = cv2.VideoCapture(self.path)
        try:
            ok, frame = capture.read() if capture.isOpened() else (False, None)
            if not ok or frame is None:
                raise VideoReadError(
                    f"{self.path}: unreadable video file (OpenCV could not decode a frame); convert it to "
                    "mp4 (H.264/mp4v) or extract its frames into a folder."
                )
            self.size = frame.shape[:2]
            self.fps = float(capture.get(cv2.CAP_PROP_FPS)) or 24.0
            declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            # Count by decoding (grab() skips the colour work): what we can deliver, whatever the header says.
            count = 1
            while capture.grab():
                count += 1
        finally:
            capture.release()
        # Only containers that store their frame count can be said to have lost frames; Matroska/WebM (and streams
        # such as MPEG-TS) store none, and OpenCV estimates it from the duration, audio and frame-rate gaps included
        # (a whole recording with a sound track read as "12 of 25 frames").
        if 0 < count < declared and _stores_frame_count(self.path):
            message = (f"{self.path}: only {count} of the {declared} frames its container declares could be "
                       "decoded; the file is truncated or corrupt, or was cut without re-encoding (an edit list "
                       "then hides frames that the container still counts).")
            if not self.allow_partial:
                raise VideoReadError(f"{message} Re-encode or re-download it, or pass --allow_partial_video to "
                                     f"segment the {count} frames that decode (what a player shows of a cut "
                                     "file).")
            _LOG.warning("%s Segmenting the first %d frames only (--allow_partial_video).", message, count)
        self.frame_names = [f"{i:05d}" for i in range(count)]

    @property
    def name(self) -> str:
        """The video's name: the folder's basename (for a DAVIS sequence, the sequence name), or the video
        file's name without extension. Precomputed `.flo` flows are looked up under `<flo_dir>/<name>/`."""
        if self._name:
            return self._name
        base = os.path.basename(os.path.normpath(self.path))
        return base if os.path.isdir(self.path) or self._frame_paths is not None else os.path.splitext(base)[0]

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)

    def frames(self) -> Iterator[np.ndarray]:
        """Yields the frames in order as uint8 RGB [H, W, 3], decoding one at a time."""
        if self._frame_paths is not None:
            for path in self._frame_paths:
                frame = read_frame(path)
                if frame.shape[:2] != tuple(self.size):  # changed since the video was opened
                    raise VideoReadError(_size_problem(path, frame.shape[:2], self.size))
                yield frame
            return
        capture = cv2.VideoCapture(self.path)
        try:
            for index in range(self.num_frames):
                ok, frame = capture.read()
                if not ok:
                    raise VideoReadError(f"{self.path}: decoding stopped at frame {index} of {self.num_frames}.")
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()


def _size_problem(path: str, size: Tuple[int, int], first: Tuple[int, int]) -> str:
    return (f"{path}: frame size {size[1]}x{size[0]} differs from the first frame ({first[1]}x{first[0]}); all "
            "frames of a video must have the same size.")


def _refuse_shared_stems(folder: str, paths: List[str], stems: List[str]) -> None:
    """Raises VideoReadError when two frames share a name stem (`a.jpg` and `a.jpeg` or `a.JPG`): both results
    would be written to `<stem>.png`, the second over the first."""
    first_of: Dict[str, str] = {}
    for path, stem in zip(paths, stems):
        if stem in first_of:
            raise VideoReadError(
                f"{folder}: frames {os.path.basename(first_of[stem])} and {os.path.basename(path)} have the same "
                f"name stem, so both results would be written to {stem}.png; move one of them out of the folder.")
        first_of[stem] = path


def resize_frame(frame: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Area-downscales (or bilinear-upscales) a frame to size = (height, width)."""
    if tuple(frame.shape[:2]) == tuple(size):
        return frame
    smaller = size[0] * size[1] < frame.shape[0] * frame.shape[1]
    interpolation = cv2.INTER_AREA if smaller else cv2.INTER_LINEAR
    return cv2.resize(frame, (size[1], size[0]), interpolation=interpolation)


def working_size(size: Tuple[int, int], max_size: Optional[int]) -> Tuple[int, int]:
    """The (height, width) frames are processed at: `size` with its long side capped at `max_size`."""
    height, width = size
    if not max_size or max(height, width) <= max_size:
        return height, width
    scale = max_size / max(height, width)
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


# Containers whose headers store the number of frames (MP4/QuickTime's sample tables, AVI's header): a file of
# such a container that decodes fewer frames than it declares is truncated or cut.
_COUNTED_CONTAINERS = (".mp4", ".m4v", ".mov", ".3gp", ".3g2", ".avi")


def _stores_frame_count(path: str) -> bool:
    """Whether the video file `path` is of a container that stores its frame count (by its extension)."""
    return os.path.splitext(path)[1].lower() in _COUNTED_CONTAINERS
