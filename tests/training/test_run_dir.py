"""The run directory: config.json refusal and the lock that keeps two trainings out of one folder."""
import os
import signal
import subprocess
import sys
import time

import pytest

from maskrnn_tf.training.config import TrainConfig
from maskrnn_tf.training.run_dir import (ConfigMismatchError, RunDirBusyError, config_diff, prepare_run_dir,
                                         run_dir_lock)


def test_config_json_is_written_once_and_another_config_is_refused(tmp_path):
    run_dir = str(tmp_path / "run")
    config = TrainConfig().override({"seed": 7})
    path = prepare_run_dir(run_dir, config)
    assert prepare_run_dir(run_dir, config) == path
    with pytest.raises(ConfigMismatchError, match="seed: stored 7, now 8"):
        prepare_run_dir(run_dir, config.override({"seed": 8}))
    prepare_run_dir(run_dir, config.override({"seed": 8}), overwrite_config=True)


def test_overwrite_config_says_which_settings_the_run_continues_with(tmp_path):
    """--overwrite_config took any other config in silence: a flag file edited since the run began (or a --set
    left on the command line) changed the training with nothing on the console to say so."""
    run_dir = str(tmp_path / "run")
    prepare_run_dir(run_dir, TrainConfig().override({"seed": 7}))
    reports = []
    new = TrainConfig().override({"seed": 7, "optim.learning_rate": 1e-3, "data.manual_dir": "/data"})
    prepare_run_dir(run_dir, new, overwrite_config=True, report=reports.append)
    assert reports == ["--overwrite_config: continuing the run with data.manual_dir: stored None, now '/data'; "
                       "optim.learning_rate: stored 1e-05, now 0.001"]
    reports.clear()
    prepare_run_dir(run_dir, new, overwrite_config=True, report=reports.append)
    assert reports == []  # the same config: nothing to say


def test_a_runs_best_model_folder_is_refused_as_a_run_dir(tmp_path):
    """<run>/best holds a config.json as a run does: --run_dir=<run>/best (to go on from the best model) was taken
    for that run and trained from step 0 in it, replacing its model.keras while best.json still named the step
    and J of the model it had held."""
    best = tmp_path / "run" / "best"
    best.mkdir(parents=True)
    config = TrainConfig().override({"seed": 7})
    (best / "config.json").write_text(config.to_json() + "\n")
    (best / "model.keras").write_bytes(b"the best model")
    from maskrnn_tf.training.best_model import RECORD_NAME

    (best / RECORD_NAME).write_text('{"step": 250, "J": 0.5}\n')
    with pytest.raises(ConfigMismatchError, match="best model.*not a run.*--init_checkpoint"):
        prepare_run_dir(str(best), config)
    assert sorted(os.listdir(best)) == sorted([RECORD_NAME, "config.json", "model.keras"])


def test_a_folder_of_the_users_that_training_would_replace_files_in_is_refused(tmp_path):
    # --run_dir pointed at a folder holding a model.keras and a best/ of the user's (no config.json: not a run).
    run_dir = tmp_path / "models"
    (run_dir / "best").mkdir(parents=True)
    (run_dir / "model.keras").write_bytes(b"the user's model")
    with pytest.raises(ConfigMismatchError, match="not a training run.*best, model.keras.*new --run_dir"):
        prepare_run_dir(str(run_dir), TrainConfig())
    assert sorted(os.listdir(run_dir)) == ["best", "model.keras"]
    assert (run_dir / "model.keras").read_bytes() == b"the user's model"
    # stage_a/ too: at the end of stage A training saves there with a manager that keeps one checkpoint, which
    # deleted the others a user's stage_a/ listed.
    own = tmp_path / "experiments"
    (own / "stage_a").mkdir(parents=True)
    (own / "stage_a" / "ckpt-1.index").write_bytes(b"theirs")
    with pytest.raises(ConfigMismatchError, match="not a training run.*holds stage_a"):
        prepare_run_dir(str(own), TrainConfig())
    assert sorted(os.listdir(own)) == ["stage_a"] and os.listdir(own / "stage_a") == ["ckpt-1.index"]
    # Other files of theirs are never touched by training: such a folder may hold a run.
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    prepare_run_dir(str(other), TrainConfig())
    assert sorted(os.listdir(other)) == ["config.json", "notes.txt"]


