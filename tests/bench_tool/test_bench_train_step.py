"""`python -m bench train_step`: the recurrence overhead (clip step / T single-frame steps) is measured side by
side. The measuring child's code runs here on a stub TrainSteps that logs its calls and a fake clock."""
import json
import sys
import time
import types
from typing import Dict, List

import numpy as np
import pytest

from bench import train_step

REPEATS = 3
WARMUP_SECONDS = 100.0  # tracing: must not reach the reported times
# Seconds per timed call, in call order; their medians (4 and 1) differ from their means (5 and 2).
CLIP_SECONDS = [10.0, 1.0, 4.0]
STATIC_SECONDS = [0.5, 4.5, 1.0]


class _Loss:
    """A loss whose value is ready only when read: half of a step's time is spent waiting for it."""

    def __init__(self, clock: List[float], seconds: float):
        self.clock, self.seconds = clock, seconds

    def __float__(self) -> float:
        self.clock[0] += self.seconds
        return 1.0


def _stub_modules(clock: List[float], calls: List[str]) -> Dict[str, types.ModuleType]:
    """What the child imports besides numpy, json, os, resource, sys and time: TensorFlow as numpy, a model
    and config that do nothing, and a TrainSteps that logs its calls and advances `clock`."""
    durations = {"clip": iter([WARMUP_SECONDS] * 2 + CLIP_SECONDS),
                 "static": iter([WARMUP_SECONDS] * 2 + STATIC_SECONDS)}

    def call(kind: str) -> Dict[str, _Loss]:
        calls.append(kind)
        seconds = next(durations[kind])
        clock[0] += seconds / 2
        return {"loss": _Loss(clock, seconds / 2)}

    class StubTrainSteps:
        def __init__(self, model, optimizer, config, strategy, step):
            pass

        def clip_step(self, batch, reverse):
            assert batch["frames"].shape[1] == 3 and not reverse
            return call("clip")

        def static_step(self, batch):
            assert batch["frame"].ndim == 4
            return call("static")

    class StubConfig:
        model = None

        def override(self, values):
            return self

    def module(name: str, **attrs) -> types.ModuleType:
        made = types.ModuleType(name)
        made.__dict__.update(attrs)
        return made

    tf = module("tensorflow", constant=np.asarray, ones=np.ones, zeros=np.zeros, int64="int64",
                Variable=lambda value, dtype=None: value,
                distribute=types.SimpleNamespace(get_strategy=lambda: "strategy"))
    return {
        "tensorflow": tf,
        "maskrnn_tf.training.precision": module("p", set_precision=lambda precision: "float32"),
        "maskrnn_tf.model": module("m", MaskRNN=lambda config: "model"),
        "maskrnn_tf.training.config": module("c", TrainConfig=StubConfig),
        "maskrnn_tf.training.steps": module("s", TrainSteps=StubTrainSteps,
                                            make_optimizer=lambda config, policy: "optimizer"),
    }


def test_clip_and_single_frame_steps_alternate_and_the_times_are_medians(monkeypatch, capsys):
    """The child timed all clip steps, then all single-frame steps (C C C C C S S S S S): load that changed between
    the two blocks went into the ratio (an overhead of 0.85 was recorded, below 1, impossible by construction), and
    it reported means. After both are warmed up (tracing untimed) the two steps alternate, each timed to its loss
    being read, and the child reports each step's median."""
    clock, calls = [0.0], []
    for name, stub in _stub_modules(clock, calls).items():
        monkeypatch.setitem(sys.modules, name, stub)
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", "true")  # the child sets it; restored afterwards
    spec = {"height": 8, "width": 8, "frames": 2, "precision": "float32", "recompute": False, "jit": False,
            "cpu_allocator": "bfc", "model_width": 0.125, "fc_units": 8, "repeats": REPEATS}
    monkeypatch.setattr(sys, "argv", ["-c", json.dumps(spec)])

    exec(compile(train_step._CHILD, "<train_step child>", "exec"), {"__name__": "__main__"})

    assert sorted(calls[:4]) == ["clip", "clip", "static", "static"]  # the warm-up: each traced, run again
    assert calls[4:] == ["clip", "static"] * REPEATS
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    result = json.loads(printed[-1])
    assert result["clip_s"] == pytest.approx(np.median(CLIP_SECONDS))
    assert result["frame_s"] == pytest.approx(np.median(STATIC_SECONDS))

