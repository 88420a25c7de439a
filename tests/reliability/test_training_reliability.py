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
    # --profile_steps: a reversed range or step 0 ended in a traceback after the run dir was made
    ("--profile_steps=5,2", "flag --profile_steps=5,2: expected 1 <= A <= B (steps are numbered from 1)"),
    ("--profile_steps=0,3", "flag --profile_steps=0,3: expected 1 <= A <= B"),
    ("--profile_steps=2;4", "flag --profile_steps=2;4: expected A,B (two step numbers, e.g. 5,8)"),
])
def test_train_refuses_out_of_range_numeric_flags_at_parse_time(tmp_path, flag, message):
    run_dir = tmp_path / "run"
    # --print_config would print the config and exit 0 if the value got past the parse.
    proc = _train("--flagfile=synthetic.flags", f"--run_dir={run_dir}", flag, "--print_config")
    assert proc.returncode == 2, proc.stdout[-500:] + proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == "" and not run_dir.exists()


def test_the_bounds_themselves_are_accepted():
    from maskrnn_tf.training.config_bounds import bounds_problem

    for key, value in [("data.height", 32), ("data.width", 32), ("optim.clip_norm", 0.0), ("stage_b_steps", 0),
                       ("optim.decay_rate", 1.0), ("seed", 0), ("seed", 2**32 - 1), ("reverse_clip_prob", 1.0)]:
        assert bounds_problem(key, value) is None, (key, value)
    assert bounds_problem("data.height", 31) == "must be >= 32 (VGG-16 needs frames of at least 32 pixels)"
    assert bounds_problem("seed", 2**32) == "must be >= 0 and <= 4.29497e+09 (NumPy seeds are 32-bit unsigned)"
    assert bounds_problem("model.delta_weights", -1) is None  # no bounds known: left to the config's checks


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


def _run_dir_at_step(tmp_path, step, stage_a=10, stage_b=4):
    """A run dir whose config.json holds the step counts and whose state file names ckpt-<step>."""
    import tensorflow as tf

    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.run_dir import prepare_run_dir

    run_dir = str(tmp_path / "run")
    config = TrainConfig().override({"stage_a_steps": stage_a, "stage_b_steps": stage_b})
    prepare_run_dir(run_dir, config)
    checkpoints = os.path.join(run_dir, "checkpoints")
    os.makedirs(checkpoints)
    tf.compat.v1.train.update_checkpoint_state(checkpoints, f"ckpt-{step}", [f"ckpt-{step // 2}", f"ckpt-{step}"])
    return run_dir, config


def _stored(run_dir):
    import json

    with open(os.path.join(run_dir, "config.json")) as f:
        stored = json.load(f)
    return stored["stage_a_steps"], stored["stage_b_steps"]


def test_step_counts_may_grow_on_resume(tmp_path):
    from maskrnn_tf.training.run_dir import prepare_run_dir

    run_dir, config = _run_dir_at_step(tmp_path, 12)
    said = []
    prepare_run_dir(run_dir, config.override({"stage_b_steps": 40}), report=said.append)
    assert _stored(run_dir) == (10, 40)
    assert said == ["step counts changed (stage_b_steps: stored 4, now 40); continuing the run with them"]
    # Fewer stage B steps are fine while the total stays at or above the step reached (12).
    prepare_run_dir(run_dir, config.override({"stage_b_steps": 2}), report=said.append)
    assert _stored(run_dir) == (10, 2)


def test_stage_a_may_grow_while_the_run_is_in_it(tmp_path):
    from maskrnn_tf.training.run_dir import prepare_run_dir

    run_dir, config = _run_dir_at_step(tmp_path, 6)
    prepare_run_dir(run_dir, config.override({"stage_a_steps": 20, "stage_b_steps": 30}), report=lambda s: None)
    assert _stored(run_dir) == (20, 30)


@pytest.mark.parametrize("changes, message", [
    ({"stage_b_steps": 1}, "is at step 12 but stage_a_steps + stage_b_steps = 10 + 1 = 11; step counts can grow "
                           "on resume, not drop below the steps done (stage_b_steps: stored 4, now 1)"),
    ({"stage_a_steps": 20}, "is at step 12, past the end of stage A (10 steps stored, 20 now): stage_a_steps can "
                            "change only while the run is still in stage A (stage_a_steps: stored 10, now 20)"),
    ({"stage_a_steps": 11}, "past the end of stage A (10 steps stored, 11 now)"),
])
def test_step_counts_that_rewrite_the_past_are_refused(tmp_path, changes, message):
    from maskrnn_tf.training.run_dir import ConfigMismatchError, prepare_run_dir

    run_dir, config = _run_dir_at_step(tmp_path, 12)
    with pytest.raises(ConfigMismatchError) as err:
        prepare_run_dir(run_dir, config.override(changes), report=pytest.fail)
    assert message in str(err.value) and "another config" not in str(err.value)
    assert _stored(run_dir) == (10, 4)


