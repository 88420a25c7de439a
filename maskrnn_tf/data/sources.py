"""Video sources: what the tf.data pipelines read, whatever the data set.

A source is a list of videos with random access to any frames of any video:
- `ArraySource`: videos held in memory as NumPy arrays (synthetic_vos, or small data loaded from tfds),
  with exact flows when the video carries them, else flows from a `FlowBackend` computed once on first use;
- `SequenceSource`: DAVIS / SegTrack sequences on disk, frames and masks decoded on demand, flows from a
  `FlowCache` (precomputed by `python -m maskrnn_tf.flow`, or computed and cached on first use).
"""
from __future__ import annotations

import abc
from typing import Dict, List, Mapping, Optional, Sequence as Seq

import numpy as np

from maskrnn_tf.data.flow_backends import FlowBackend
from maskrnn_tf.data.flow_cache import FlowCache
from maskrnn_tf.data.sequences import Sequence, load_masks, read_ids
from maskrnn_tf.data.synthetic import SyntheticConfig, generate_video
from maskrnn_tf.io import VOID_ID, read_frame


class VideoSource(abc.ABC):
    """Random access to the frames, id masks and flows of a list of videos."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of videos."""

    @abc.abstractmethod
    def name(self, video: int) -> str:
        """Name of a video."""

    @abc.abstractmethod
    def num_objects(self, video: int) -> int:
        """Object count N of a video (ids 1..N)."""

    @abc.abstractmethod
    def presence(self, video: int) -> np.ndarray:
        """bool [T, N]: object k + 1 is visible in frame t."""

    @abc.abstractmethod
    def load(self, video: int, indices: Seq[int]) -> Dict[str, np.ndarray]:
        """Frames `indices` of a video: frames uint8 [n, H, W, 3], masks uint8 [n, H, W] (ids, 255 void),
        flows_to_prev / flows_to_next float32 [n, H, W, 2] (zeros before the first / after the last frame)."""

    def num_frames(self, video: int) -> int:
        return int(self.presence(video).shape[0])


def _presence(masks: np.ndarray, num_objects: int) -> np.ndarray:
    ids = np.arange(1, num_objects + 1, dtype=np.int32)
    flat = masks.reshape(masks.shape[0], -1)
    return np.stack([(flat == k).any(axis=1) for k in ids], axis=1) if num_objects else np.zeros((len(masks), 0), bool)


class ArraySource(VideoSource):
    """Videos in memory: dicts with frames [T,H,W,3] uint8, masks [T,H,W] uint8, optional num_objects,
    name, flows_to_prev / flows_to_next [T,H,W,2] (exact flows; otherwise `flow_backend` computes them)."""

    def __init__(self, videos: Seq[Mapping[str, np.ndarray]], flow_backend: Optional[FlowBackend] = None) -> None:
        self._videos: List[Dict[str, np.ndarray]] = []
        self._presence = []
        for i, video in enumerate(videos):
            video = dict(video)
            frames, masks = np.asarray(video["frames"], np.uint8), np.asarray(video["masks"], np.uint8)
            if masks.ndim == 4:
                masks = masks[..., 0]
            if frames.shape[:3] != masks.shape:
                raise ValueError(f"video {i}: frames {frames.shape} and masks {masks.shape} disagree in T, H, W.")
            video["frames"], video["masks"] = frames, masks
            if "num_objects" not in video:
                present = np.unique(masks[0])
                video["num_objects"] = int(present[(present > 0) & (present != VOID_ID)].max(initial=0))
            if "flows_to_prev" not in video:
                if flow_backend is None:
                    raise ValueError(f"video {i} has no flows: pass flow_backend to compute them.")
                video.update(_compute_flows(frames, flow_backend))
            self._videos.append(video)
            self._presence.append(_presence(masks, int(video["num_objects"])))

    def __len__(self) -> int:
        return len(self._videos)

    def name(self, video: int) -> str:
        value = self._videos[video].get("name")
        if value is None:
            return f"video_{video}"
        value = np.asarray(value).item()
        return value.decode() if isinstance(value, bytes) else str(value)

    def num_objects(self, video: int) -> int:
        return int(self._videos[video]["num_objects"])

    def presence(self, video: int) -> np.ndarray:
        return self._presence[video]

    def load(self, video: int, indices: Seq[int]) -> Dict[str, np.ndarray]:
        v = self._videos[video]
        idx = np.asarray(indices, np.int64)
        return {k: np.asarray(v[k][idx]) for k in ("frames", "masks", "flows_to_prev", "flows_to_next")}


def _compute_flows(frames: np.ndarray, backend: FlowBackend) -> Dict[str, np.ndarray]:
    count, height, width = frames.shape[:3]
    to_prev = np.zeros((count, height, width, 2), np.float32)
    to_next = np.zeros((count, height, width, 2), np.float32)
    for t in range(count - 1):
        to_next[t] = backend.flow(frames[t], frames[t + 1])
        to_prev[t + 1] = backend.flow(frames[t + 1], frames[t])
    return {"flows_to_prev": to_prev, "flows_to_next": to_next}


def synthetic_source(num_videos: int, seed: int = 0, config: SyntheticConfig = SyntheticConfig()) -> ArraySource:
    """An ArraySource of `num_videos` synthetic videos (seeds seed, seed + 1, ...), with exact flows."""
    return ArraySource([generate_video(seed + i, config) for i in range(num_videos)])


class SequenceSource(VideoSource):
    """Sequences on disk (DAVIS, SegTrack); flows from `flows` (a FlowCache).

    The masks are decoded once at construction to know which objects each frame shows (and to check the ids).
    """

    def __init__(self, sequences: Seq[Sequence], flows: FlowCache) -> None:
        self.sequences = list(sequences)
        self.flows = flows
        self._presence = [_presence(load_masks(s), s.num_objects) for s in self.sequences]

    def __len__(self) -> int:
        return len(self.sequences)

    def name(self, video: int) -> str:
        return self.sequences[video].name

    def num_objects(self, video: int) -> int:
        return self.sequences[video].num_objects

    def presence(self, video: int) -> np.ndarray:
        return self._presence[video]

    def load(self, video: int, indices: Seq[int]) -> Dict[str, np.ndarray]:
        sequence = self.sequences[video]
        frames = np.stack([read_frame(sequence.frame_paths[int(t)]) for t in indices])
        masks = np.stack([read_ids(sequence, int(t)) for t in indices])
        to_prev, to_next = self.flows.flows_for(sequence, indices)
        return {"frames": frames, "masks": masks, "flows_to_prev": to_prev, "flows_to_next": to_next}
