"""Mixed-precision policy selection (set BEFORE the model is built)."""
from __future__ import annotations

import keras
import tensorflow as tf


def resolve_precision(precision: str) -> str:
    """'auto' -> 'float16' with a GPU, else 'float32' (bfloat16 measured ~10x slower than float32 on this
    CPU, see the build notes); other values pass through."""
    if precision != "auto":
        return precision
    return "float16" if tf.config.list_physical_devices("GPU") else "float32"


def set_precision(precision: str) -> str:
    """Sets the global Keras dtype policy for `precision` and returns the policy name."""
    resolved = resolve_precision(precision)
    policy = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}[resolved]
    keras.mixed_precision.set_global_policy(policy)
    return policy
