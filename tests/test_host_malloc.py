"""host_malloc.keep_freed_memory: freed large blocks are reused instead of faulted in again (glibc, Linux)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Five 64 MB arrays made and freed one after the other, after a first one: the page faults they cost.
PROBE = """
import resource, sys
import numpy as np
from maskrnn_tf.host_malloc import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "1" else False
a = np.ones(64 << 20, np.uint8); del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    a = np.ones(64 << 20, np.uint8); del a
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(call: bool, **env) -> tuple:
    """(whether keep_freed_memory took effect, page faults of the five blocks), in a fresh process whose
    environment holds no malloc settings but `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "MASKRNN_TF_MALLOC"))}
    done = subprocess.run([sys.executable, "-c", PROBE, "1" if call else "0"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={**base, **env})
    assert done.returncode == 0, done.stderr
    kept, faults = done.stdout.split()
    return kept == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_reused_without_faulting_their_pages_in_again():
    kept, faults_kept = _probe(True)
    _, faults_default = _probe(False)
    assert kept
    # glibc maps each 64 MB block afresh: at least one fault per 2 MB (transparent huge) page of each.
    assert faults_default >= 5 * 32, faults_default
    assert faults_kept < 0.1 * faults_default, (faults_kept, faults_default)
    # The user's own choice wins: a glibc tunable set, or MASKRNN_TF_MALLOC=default, leaves malloc alone.
    for env in ({"MALLOC_TOP_PAD_": "0"}, {"MASKRNN_TF_MALLOC": "default"}):
        kept, faults = _probe(True, **env)
        assert not kept and faults >= 5 * 32, (env, faults)
