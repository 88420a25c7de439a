"""`python -m maskrnn_tf.train` flags through the CLI, checked by their effect: --vgg_weights (the trunks start
from the file's weights, first-conv surgery for the mask channel) and SIGINT (a checkpoint is saved, the same
command resumes from it)."""
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO, cli_env, run_cli, train_cmd


@pytest.mark.slow
def test_vgg_weights_file_initialises_both_trunks(tmp_path):
    import keras

    reference = keras.applications.VGG16(include_top=False, weights=None)
    # Distinctive values (not an initialiser's): first conv kernel = its index pattern.
    kernel, bias = reference.get_layer("block1_conv1").get_weights()
    kernel = (np.arange(kernel.size, dtype=np.float32).reshape(kernel.shape) % 97 - 48) / 1000.0
    reference.get_layer("block1_conv1").set_weights([kernel, bias + 0.25])
    weights = str(tmp_path / "vgg16.weights.h5")
    reference.save_weights(weights)
    run_dir = str(tmp_path / "run")
    # No training steps: model.keras holds the weights the model started from. VGG-16 weights need width 1.0.
    proc = run_cli(run_dir, "--stage_a_steps=0", "--stage_b_steps=0", "--model_width=1.0", f"--vgg_weights={weights}")
    assert proc.returncode == 0, proc.stdout[-3000:]

    import maskrnn_tf.model  # noqa: F401  (registers MaskRNN for loading)

    model = keras.models.load_model(os.path.join(run_dir, "model.keras"))

    def layer(stream, name):
        return stream.get_layer(f"{stream.name}_vgg16").get_layer(name)

    # Appearance stream: RGB + the warped mask. The RGB filters are the file's; the mask channel's start at 0.
    got, got_bias = layer(model.appearance_stream, "block1_conv1").get_weights()
    assert got.shape == (3, 3, 4, 64)
    np.testing.assert_array_equal(got[:, :, :3], kernel)
    np.testing.assert_array_equal(got[:, :, 3:], 0.0)
    np.testing.assert_array_equal(got_bias, bias + 0.25)
    # Flow stream: (u, v) + mask = 3 channels, the file's first conv as it is.
    got_flow = layer(model.flow_stream, "block1_conv1").get_weights()[0]
    np.testing.assert_array_equal(got_flow, kernel)
    for name in ("block3_conv2", "block5_conv3"):
        want = reference.get_layer(name).get_weights()
        for stream in (model.appearance_stream, model.flow_stream):
            for a, b in zip(layer(stream, name).get_weights(), want):
                np.testing.assert_array_equal(a, b, err_msg=f"{stream.name}/{name}")
    with open(os.path.join(run_dir, "config.json")) as f:
        assert f'"vgg_weights": "{weights}"' in f.read()


