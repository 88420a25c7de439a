"""Which task of a multi-worker cluster is the chief (the one that writes the run dir), for the TF_CONFIG layouts
tf.distribute documents: only workers (worker 0 is the chief) or a `chief` task beside the workers."""
import json
import os
import socket
from unittest import mock

import pytest
import tensorflow as tf

from maskrnn_tf.training.distribution import is_chief

ONLY_WORKERS = {"worker": ["h:1", "h:2"]}
WITH_CHIEF = {"chief": ["h:0"], "worker": ["h:1", "h:2"]}


@pytest.mark.parametrize("cluster,task_type,index,chief", [
    (ONLY_WORKERS, "worker", 0, True),
    (ONLY_WORKERS, "worker", 1, False),
    (WITH_CHIEF, "chief", 0, True),
    (WITH_CHIEF, "worker", 0, False),  # the chief task writes; worker 0 is a worker like the others
    (WITH_CHIEF, "worker", 1, False),
    (WITH_CHIEF, "evaluator", 0, False),
])
def test_the_chief_is_the_chief_task_or_worker_0_without_one(monkeypatch, cluster, task_type, index, chief):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}}))
    strategy = mock.Mock(spec=tf.distribute.MultiWorkerMirroredStrategy)
    assert is_chief(strategy) is chief


def test_one_process_is_always_the_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief(tf.distribute.get_strategy()) is True


def test_multi_worker_without_tf_config_is_a_settings_error_before_the_run_dir(tmp_path, monkeypatch):
    """It ended the CLI with a ValueError traceback (exit 1); TrainSettingsError is the exit-2 error it prints."""
    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.loop import TrainSettingsError, train

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(TrainSettingsError, match="--strategy=multi_worker needs the TF_CONFIG"):
        train(TrainConfig().override({"strategy": "multi_worker"}), str(tmp_path / "run"), printer=lambda s: None)
    assert not os.path.exists(tmp_path / "run")


# A worker of a two-worker cluster; nothing listens there: a test that got as far as the cluster would wait for it.
TWO_WORKERS = {"cluster": ONLY_WORKERS, "task": {"type": "worker", "index": 1}}


class _StrategyBuilt(Exception):
    pass


def _no_cluster(name):
    raise _StrategyBuilt(f"the {name} strategy was built")


def test_auto_precision_is_refused_for_a_multi_worker_run_before_the_cluster_starts(tmp_path, monkeypatch):
    """Every worker resolved auto on its own machine: a GPU worker (float16, with a loss-scaling optimizer) beside a
    CPU worker (float32) ended both with a traceback from the collectives that create the optimizer's variables,
    and a bfloat16 CPU worker beside a float32 one trained one model in two precisions without a word. Now auto is
    refused on every worker alike, from the settings alone, before the strategy is built."""
    from maskrnn_tf.training import loop
    from maskrnn_tf.training.config import TrainConfig

    monkeypatch.setenv("TF_CONFIG", json.dumps(TWO_WORKERS))
    monkeypatch.setattr(loop, "make_strategy", _no_cluster)
    with pytest.raises(loop.TrainSettingsError) as err:
        loop.train(TrainConfig().override({"strategy": "multi_worker", "precision": "auto"}), str(tmp_path / "run"),
                   printer=lambda s: None)
    assert str(err.value).startswith("choose --precision=float32|bfloat16|float16 for a multi-worker run")
    assert "auto would resolve per machine" in str(err.value)
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "float16"])
def test_a_named_precision_builds_the_multi_worker_strategy(tmp_path, monkeypatch, precision):
    from maskrnn_tf.training import loop
    from maskrnn_tf.training.config import TrainConfig

    monkeypatch.setenv("TF_CONFIG", json.dumps(TWO_WORKERS))
    monkeypatch.setattr(loop, "make_strategy", _no_cluster)
    with pytest.raises(_StrategyBuilt):
        loop.train(TrainConfig().override({"strategy": "multi_worker", "precision": precision}),
                   str(tmp_path / "run"), printer=lambda s: None)


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_auto_on_one_machine_is_left_as_it_was(monkeypatch, strategy):
    from maskrnn_tf.training.distribution import check_strategy_settings

    monkeypatch.setenv("TF_CONFIG", json.dumps(TWO_WORKERS))  # set or not, only multi_worker reads it
    check_strategy_settings(strategy, "auto")


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_one_machine_stops_on_its_own_signal_without_a_collective(strategy):
    """Only a multi-worker run votes on stopping after every step (an all-reduce, see
    test_sigterm_to_one_worker_stops_every_worker_after_the_same_step); one process keeps its own flag."""
    from maskrnn_tf.training.distribution import make_strategy, stop_agreement

    assert stop_agreement(make_strategy(strategy)) is None


def test_a_resumed_multi_worker_run_is_told_its_precision(tmp_path, monkeypatch):
    """auto is refused on a resume too (the decision must not depend on what each worker sees of the run dir);
    the message names the precision the run's checkpoints were made in."""
    from maskrnn_tf.training import loop
    from maskrnn_tf.training.checkpointing import write_run_precision
    from maskrnn_tf.training.config import TrainConfig

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "ckpt-2.index").write_bytes(b"")
    write_run_precision(str(run_dir), "float16")
    monkeypatch.setenv("TF_CONFIG", json.dumps(TWO_WORKERS))
    monkeypatch.setattr(loop, "make_strategy", _no_cluster)
    with pytest.raises(loop.TrainSettingsError, match=r"made in float16: --precision=float16 resumes it"):
        loop.train(TrainConfig().override({"strategy": "multi_worker"}), str(run_dir), printer=lambda s: None)
    (run_dir / "precision.json").write_text("{not json")  # unreadable: refused all the same, without the hint
    with pytest.raises(loop.TrainSettingsError) as err:
        loop.train(TrainConfig().override({"strategy": "multi_worker"}), str(run_dir), printer=lambda s: None)
    assert "auto would resolve per machine" in str(err.value) and "resumes it" not in str(err.value)


@pytest.mark.slow
def test_the_cli_refuses_auto_for_multi_worker_with_exit_2_before_the_run_dir(tmp_path):
    """What a user sees: exit 2 and the message, no traceback, no run dir. The cluster is this one worker, so
    before the fix the command trained (exit 0) instead of waiting for a missing peer."""
    from conftest import run_cli

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"TF_CONFIG": json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]},
                                    "task": {"type": "worker", "index": 0}})}
    run_dir = tmp_path / "run"
    proc = run_cli(str(run_dir), "--strategy=multi_worker", "--precision=auto", "--stage_a_steps=1",
                   "--stage_b_steps=0", env=env)
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "error: choose --precision=float32|bfloat16|float16 for a multi-worker run" in proc.stdout
    assert "Traceback" not in proc.stdout
    assert not run_dir.exists()
