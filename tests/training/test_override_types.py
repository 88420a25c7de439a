"""Overrides (--set, config.json, library calls) are checked against each field's declared type."""
import glob
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, cli_env
from maskrnn_tf.train import command_line_flagfiles, default_run_dir
from maskrnn_tf.training.config import TrainConfig, flatten, parse_override
from maskrnn_tf.training.config_bounds import check_config_bounds


def _set(*items):
    """The TrainConfig the train CLI builds from `--set=ITEM` flags."""
    return TrainConfig().override(dict(parse_override(item) for item in items))


@pytest.mark.parametrize("item,message", [
    # The string "False" is truthy: class balance was switched ON by asking for it off.
    ("loss.class_balance=no", "loss.class_balance='no': expected a boolean (true or false)"),
    ("recompute=no", "recompute='no': expected a boolean (true or false)"),
    ("recompute=1", "recompute=1: expected a boolean (true or false)"),
    # A fractional step count trained on and never wrote stage_a/.
    ("stage_a_steps=1.5", "stage_a_steps=1.5: expected an integer, got a float"),
    ("data.batch_size=2.5", "data.batch_size=2.5: expected an integer, got a float"),
    ("model.side_channels=abc", "model.side_channels='abc': expected an integer, got a string"),
    ("model.side_channels=true", "model.side_channels=True: expected an integer, got a bool"),
    ("optim.learning_rate=fast", "optim.learning_rate='fast': expected a number, got a string"),
    ("inject_nan_at_step=2.5", "inject_nan_at_step=2.5: expected an integer or null"),
    ("model.delta_weights=[1, 2]", "model.delta_weights=[1, 2]: expected a list of 4 numbers"),
    ("model.side_stages=[3]", "model.side_stages=[3]: expected a list of strings"),
    ("model.width=null", "model.width=None: expected a number, got null"),
])
def test_a_value_of_the_wrong_type_is_refused_naming_key_value_and_type(item, message):
    with pytest.raises(ValueError) as err:
        _set(item)
    assert message in str(err.value)


@pytest.mark.parametrize("item,key,value", [
    ("loss.class_balance=false", "loss.class_balance", False),
    ("loss.class_balance=False", "loss.class_balance", False),  # Python's spelling, as absl's bool flags take
    ("recompute=TRUE", "recompute", True),
    ("stage_a_steps=3", "stage_a_steps", 3),
    ("model.mask_input_scale=32", "model.mask_input_scale", 32),  # an integer is a number
    ("optim.learning_rate=1e-4", "optim.learning_rate", 1e-4),
    ("inject_nan_at_step=null", "inject_nan_at_step", None),
    ("model.vgg_weights=null", "model.vgg_weights", None),
    ("model.vgg_weights=imagenet", "model.vgg_weights", "imagenet"),
    ("data.manual_dir=2016", "data.manual_dir", "2016"),  # a folder named 2016 is a path, not a number
    ("model.side_stages=[\"conv4_3\",\"conv5_3\"]", "model.side_stages", ("conv4_3", "conv5_3")),
    ("model.side_stages=conv4_3,conv5_3", "model.side_stages", ("conv4_3", "conv5_3")),
    ("model.delta_weights=[1, 1, 2, 2]", "model.delta_weights", (1, 1, 2, 2)),
])
def test_values_of_the_right_type_are_taken(item, key, value):
    config = _set(item)
    head, _, leaf = key.rpartition(".")
    got = getattr(getattr(config, head), leaf) if head else getattr(config, leaf)
    assert got == value and type(got) is type(value)


def test_library_overrides_and_stored_configs_are_strict():
    # Only the command line reads text: a program or a config.json giving the string "False" is refused.
    with pytest.raises(ValueError, match="loss.class_balance='False': expected a boolean"):
        TrainConfig().override({"loss.class_balance": "False"})
    stored = json.loads(TrainConfig().to_json())
    stored["data"]["batch_size"] = 2.5
    with pytest.raises(ValueError, match="data.batch_size=2.5: expected an integer"):
        TrainConfig.from_dict(stored)
    stored["data"]["batch_size"] = 2
    assert TrainConfig.from_dict(stored).data.batch_size == 2