def test_a_run_from_an_older_version_resumes_when_the_new_settings_are_at_their_defaults(tmp_path):
    """A config.json written before a setting existed lacks its key: at the setting's default it is the same
    run (resumed, the key added), at any other value it is another config."""
    import json

    run_dir = str(tmp_path / "run")
    path = prepare_run_dir(run_dir, TrainConfig().override({"seed": 7}))
    with open(path, encoding="utf-8") as f:
        stored = json.load(f)
    del stored["data"]["dream_fraction"], stored["data"]["dream_videos"]  # as an older version wrote it
    with open(path, "w", encoding="utf-8") as f:
        json.dump(stored, f)
    reports = []
    with pytest.raises(ConfigMismatchError, match="data.dream_fraction: stored None, now 0.5"):
        prepare_run_dir(run_dir, TrainConfig().override({"seed": 7, "data.dream_fraction": 0.5}), report=reports.append)
    prepare_run_dir(run_dir, TrainConfig().override({"seed": 7}), report=reports.append)
    assert reports == ["config.json predates data.dream_fraction, data.dream_videos; "
                       "continuing the run with their defaults (0.0, 1000)"]
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == json.loads(TrainConfig().override({"seed": 7}).to_json())


@pytest.mark.parametrize("stored_value", [None, "~/tensorflow_datasets"])
def test_a_run_whose_config_has_the_retired_data_dir_resumes_and_the_flag_is_gone(tmp_path, stored_value):
    """data.data_dir was never read by training (DAVIS comes from data.manual_dir): the key is retired. A
    config.json that still holds it, at any value, is the same run; the train CLI no longer offers --data_dir."""
    import json

    from maskrnn_tf import train
    from maskrnn_tf.training.config import known_keys

    run_dir = str(tmp_path / "run")
    config = TrainConfig().override({"seed": 7})
    path = prepare_run_dir(run_dir, config)
    with open(path, encoding="utf-8") as f:
        stored = json.load(f)
    stored["data"]["data_dir"] = stored_value  # as an older version wrote it
    with open(path, "w", encoding="utf-8") as f:
        json.dump(stored, f)
    reports = []
    prepare_run_dir(run_dir, config, report=reports.append)
    assert reports == []
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == json.loads(config.to_json())
    assert TrainConfig.from_dict(stored) == config
    assert "data.data_dir" not in known_keys() and "data_dir" not in train._FIELDS
    with pytest.raises(ValueError, match="data.data_dir"):
        config.override({"data.data_dir": "x"})  # --set gets the unknown-key error


def test_config_diff_names_nested_keys():
    assert config_diff({"a": 1, "m": {"w": 0.5, "f": 8}}, {"a": 1, "m": {"w": 1.0, "f": 8}, "n": 2}) == [
        "m.w: stored 0.5, now 1.0", "n: stored None, now 2"]


def test_the_lock_keeps_a_second_holder_out_and_is_released(tmp_path):
    run_dir = str(tmp_path / "run")
    with run_dir_lock(run_dir):
        with pytest.raises(RunDirBusyError, match=rf"in use by another training \(pid {os.getpid()}\)"):
            with run_dir_lock(run_dir):
                pass
    with run_dir_lock(run_dir):  # free again
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    run_dir = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from maskrnn_tf.training.run_dir import run_dir_lock\n"
        f"with run_dir_lock({run_dir!r}):\n    print('held', flush=True); time.sleep(120)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunDirBusyError, match=f"pid {holder.pid}"):
        with run_dir_lock(run_dir):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    deadline = time.time() + 10
    while True:
        try:
            with run_dir_lock(run_dir):
                break
        except RunDirBusyError:
            assert time.time() < deadline
            time.sleep(0.1)
