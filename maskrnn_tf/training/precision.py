"""Mixed-precision policy selection (set BEFORE the model is built)."""
from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

CPUINFO = "/proc/cpuinfo"


def cpu_has_amx_bf16(cpuinfo_path: str = CPUINFO) -> bool:
    """True when the CPU advertises AMX bfloat16 tiles (`amx_bf16` in /proc/cpuinfo's flags; False elsewhere).

    oneDNN runs bfloat16 convolutions on AMX several times faster than float32 (a VGG-16 forward at 480x854:
    ~7x); without AMX (AVX2 or AVX-512 only) bfloat16 was measured ~8x SLOWER than float32.
    """
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split(":", 1)[-1].split()
    except OSError:
        return False
    return False


def resolve_precision(precision: str, has_gpu: Optional[bool] = None, has_amx: Optional[bool] = None) -> str:
    """'auto' -> 'float16' with a GPU, 'bfloat16' on a CPU with AMX, else 'float32'; others pass through."""
    if precision != "auto":
        return precision
    if has_gpu is None:
        has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if has_gpu:
        return "float16"
    if has_amx is None:
        has_amx = cpu_has_amx_bf16()
    return "bfloat16" if has_amx else "float32"


def set_precision(precision: str) -> str:
    """Sets the global Keras dtype policy for `precision` and returns the policy name."""
    resolved = resolve_precision(precision)
    policy = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}[resolved]
    keras.mixed_precision.set_global_policy(policy)
    return policy
