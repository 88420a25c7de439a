"""Run and checkpoint folders named in ways a path test trips on: glob characters in the run dir, a relative
checkpoints folder whose damaged checkpoints are quarantined."""
import os

import numpy as np
import tensorflow as tf

from maskrnn_tf.training.checkpoint_files import checkpoint_paths, newest_intact_checkpoint
from maskrnn_tf.training.checkpointing import read_run_precision, write_run_precision


def test_the_recorded_precision_is_read_in_a_run_dir_with_glob_characters(tmp_path):
    """read_run_precision globbed `<run_dir>/checkpoints/ckpt-*.index` unescaped: `run[1]` is a pattern (one of
    the characters r, u, n, 1), so the checkpoint was not found and the recorded precision was ignored on resume."""
    run_dir = tmp_path / "run[1]"
    run_dir.mkdir()
    write_run_precision(str(run_dir), "bfloat16")
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "ckpt-1.index").write_bytes(b"")
    assert read_run_precision(str(run_dir)) == "bfloat16"


def _three_checkpoints(directory: str) -> None:
    """Checkpoints 1, 2 and 3 of one weight in `directory` (with the state file CheckpointManager writes)."""
    weight = tf.Variable(np.zeros((32, 32), np.float32))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(weight=weight), directory, max_to_keep=5)
    for number in (1, 2, 3):
        weight.assign(np.full((32, 32), number, np.float32))
        manager.save(checkpoint_number=number)


def test_quarantine_in_a_relative_checkpoints_folder_keeps_the_intact_ones_named(tmp_path, monkeypatch):
    """With a relative folder, the state file's names came back from TensorFlow already joined with it, were
    joined again, matched no damaged checkpoint, and were written back doubled (runs/x/checkpoints/runs/x/...):
    the next resume found no intact checkpoint at all."""
    monkeypatch.chdir(tmp_path)
    directory = os.path.join("runs", "x", "checkpoints")
    _three_checkpoints(directory)
    data = os.path.join(directory, "ckpt-3.data-00000-of-00001")
    os.truncate(data, os.path.getsize(data) // 2)
    intact = str(tmp_path / directory / "ckpt-2")

    first = newest_intact_checkpoint(directory, quarantine=True)
    assert first.path == intact and [p for p, _ in first.skipped] == [str(tmp_path / directory / "ckpt-3")]
    assert sorted(os.listdir(os.path.join(directory, "corrupt"))) == ["ckpt-3.data-00000-of-00001", "ckpt-3.index"]
    again = newest_intact_checkpoint(directory, quarantine=True)
    assert again.path == intact and again.skipped == []
    assert checkpoint_paths(directory) == [intact, str(tmp_path / directory / "ckpt-1")]
    # Written back as CheckpointManager writes them, relative to the folder: the run dir can still be moved.
    with open(os.path.join(directory, "checkpoint"), encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if "paths" in line or "path:" in line]
    assert lines == ['model_checkpoint_path: "ckpt-2"', 'all_model_checkpoint_paths: "ckpt-1"',
                     'all_model_checkpoint_paths: "ckpt-2"'], lines
