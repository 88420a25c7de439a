"""The README's no-learning floor (flow propagation on the shared DAVIS-2016 val sequences), reproduced by the
README's own command and checked against the numbers the README prints."""
import os
import re
import subprocess
import sys

import pytest

from maskrnn_tf.metrics import EvaluationConfig, evaluate_dataset

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The sequences run here; the README line lists all four val sequences (see _readme_floor).
CHECKED = ("blackswan", "car-shadow")


def _readme_floor():
    """(J-Mean, F-Mean, {sequence: J}) of the README's flow-propagation line."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    match = re.search(r"# J-Mean (\d\.\d+), F-Mean (\d\.\d+) \(([^)]*) J\)", text)
    assert match, "README.md: the flow-propagation floor line ('# J-Mean ..., F-Mean ... (<seq> <J>, ... J)') moved"
    per_sequence = {name: float(value) for name, value in re.findall(r"([\w-]+) (\d\.\d+)", match.group(3))}
    return float(match.group(1)), float(match.group(2)), per_sequence


def test_readme_floor_line_is_consistent():
    j_mean, _, per_sequence = _readme_floor()
    assert sorted(per_sequence) == ["blackswan", "car-shadow", "drift-chicane", "libby"]
    # One object per sequence: J-Mean is the mean of the four (each rounded to 3 decimals).
    assert sum(per_sequence.values()) / 4 == pytest.approx(j_mean, abs=1e-3)


def test_flow_propagation_reproduces_the_readme_per_sequence_j(shared_data, tmp_path):
    root = os.path.join(shared_data, "DAVIS-2016")
    out = str(tmp_path / "flow_propagation")
    proc = subprocess.run(
        [sys.executable, "-m", "maskrnn_tf.segment", "--method=flow_propagation", f"--davis_root={root}",
         "--split=val", f"--sequences={','.join(CHECKED)}", f"--output={out}", "--noprogress"],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""), capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = evaluate_dataset(root, out, EvaluationConfig(sequences=CHECKED, compute_t=False))
    _, _, readme = _readme_floor()
    got = {o.sequence: o.j_stats[0] for o in results.objects}
    for name in CHECKED:
        assert got[name] == pytest.approx(readme[name], abs=1e-3), (name, got[name])
