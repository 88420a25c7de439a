"""The optical flow the propagation loop uses: computed on the fly by the data component's flow backends,
read from precomputed `.flo` files (FlowNet2, RAFT, exact synthetic flows) by sequence and frame name, or, for
DAVIS sequences, taken from the training flow cache (full-resolution flows, resized)."""
from __future__ import annotations

import os
from typing import Iterable, List, Mapping, Optional, Tuple
from typing import Sequence as PySequence

import numpy as np

from maskrnn_tf.data.flow_backends import FloFolderFlow, FlowBackend, make_backend
from maskrnn_tf.data.flow_cache import FlowCache
from maskrnn_tf.data.sequences import Sequence
from maskrnn_tf.inference.propagation import AnyFlowFn, NamedFlowFn
from maskrnn_tf.inference.video_reader import working_size
from maskrnn_tf.ops import resize_flow


class FloFileFlow(NamedFlowFn):
    """Flows read from `<root>/<sequence>/<stem_a>_<stem_b>.flo` (a `FloFolderFlow`), at the frames' size.

    A file must have the video's full frame size. When frames are processed smaller than the files
    (`--max_size`), the flow is resized bilinearly with its vectors scaled (`maskrnn_tf.ops.resize_flow`); a
    file of any other size (width and height swapped, RAFT's padding) raises ValueError naming it. A missing
    file raises FloFolderFlow's FileNotFoundError.
    """

    def __init__(self, backend: FloFolderFlow, sequence: str = "",
                 full_size: Optional[Tuple[int, int]] = None) -> None:
        self.backend = backend
        self.sequence = sequence
        self.full_size = tuple(full_size) if full_size is not None else None

    def for_sequence(self, sequence: str, full_size: Optional[Tuple[int, int]] = None) -> "FloFileFlow":
        return FloFileFlow(self.backend, sequence, full_size)

    def check_flows(self, pairs: PySequence[Tuple[str, str]]) -> None:
        self.backend.check_files(self.sequence, pairs)

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray, stem_a: str, stem_b: str) -> np.ndarray:
        flow = self.backend.flow(None, None, sequence=self.sequence, stem_a=stem_a, stem_b=stem_b)
        size = tuple(np.shape(frame_a)[:2])
        # With the video's own size known, a file must have exactly that size; without it, any size that a
        # --max_size scaling maps onto the frames passes.
        fits = (tuple(flow.shape[:2]) == self.full_size if self.full_size is not None
                else _fits(tuple(flow.shape[:2]), size))
        if not fits:
            path = os.path.join(self.backend.root, self.sequence, f"{stem_a}_{stem_b}.flo")
            (height, width), (frame_h, frame_w) = flow.shape[:2], self.full_size or size
            raise ValueError(
                f"{path}: the .flo flow from frame {stem_a} to {stem_b} is {width}x{height} but the frames are "
                f"{frame_w}x{frame_h}: shape {(height, width, 2)} is not {(frame_h, frame_w, 2)} (the frames' "
                "height, width, then u, v). A .flo file must have the video's full frame size (it is scaled "
                "down only with --max_size): was it written with width and height swapped, or padded (RAFT pads "
                "to a multiple of 8)? Crop it to the frames or recompute the flow at the frames' size."
            )
        return _at_size(flow, frame_a)


def _fits(flow_size: Tuple[int, int], frame_size: Tuple[int, int]) -> bool:
    """True when a flow of `flow_size` is one of frames processed at `frame_size`: the same size, or a larger
    size that `--max_size` scales to exactly `frame_size`.

    From the processed frames alone a flow a whole multiple larger (e.g. 2x, no --max_size) cannot be told apart
    from a --max_size run; the loops pass the video's own size (`for_sequence(name, full_size)`), which can.
    """
    if flow_size == frame_size:
        return True
    return max(flow_size) > max(frame_size) and working_size(flow_size, max(frame_size)) == frame_size


