"""Hostile inputs to `python -m maskrnn_tf.train`: numeric flags out of range, too small crops (issue 16)."""
import math
import os
import subprocess
import sys

import pytest

from maskrnn_tf.flag_validation import check_numeric, numeric_problem

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def _train(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "maskrnn_tf.train", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=120)


def test_numeric_problem_bounds_and_non_finite_values():
    assert numeric_problem(1e-5, above=0) is None and numeric_problem(None, above=0) is None
    assert numeric_problem(0.0, above=0) == "must be > 0"
    assert numeric_problem(0, minimum=0) is None and numeric_problem(-1, minimum=0) == "must be >= 0"
    assert numeric_problem(1.0, minimum=0, maximum=1) is None
    assert numeric_problem(1.5, minimum=0, maximum=1) == "must be >= 0 and <= 1"
    assert numeric_problem(1.0, below=1) == "must be < 1"
    # NaN compares false with every bound, so a plain bounds check would let it through.
    assert numeric_problem(math.nan, minimum=0) == "must be a finite number"
    assert numeric_problem(math.inf) == "must be a finite number"
    assert numeric_problem(True, minimum=0) == "must be a number, got bool"
    assert numeric_problem(None, allow_none=False) == "a value is required"
    with pytest.raises(ValueError, match=r"^--processes=-2: must be >= 1 \(or 0 for all cores\)\.$"):
        check_numeric("processes", -2, hint="or 0 for all cores", minimum=1)


@pytest.mark.parametrize("flag, message", [
    ("--learning_rate=-1", "flag --learning_rate=-1.0: must be > 0"),
    ("--learning_rate=nan", "flag --learning_rate=nan: must be a finite number"),
    ("--stage_a_steps=-5", "flag --stage_a_steps=-5: must be >= 0"),
    ("--batch_size=0", "flag --batch_size=0: must be >= 1"),
    ("--clip_length=1", "flag --clip_length=1: must be >= 2"),
    ("--decay_rate=1.5", "flag --decay_rate=1.5: must be > 0 and <= 1"),
    ("--checkpoint_every=0", "flag --checkpoint_every=0: must be >= 1"),
    ("--seed=-1", "flag --seed=-1: must be >= 0 and <= 4.29497e+09"),
    ("--loc_weight=nan", "flag --loc_weight=nan: must be a finite number"),
    ("--logical_cpus=-2", "flag --logical_cpus=-2: must be >= 0"),
    # item 14: below VGG-16's minimum the pooling failed deep in oneDNN with a traceback
    ("--crop_height=16", "flag --crop_height=16: must be >= 32 (VGG-16 needs frames of at least 32 pixels)"),
    ("--crop_width=31", "flag --crop_width=31: must be >= 32 (VGG-16 needs frames of at least 32 pixels)"),
])
def test_train_refuses_out_of_range_numeric_flags_at_parse_time(tmp_path, flag, message):
    run_dir = tmp_path / "run"
    # --print_config would print the config and exit 0 if the value got past the parse.
    proc = _train("--flagfile=synthetic.flags", f"--run_dir={run_dir}", flag, "--print_config")
    assert proc.returncode == 2, proc.stdout[-500:] + proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == "" and not run_dir.exists()


def test_train_accepts_the_bounds_themselves(tmp_path):
    proc = _train("--flagfile=synthetic.flags", "--crop_height=32", "--crop_width=32", "--clip_norm=0",
                  "--stage_b_steps=0", "--decay_rate=1", "--seed=0", "--print_config")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"height": 32' in proc.stdout and '"decay_rate": 1.0' in proc.stdout


def test_set_overrides_are_checked_against_the_same_bounds():
    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.config_bounds import check_config_bounds

    check_config_bounds(TrainConfig())  # the defaults are valid
    bad = TrainConfig().override({"optim.learning_rate": -1.0, "data.width": 8, "reverse_clip_prob": 2.0})
    with pytest.raises(ValueError) as err:
        check_config_bounds(bad)
    assert str(err.value) == (
        "data.width=8: must be >= 32 (VGG-16 needs frames of at least 32 pixels); "
        "optim.learning_rate=-1.0: must be > 0; reverse_clip_prob=2.0: must be >= 0 and <= 1")
