"""Damaged checkpoints and model files (issue 16, items 13 and 19): the newest intact checkpoint is used, the
damaged one is named and kept aside, a cut-short model.keras is called corrupt, not missing."""
import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.training.checkpoint_files import (CheckpointCorruptError, checkpoint_paths,
                                                  newest_intact_checkpoint, verify_checkpoint)
from maskrnn_tf.training.checkpointing import RunCheckpoint


def _truncate(prefix, keep_fraction=0.5):
    data = prefix + ".data-00000-of-00001"
    os.truncate(data, int(os.path.getsize(data) * keep_fraction))


def _flip_last_byte(prefix):
    data = prefix + ".data-00000-of-00001"
    with open(data, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        byte = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))


def _run_checkpoints(directory, steps=(2, 4, 6)):
    """A RunCheckpoint of a weight, a step counter and a tf.data iterator (a variant tensor) saved at `steps`;
    the weight holds the step number, so what was restored is visible."""
    weight = tf.Variable(np.zeros((64, 64), np.float32))
    step = tf.Variable(0, dtype=tf.int64)
    iterator = iter(tf.data.Dataset.range(100))
    ckpt = RunCheckpoint(directory, keep=5, weight=weight, step=step, data=iterator)
    for s in steps:
        weight.assign(np.full((64, 64), s, np.float32))
        step.assign(s)
        next(iterator)
        ckpt.save(s)
    return ckpt, weight, step, iterator


def test_verify_checkpoint_finds_truncation_and_bit_flips(tmp_path):
    _run_checkpoints(str(tmp_path), steps=(1, 2, 3))
    one, two, three = (str(tmp_path / f"ckpt-{n}") for n in (1, 2, 3))
    assert verify_checkpoint(one) is None
    _truncate(two)
    assert verify_checkpoint(two) == "corrupt or truncated (IndexError: Read less bytes than requested)"
    _flip_last_byte(three)
    assert verify_checkpoint(three).startswith(f"corrupt or truncated (OpError: TensorBundle at {three} ")
    assert "Checksum does not match" in verify_checkpoint(three)
    os.remove(one + ".data-00000-of-00001")
    assert verify_checkpoint(one).startswith("corrupt or truncated (")


def test_resume_skips_a_truncated_newest_checkpoint_and_keeps_it_aside(tmp_path):
    directory = str(tmp_path / "checkpoints")
    _run_checkpoints(directory)
    newest = os.path.join(directory, "ckpt-6")
    size = os.path.getsize(newest + ".data-00000-of-00001")
    _truncate(newest)
    with pytest.raises(IndexError, match="Read less bytes than requested"):  # what a resume died with
        tf.train.Checkpoint(weight=tf.Variable(np.zeros((64, 64), np.float32))).restore(newest)

    messages = []
    ckpt, weight, step, iterator = _run_checkpoints(str(tmp_path / "fresh"), steps=())
    ckpt = RunCheckpoint(directory, keep=5, weight=weight, step=step, data=iterator)
    assert ckpt.restore_latest(messages.append) == os.path.join(directory, "ckpt-4")
    assert int(step.numpy()) == 4 and float(weight.numpy()[0, 0]) == 4.0 and int(next(iterator)) == 2
    assert messages == [
        f"warning: skipped damaged checkpoint(s):\n  {newest}: corrupt or truncated (IndexError: Read less "
        f"bytes than requested); moved to {os.path.join(directory, 'corrupt')}\n"
        f"resuming from the newest intact one, {os.path.join(directory, 'ckpt-4')}"]
    # Kept aside, not deleted: the damaged files, byte for byte as they were.
    assert sorted(os.listdir(os.path.join(directory, "corrupt"))) == ["ckpt-6.data-00000-of-00001", "ckpt-6.index"]
    assert os.path.getsize(os.path.join(directory, "corrupt", "ckpt-6.data-00000-of-00001")) == size // 2
    assert checkpoint_paths(directory) == [os.path.join(directory, f"ckpt-{n}") for n in (4, 2)]
    # The run goes on: step 6 is saved again, and the next resume takes it without complaint.
    weight.assign(np.full((64, 64), 6, np.float32))
    ckpt.save(6)
    assert checkpoint_paths(directory)[0] == newest and verify_checkpoint(newest) is None
    assert os.path.exists(os.path.join(directory, "corrupt", "ckpt-6.index"))
    later = []
    again = RunCheckpoint(directory, keep=5, weight=weight, step=step, data=iterator)
    assert again.restore_latest(later.append) == newest and later == []


