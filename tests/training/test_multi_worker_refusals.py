"""A multi-worker run refuses a run dir it cannot train in on every worker alike, before the cluster is built.

The run-dir lock, config.json and the init_checkpoint of a resumed run used to be checked by the chief alone,
after MultiWorkerMirroredStrategy was built: the chief exited 2 with the reason and the other workers were left
in the cluster, failing in their first collective (a traceback or a hang, exit 1). Every worker reads the shared
run dir before the strategy is built now, and only the chief writes it afterwards.
"""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import two_workers  # tests/training/conftest.py
from maskrnn_tf.training import loop
from maskrnn_tf.training.config import TrainConfig
from maskrnn_tf.training.run_dir import (LOCK_NAME, ConfigMismatchError, RunDirBusyError, run_dir_lock,
                                         write_run_config)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WORKERS = {"worker": ["h:1", "h:2"]}
MULTI = {"strategy": "multi_worker", "precision": "float32"}


class _StrategyBuilt(Exception):
    pass


def _no_cluster(name):
    raise _StrategyBuilt(f"the {name} strategy was built")


@pytest.fixture(params=[0, 1], ids=["chief", "worker1"])
def worker(request, monkeypatch):
    """This process as worker 0 (the chief) or worker 1 of a two-worker cluster, whose strategy is never built."""
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": WORKERS, "task": {"type": "worker", "index": request.param}}))
    monkeypatch.setattr(loop, "make_strategy", _no_cluster)
    return request.param


def _listing(run_dir):
    """Every file under `run_dir` with its bytes: the run dir as the test left it."""
    out = {}
    for root, _, files in os.walk(run_dir):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, run_dir)] = f.read()
    return out


def _resumable_run(run_dir, config):
    """A run dir as a stopped run leaves it: its config.json and a checkpoint of its own (found by name)."""
    os.makedirs(run_dir, exist_ok=True)
    write_run_config(run_dir, config)
    os.makedirs(os.path.join(run_dir, "checkpoints"))
    open(os.path.join(run_dir, "checkpoints", "ckpt-2.index"), "wb").close()


def test_another_config_is_refused_by_every_worker_before_the_cluster(tmp_path, worker):
    run_dir = str(tmp_path / "run")
    _resumable_run(run_dir, TrainConfig().override({**MULTI, "seed": 7}))
    before = _listing(run_dir)
    with pytest.raises(ConfigMismatchError, match=r"was created with another config \(seed: stored 7, now 8\)"):
        loop.train(TrainConfig().override({**MULTI, "seed": 8}), run_dir, printer=lambda s: None)
    assert _listing(run_dir) == before


def test_a_run_dir_in_use_is_refused_by_every_worker_before_the_cluster(tmp_path, worker):
    """The lock is probed, not taken: the other training keeps it, and the chief takes it once the cluster is up."""
    run_dir = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from maskrnn_tf.training.run_dir import run_dir_lock\n"
        f"with run_dir_lock({run_dir!r}):\n    print('held', flush=True); time.sleep(120)")],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirBusyError, match=rf"in use by another training \(pid {holder.pid}\)"):
            loop.train(TrainConfig().override(MULTI), run_dir, printer=lambda s: None)
        with pytest.raises(RunDirBusyError):  # still held by the other training
            with run_dir_lock(run_dir):
                pass
        assert _listing(run_dir) == {LOCK_NAME: f"{holder.pid}\n".encode()}
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_new_init_checkpoint_for_a_resumed_run_is_refused_by_every_worker_before_the_cluster(tmp_path, worker):
    """With --overwrite_config config.json takes the new settings, but a run with checkpoints of its own would
    ignore init_checkpoint (see test_a_run_with_checkpoints_of_its_own_refuses_a_new_init_checkpoint)."""
    run_dir = str(tmp_path / "run")
    config = TrainConfig().override(MULTI)
    _resumable_run(run_dir, config)
    before = _listing(run_dir)
    source = str(tmp_path / "other_run")
    with pytest.raises(ConfigMismatchError, match=f"init_checkpoint {source!r} would be ignored"):
        loop.train(config.override({"init_checkpoint": source}), run_dir, overwrite_config=True,
                   printer=lambda s: None)
    assert _listing(run_dir) == before


def test_checkpoints_of_another_precision_are_refused_by_every_worker_before_the_cluster(tmp_path, worker):
    """Every worker refused them already (after the cluster was up, all alike); now before it, as the rest."""
    from maskrnn_tf.training.checkpointing import PrecisionMismatchError, write_run_precision

    run_dir = str(tmp_path / "run")
    _resumable_run(run_dir, TrainConfig().override({**MULTI, "precision": "float16"}))
    write_run_precision(run_dir, "float16")
    with pytest.raises(PrecisionMismatchError, match="made in float16, not the --precision=float32") as err:
        loop.train(TrainConfig().override(MULTI), run_dir, printer=lambda s: None)
    assert "--precision=auto" not in str(err.value)  # which multi-worker refuses


def test_a_run_dir_that_fits_goes_on_to_the_cluster_unwritten(tmp_path, worker):
    """What the workers check before the cluster only reads: a new run dir is not made, a resumed one not
    changed, a free lock left free (the chief takes it after the strategy is built)."""
    new = str(tmp_path / "new")
    with pytest.raises(_StrategyBuilt):
        loop.train(TrainConfig().override(MULTI), new, printer=lambda s: None)
    assert not os.path.exists(new)
    run_dir = str(tmp_path / "run")
    config = TrainConfig().override(MULTI)
    _resumable_run(run_dir, config)
    open(os.path.join(run_dir, LOCK_NAME), "w").close()  # left by an earlier training, no longer held
    before = _listing(run_dir)
    with pytest.raises(_StrategyBuilt):
        loop.train(config.override({"stage_b_steps": config.stage_b_steps + 5}), run_dir, printer=lambda s: None)
    assert _listing(run_dir) == before
    with run_dir_lock(run_dir):  # nothing kept it
        pass


def test_a_one_process_run_is_checked_as_before(tmp_path, monkeypatch):
    """Only a multi-worker run reads the run dir before its strategy: one process takes the lock at once."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(loop, "check_run_dir_before_cluster", lambda *a, **k: pytest.fail("checked before"))
    monkeypatch.setattr(loop, "make_strategy", _no_cluster)
    with pytest.raises(_StrategyBuilt):
        loop.train(TrainConfig().override({"precision": "float32"}), str(tmp_path / "run"), printer=lambda s: None)


@pytest.mark.slow
def test_two_workers_both_refuse_another_config_with_exit_2(tmp_path):
    """What users of a two-worker run see: both workers exit 2 with the reason, neither with a traceback (worker
    1 used to go on into the cluster the chief had left and fail or hang there)."""
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    write_run_config(run_dir, TrainConfig())  # not the settings of the tiny run below
    started = time.time()
    with two_workers(tmp_path, run_dir, "--stage_a_steps=1", "--stage_b_steps=0") as (procs, logs):
        codes = [p.wait(timeout=180) for p in procs]
    outs = [open(log).read() for log in logs]
    for code, out in zip(codes, outs):
        assert code == 2, out[-3000:]
        assert f"error: {run_dir} was created with another config" in out, out[-3000:]
        assert "Traceback" not in out, out[-3000:]
    assert sorted(os.listdir(run_dir)) == ["config.json"]
    print(f"two workers refused in {time.time() - started:.1f} s")
