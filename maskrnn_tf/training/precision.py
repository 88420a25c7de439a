"""Compute precision: what `auto` means on this machine, and the Keras policy (set BEFORE the model is built).

`resolve_precision` is the one place where `auto` is decided, for training, segmenting (and its online
finetuning), export and the benchmarks:
  - a GPU: float16 (mixed, with loss scaling when training);
  - a CPU with bfloat16 vector or matrix units, i.e. /proc/cpuinfo's flags list `amx_bf16` (Intel AMX) or
    `avx512_bf16` (AMD EPYC Zen 4, some Intel Xeons): bfloat16 where it is measured faster than float32 on this
    CPU (`bfloat16_speedup`), float32 where it is not. The flag alone does not say: with AMX a VGG-16 forward
    ran ~7x faster, on an AMD EPYC with AVX512_BF16 a training step 1.76x faster, but on an Intel Xeon with
    AVX512_BF16 and no AMX 1.6x slower;
  - any other CPU (e.g. AVX2 only, where oneDNN emulates bfloat16 and runs it several times slower): float32,
    unmeasured.
Measurements per CPU kind are in BUILD_NOTES.md.
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable, Dict, FrozenSet, Optional, Tuple

CPUINFO = "/proc/cpuinfo"
# CPU flags (as /proc/cpuinfo spells them) under which oneDNN runs bfloat16 natively, fastest first.
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# `auto` takes bfloat16 on a CPU only when it measured at least this much faster than float32: where the two are
# level, float32 is the exact one.
MIN_BFLOAT16_SPEEDUP = 1.1
# Bump when `measure_bfloat16_speedup` changes, so that cached measurements of the old one are not reused.
_MEASURE_VERSION = 1
_SPEEDUPS: Dict[Tuple[str, ...], float] = {}  # this process's measurements, by `_cpu_key`


def _cpuinfo_fields(cpuinfo_path: Optional[str] = None) -> Dict[str, str]:
    """The first processor's fields of `cpuinfo_path` (default /proc/cpuinfo); empty when unreadable (other
    operating systems)."""
    fields: Dict[str, str] = {}
    try:
        with open(cpuinfo_path or CPUINFO, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break
                    continue
                name, _, value = line.partition(":")
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        return {}
    return fields


def cpu_flags(cpuinfo_path: Optional[str] = None) -> FrozenSet[str]:
    """The flags of the first processor listed in `cpuinfo_path` (default /proc/cpuinfo); empty when unreadable
    (other operating systems), which makes `auto` choose float32 on the CPU."""
    return frozenset(_cpuinfo_fields(cpuinfo_path).get("flags", "").split())


def cpu_bfloat16_flag(cpuinfo_path: Optional[str] = None) -> Optional[str]:
    """'amx_bf16' or 'avx512_bf16' when the CPU has it (AMX first), else None."""
    flags = cpu_flags(cpuinfo_path)
    return next((flag for flag in BFLOAT16_CPU_FLAGS if flag in flags), None)


def _has_gpu() -> bool:
    import tensorflow as tf  # only when asked: resolving an explicit precision needs no TensorFlow

    return bool(tf.config.list_physical_devices("GPU"))


def measure_bfloat16_speedup(repeats: int = 5) -> float:
    """float32 time / bfloat16 time of one forward and backward pass of a small VGG-like conv stack on this
    machine's CPU (float32 weights cast to the compute type, as the mixed_bfloat16 policy runs them); a few seconds.

    The two are timed alternately and each keeps its fastest pass, so that load from other processes shifts
    both alike.
    """
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(0)
    with tf.device("/CPU:0"):
        weights = [tf.Variable(rng.normal([3, 3, c_in, c_out]) * 0.1)
                   for c_in, c_out in ((3, 32), (32, 32), (32, 64), (64, 64))]
        images = rng.uniform([2, 96, 176, 3])

    def make_step(dtype: tf.DType) -> Callable[[], object]:
        @tf.function(autograph=False)  # nothing to convert; conversion costs start-up time
        def step():
            with tf.device("/CPU:0"), tf.GradientTape() as tape:
                y = tf.cast(images, dtype)
                for i, w in enumerate(weights):
                    y = tf.nn.relu(tf.nn.conv2d(y, tf.cast(w, dtype), 1, "SAME"))
                    if i == 1:
                        y = tf.nn.max_pool2d(y, 2, 2, "SAME")
                loss = tf.reduce_mean(tf.square(tf.cast(y, tf.float32)))
            return tape.gradient(loss, weights)
        return step

    steps = {"float32": make_step(tf.float32), "bfloat16": make_step(tf.bfloat16)}
    for step in steps.values():
        step()  # trace and warm up
    best = {name: float("inf") for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            best[name] = min(best[name], time.perf_counter() - start)
    return best["float32"] / best["bfloat16"]


def default_speed_cache() -> str:
    """$XDG_CACHE_HOME/maskrnn_tf/precision.json (~/.cache/... when unset or relative): where `bfloat16_speedup` keeps its
    measurement, so that every process on a machine (train, segment, export) makes the same choice."""
    from maskrnn_tf.io.cache_dirs import user_cache_dir

    return os.path.join(user_cache_dir(), "precision.json")


def _cpu_key(cpuinfo_path: Optional[str]) -> Tuple[str, ...]:
    import tensorflow as tf

    fields = _cpuinfo_fields(cpuinfo_path)
    return (fields.get("model name", "?"), " ".join(sorted(fields.get("flags", "").split())), str(os.cpu_count()),
            tf.__version__, str(_MEASURE_VERSION))


def bfloat16_speedup(cpuinfo_path: Optional[str] = None, cache_path: Optional[str] = None,
                     measure: Callable[[], float] = measure_bfloat16_speedup) -> float:
    """bfloat16's speed over float32's on this CPU: measured once per machine (`measure`) and kept in this
    process and in `cache_path` (default `default_speed_cache()`) under the CPU's model name, flags, core count
    and TensorFlow version; a cache that is unreadable, of another CPU or unwritable is measured over."""
    key = _cpu_key(cpuinfo_path)
    if key in _SPEEDUPS:
        return _SPEEDUPS[key]
    path = cache_path or default_speed_cache()
    try:
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
        if isinstance(cached, dict) and cached.get("key") == list(key):
            _SPEEDUPS[key] = float(cached["bfloat16_speedup"])
            return _SPEEDUPS[key]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    speedup = float(measure())
    _SPEEDUPS[key] = speedup
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.partial-{os.getpid()}"
        with open(partial, "w", encoding="utf-8") as f:
            json.dump({"key": list(key), "bfloat16_speedup": speedup}, f)
        os.replace(partial, path)  # whole or not at all, also when two processes measure at once
    except OSError:
        pass  # a read-only home: measured again by the next process
    return speedup


def resolve_precision(precision: str, has_gpu: Optional[bool] = None, cpuinfo_path: Optional[str] = None,
                      speedup: Optional[float] = None) -> str:
    """'auto' -> 'float16' with a GPU; on a CPU with amx_bf16 or avx512_bf16, 'bfloat16' when it runs at least
    MIN_BFLOAT16_SPEEDUP times float32's speed, else 'float32'; 'float32' on other CPUs.

    Other values pass through. `has_gpu` None asks TensorFlow; `cpuinfo_path` None reads /proc/cpuinfo;
    `speedup` None measures it (`bfloat16_speedup`, cached).
    """
    if precision != "auto":
        return precision
    if has_gpu is None:
        has_gpu = _has_gpu()
    if has_gpu:
        return "float16"
    if not cpu_bfloat16_flag(cpuinfo_path):
        return "float32"
    if speedup is None:
        speedup = bfloat16_speedup(cpuinfo_path)
    return "bfloat16" if speedup >= MIN_BFLOAT16_SPEEDUP else "float32"


def describe_precision(precision: str, resolved: str, has_gpu: Optional[bool] = None,
                       cpuinfo_path: Optional[str] = None, speedup: Optional[float] = None) -> str:
    """One line for the console: the precision used and, for 'auto', why."""
    if precision != "auto":
        return f"precision {resolved}"
    if has_gpu is None:
        has_gpu = _has_gpu()
    if has_gpu:
        why = "a GPU"
    else:
        flag = cpu_bfloat16_flag(cpuinfo_path)
        if flag:
            if speedup is None:
                speedup = bfloat16_speedup(cpuinfo_path)
            why = f"a CPU with {flag}, where bfloat16 measured {speedup:.2f}x float32's speed"
        else:
            why = "a CPU without amx_bf16/avx512_bf16"
    return f"precision auto -> {resolved} ({why}; --precision=float32|bfloat16 to choose)"


def set_precision(precision: str, has_gpu: Optional[bool] = None, cpuinfo_path: Optional[str] = None,
                  speedup: Optional[float] = None) -> str:
    """Sets the global Keras dtype policy for `precision` ('auto' resolved) and returns the policy name."""
    import keras

    policy = POLICIES[resolve_precision(precision, has_gpu, cpuinfo_path, speedup)]
    keras.mixed_precision.set_global_policy(policy)
    return policy
