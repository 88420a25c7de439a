"""Helpers of the training tests: tiny configs and running the train CLI in a subprocess."""
import os
import subprocess
import sys

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
