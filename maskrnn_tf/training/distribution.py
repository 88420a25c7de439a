"""tf.distribute strategy selection, the chief/worker facts the loop needs, and the workers' agreement on
stopping at a signal."""
from __future__ import annotations

import json
import os
import signal
from typing import Optional, Tuple

import tensorflow as tf


_NO_TF_CONFIG = ("--strategy=multi_worker needs the TF_CONFIG environment variable (a JSON cluster spec: "
                 "{\"cluster\": {\"worker\": [\"host:port\", ...]}, \"task\": {\"type\": \"worker\", \"index\": i}}).")


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
            raise ValueError(_NO_TF_CONFIG)
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}: use default, mirrored or multi_worker.")


# Why multi_worker refuses precision `auto`: each machine decides it from its own devices (float16 with a GPU;
# bfloat16 or float32 on a CPU, by its flags and by a timing that can land either side of the threshold on two
# alike machines). Resolved by every worker alone, workers of different kinds build the model in different dtype
# policies and all-reduce into one model: a float16 worker (loss-scaling optimizer) beside a float32 one fails in
# the collectives that create the optimizer's variables; bfloat16 beside float32 (the same variables) trains on,
# in two precisions, without a word. Agreeing at run time would need the cluster up first and would still refuse
# some runs at random (the timing); a precision on the command line is the same on every worker and nothing local
# changes it. So a multi-worker run names its precision, resumes too: the decision rests on the settings alone
# (precision.json only names the precision in the message), since a worker that refused while the others went on
# would leave them waiting in their first collective.
def check_strategy_settings(name: str, precision: str, recorded: Optional[str] = None) -> None:
    """Raises ValueError, before the strategy `name` is built, for settings it cannot train with: multi_worker
    without TF_CONFIG, or with precision 'auto'. `recorded`: the precision of the run's checkpoints where this
    worker reads it, named in the message."""
    if name != "multi_worker":
        return
    if not os.environ.get("TF_CONFIG"):
        raise ValueError(_NO_TF_CONFIG)
    if precision == "auto":
        hint = (f" This run's checkpoints were made in {recorded}: --precision={recorded} resumes it."
                if recorded else "")
        raise ValueError(
            "choose --precision=float32|bfloat16|float16 for a multi-worker run (--strategy=multi_worker); auto "
            "would resolve per machine (float16 on a GPU, bfloat16 or float32 on a CPU), and workers that differ "
            "cannot train one model. Give every worker the same --precision." + hint)


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


class StopAgreement:
    """Under MultiWorkerMirroredStrategy, makes the workers agree after every step on whether to stop.

    Each process sees only its own SIGINT/SIGTERM, and a preempting scheduler signals the workers at slightly
    different times. A worker that stopped alone left the others in the next step's all-reduce: they failed
    there (or hung) without saving. Instead every worker calls `agree` once after each step with the signal it
    has seen (None if none); the answer is an all-reduce, so it is the same everywhere and all stop after the
    same step and save it together.
    """

    # The signals the loop stops on; when workers saw different ones, the first listed decides the exit code
    # (a preemption's SIGTERM over a Ctrl-C), so every worker exits alike.
    SIGNALS: Tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, strategy: tf.distribute.Strategy):
        self._strategy = strategy
        self._votes = tf.function(self._all_reduce, autograph=False)

    def _all_reduce(self, votes: tf.Tensor) -> tf.Tensor:
        # strategy.run makes the vote a per-replica value, which reduce() all-reduces over the workers (a plain
        # tensor is not: tf.distribute treats it as the same on every replica).
        per_replica = self._strategy.run(tf.identity, args=(votes,))
        return self._strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def agree(self, signum: Optional[int]) -> Optional[int]:
        """The signal the cluster stops on after this step (None: go on). Collective: every worker must call it
        once per step."""
        votes = self._votes(tf.constant([float(signum == s) for s in self.SIGNALS], tf.float32)).numpy()
        return next((int(s) for s, count in zip(self.SIGNALS, votes) if count > 0), None)


def stop_agreement(strategy: tf.distribute.Strategy) -> Optional[StopAgreement]:
    """A StopAgreement for a multi-worker strategy; None for one process, whose own signal flag is the answer
    (no collective, no cost per step)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return StopAgreement(strategy)
    return None
