"""Optical-flow backends: OpenCV DIS (default), OpenCV Farneback, and a folder of `.flo` files.

Every backend returns the (u, v) flow from frame a to frame b as float32 [H, W, 2]
(`flow[y, x]` = displacement of pixel (x, y) of a to its match in b).
"""
from __future__ import annotations

import abc
import hashlib
import os
import re
import threading
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from maskrnn_tf.ops.flo_io import read_flo

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class FlowBackend(abc.ABC):
    """Computes or fetches the flow between two frames of a sequence."""

    #: Sub-folder of the cache holding this backend's flows (distinct settings -> distinct tags).
    tag: str = ""
    #: False when the backend ignores pixel data (a `.flo` folder): callers may skip decoding frames.
    needs_frames: bool = True

    @abc.abstractmethod
    def flow(self, frame_a: Optional[np.ndarray], frame_b: Optional[np.ndarray], *, sequence: str = "",
             stem_a: str = "", stem_b: str = "") -> np.ndarray:
        """(u, v) flow a -> b, float32 [H, W, 2]; frames are uint8 RGB [H, W, 3]."""

    def source_files(self, sequence: str) -> List[str]:
        """Files besides the frames the flows of `sequence` are read from (the cache fingerprints them)."""
        del sequence
        return []


def _grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame, dtype=np.uint8), cv2.COLOR_RGB2GRAY)


class DISFlow(FlowBackend):
    """OpenCV Dense Inverse Search (no weights, CPU); `preset` is ultrafast, fast or medium."""

    def __init__(self, preset: str = "medium") -> None:
        if preset not in _DIS_PRESETS:
            raise ValueError(f"DIS preset must be one of {sorted(_DIS_PRESETS)}, got {preset!r}.")
        self.preset = preset
        self.tag = f"dis-{preset}"
        self._local = threading.local()

    def __getstate__(self):
        return {"preset": self.preset, "tag": self.tag}

    def __setstate__(self, state) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def flow(self, frame_a, frame_b, *, sequence="", stem_a="", stem_b="") -> np.ndarray:
        # One DIS object per thread: tf.data's parallel map calls this from several threads at once and a
        # shared cv2.DISOpticalFlow crashes the process (segfault); objects are also made lazily because
        # cv2 objects do not pickle across processes.
        dis = getattr(self._local, "dis", None)
        if dis is None:
            dis = self._local.dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[self.preset])
        return dis.calc(_grey(frame_a), _grey(frame_b), None).astype(np.float32)


class FarnebackFlow(FlowBackend):
    """OpenCV Farneback polynomial-expansion flow (pyramid 0.5, 4 levels, window 15, 3 iterations)."""

    tag = "farneback"

    def flow(self, frame_a, frame_b, *, sequence="", stem_a="", stem_b="") -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(
            _grey(frame_a), _grey(frame_b), None, pyr_scale=0.5, levels=4, winsize=15, iterations=3,
            poly_n=5, poly_sigma=1.1, flags=0,
        ).astype(np.float32)


def flo_folder_tag(root: str) -> str:
    """Cache tag of a `.flo` folder: "flo-<folder name>-<8 hex digits>".

    The name keeps the tag readable; the digits (of the folder's absolute real path) keep two folders with the
    same name (raft/DAVIS, flownet2/DAVIS) apart, while spellings of one folder (relative, trailing slash,
    symlink) share an entry. Characters other than letters, digits, ".", "_" and "-" become "_" and the name is
    cut to 40 characters, so the tag is always one plain folder name.
    """
    real = os.path.realpath(root)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(real))[:40].strip(".") or "root"
    digest = hashlib.sha1(real.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"flo-{name}-{digest}"


class FloFolderFlow(FlowBackend):
    """Flows precomputed elsewhere (FlowNet2, RAFT, ...) as Middlebury `.flo` files.

    Layout: `<root>/<sequence>/<stem_a>_<stem_b>.flo` is the flow from frame `stem_a` to frame `stem_b`
    (e.g. `blackswan/00000_00001.flo` forward and `blackswan/00001_00000.flo` backward). Cached under
    `flo_folder_tag(root)`.
    """

    needs_frames = False

    def __init__(self, root: str) -> None:
        self.root = root
        self.tag = flo_folder_tag(root)

    def source_files(self, sequence: str) -> List[str]:
        """The sequence's `.flo` files: flows exported again into the folder must not be served from the cache
        of the old ones."""
        folder = os.path.join(self.root, sequence)
        if not os.path.isdir(folder):
            return []
        return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".flo"))

    def flow(self, frame_a, frame_b, *, sequence="", stem_a="", stem_b="") -> np.ndarray:
        self.check_files(sequence, [(stem_a, stem_b)])
        return np.asarray(read_flo(os.path.join(self.root, sequence, f"{stem_a}_{stem_b}.flo")), dtype=np.float32)

    def check_files(self, sequence: str, pairs: Sequence[Tuple[str, str]]) -> None:
        """Raises FileNotFoundError naming the first of the flows `pairs` ((from, to) frame stems) of `sequence`
        that has no file, and how many are missing."""
        missing = [(a, b) for a, b in pairs if not os.path.isfile(os.path.join(self.root, sequence, f"{a}_{b}.flo"))]
        if not missing:
            return
        (stem_a, stem_b), more = missing[0], len(missing) - 1
        path = os.path.join(self.root, sequence, f"{stem_a}_{stem_b}.flo")
        raise FileNotFoundError(
            f"{path}: missing .flo file (flow from frame {stem_a} to {stem_b} of {sequence})"
            + (f" and {more} more of that sequence" if more else "") + "; the folder must hold "
            "<sequence>/<from>_<to>.flo for every consecutive pair, both directions."
        )


def make_backend(name: str, flo_dir: Optional[str] = None) -> FlowBackend:
    """Backend by name: "dis" / "dis-medium" / "dis-fast" / "dis-ultrafast", "farneback", or "flo"."""
    if name == "dis":
        return DISFlow("medium")
    if name.startswith("dis-"):
        return DISFlow(name[4:])
    if name == "farneback":
        return FarnebackFlow()
    if name == "flo":
        if not flo_dir:
            raise ValueError("the 'flo' flow backend needs the folder of .flo files (flo_dir).")
        return FloFolderFlow(flo_dir)
    raise ValueError(f"unknown flow backend {name!r}; use dis, dis-fast, dis-ultrafast, farneback or flo.")


FRAME_FLOWS = ("dis", "dis-medium", "dis-fast", "dis-ultrafast", "farneback")


def estimated_flow_fn(name: str) -> Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """The flow(frame_a, frame_b) of backend `name` (one of FRAME_FLOWS), or None for "exact" (a synthetic
    clip's own flow, nothing to estimate)."""
    if name == "exact":
        return None
    if name not in FRAME_FLOWS:
        raise ValueError(f"{name!r} is not a flow computed from two frames; use one of {', '.join(FRAME_FLOWS)}.")
    return make_backend(name).flow
