"""Checkpoints of a run: model, optimizer, step, RNG state and data position, via tf.train.CheckpointManager.

Atomicity: CheckpointManager writes the checkpoint's data and index files first and only then rewrites the
`checkpoint` state file (atomically, by rename). A save killed half-way leaves files the state file does not
name, so it is never restored; `restore_latest` also falls back to an older checkpoint if the newest fails.
"""
from __future__ import annotations

import logging
import os
import shutil
from typing import Optional

import tensorflow as tf

log = logging.getLogger(__name__)


class RunCheckpoint:
    """Saves and restores the trackable objects of a run under `<run_dir>/checkpoints`.

    In multi-worker training every worker must take part in a save (it is collective): the chief writes the
    real checkpoint, the others write to a scratch folder that is deleted right after.
    """

    def __init__(self, directory: str, keep: int, chief: bool = True, task_id: int = 0, **trackables):
        self.directory = directory
        self.chief = chief
        self.checkpoint = tf.train.Checkpoint(**trackables)
        target = directory if chief else os.path.join(directory, f".worker{task_id}_scratch")
        self.manager = tf.train.CheckpointManager(self.checkpoint, target, max_to_keep=keep)
        # Every worker restores from the chief's checkpoints.
        self._reader = directory

    @property
    def latest(self) -> Optional[str]:
        return tf.train.latest_checkpoint(self._reader)

    def restore_latest(self) -> Optional[str]:
        """Restores the newest readable checkpoint; returns its path (None when there is none)."""
        state = tf.train.get_checkpoint_state(self._reader)
        if state is None:
            return None
        candidates = list(reversed(list(state.all_model_checkpoint_paths))) or [state.model_checkpoint_path]
        errors = []
        for path in candidates:
            if not os.path.isabs(path):
                path = os.path.join(self._reader, path)
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
                return path
            except (tf.errors.OpError, AssertionError, ValueError) as err:
                log.warning("checkpoint %s cannot be restored (%s); trying an older one", path, err)
                errors.append(f"{path}: {err}")
        raise RuntimeError(f"No checkpoint in {self._reader} can be restored:\n" + "\n".join(errors))

    def save(self, step: int) -> Optional[str]:
        """Writes a checkpoint numbered `step`; returns its path on the chief (None elsewhere)."""
        path = self.manager.save(checkpoint_number=step)
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
            return None
        return path
