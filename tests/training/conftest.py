"""Helpers of the training tests: tiny configs and running the train CLI in a subprocess or its training in process."""
import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Callable, Iterator, List, Tuple

import pytest

if TYPE_CHECKING:
    from maskrnn_tf.training.loop import TrainResult

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def two_workers(folder, run_dir: str, *extra: str) -> Iterator[Tuple[List[subprocess.Popen], List[str]]]:
    """Starts the train CLI with --strategy=multi_worker as workers 0 and 1 of a localhost cluster, each writing
    its output to <folder>/worker<index>.txt; yields (processes, log paths) and kills what still runs at the end
    (a test that failed must not leave a worker waiting for its peer)."""
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    logs = [os.path.join(folder, f"worker{index}.txt") for index in range(2)]
    procs = []
    try:
        for index in range(2):
            env = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
            with open(logs[index], "w") as out:
                procs.append(subprocess.Popen(train_cmd(run_dir, "--strategy=multi_worker", *extra), cwd=REPO,
                                              env=cli_env(env), stdout=out, stderr=subprocess.STDOUT))
        yield procs, logs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def _global_generators_kept() -> Iterator[None]:
    """Puts Python's, NumPy's, TensorFlow's (its global seed and the op-seed stream the seed starts) and Keras'
    global random state back on exit, so the tests after a training in this process draw as before. Keras' names
    are spelt out: keras.src's constants moved between versions."""
    import random

    import numpy as np
    from keras.src.backend.common import global_state
    from tensorflow.python.eager import context

    tf_rng = getattr(context.context(), "_rng", None)
    tf_stream = tf_rng and tf_rng.getstate()
    python_state, numpy_state, tf_seed = random.getstate(), np.random.get_state(), context.global_seed()
    keras_state = {name: global_state.get_global_attribute(name)
                   for name in ("global_random_seed", "global_seed_generator")}
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        context.set_global_seed(tf_seed)  # restarts the op-seed stream: put it back where it was
        if tf_stream is not None:
            context.context()._rng.setstate(tf_stream)
        for name, value in keras_state.items():
            global_state.set_global_attribute(name, value)


def train_in_process(run_dir: str, *extra: str) -> Tuple[str, "TrainResult"]:
    """A run of `python -m maskrnn_tf.train` with these flags, trained in this process: the config is the one the
    CLI resolves from them (its own flag parsing, with --print_config, which answers without TensorFlow) and the
    training is the CLI's (training.loop.train, under op determinism with --deterministic, with
    --overwrite_config passed on). Returns the console lines and the result (the CLI's "done: N steps" prints its
    `steps`). For tests of what a run does; those of the process (exit codes, signals, start-up, distribution)
    keep run_cli. Spares a TensorFlow start-up and its imports per run."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.loop import train

    # Flags outside the config that this does not reproduce: a test giving them needs the CLI.
    unsupported = [flag for flag in extra if flag.startswith(("--profile_steps", "--logical_cpus"))]
    assert not unsupported, f"train_in_process does not apply {unsupported}: use run_cli"
    printed = subprocess.run(train_cmd(run_dir, *extra, "--print_config"), cwd=REPO, env=cli_env(),
                             capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0, printed.stderr[-3000:]
    config = TrainConfig.from_dict(json.loads(printed.stdout))
    determinism = "--deterministic" in extra and not tf_config.is_op_determinism_enabled()
    if determinism:
        tf.config.experimental.enable_op_determinism()
    policy = keras.mixed_precision.global_policy()
    lines = []
    try:
        with _global_generators_kept():  # train() seeds them (keras.utils.set_random_seed)
            result = train(config, os.path.abspath(run_dir), overwrite_config="--overwrite_config" in extra,
                           printer=lines.append)
    finally:
        # The rest of this test process runs as before: a float16 run sets the global mixed_float16 policy.
        if determinism:
            tf_config.disable_op_determinism()
        keras.mixed_precision.set_global_policy(policy)
    return "\n".join(lines), result


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