@pytest.mark.parametrize("changes", [{"stage_b_steps": 1}, {"stage_a_steps": 20}])
def test_overwrite_config_keeps_the_step_count_checks(tmp_path, changes):
    """--overwrite_config (which the non-finite-loss message suggests, with a lower learning rate) skipped the step
    checks: a run in stage B went back to stage A, or a total below the steps done left a config.json that no
    training matched."""
    from maskrnn_tf.training.run_dir import ConfigMismatchError, prepare_run_dir

    run_dir, config = _run_dir_at_step(tmp_path, 12)
    with pytest.raises(ConfigMismatchError, match=r"is at step 12"):
        prepare_run_dir(run_dir, config.override({**changes, "optim.learning_rate": 1e-6}), overwrite_config=True,
                        report=lambda line: None)
    assert _stored(run_dir) == (10, 4)
    prepare_run_dir(run_dir, config.override({"stage_b_steps": 40, "optim.learning_rate": 1e-6}),
                    overwrite_config=True, report=lambda line: None)
    assert _stored(run_dir) == (10, 40)


def test_step_counts_with_another_change_are_still_another_config(tmp_path):
    from maskrnn_tf.training.run_dir import ConfigMismatchError, prepare_run_dir

    run_dir, config = _run_dir_at_step(tmp_path, 12)
    with pytest.raises(ConfigMismatchError, match=r"created with another config \(seed: stored 0, now 1; "
                                                  r"stage_b_steps: stored 4, now 40\)"):
        prepare_run_dir(run_dir, config.override({"stage_b_steps": 40, "seed": 1}), report=pytest.fail)


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_run_dir_files_follow_the_umask(tmp_path, umask):
    from maskrnn_tf.io.atomic_file import atomic_write
    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.run_dir import prepare_run_dir

    previous = os.umask(umask)
    try:
        config_path = prepare_run_dir(str(tmp_path / "run"), TrainConfig())
        model_path = str(tmp_path / "run" / "model.keras")
        atomic_write(model_path, lambda tmp: open(tmp, "wb").close(), suffix=".keras")  # as the model is saved
        plain = str(tmp_path / "plain")
        open(plain, "w").close()
    finally:
        os.umask(previous)
    expected = os.stat(plain).st_mode & 0o777
    assert expected == 0o666 & ~umask
    assert os.stat(config_path).st_mode & 0o777 == expected
    assert os.stat(model_path).st_mode & 0o777 == expected


def test_missing_vgg_weights_stop_before_the_run_dir_is_written(tmp_path):
    run_dir = tmp_path / "run"
    missing = tmp_path / "missing.h5"
    proc = _train("--flagfile=synthetic.flags", f"--run_dir={run_dir}", "--model_width=1.0",
                  f"--vgg_weights={missing}")
    assert proc.returncode == 2, proc.stdout[-500:] + proc.stderr[-2000:]
    assert f"error: --vgg_weights: VGG-16 weights file '{missing}' not found" in proc.stderr
    assert "Traceback" not in proc.stderr
    # Nothing stored: the corrected rerun is not refused as "another config".
    assert not (run_dir / "config.json").exists()


def test_vgg_weights_need_full_width_trunks(tmp_path):
    from maskrnn_tf.model.vgg_trunk import VGGWeightsError, check_vgg_weights

    check_vgg_weights(None, 0.25)
    weights = tmp_path / "vgg.h5"
    weights.write_bytes(b"")
    with pytest.raises(VGGWeightsError, match=r"^VGG-16 weights '.*vgg.h5' fit only full-width trunks \(model "
                                              r"width 1.0\), not width 0.25;"):
        check_vgg_weights(str(weights), 0.25)
    with pytest.raises(VGGWeightsError, match=r"vgg.h5: not loadable as VGG16\(include_top=False\) weights"):
        check_vgg_weights(str(weights), 1.0)


def test_vgg_weights_under_home_are_found(tmp_path, monkeypatch):
    """`--vgg_weights=~/vgg16.h5` (in a flag file, or after `=` on a command line, where the shell leaves `~` as
    it is) was looked for in a folder named `~`: "VGG-16 weights file '~/vgg16.h5' not found", exit 2, with the file
    in the home folder. `~` is the home folder there as in --manual_dir, --flow_cache_dir and --run_dir."""
    from maskrnn_tf.model.vgg_trunk import VGGWeightsError, check_vgg_weights

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "vgg16.h5").write_bytes(b"")  # found, then refused for its content
    with pytest.raises(VGGWeightsError, match=r"vgg16.h5: not loadable as VGG16\(include_top=False\) weights"):
        check_vgg_weights("~/vgg16.h5", 1.0)


def test_a_flow_cache_dir_that_is_a_file_stops_before_the_run_dir_is_written(tmp_path):
    run_dir, cache = tmp_path / "run", tmp_path / "flows"
    cache.write_text("mine")
    proc = _train("--flagfile=synthetic.flags", f"--run_dir={run_dir}", f"--flow_cache_dir={cache}")
    assert proc.returncode == 2, proc.stdout[-500:] + proc.stderr[-2000:]
    assert f"error: --flow_cache_dir={cache} is a file, not a folder" in proc.stderr
    assert not run_dir.exists() and cache.read_text() == "mine"
