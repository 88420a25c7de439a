"""tf.distribute strategy selection and the chief/worker facts the loop needs."""
from __future__ import annotations

import json
import os

import tensorflow as tf


def make_strategy(name: str) -> tf.distribute.Strategy:
    """'default' (one device), 'mirrored' (all local GPUs, or the logical CPUs when there is no GPU) or
    'multi_worker' (MultiWorkerMirroredStrategy; the cluster comes from the TF_CONFIG environment variable)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(cpus)
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable (a JSON cluster "
                             "spec: {\"cluster\": {\"worker\": [\"host:port\", ...]}, \"task\": {\"type\": "
                             "\"worker\", \"index\": i}}).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}: use default, mirrored or multi_worker.")


def task_info() -> tuple:
    """(task_type, task_id) from TF_CONFIG, or (None, 0) when not set."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None, 0
    task = json.loads(raw).get("task", {})
    return task.get("type"), int(task.get("index", 0))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the task that writes the run dir (config, summaries, final model): the `chief` task when the
    cluster has one, else worker 0 (tf.distribute's convention); always True locally."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = task_info()
    if task_type in (None, "chief"):
        return True
    cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
    return task_type == "worker" and task_id == 0 and not cluster.get("chief")
