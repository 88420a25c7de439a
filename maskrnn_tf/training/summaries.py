"""TensorBoard output of a run: scalars, overlay images and the profiler window."""
from __future__ import annotations

import os
import time
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf

_COLOURS = np.array([[0, 0, 0], [230, 40, 40], [40, 200, 60], [40, 90, 240], [240, 200, 30], [200, 40, 220],
                     [30, 210, 220], [250, 130, 30]], np.float32)


def overlay(frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 [H, W, 3]: the frame with each object id tinted in its own colour (void 255 in white)."""
    frame = np.asarray(frame, np.float32)
    labels = np.asarray(labels)
    colour = _COLOURS[np.where(labels == 255, 0, labels % len(_COLOURS))]
    colour[labels == 255] = 255.0
    tint = np.where((labels > 0)[..., None], (1 - alpha) * frame + alpha * colour, frame)
    return np.clip(np.rint(tint), 0, 255).astype(np.uint8)


class Summaries:
    """Train and validation event files under `<log_dir>/train` and `<log_dir>/val` (no-op when disabled,
    e.g. on non-chief workers)."""

    def __init__(self, log_dir: str, enabled: bool = True):
        self.log_dir = log_dir
        self.enabled = enabled
        self._writers: Dict[str, tf.summary.SummaryWriter] = {}

    def _writer(self, name: str) -> tf.summary.SummaryWriter:
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(os.path.join(self.log_dir, name))
        return self._writers[name]

    def scalars(self, step: int, values: Mapping[str, float], writer: str = "train") -> None:
        if not self.enabled:
            return
        with self._writer(writer).as_default(step=step):
            for key, value in values.items():
                tf.summary.scalar(key, float(value))

    def images(self, step: int, name: str, images: np.ndarray, writer: str = "val") -> None:
        """images: uint8 [N, H, W, 3]."""
        if not self.enabled:
            return
        with self._writer(writer).as_default(step=step):
            tf.summary.image(name, np.asarray(images), max_outputs=len(images))

    def session_start(self, step: int, writers: Tuple[str, ...] = ("train", "val")) -> None:
        """Marks that this process logs from `step` on (a SessionLog START event in each of `writers`).

        TensorBoard takes a run's first mark as its start and every later one as a restart: it drops what was
        logged at `step` or later before it, i.e. the steps a stopped process logged past the checkpoint the
        next one resumed from, which that one logs again.
        """
        if not self.enabled:
            return
        from tensorflow.python.ops import summary_ops_v2  # import_event: no public TF2 API writes an Event

        event = tf.compat.v1.Event(wall_time=time.time(), step=step,
                                   session_log=tf.compat.v1.SessionLog(status=tf.compat.v1.SessionLog.START))
        for name in writers:
            with self._writer(name).as_default():
                summary_ops_v2.import_event(tf.constant(event.SerializeToString()))

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


class ProfileWindow:
    """Traces global steps [first, last] with tf.profiler (written to `<log_dir>/plugins/profile/<run>/`)."""

    def __init__(self, log_dir: str, steps: Optional[Tuple[int, int]], enabled: bool = True):
        self.log_dir = log_dir
        self.steps = steps if enabled else None
        self.active = False

    def before_step(self, step: int) -> None:
        if self.steps and not self.active and self.steps[0] <= step <= self.steps[1]:
            tf.profiler.experimental.start(self.log_dir)
            self.active = True

    def after_step(self, step: int) -> None:
        if self.active and step >= self.steps[1]:
            self.stop()

    def stop(self) -> None:
        if self.active:
            tf.profiler.experimental.stop()
            self.active = False
