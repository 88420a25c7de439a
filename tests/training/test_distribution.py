"""Which task of a multi-worker cluster is the chief (the one that writes the run dir), for the TF_CONFIG layouts
tf.distribute documents: only workers (worker 0 is the chief) or a `chief` task beside the workers."""
import json
import os
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