def test_the_bounds_check_refuses_a_float_for_an_integer_field():
    """A config built without override (TrainConfig(...) directly) is checked too before a run starts."""
    with pytest.raises(ValueError, match="stage_a_steps=1.5: expected an integer"):
        check_config_bounds(TrainConfig(stage_a_steps=1.5))
    check_config_bounds(TrainConfig(stage_a_steps=2))


def _print_config(*args):
    return subprocess.run([sys.executable, "-m", "maskrnn_tf.train", *args, "--print_config"], cwd=REPO,
                          env=cli_env(), capture_output=True, text=True, timeout=120)


def test_cli_refuses_a_wrong_type_with_exit_2_and_takes_python_booleans(tmp_path):
    run_dir = tmp_path / "run"
    proc = _print_config("--flagfile=synthetic.flags", f"--run_dir={run_dir}", "--set=recompute=no")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "recompute='no': expected a boolean (true or false)" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == "" and not run_dir.exists()
    proc = _print_config("--flagfile=synthetic.flags", "--set=loss.class_balance=False")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["loss"]["class_balance"] is False


def _training_flag_files():
    """The repository's flag files for `python -m maskrnn_tf.train` (others are for other programs)."""
    found = []
    for path in sorted(glob.glob(os.path.join(REPO, "*.flags"))):
        with open(path, encoding="utf-8") as f:
            if f"maskrnn_tf.train --flagfile={os.path.basename(path)}" in f.read():
                found.append(path)
    return found


def test_every_training_flag_file_parses_and_validates():
    files = _training_flag_files()
    assert len(files) >= 5, files
    for path in files:
        proc = _print_config(f"--flagfile={path}")
        assert proc.returncode == 0, (path, proc.stderr[-2000:])
        config = TrainConfig.from_dict(json.loads(proc.stdout))
        check_config_bounds(config)
        assert all(isinstance(v, bool) for v in (config.loss.class_balance, config.recompute, config.jit_compile))


@pytest.mark.parametrize("item,message", [
    # 0 channels or a 0x0 RoI crashed the model build or step 1 with a Keras/TF traceback (exit 1); the roi_size
    # crash came after config.json was written, so the corrected rerun was refused as another config.
    ("model.side_channels=0", "model.side_channels=0: must be >= 1"),
    ("model.roi_size=0", "model.roi_size=0: must be >= 1"),
    # NaN slipped past `box_enlarge < 1` (comparisons with NaN are false) and past every unbounded scale.
    # (The model's config refuses it as it is built, before the flag bounds are checked.)
    ("model.box_enlarge=NaN", "MaskRNNConfig.box_enlarge must be a finite number >= 1, got nan"),
    ("model.mask_input_scale=NaN", "model.mask_input_scale=nan: must be a finite number"),
    ("model.flow_input_scale=-1", "model.flow_input_scale=-1: must be >= 0"),
    # Probabilities never exceed 1: no proposal box and an all-background fusion, trained on in silence.
    ("model.mask_threshold=1.5", "model.mask_threshold=1.5: must be >= 0 and < 1"),
    ("model.mask_threshold=-1", "model.mask_threshold=-1: must be >= 0 and < 1"),
    # A negative soft Jaccard weight would train the masks away from the object.
    ("loss.iou_weight=-0.5", "loss.iou_weight=-0.5: must be >= 0"),
])
def test_model_settings_out_of_range_are_refused_before_the_run(item, message):
    with pytest.raises(ValueError) as err:
        check_config_bounds(_set(item))
    assert str(err.value).startswith(message), str(err.value)