def test_every_checkpoint_damaged_is_a_clear_error(tmp_path):
    directory = str(tmp_path)
    ckpt, *_ = _run_checkpoints(directory, steps=(1, 2))
    _truncate(os.path.join(directory, "ckpt-1"))
    _flip_last_byte(os.path.join(directory, "ckpt-2"))
    with pytest.raises(CheckpointCorruptError) as err:
        ckpt.restore_latest()
    text = str(err.value)
    assert text.startswith(f"No intact checkpoint in {directory}:\n  {directory}/ckpt-2: corrupt or truncated")
    assert "rerun the same command to start this run again from step 0" in text
    assert sorted(os.listdir(os.path.join(directory, "corrupt"))) == [
        "checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index", "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
    assert checkpoint_paths(directory) == []


def test_a_reader_never_moves_checkpoints(tmp_path):
    directory = str(tmp_path)
    _run_checkpoints(directory, steps=(1, 2))
    _truncate(os.path.join(directory, "ckpt-2"))
    choice = newest_intact_checkpoint(directory, quarantine=False)
    assert choice.path == os.path.join(directory, "ckpt-1") and choice.moved_to is None
    assert [p for p, _ in choice.skipped] == [os.path.join(directory, "ckpt-2")]
    assert not os.path.exists(os.path.join(directory, "corrupt")) and len(checkpoint_paths(directory)) == 2


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder as training leaves it before model.keras: config.json and checkpoints 1 and 2 of a tiny
    MaskRNN whose weights differ; returns (folder, weights of ckpt-1, weights of ckpt-2)."""
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    folder = str(tmp_path_factory.mktemp("run"))
    config = MaskRNNConfig(width=0.125, fc_units=16)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"model": config.to_dict()}, f)
    model = MaskRNN(config)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), os.path.join(folder, "checkpoints"), 5)
    weights = []
    for number in (1, 2):
        for w in model.weights:
            w.assign(tf.random.normal(w.shape, seed=number))
        weights.append([w.numpy() for w in model.weights])
        manager.save(checkpoint_number=number)
    return folder, weights[0], weights[1]


def test_segment_model_from_a_run_folder_uses_the_newest_intact_checkpoint(run_folder, caplog):
    from maskrnn_tf.inference import ModelLoadError, load_model

    folder, first, second = run_folder
    assert len(first) == len(second) > 50 and not np.array_equal(first[0], second[0])
    newest = os.path.join(folder, "checkpoints", "ckpt-2")
    _truncate(newest)
    with caplog.at_level(logging.WARNING, logger="maskrnn_tf.inference.model_loading"):
        model = load_model(folder)
    for value, weight in zip(first, model.weights):
        np.testing.assert_array_equal(value, weight.numpy())
    assert f"{newest}: corrupt or truncated (IndexError: Read less bytes than requested)" in caplog.text
    assert f"using the newest intact one, {os.path.join(folder, 'checkpoints', 'ckpt-1')}" in caplog.text
    # Segmenting reads the run folder; the training run owns it and moves damaged checkpoints itself.
    assert os.path.exists(newest + ".index") and not os.path.exists(os.path.join(folder, "checkpoints", "corrupt"))
    with pytest.raises(ModelLoadError, match=r"^checkpoint .*ckpt-2: corrupt or truncated \(IndexError: Read less "
                                             r"bytes than requested\); pass the run folder"):
        load_model(newest)


def test_truncated_model_keras_is_called_corrupt_not_missing(tmp_path):
    from maskrnn_tf.inference import ModelLoadError, load_model
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    path = str(tmp_path / "model.keras")
    MaskRNN(MaskRNNConfig(width=0.125, fc_units=16)).save(path)
    os.truncate(path, os.path.getsize(path) // 2)
    for given in (path, str(tmp_path)):  # the file itself, or the run folder holding it
        with pytest.raises(ModelLoadError) as err:
            load_model(given)
        assert str(err.value).startswith(f"{path}: the model file is corrupt or truncated (not a complete "
                                         ".keras archive: File is not a zip file)")
        assert "not found" not in str(err.value).lower()


def test_a_checkpoint_from_before_an_optional_trackable_restores_and_the_new_one_round_trips(tmp_path):
    """The run's counters (skipped updates) were added to the checkpoint later: a checkpoint without them
    restores everything else and leaves them at their start value; a checkpoint with them restores them."""
    directory = str(tmp_path / "ckpts")
    weight = tf.Variable(np.full((4,), 3.0, np.float32))
    step = tf.Variable(7, dtype=tf.int64)
    RunCheckpoint(directory, keep=2, weight=weight, step=step).save(7)  # as an older version saved it

    weight.assign(np.zeros((4,), np.float32))
    step.assign(0)
    skipped = tf.Variable(0, dtype=tf.int64)
    ckpt = RunCheckpoint(directory, keep=2, optional=("skipped",), weight=weight, step=step, skipped=skipped)
    assert ckpt.restore_latest().endswith("ckpt-7")
    np.testing.assert_array_equal(weight.numpy(), np.full((4,), 3.0))
    assert int(step.numpy()) == 7 and int(skipped.numpy()) == 0

    skipped.assign(5)
    step.assign(9)
    ckpt.save(9)
    skipped.assign(0)
    again = RunCheckpoint(directory, keep=2, optional=("skipped",), weight=weight, step=step, skipped=skipped)
    assert again.restore_latest().endswith("ckpt-9")
    assert int(skipped.numpy()) == 5 and int(step.numpy()) == 9

    # A required trackable missing from the checkpoint is still a mismatch, named as such.
    with pytest.raises(Exception, match="cannot be restored into this run"):
        RunCheckpoint(str(tmp_path / "ckpts"), keep=2, weight=weight, step=step, skipped=skipped,
                      extra=tf.Variable(1.0)).restore_latest()


def test_checkpoints_without_their_state_file_are_found_by_name_not_ignored(tmp_path):
    """Checkpoint files copied without the `checkpoint` state file (or a state file lost) used to look like no
    checkpoint at all: the run silently started again from step 0. They are found by their numbers."""
    directory = str(tmp_path / "checkpoints")
    _run_checkpoints(directory, steps=(2, 4, 6))
    os.remove(os.path.join(directory, "checkpoint"))
    _truncate(os.path.join(directory, "ckpt-6"))
    assert checkpoint_paths(directory) == [os.path.join(directory, f"ckpt-{n}") for n in (6, 4, 2)]
    messages = []
    ckpt, weight, step, iterator = _run_checkpoints(str(tmp_path / "fresh"), steps=())
    ckpt = RunCheckpoint(directory, keep=5, weight=weight, step=step, data=iterator)
    assert ckpt.restore_latest(messages.append) == os.path.join(directory, "ckpt-4")
    assert int(step.numpy()) == 4 and float(weight.numpy()[0, 0]) == 4.0
    assert sorted(os.listdir(os.path.join(directory, "corrupt"))) == ["ckpt-6.data-00000-of-00001", "ckpt-6.index"]
    assert any("had no readable state file" in m and "ckpt-4" in m for m in messages), messages
    ckpt.save(8)  # the manager knows the found checkpoints: it keeps them and rotates them as its own
    assert checkpoint_paths(directory) == [os.path.join(directory, f"ckpt-{n}") for n in (8, 4, 2)]
    assert ckpt.latest == os.path.join(directory, "ckpt-8")


def test_an_unreadable_state_file_is_kept_aside_and_the_checkpoints_found_by_number(tmp_path):
    directory = str(tmp_path / "checkpoints")
    _run_checkpoints(directory, steps=(2, 4))
    state_file = os.path.join(directory, "checkpoint")
    with open(state_file, "wb") as f:
        f.write(b"\0" * 64)  # a state file zeroed by a crash
    assert tf.train.get_checkpoint_state(directory) is None  # TensorFlow logs a parse error and ignores it
    ckpt, weight, step, iterator = _run_checkpoints(str(tmp_path / "fresh"), steps=())
    ckpt = RunCheckpoint(directory, keep=5, weight=weight, step=step, data=iterator)
    assert ckpt.restore_latest(lambda m: None) == os.path.join(directory, "ckpt-4")
    assert int(step.numpy()) == 4
    assert open(state_file + ".unreadable", "rb").read() == b"\0" * 64
