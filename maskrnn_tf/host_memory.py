"""Host memory of TensorFlow's CPU tensors: one pool (TensorFlow's BFC allocator) instead of malloc per tensor.

Where TensorFlow leaves oneDNN off (its default on CPUs without AVX512_VNNI, AVX512_BF16 or AMX, such as
AVX2-only EPYCs, or with TF_ENABLE_ONEDNN_OPTS=0), it allocates every CPU tensor with malloc and frees it after its last use. glibc serves each
block above its mmap threshold (at most 32 MB) with a fresh mmap and unmaps it on free, so every training step
faults the pages of its activations and gradients in again, zeroed by the kernel: the recipe's stage B training
took 1.7 million page faults a second on a 2-core AVX2 CPU, half its CPU time in the kernel. With
TF_CPU_ALLOCATOR_USE_BFC=true TensorFlow keeps CPU tensors in its best-fit-with-coalescing pool (as it does for
GPU memory), which grows to the peak and reuses it: the recipe's unrolled step went from 7.3 to 4.6 s at the
same peak memory (`python -m bench train_step --cpu_allocator malloc,bfc`, BUILD_NOTES.md), and
`tf.config.experimental.get_memory_info("CPU:0")` reports current and peak bytes. With oneDNN on, TensorFlow's
oneDNN allocator pools CPU tensors already (a tensor's pages are not faulted in again) and the setting changes
nothing measurable.

`pool_cpu_tensor_memory()` sets it unless the environment already does (a user's TF_CPU_ALLOCATOR_USE_BFC=false
is kept); the binaries call it before TensorFlow starts, since TensorFlow reads it at its first CPU allocation.
"""
from __future__ import annotations

import os

ENV = "TF_CPU_ALLOCATOR_USE_BFC"


def pool_cpu_tensor_memory() -> bool:
    """Turns TensorFlow's CPU tensor pool on unless the environment says otherwise; True if it is on."""
    os.environ.setdefault(ENV, "true")
    return os.environ[ENV].strip().lower() in ("1", "true")
