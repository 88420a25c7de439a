"""Helpers of the training tests: tiny configs and running the train CLI in a subprocess."""
import fcntl
import os
import shutil
import subprocess
import sys
from typing import Callable

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# A tiny synthetic run: width 1/8, 32x48 frames, a handful of videos, few steps.
TINY_ARGS = [
    "--dataset=synthetic_vos", "--crop_height=32", "--crop_width=48", "--synthetic_train_videos=4",
    "--model_width=0.125", "--fc_units=16", "--batch_size=4", "--clip_batch_size=2", "--clip_length=3",
    "--learning_rate=1e-3", "--precision=float32", "--val_videos=0", "--val_frames=3", "--eval_every=0",
    "--log_every=1", "--set=data.synthetic_video_frames=6", "--set=model.side_channels=4",
]


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: multi-process training runs (tens of seconds each)")


def cli_env(extra=None):
    env = dict(os.environ)
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""})
    env.pop("TF_CONFIG", None)
    env.update(extra or {})
    return env


def train_cmd(run_dir, *extra):
    return [sys.executable, "-m", "maskrnn_tf.train", f"--run_dir={run_dir}", *TINY_ARGS, *extra]


def run_cli(run_dir, *extra, env=None, timeout=240):
    """Runs the train CLI to completion; returns the CompletedProcess (stdout+stderr in .stdout)."""
    return subprocess.run(train_cmd(run_dir, *extra), cwd=REPO, env=cli_env(env), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


@pytest.fixture
def tiny_flags():
    return list(TINY_ARGS)


def built_once(tmp_path_factory, name: str, build: Callable[[str], None]) -> str:
    """The folder `build(folder)` fills, built once per test session even across pytest-xdist workers.

    A module fixture runs once in every worker that runs one of its tests; for a CLI training (about a
    minute) the first worker to ask builds it under a file lock and the others wait for it and reuse it.
    A build that failed (no `.built` marker) is retried by the next worker that asks.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, shared by its workers
    folder = os.path.join(str(root), name)
    with open(os.path.join(str(root), f"{name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(folder, ".built")):
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
            build(folder)
            open(os.path.join(folder, ".built"), "w").close()
    return folder
