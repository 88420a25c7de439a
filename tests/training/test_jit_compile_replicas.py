"""--jit_compile refused on several CPU replicas: the message names where the replicas come from."""
import json
import os
import types

import pytest

from maskrnn_tf.training import loop
from maskrnn_tf.training.config import TrainConfig


def test_a_multi_worker_refusal_names_the_workers_not_logical_cpus(tmp_path, monkeypatch):
    """A multi-worker CPU run with --jit_compile was told to drop --logical_cpus, a flag it never gave: its
    replicas are its workers. The strategy is a stand-in with two replicas (no cluster is formed)."""
    cluster = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    monkeypatch.setattr(loop.precision_module, "_has_gpu", lambda: False)
    monkeypatch.setattr(loop, "make_strategy", lambda name: types.SimpleNamespace(num_replicas_in_sync=2))
    config = TrainConfig().override({"jit_compile": True, "precision": "float32", "strategy": "multi_worker",
                                     "data.dataset": "synthetic_vos"})
    with pytest.raises(loop.TrainSettingsError) as err:
        loop.train(config, str(tmp_path / "run"), printer=lambda line: None)
    text = str(err.value)
    assert "--logical_cpus" not in text, text
    assert "--strategy=multi_worker) has 2, one per worker" in text, text
    assert "Drop --jit_compile on every worker, or train in one process (--strategy=default)" in text, text
    assert not os.path.exists(tmp_path / "run" / "config.json")


def test_a_mirrored_refusal_names_the_logical_cpus():
    text = loop.jit_compile_replicas_message("mirrored", 2)
    assert text.startswith("--jit_compile trains on one device only on a CPU: XLA cannot reach the variables of "
                           "the other 1 replica(s) of --strategy=mirrored"), text
    assert "(--logical_cpus=2). Drop --jit_compile, or train on one device (no --logical_cpus)." in text, text
