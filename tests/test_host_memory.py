"""host_memory.pool_cpu_tensor_memory: CPU tensors come from TensorFlow's pool, not a fresh mmap each."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Five 64 MB tensors made and dropped one after the other, after a first one: the page faults they cost, and
# whether the CPU allocator keeps statistics (only the pool does).
PROBE = """
import resource, sys
from maskrnn_tf.host_memory import pool_cpu_tensor_memory
pooled = pool_cpu_tensor_memory() if sys.argv[1] == "1" else False
import tensorflow as tf
x = tf.ones([16 << 20])
y = x + 1; del y
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    y = x + 1; del y
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
try:
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
except ValueError:  # "Allocator stats not available": malloc
    peak = -1
print(pooled, faults, peak)
"""


def _probe(call: bool, **env) -> tuple:
    """(pool_cpu_tensor_memory's answer, page faults of the five tensors, the pool's peak bytes or -1), in a
    fresh process whose environment holds no allocator setting but `env`."""
    base = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    done = subprocess.run([sys.executable, "-c", PROBE, "1" if call else "0"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**base, "TF_CPP_MIN_LOG_LEVEL": "3", **env})
    assert done.returncode == 0, done.stderr[-2000:]
    pooled, faults, peak = done.stdout.split()[-3:]
    return pooled == "True", int(faults), int(peak)


def test_cpu_tensors_reuse_the_pool_instead_of_faulting_their_pages_in_again():
    # oneDNN off, as TensorFlow leaves it on AVX2-only CPUs: malloc is the stock allocator there. (On CPUs with
    # AVX512_BF16, AMX or VNNI TensorFlow turns oneDNN on, and its allocator pools by itself.)
    pooled, faults_pooled, peak = _probe(True, TF_ENABLE_ONEDNN_OPTS="0")
    _, faults_malloc, no_stats = _probe(False, TF_ENABLE_ONEDNN_OPTS="0")
    assert pooled and peak >= 2 * (64 << 20) and no_stats == -1
    # malloc maps each 64 MB block afresh: at least one fault per 2 MB (transparent huge) page of each.
    assert faults_malloc >= 5 * 32, faults_malloc
    assert faults_pooled < 0.1 * faults_malloc, (faults_pooled, faults_malloc)


def test_a_users_own_setting_is_kept(monkeypatch):
    from maskrnn_tf.host_memory import ENV, pool_cpu_tensor_memory

    for value, pooled in (("false", False), ("0", False), ("True", True)):
        monkeypatch.setenv(ENV, value)
        assert pool_cpu_tensor_memory() is pooled and os.environ[ENV] == value
    monkeypatch.delenv(ENV)
    assert pool_cpu_tensor_memory() is True and os.environ[ENV] == "true"
