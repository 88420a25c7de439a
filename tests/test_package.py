"""Package-level contracts: installed mapping, no tensorflow_addons, no import-time side effects (every module
imports beside every other, the binaries too)."""
import subprocess
import sys

_SCRIPT = r"""
import importlib, importlib.util, pkgutil, sys
import maskrnn_tf
heavy = [m for m in ("tensorflow", "keras") if m in sys.modules]
assert not heavy, f"import maskrnn_tf imported {heavy}"
import maskrnn_tf.datasets, maskrnn_tf.export
# maskrnn_tf.export and maskrnn_tf.datasets are installed from the repository's export/ and datasets/ folders:
# walked on their own.
names = [m.name for path, prefix in ((maskrnn_tf.__path__, "maskrnn_tf."),
                                     (maskrnn_tf.export.__path__, "maskrnn_tf.export."),
                                     (maskrnn_tf.datasets.__path__, "maskrnn_tf.datasets."))
         for m in pkgutil.walk_packages(path, prefix) if not m.name.endswith("__main__")]
names = list(dict.fromkeys(names))
assert "maskrnn_tf.export.export_main" in names and "maskrnn_tf.export.client_main" in names, names
# Every module, the CLI binaries' too: they define their absl flags when their entry point runs, not on import
# (two of them share flag names: segment's, evaluate's and flow's --davis_root, --year, --sequences ...).
for name in names:
    importlib.import_module(name)
from absl import flags
defined = sorted(m for m in flags.FLAGS.flags_by_module_dict() if m.startswith("maskrnn_tf"))
assert not defined, f"importing defined the flags of {defined}"
assert "tensorflow_addons" not in sys.modules, "tensorflow_addons was imported"
print(len(names))
"""


def test_import_everything_without_tensorflow_addons():
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.strip().splitlines()[-1]) >= 40


def test_datasets_and_export_live_under_maskrnn_tf(tmp_path):
    """The repository's datasets/ and export/ folders are installed as maskrnn_tf.datasets and
    maskrnn_tf.export, and maskrnn_tf is the only top-level package (nothing shadows Hugging Face datasets)."""
    import importlib.metadata
    import os

    import maskrnn_tf.datasets
    import maskrnn_tf.export

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for module, folder in ((maskrnn_tf.datasets, "datasets"), (maskrnn_tf.export, "export")):
        assert os.path.realpath(module.__file__) == os.path.realpath(os.path.join(repo, folder, "__init__.py"))
    top_level = importlib.metadata.distribution("maskrnn-tf").read_text("top_level.txt")
    assert top_level is not None and top_level.split() == ["maskrnn_tf"]
    # Outside the repository (a user's working directory), the bare names are not the project's folders.
    probe = ("import importlib.util; print([getattr(importlib.util.find_spec(n), 'origin', None) "
             "for n in ('datasets', 'export')])")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert os.path.realpath(repo) not in out.stdout, out.stdout


def test_configs_and_print_config_need_no_tensorflow():
    """The configs are plain dataclasses: `train --print_config` and bad-config errors answer at once."""
    script = ("import sys; from maskrnn_tf.training.config import TrainConfig; "
              "from maskrnn_tf.model_config import MaskRNNConfig; TrainConfig().to_json(); "
              "import maskrnn_tf.experiments.ablation_variants, maskrnn_tf.experiments.finetune_selection; "
              "import maskrnn_tf.experiments.commands, maskrnn_tf.training.best_model; "
              "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    printed = subprocess.run([sys.executable, "-X", "importtime", "-m", "maskrnn_tf.train",
                              "--flagfile=synthetic.flags", "--print_config"], capture_output=True, text=True,
                             timeout=120, cwd=__file__.rsplit("/tests/", 1)[0])
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert '"stage_a_steps"' in printed.stdout and "| tensorflow" not in printed.stderr