def test_model_settings_at_their_bounds_are_taken():
    check_config_bounds(_set("model.side_channels=1", "model.roi_size=1", "model.box_enlarge=1",
                             "model.mask_threshold=0", "model.mask_input_scale=0", "model.flow_input_scale=0"))


@pytest.mark.parametrize("item,key", [
    # --vgg_weights=None trains from scratch, and the weights error says "Pass 'imagenet', None, or ...": the same
    # word through --set became the file name 'None' and was refused with that same advice.
    ("model.vgg_weights=None", "model.vgg_weights"),
    ("init_checkpoint=none", "init_checkpoint"),
    ("inject_nan_at_step=None", "inject_nan_at_step"),
    ("data.flow_cache_dir=None", "data.flow_cache_dir"),
])
def test_python_none_unsets_an_optional_setting(item, key):
    config = _set("model.vgg_weights=imagenet", "init_checkpoint=x", "inject_nan_at_step=3",
                  "data.flow_cache_dir=x", item)
    head, _, rest = key.partition(".")
    assert (getattr(getattr(config, head), rest) if rest else getattr(config, key)) is None


def test_none_is_text_for_a_setting_that_cannot_be_unset():
    with pytest.raises(ValueError, match="DataConfig.flow must be one of .*, got 'None'"):  # the text, not unset
        _set("data.dataset=synthetic_vos", "data.flow=None")


def test_an_empty_val_sequences_clears_them_as_the_flag_does():
    """--val_sequences= clears the held-out sequences (a flag file's, say); --set=data.val_sequences= was refused
    as the one empty name ['']."""
    config = _set("data.dataset=davis16", "data.val_sequences=dog,car-turn")
    assert config.data.val_sequences == ("dog", "car-turn")
    assert config.override(dict([parse_override("data.val_sequences=")])).data.val_sequences == ()
    with pytest.raises(ValueError, match="distinct non-empty names"):
        _set("data.dataset=davis16", "data.val_sequences=dog,,car-turn")


def test_the_prior_flag_file_is_the_cpu_recipe_with_its_four_changes():
    """davis16_cpu_prior.flags nests davis16_cpu.flags: every other setting must stay the recipe's."""
    base = _print_config("--flagfile=davis16_cpu.flags")
    prior = _print_config("--flagfile=davis16_cpu_prior.flags")
    assert base.returncode == 0 and prior.returncode == 0, (base.stderr[-2000:], prior.stderr[-2000:])
    a, b = flatten(json.loads(base.stdout)), flatten(json.loads(prior.stdout))
    assert a.keys() == b.keys()
    changed = {key: (a[key], b[key]) for key in a if a[key] != b[key]}
    assert changed == {
        "model.color_prior_input": (False, True),
        "data.color_jitter": (0.0, 1.0),
        "model.flow_reference": ("none", "median"),
        "stage_b_steps": (1000, 2000),
    }, changed
    # A nested flag file does not count as a second one: the default run dir is named after the outer file.
    assert default_run_dir(command_line_flagfiles(["train", "--flagfile=davis16_cpu_prior.flags"])) == os.path.join(
        "runs", "davis16_cpu_prior")


def test_synthetic_training_seeds_that_reach_the_validation_videos_are_refused():
    """Training videos take seeds seed..seed+n-1, validation videos 1,000,000..: a --seed near a million made the
    validation videos training videos, and best/ was chosen on what the run had trained on."""
    base = {"data.dataset": "synthetic_vos", "data.synthetic_train_videos": 100, "data.val_videos": 4}
    with pytest.raises(ValueError, match=r"seed=999950: the synthetic training videos \(seeds 999950 to 1000049\) "
                                         r"include the validation videos' \(1000000 to 1000003\)"):
        check_config_bounds(TrainConfig().override({**base, "seed": 999_950}))
    for seed in (999_900, 1_000_004, 0):
        check_config_bounds(TrainConfig().override({**base, "seed": seed}))
    check_config_bounds(TrainConfig().override({**base, "seed": 999_950, "data.val_videos": 0}))
