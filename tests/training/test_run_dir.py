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
