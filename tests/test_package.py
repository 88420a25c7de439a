"""Package-level contracts: installed mapping, no tensorflow_addons, no import-time side effects."""
import subprocess
import sys

_SCRIPT = """
import importlib, pkgutil, sys
import maskrnn_tf
heavy = [m for m in ("tensorflow", "keras") if m in sys.modules]
assert not heavy, f"import maskrnn_tf imported {heavy}"
import maskrnn_tf.datasets, maskrnn_tf.export
names = [m.name for m in pkgutil.walk_packages(maskrnn_tf.__path__, "maskrnn_tf.")
         if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
assert "tensorflow_addons" not in sys.modules, "tensorflow_addons was imported"
print(len(names))
"""


def test_import_everything_without_tensorflow_addons():
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.strip().splitlines()[-1]) >= 5


def test_datasets_and_export_live_under_maskrnn_tf():
    import maskrnn_tf.datasets
    import maskrnn_tf.export

    assert maskrnn_tf.datasets.__name__ == "maskrnn_tf.datasets"
    assert maskrnn_tf.export.__name__ == "maskrnn_tf.export"