def _at_size(flow: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """`flow` resized to `frame`'s height and width (bilinear, vectors scaled); unchanged when it fits."""
    size = tuple(np.shape(frame)[:2])
    if tuple(flow.shape[:2]) != size:
        flow = np.asarray(resize_flow(flow[None], size)[0], np.float32)
    return flow


class CachedFlowFn(NamedFlowFn):
    """Flows of DAVIS or SegTrack v2 sequences from the flow cache that training reads (`python -m
    maskrnn_tf.flow`): computed once on the full-resolution frames and resized to the frames processed
    (`--max_size`), as the training crops got them, instead of computed again on the smaller frames. A flow not in
    the cache is computed at full resolution and stored (`maskrnn_tf.data.flow_cache.FlowCache`)."""

    def __init__(self, cache: FlowCache, sequences: Mapping[str, Sequence], sequence: Optional[Sequence] = None):
        self.cache = cache
        self.sequences = dict(sequences)
        self.sequence = sequence
        self._index = ({os.path.splitext(os.path.basename(p))[0]: i for i, p in enumerate(sequence.frame_paths)}
                       if sequence is not None else {})

    def for_sequence(self, sequence: str, full_size: Optional[Tuple[int, int]] = None) -> "CachedFlowFn":
        """`full_size` is not needed: the cache computes its flows from the sequence's own frames."""
        if sequence not in self.sequences:
            raise ValueError(f"{sequence}: not a sequence of the DAVIS split or SegTrack v2 folder the flow cache was "
                             f"opened for ({sorted(self.sequences)}).")
        return CachedFlowFn(self.cache, self.sequences, self.sequences[sequence])

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray, stem_a: str, stem_b: str) -> np.ndarray:
        if self.sequence is None:
            raise ValueError("CachedFlowFn: call for_sequence(name) first (flows are cached per sequence).")
        return _at_size(self.cache.flow(self.sequence, self._index[stem_a], self._index[stem_b]), frame_a)


def cached_davis_flow_fn(name: str, cache_dir: str, davis_root: str, split: str, year: Optional[int] = None,
                         sequences: Optional[List[str]] = None) -> CachedFlowFn:
    """A CachedFlowFn of backend `name` ('dis' = DIS medium, as `python -m maskrnn_tf.flow`) for the sequences
    of a DAVIS split (only those named in `sequences`, when given: another one's broken files must not stop work on
    them). Raises maskrnn_tf.data.flow_cache.FlowCacheError for a cache folder that cannot be used."""
    from maskrnn_tf.data.sequences import davis_year, read_davis_sequence_list

    return _cached_flow_fn(name, cache_dir, read_davis_sequence_list(
        davis_root, year or davis_year(davis_root), split, validate="first_mask", names=sequences))


def cached_segtrack_flow_fn(name: str, cache_dir: str, segtrack_root: str) -> CachedFlowFn:
    """A CachedFlowFn of backend `name` for the sequences of a SegTrack v2 folder (the cache `python -m
    maskrnn_tf.flow --dataset=segtrack_v2` fills)."""
    from maskrnn_tf.data.sequences import read_segtrack_sequence_list

    return _cached_flow_fn(name, cache_dir, read_segtrack_sequence_list(segtrack_root))


def _cached_flow_fn(name: str, cache_dir: str, sequences: Iterable[Sequence]) -> CachedFlowFn:
    backend = make_backend(name)
    if not backend.needs_frames:
        raise ValueError(f"--flow={name} reads precomputed files; a flow cache holds computed flows (dis, ...).")
    return CachedFlowFn(FlowCache(backend, os.path.expanduser(cache_dir)), {s.name: s for s in sequences})


def backend_flow_fn(backend: FlowBackend) -> AnyFlowFn:
    """Adapts a `maskrnn_tf.data.flow_backends.FlowBackend` to the loop: a FlowFn of decoded frames, or a
    `FloFileFlow` for a folder of `.flo` files."""
    if isinstance(backend, FloFolderFlow):
        return FloFileFlow(backend)
    if not backend.needs_frames:
        raise ValueError(
            f"flow backend {type(backend).__name__} reads precomputed files by frame name and has no adapter "
            "for the propagation loop -- use dis, dis-fast, dis-ultrafast, farneback or flo."
        )

    def flow(frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        return backend.flow(frame_a, frame_b)

    return flow


def make_flow_fn(name: str = "dis", flo_dir: Optional[str] = None) -> AnyFlowFn:
    """The loop's flow for a backend name of `maskrnn_tf.data.flow_backends.make_backend` ("dis" = DIS
    medium; "flo" reads `<flo_dir>/<sequence>/<stem_a>_<stem_b>.flo`)."""
    return backend_flow_fn(make_backend(name, flo_dir))
