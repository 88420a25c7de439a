"""Per-sequence optical-flow cache: every flow is computed once and stored on disk.

Format: `<cache_dir>/<backend.tag>/<sequence.dataset>/<sequence.name>/<stem_a>_<stem_b>.npy`, one float16
NumPy array [H, W, 2] (u, v) per direction of each consecutive frame pair. float16 keeps 1/32-pixel
precision up to 64-pixel displacements and halves the disk cost: 4 * H * W bytes per flow, so one frame
(forward + backward) costs 8 * H * W bytes = 3.3 MB at 854x480 (about 11 GB for DAVIS-2017 trainval 480p,
4 GB for DAVIS-2016). Files are written to a temporary name and renamed, so an interrupted run leaves no
half-written file and a rerun resumes where it stopped.

A cache file is used only when it holds what a flow must be: a float array [H, W, 2] with the frames' H and
W and only finite values. Anything else (a zero-byte or truncated file from a full disk or a cut-short copy,
another shape, NaN) is recomputed and rewritten, and counted in `repaired`.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Optional, Tuple

import numpy as np

from maskrnn_tf.data.flow_backends import FlowBackend
from maskrnn_tf.data.sequences import Sequence, image_size
from maskrnn_tf.io import read_frame
from maskrnn_tf.io.atomic_file import atomic_write

log = logging.getLogger(__name__)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


class FlowCacheError(ValueError):
    """The cache folder cannot be used, or the flow backend gave a flow that does not fit the frames."""


def flow_problem(flow: np.ndarray, height: int, width: int) -> Optional[str]:
    """What is wrong with `flow` as the flow of a height x width frame (None when nothing is)."""
    if flow.dtype.kind != "f":
        return f"dtype {flow.dtype} is not a float type"
    if flow.shape != (height, width, 2):
        return f"shape {flow.shape} is not {(height, width, 2)} (the frames' height, width, then u, v)"
    bad = int(np.size(flow) - np.count_nonzero(np.isfinite(flow)))
    if bad:
        return f"{bad} non-finite values (NaN or Inf)"
    return None


class FlowCache:
    """Flows of sequences from `backend`, stored under `cache_dir` (None: computed, never stored).

    Raises FlowCacheError when `cache_dir` is a file or cannot be created.
    """

    def __init__(self, backend: FlowBackend, cache_dir: Optional[str] = None) -> None:
        self.backend = backend
        self.cache_dir = cache_dir
        self.repaired = 0  # damaged cache files found and rewritten
        if cache_dir is not None:
            if os.path.exists(cache_dir) and not os.path.isdir(cache_dir):
                raise FlowCacheError(f"flow cache folder {cache_dir} is a file, not a folder: give a folder "
                                     "(it is created if missing), or move the file away.")
            try:
                os.makedirs(cache_dir, exist_ok=True)
            except OSError as err:
                raise FlowCacheError(f"flow cache folder {cache_dir} cannot be created ({err}); give a folder "
                                     "that can be written.") from err

    def path(self, sequence: Sequence, a: int, b: int) -> Optional[str]:
        """Cache file of the flow from frame a to frame b of `sequence` (None without a cache dir)."""
        if self.cache_dir is None:
            return None
        stem_a, stem_b = _stem(sequence.frame_paths[a]), _stem(sequence.frame_paths[b])
        return os.path.join(self.cache_dir, self.backend.tag, sequence.dataset, sequence.name,
                            f"{stem_a}_{stem_b}.npy")

    def _load(self, path: Optional[str], sequence: Sequence, a: int) -> Optional[np.ndarray]:
        """The cached flow at `path` as float32, or None when it is missing or damaged (damage is logged and
        counted: the caller recomputes and rewrites it)."""
        if path is None or not os.path.isfile(path):
            return None
        try:
            flow = np.load(path, allow_pickle=False)
            problem = flow_problem(flow, *image_size(sequence.frame_paths[a]))
        except (ValueError, OSError, EOFError) as err:  # EOFError: a zero-byte file
            problem = f"unreadable ({type(err).__name__}: {err})"
        if problem is None:
            return flow.astype(np.float32)
        log.warning("flow cache file %s: %s; recomputing it", path, problem)
        self.repaired += 1
        return None

    def _compute(self, sequence: Sequence, a: int, b: int, frames: dict) -> np.ndarray:
        def frame(i):
            if not self.backend.needs_frames:
                return None
            if i not in frames:
                frames[i] = read_frame(sequence.frame_paths[i])
            return frames[i]

        stem_a, stem_b = _stem(sequence.frame_paths[a]), _stem(sequence.frame_paths[b])
        flow = np.asarray(self.backend.flow(frame(a), frame(b), sequence=sequence.name, stem_a=stem_a,
                                            stem_b=stem_b))
        problem = flow_problem(flow, *image_size(sequence.frame_paths[a]))
        if problem is not None:  # stored, it would be rejected and recomputed on every load
            raise FlowCacheError(f"{self.backend.tag} flow from frame {stem_a} to {stem_b} of {sequence.name}: "
                                 f"{problem}; fix the flow source.")
        path = self.path(sequence, a, b)
        if path is not None:
            stored = flow.astype(np.float16)
            atomic_write(path, lambda tmp: np.save(tmp, stored), suffix=".npy")
        return flow.astype(np.float32)

    def flow(self, sequence: Sequence, a: int, b: int, frames: Optional[dict] = None) -> np.ndarray:
        """float32 [H, W, 2] flow from frame a to frame b (cached, or computed and stored)."""
        cached = self._load(self.path(sequence, a, b), sequence, a)
        if cached is not None:
            return cached
        return self._compute(sequence, a, b, {} if frames is None else frames)

    def is_complete(self, sequence: Sequence, t: int) -> bool:
        """True when both flows between frames t and t+1 are on disk and intact."""
        return all(self._load(self.path(sequence, a, b), sequence, a) is not None
                   for a, b in ((t, t + 1), (t + 1, t)))

    def precompute(self, sequence: Sequence, on_pair: Optional[Callable[[bool], None]] = None) -> int:
        """Computes every missing or damaged flow of a sequence (both directions); returns the pairs computed.

        `on_pair(skipped)` is called once per consecutive pair (for a progress bar).
        """
        computed = 0
        frames: dict = {}
        for t in range(sequence.num_frames - 1):
            missing = [(a, b) for a, b in ((t, t + 1), (t + 1, t))
                       if self._load(self.path(sequence, a, b), sequence, a) is None]
            if not missing:
                if on_pair:
                    on_pair(True)
                continue
            for a, b in missing:
                self._compute(sequence, a, b, frames)
            frames.pop(t, None)  # keep at most two decoded frames in memory
            computed += 1
            if on_pair:
                on_pair(False)
        return computed

    def flows_for(self, sequence: Sequence, indices) -> Tuple[np.ndarray, np.ndarray]:
        """(flows_to_prev, flows_to_next) float32 [n, H, W, 2] for frame `indices` (zeros at the ends)."""
        to_prev, to_next = [], []
        frames: dict = {}
        last = sequence.num_frames - 1
        for t in indices:
            t = int(t)
            prev = self.flow(sequence, t, t - 1, frames) if t > 0 else None
            nxt = self.flow(sequence, t, t + 1, frames) if t < last else None
            reference = prev if prev is not None else nxt
            if reference is None:  # a one-frame sequence: no flow at all
                h, w = image_size(sequence.frame_paths[t])
                reference = np.zeros((h, w, 2), np.float32)
            to_prev.append(prev if prev is not None else np.zeros_like(reference))
            to_next.append(nxt if nxt is not None else np.zeros_like(reference))
        return np.stack(to_prev), np.stack(to_next)
