"""Host memory: keep the buffers TensorFlow frees for its next step instead of handing them back to the kernel.

A CPU training step allocates and frees tens of large tensors (activations, gradients, tf.data batches). glibc's
malloc serves every block above its mmap threshold (at most 32 MB) with a fresh mmap and unmaps it on free, so
the next step's identical blocks fault in every page again, zeroed by the kernel: on a 2-core AVX2 CPU the
recipe's stage B training took 1.7 million page faults a second and spent half its CPU time in the kernel.
With mmap off (M_MMAP_MAX = 0) and no trimming below 2 GB of free heap (M_TRIM_THRESHOLD), freed blocks stay
in the process and are reused: the recipe's unrolled step went from 6.5 to 5.8 s (peak memory 2.4 -> 2.6 GB)
(`python -m bench train_step --malloc default,kept`, BUILD_NOTES.md).

`keep_freed_memory()` sets both through glibc's mallopt; the binaries call it before TensorFlow starts. It
changes nothing where malloc is not glibc's, when the user set glibc's MALLOC_* tunables themselves, or with
MASKRNN_TF_MALLOC=default.
"""
from __future__ import annotations

import ctypes
import os
import sys

ENV = "MASKRNN_TF_MALLOC"
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes (an int): trim only above 2 GB of free heap
_USER_TUNABLES = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                  "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Makes glibc's malloc keep freed memory for reuse (see the module docstring); True if it did."""
    if os.environ.get(ENV, "") == "default" or any(name in os.environ for name in _USER_TUNABLES):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error.
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
