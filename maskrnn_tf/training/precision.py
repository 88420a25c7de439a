"""Compute precision: what `auto` means on this machine, and the Keras policy (set BEFORE the model is built).

`resolve_precision` is the one place where `auto` is decided, for training, segmenting (and its online
finetuning), export and the benchmarks:
  - a GPU: float16 (mixed, with loss scaling when training);
  - a CPU with bfloat16 vector or matrix units, i.e. /proc/cpuinfo's flags list `amx_bf16` (Intel AMX; a
    VGG-16 forward ~7x faster than float32) or `avx512_bf16` (e.g. AMD EPYC Zen 4; a T=5 training step 1.76x
    faster): bfloat16;
  - any other CPU (e.g. AVX2 only, where oneDNN emulates bfloat16 and runs it several times slower): float32.
Measurements per CPU kind are in BUILD_NOTES.md.
"""
from __future__ import annotations

from typing import FrozenSet, Optional

CPUINFO = "/proc/cpuinfo"
# CPU flags (as /proc/cpuinfo spells them) under which oneDNN runs bfloat16 natively, fastest first.
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def cpu_flags(cpuinfo_path: Optional[str] = None) -> FrozenSet[str]:
    """The flags of the first processor listed in `cpuinfo_path` (default /proc/cpuinfo); empty when unreadable
    (other operating systems), which makes `auto` choose float32 on the CPU."""
    try:
        with open(cpuinfo_path or CPUINFO, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[-1].split())
    except OSError:
        return frozenset()
    return frozenset()


def cpu_bfloat16_flag(cpuinfo_path: Optional[str] = None) -> Optional[str]:
    """'amx_bf16' or 'avx512_bf16' when the CPU has it (AMX first), else None."""
    flags = cpu_flags(cpuinfo_path)
    return next((flag for flag in BFLOAT16_CPU_FLAGS if flag in flags), None)


def _has_gpu() -> bool:
    import tensorflow as tf  # only when asked: resolving an explicit precision needs no TensorFlow

    return bool(tf.config.list_physical_devices("GPU"))


def resolve_precision(precision: str, has_gpu: Optional[bool] = None, cpuinfo_path: Optional[str] = None) -> str:
    """'auto' -> 'float16' with a GPU, 'bfloat16' on a CPU with amx_bf16 or avx512_bf16, else 'float32'.

    Other values pass through. `has_gpu` None asks TensorFlow; `cpuinfo_path` None reads /proc/cpuinfo.
    """
    if precision != "auto":
        return precision
    if has_gpu is None:
        has_gpu = _has_gpu()
    if has_gpu:
        return "float16"
    return "bfloat16" if cpu_bfloat16_flag(cpuinfo_path) else "float32"


def describe_precision(precision: str, resolved: str, has_gpu: Optional[bool] = None,
                       cpuinfo_path: Optional[str] = None) -> str:
    """One line for the console: the precision used and, for 'auto', why."""
    if precision != "auto":
        return f"precision {resolved}"
    if has_gpu is None:
        has_gpu = _has_gpu()
    if has_gpu:
        why = "a GPU"
    else:
        flag = cpu_bfloat16_flag(cpuinfo_path)
        why = f"a CPU with {flag}" if flag else "a CPU without amx_bf16/avx512_bf16"
    return f"precision auto -> {resolved} ({why}; --precision=float32|bfloat16 to choose)"


def set_precision(precision: str, has_gpu: Optional[bool] = None, cpuinfo_path: Optional[str] = None) -> str:
    """Sets the global Keras dtype policy for `precision` ('auto' resolved) and returns the policy name."""
    import keras

    policy = POLICIES[resolve_precision(precision, has_gpu, cpuinfo_path)]
    keras.mixed_precision.set_global_policy(policy)
    return policy