@pytest.mark.slow
def test_sigint_saves_a_checkpoint_and_the_same_command_resumes(tmp_path):
    run_dir = str(tmp_path / "run")
    flags = ["--stage_a_steps=12", "--stage_b_steps=0", "--checkpoint_every=1000"]
    proc = subprocess.Popen(train_cmd(run_dir, *flags), cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "stage A  step 3/" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 128 + signal.SIGINT, rest
    assert "stopped by signal SIGINT" in rest and "rerun the same command to resume" in rest
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    assert latest is not None, rest
    stopped_at = int(latest.rsplit("-", 1)[1])
    assert 3 <= stopped_at < 12, rest
    assert not os.path.exists(os.path.join(run_dir, "model.keras"))
    resumed = run_cli(run_dir, *flags)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert re.search(rf"resumed from \S+ckpt-{stopped_at} at step {stopped_at}\b", resumed.stdout), resumed.stdout
    # The resumed run does only the remaining steps.
    assert f"stage A  step {stopped_at}/" not in resumed.stdout and "stage A  step 12/12" in resumed.stdout
    assert "done: 12 steps" in resumed.stdout
    assert tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")).endswith("ckpt-12")


@pytest.mark.slow
def test_a_run_with_checkpoints_resumes_without_its_vgg_weights_file(tmp_path):
    """The checkpoints hold the trunks: a resume must not need the VGG-16 weights the run began from. It was refused
    (exit 2, "--vgg_weights: ... not found") once the .h5 file was moved or, with imagenet, offline without the
    Keras cache; the way out the message gave (another --vgg_weights) was then refused as another config."""
    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.run_dir import prepare_run_dir

    missing = str(tmp_path / "moved" / "vgg16.weights.h5")
    run_dir = str(tmp_path / "run")
    proc = run_cli(run_dir, "--model_width=1.0", f"--vgg_weights={missing}", "--print_config")
    assert proc.returncode == 0, proc.stdout[-3000:]
    prepare_run_dir(run_dir, TrainConfig.from_dict(json.loads(proc.stdout)))
    # A checkpoint of the run's own (found by name). Not this network's, so the resume stops at its restore:
    # past the weights check and the model build, which are what this is about (a real one at width 1 is ~350 MB).
    tf.train.Checkpoint(step=tf.Variable(1, dtype=tf.int64)).write(os.path.join(run_dir, "checkpoints", "ckpt-1"))
    proc = run_cli(run_dir, "--model_width=1.0", f"--vgg_weights={missing}")
    assert "not found" not in proc.stdout and "Traceback" not in proc.stdout, proc.stdout[-3000:]
    assert proc.returncode == 2 and "ckpt-1 cannot be restored into this run" in proc.stdout, proc.stdout[-3000:]


def test_a_set_that_overrides_a_named_flag_says_so(tmp_path):
    """--set wins over the named flag of the same setting wherever each is given (a --crop_height on the command
    line loses to a --set=data.height in the flag file): it used to win in silence; now it says so."""
    flagfile = tmp_path / "mine.flags"
    flagfile.write_text("--set=data.height=48\n--crop_width=64\n")
    proc = subprocess.run([sys.executable, "-m", "maskrnn_tf.train", f"--flagfile={flagfile}", "--crop_height=40",
                           "--set=data.width=64", "--print_config"], cwd=REPO, env=cli_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["data"]["height"] == 48
    assert "note: --set=data.height=48 overrides --crop_height=40" in proc.stderr
    assert "data.width" not in proc.stderr  # the same value: nothing to say


def test_a_bad_set_value_is_its_only_line(tmp_path):
    """A --set that overrode a named flag printed its note, then the error that its value is refused: two lines
    for one mistake, the first one about a setting that was not taken."""
    proc = subprocess.run([sys.executable, "-m", "maskrnn_tf.train", "--learning_rate=0.001",
                           "--set=optim.learning_rate=\"fast\"", "--print_config"], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [line for line in proc.stderr.strip().splitlines()
                                                if line.startswith("error: bad configuration:")], proc.stderr


@pytest.mark.parametrize("setting", ["data.batch_size=0", "data.clip_length=1", "stage_b_steps=-1"])
def test_a_set_value_the_config_refuses_is_named_as_the_setting(setting):
    """--set=data.batch_size=0 was refused as "DataConfig: height, width, batch_size and clip_batch_size must be
    >= 1": four fields named, not the one given, and not as the user wrote it."""
    proc = subprocess.run([sys.executable, "-m", "maskrnn_tf.train", f"--set={setting}", "--print_config"],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120)
    key, value = setting.split("=")
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    assert f"error: bad configuration: {key}={value}: must be >= " in proc.stderr, proc.stderr


def test_a_set_value_of_another_type_is_named_as_such_not_by_its_bounds():
    """The bounds pre-check above took 0.5 for data.batch_size and said "must be >= 1": the value is refused for
    its type (an integer is asked), as before the pre-check."""
    proc = subprocess.run([sys.executable, "-m", "maskrnn_tf.train", "--set=data.batch_size=0.5", "--print_config"],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    assert "data.batch_size=0.5: expected an integer, got a float" in proc.stderr, proc.stderr
