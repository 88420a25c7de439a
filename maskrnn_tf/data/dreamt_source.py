"""A video source of clips dreamt from single frames of another source (Lucid Data Dreaming as stage B data).

Each video of a `DreamtSource` is one clip made by `dreaming.dream_clip` from one annotated frame of the base
source (a seeded draw of video and frame among frames showing an object), with exact masks and flows both
ways. The clip pipelines read it like any other source, so dreamt clips get the same augmentation as real ones.
"""
from __future__ import annotations

import functools
from typing import Dict, Sequence as Seq, Tuple

import cv2
import numpy as np

from maskrnn_tf.data.dreaming import DreamConfig, DreamtClip, dream_clip_with_flow
from maskrnn_tf.data.flow_backends import estimated_flow_fn
from maskrnn_tf.data.sources import VideoSource


class DreamtSource(VideoSource):
    """`num_videos` clips of `config.num_frames` frames dreamt from frames of `base`.

    Args:
      base: the source whose annotated frames are dreamt from (e.g. the training sequences).
      num_videos: how many distinct clips (clip i is always the same: seeded by `seed` and i).
      config: clip length and motion of the dreamt clips.
      seed: picks the source frames and seeds the clips.
      scale: the source frame and mask are resized by this factor before dreaming (dreaming costs grow with
        the area; 0.5 on 480p frames gives clips about the size of a 240x432 training crop).
      cache_size: clips kept in memory (a clip is loaded once per object it shows).
      flow: "exact" (the clips' own flows) or a flow backend name computing from pixels ("dis", ...): flows
        estimated from the rendered frames (`dreaming.estimate_flows`), as the base source's are.
    """

    def __init__(self, base: VideoSource, num_videos: int, config: DreamConfig = DreamConfig(), seed: int = 0,
                 scale: float = 1.0, cache_size: int = 8, flow: str = "exact") -> None:
        if num_videos < 1 or not 0 < scale <= 1:
            raise ValueError(f"DreamtSource: need num_videos >= 1 and 0 < scale <= 1, got {num_videos}, {scale}.")
        try:
            self._flow_fn = estimated_flow_fn(flow)
        except ValueError as err:
            raise ValueError(f"DreamtSource: flow must be 'exact' or computed from frames: {err}") from err
        candidates = [(v, t) for v in range(len(base)) for t in np.nonzero(base.presence(v).any(axis=1))[0]]
        if not candidates:
            raise ValueError("DreamtSource: no frame of the base source shows an object.")
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, len(candidates), num_videos)
        self.base, self.config, self.seed, self.scale = base, config, seed, scale
        self._origin = [(int(candidates[i][0]), int(candidates[i][1])) for i in picks]
        self._clip = functools.lru_cache(maxsize=cache_size)(self._dream)

    def __len__(self) -> int:
        return len(self._origin)

    def origin(self, video: int) -> Tuple[int, int]:
        """(base video, frame) clip `video` was dreamt from."""
        return self._origin[video]

    def name(self, video: int) -> str:
        v, t = self._origin[video]
        return f"dreamt_{video}_from_{self.base.name(v)}_{t:05d}"

    def num_objects(self, video: int) -> int:
        return self.base.num_objects(self._origin[video][0])

    def presence(self, video: int) -> np.ndarray:
        # Known without dreaming: the first frame is the source frame. Later frames are claimed the same
        # (the pipelines only need the first frame's objects, which seed the recurrence).
        v, t = self._origin[video]
        return np.repeat(self.base.presence(v)[t][None], self.config.num_frames, axis=0)

    def _dream(self, video: int) -> DreamtClip:
        v, t = self._origin[video]
        loaded = self.base.load(v, [t])
        frame, ids = loaded["frames"][0], loaded["masks"][0]
        if self.scale < 1:
            h, w = ids.shape
            size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            ids = cv2.resize(ids, size, interpolation=cv2.INTER_NEAREST)
        return dream_clip_with_flow(frame, ids, self.seed * 1_000_003 + video, self.config, self._flow_fn)

    def load(self, video: int, indices: Seq[int]) -> Dict[str, np.ndarray]:
        clip = self._clip(int(video))
        idx = np.asarray(indices, np.int64)
        return {"frames": clip.frames[idx], "masks": clip.masks[idx],
                "flows_to_prev": clip.flows_to_prev[idx], "flows_to_next": clip.flows_to_next[idx]}
