"""End-to-end runs of `python -m maskrnn_tf.train` (real flag parsing) on tiny synthetic data."""
import glob
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO, built_once, cli_env, run_cli, train_cmd, train_in_process, two_workers

STEPS = ["--stage_a_steps=10", "--stage_b_steps=4", "--checkpoint_every=4", "--deterministic"]
# Resumed and forked trainings against uninterrupted ones: float32 round-off (_assert_same_weights).
RESUME_TOLERANCE = {"atol": 1e-6, "min_move": 1e-4}
# Validation (J and overlay images) at steps 7 (stage A) and 14 (stage B); profiled steps 9-10 (the end of stage A).
REFERENCE_EXTRA = ["--profile_steps=9,10", "--val_videos=1", "--eval_every=7", "--image_every=7"]


def _events(folder):
    """{tag: [(step, tensor ndarray), ...]} of every event file in `folder`."""
    found = {}
    files = sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*")))
    assert files, f"no event file in {folder}"
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, tf.make_ndarray(value.tensor)))
    return found


def _scalars(run_dir, tag):
    return [(step, float(value)) for step, value in _events(os.path.join(run_dir, "logs", "train"))[tag]]


def _model_variables(checkpoint_prefix):
    """The model weights stored in a run's checkpoint, restored into a fresh MaskRNN built from config.json.

    Restoring through the object graph (not by variable names: the optimizer's references to the model's
    variables can give them names under optimizer/) checks that every model weight is in the checkpoint.
    """
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    run_dir = os.path.dirname(os.path.dirname(checkpoint_prefix))
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        model = MaskRNN(MaskRNNConfig.from_dict(json.load(f)["model"]), read_vgg_weights=False)
    tf.train.Checkpoint(model=model).read(checkpoint_prefix).assert_existing_objects_matched()
    return {f"{i:04d}.{w.path}": w.numpy() for i, w in enumerate(model.weights)}


def _latest_number(run_dir):
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    return None if latest is None else int(latest.rsplit("-", 1)[1])


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted deterministic run (also profiled and validated); shared by several tests."""

    def build(folder):
        proc = run_cli(os.path.join(folder, "run"), *STEPS, *REFERENCE_EXTRA)
        assert proc.returncode == 0, proc.stdout[-3000:]
        with open(os.path.join(folder, "stdout.txt"), "w") as f:
            f.write(proc.stdout)

    folder = built_once(tmp_path_factory, "reference_run", build)
    with open(os.path.join(folder, "stdout.txt")) as f:
        return os.path.join(folder, "run"), f.read()


@pytest.mark.slow
def test_short_run_writes_config_checkpoints_events_and_learns(reference_run):
    run_dir, out = reference_run
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    assert config["model"]["width"] == 0.125 and config["data"]["height"] == 32 and config["stage_a_steps"] == 10
    assert _latest_number(run_dir) == 14
    assert glob.glob(os.path.join(run_dir, "logs", "train", "events.out.tfevents.*"))
    assert "stage A  step 10/10" in out and "stage B  step 14/14" in out and "ETA" in out
    seg = [v for s, v in _scalars(run_dir, "loss/seg") if s <= 10]
    # "Learns" with a margin: measured (deterministic run) last-3 / first-3 mean = 0.31 (0.0253 / 0.0819).
    assert len(seg) == 10 and np.mean(seg[-3:]) < 0.5 * np.mean(seg[:3]), seg
    assert len(_scalars(run_dir, "learning_rate")) == 14
    # The profile trace TensorBoard's Profile tab reads: steps 9 and 10 as the console numbers them (stage A's
    # last two, no stage B step), each inside a step marker (its step times and input-pipeline analysis).
    traces = glob.glob(os.path.join(run_dir, "logs", "plugins", "profile", "*", "*.xplane.pb"))
    assert len(traces) == 1
    with open(traces[0], "rb") as f:
        trace = f.read()
    assert b"_static_step" in trace and b"_clip_step" not in trace
    assert b"maskrnn_train_step" in trace and b"step_num" in trace
    import keras

    import maskrnn_tf.model  # noqa: F401  (registers MaskRNN for loading)

    model = keras.models.load_model(os.path.join(run_dir, "model.keras"))
    final = _model_variables(os.path.join(run_dir, "checkpoints", "ckpt-14"))
    assert len(final) == len(model.weights)
    for value, weight in zip(final.values(), model.weights):  # model.keras is the last checkpoint's model
        np.testing.assert_array_equal(value, weight.numpy())


@pytest.mark.slow
def test_validation_j_and_overlay_images_reach_the_event_files(reference_run):
    run_dir, out = reference_run
    # eval_every=7 over 14 steps: validation at steps 7 (stage A) and 14 (stage B), none extra at the end.
    assert out.count("validation J ") == 3, out[-3000:]  # steps 7 and 14, then the summary line
    val = _events(os.path.join(run_dir, "logs", "val"))
    assert [step for step, _ in val["J"]] == [7, 14]
    for _, value in val["J"]:
        assert value.shape == () and 0.0 <= float(value) <= 1.0 and math.isfinite(float(value))
    # The last line of the run's console output reports the final J: the one of step 14.
    assert f"validation J {float(val['J'][-1][1]):.4f} at step 14" in out

    images = val["frame_truth_prediction"]
    assert [step for step, _ in images] == [7, 14]
    for _, tensor in images:
        # An image summary is [width, height, encoded PNG...] as strings.
        assert tensor.dtype == object and int(tensor[0]) == 3 * 48 and int(tensor[1]) == 32
        png = tf.io.decode_png(tensor[2]).numpy()
        assert png.shape == (32, 3 * 48, 3) and png.dtype == np.uint8
        # Panel 1 is the frame, panel 2 the frame tinted by the truth: the tint changes some pixels.
        assert np.any(png[:, :48] != png[:, 48:96])

    train = _events(os.path.join(run_dir, "logs", "train"))
    for tag in ("loss/total", "loss/seg", "loss/loc", "grad_norm", "learning_rate", "step_time_s"):
        assert [step for step, _ in train[tag]] == list(range(1, 15)), tag
        assert all(math.isfinite(float(v)) for _, v in train[tag]), (tag, train[tag])
    # The rate each step's update used, step s (from 1) at 1e-3 * 0.5^((s - 1) / 1000) (decay_rate, decay_steps
    # defaults): it was read after the step, the next step's rate (a cooldown's last step showed 0).
    for step, value in train["learning_rate"]:
        assert float(value) == pytest.approx(1e-3 * 0.5 ** ((step - 1) / 1000), rel=1e-6), step


@pytest.mark.slow
def test_rerun_with_other_config_is_refused(reference_run):
    run_dir, _ = reference_run
    proc = run_cli(run_dir, *STEPS, "--learning_rate=0.5")
    assert proc.returncode == 2
    assert "another config" in proc.stdout and "optim.learning_rate" in proc.stdout
    # --overwrite_config with another network: its checkpoints cannot be restored. Refused by name (not a
    # traceback), and config.json keeps the settings its checkpoints were made with.
    with open(os.path.join(run_dir, "config.json")) as f:
        before = f.read()
    proc = run_cli(run_dir, *STEPS, "--model_width=0.25", "--overwrite_config")
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "cannot be restored into this run" in proc.stdout and "new --run_dir" in proc.stdout
    assert "Traceback" not in proc.stdout
    with open(os.path.join(run_dir, "config.json")) as f:
        assert f.read() == before


@pytest.mark.slow
def test_rerunning_a_finished_run_trains_validates_and_logs_nothing(reference_run, tmp_path):
    """The same command again on a finished run (a second `make demo`): nothing to train, so no second final
    validation in the event files, no checkpoint rewritten, and no "final loss nan" that reads like a NaN stop."""
    import shutil

    run_dir = str(tmp_path / "run")
    shutil.copytree(reference_run[0], run_dir)
    events = {tag: list(values) for tag, values in _events(os.path.join(run_dir, "logs", "val")).items()}
    checkpoints = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(run_dir, "checkpoints", "*"))}
    proc = run_cli(run_dir, *STEPS, *REFERENCE_EXTRA)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "already trained to step 14 of 14" in proc.stdout and "final loss n/a" in proc.stdout
    assert "validation J" not in proc.stdout.split("already trained")[0].split("run dir")[-1]
    again = _events(os.path.join(run_dir, "logs", "val"))
    assert {tag: [step for step, _ in v] for tag, v in again.items()} == {
        tag: [step for step, _ in v] for tag, v in events.items()}
    assert {p: os.path.getmtime(p) for p in glob.glob(os.path.join(run_dir, "checkpoints", "*"))} == checkpoints


@pytest.mark.slow
def test_print_config_is_the_config_a_run_writes(reference_run, tmp_path):
    import sys

    run_dir, _ = reference_run
    args = [sys.executable, "-m", "maskrnn_tf.train",
            *train_cmd(run_dir, *STEPS, *REFERENCE_EXTRA)[4:]]
    proc = subprocess.run(args + ["--print_config"], cwd=REPO, env=cli_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(os.path.join(run_dir, "config.json")) as f:
        assert json.loads(proc.stdout) == json.load(f)
    # No run folder is needed; without --print_config, --run_dir is required.
    missing = subprocess.run(args, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "--run_dir is required" in missing.stderr


@pytest.mark.slow
def test_the_best_model_is_the_highest_validation_j_and_loads_as_a_run_folder(reference_run):
    from maskrnn_tf.inference import load_model, trained_step, training_config
    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.inputs import validation_videos
    from maskrnn_tf.training.validation import evaluate

    run_dir, out = reference_run
    val = [(step, float(value)) for step, value in _events(os.path.join(run_dir, "logs", "val"))["J"]]
    best_step, best_j = max(val, key=lambda sv: (sv[1], -sv[0]))  # the first of equal J is kept
    best_dir = os.path.join(run_dir, "best")
    with open(os.path.join(best_dir, "best.json")) as f:
        record = json.load(f)
    assert record["step"] == best_step and record["J"] == pytest.approx(best_j, abs=1e-6)
    # TensorBoard has the running best beside J at every validation.
    events = _events(os.path.join(run_dir, "logs", "val"))
    running = [max(j for _, j in val[:i + 1]) for i in range(len(val))]
    assert [s for s, _ in events["best_J"]] == [s for s, _ in val]
    assert [float(v) for _, v in events["best_J"]] == pytest.approx(running, abs=1e-6)
    assert float(events["best_step"][-1][1]) == best_step
    assert record["selection"]["videos"].startswith("synthetic_vos, 1 videos")
    assert f"best model (J {best_j:.4f} at step {best_step}) {best_dir}" in out
    assert f"best model: J {best_j:.4f} at step {best_step}, in {best_dir}" in out
    assert sorted(os.listdir(best_dir)) == ["best.json", "config.json", "model.keras"]
    assert not [n for n in os.listdir(run_dir) if n.startswith(".best")]
    # The folder is self-contained: segment reads the training config and the step (stage A ends at 10)
    # from it, and the model it holds scores the recorded J on the same validation video.
    with open(os.path.join(run_dir, "config.json")) as f:
        assert training_config(best_dir) == json.load(f)
    assert trained_step(best_dir) == best_step
    assert trained_step(os.path.join(best_dir, "model.keras")) == best_step
    config = TrainConfig.from_dict(training_config(best_dir))
    j, _ = evaluate(load_model(best_dir), validation_videos(config.data))
    assert j == pytest.approx(best_j, abs=1e-4)
    # The export CLI's loader takes the folder too.
    from maskrnn_tf.export.saved_model_export import load_model as export_load_model

    exported = export_load_model(best_dir)
    for a, b in zip(exported.weights, load_model(best_dir).weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow
def test_a_run_started_from_the_end_of_another_runs_stage_a_trains_stage_b_as_that_run_does(tmp_path):
    """--init_checkpoint: one stage A shared by several stage B variants. The source run keeps the end of its
    stage A in stage_a/ (the rotation has dropped it from checkpoints/); started from there, the new run trains
    the same stage B steps to the same weights."""
    steps = ["--stage_a_steps=2", "--checkpoint_every=1", "--keep_checkpoints=1", "--deterministic"]
    source, fork = str(tmp_path / "source"), str(tmp_path / "fork")
    # The source stops at the end of stage A and is resumed with its stage B: the copy is made on the resume
    # too (a run killed right at the boundary still keeps it).
    # The three runs train in this process (what they write and print is the subject, not the process).
    train_in_process(source, *steps, "--stage_b_steps=0")
    assert not os.path.exists(os.path.join(source, "stage_a"))  # no stage B: its last checkpoint is the end
    resumed, _ = train_in_process(source, *steps, "--stage_b_steps=2")
    start = os.path.join(source, "stage_a", "ckpt-2")
    assert f"end of stage A kept in {start}" in resumed
    assert tf.train.latest_checkpoint(os.path.join(source, "stage_a")) == start
    assert _latest_number(source) == 4 and not glob.glob(os.path.join(source, "checkpoints", "ckpt-2.*"))
    from maskrnn_tf.inference import load_model, trained_step

    assert trained_step(start) == 2  # segment --model takes it like any checkpoint prefix of the run
    kept = {f"{i:04d}.{w.path}": w.numpy() for i, w in enumerate(load_model(start).weights)}
    for name, value in _model_variables(start).items():
        np.testing.assert_array_equal(kept[name], value, err_msg=name)

    # Its VGG-16 weights are not read (every weight comes from the checkpoint): a file not here, or imagenet
    # offline, refused the run ("VGG-16 weights file ... not found", exit 2).
    absent = str(tmp_path / "absent_vgg16.h5")
    forked, _ = train_in_process(fork, *steps, "--stage_b_steps=2", f"--vgg_weights={absent}",
                                 f"--init_checkpoint={os.path.join(source, 'stage_a')}")
    assert f"started from {start} at step 2" in forked
    assert "stage A  step" not in forked and "stage B  step 4/4" in forked
    assert tf.train.latest_checkpoint(os.path.join(fork, "stage_a")) == os.path.join(fork, "stage_a", "ckpt-2")
    with open(os.path.join(fork, "config.json")) as f:
        assert json.load(f)["init_checkpoint"] == os.path.join(source, "stage_a")
    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.loop import reads_vgg_weights

    new_run = TrainConfig().override({"model.vgg_weights": absent})  # the CLI checks the file for these only
    assert reads_vgg_weights(new_run, []) and not reads_vgg_weights(new_run, ["ckpt-1"])
    assert not reads_vgg_weights(new_run.override({"init_checkpoint": start}), [])
    ref = _model_variables(os.path.join(source, "checkpoints", "ckpt-4"))
    got = _model_variables(os.path.join(fork, "checkpoints", "ckpt-4"))
    _assert_same_weights(got, ref, _model_variables(start), **RESUME_TOLERANCE)  # stage B moved them alike
    # The step its data started at is checkpointed: a resume on several replicas, which skips the batches trained
    # on, counts them from there (it counted from step 0, skipping stage B batches the fork never read).
    data_start = "data_start/.ATTRIBUTES/VARIABLE_VALUE"
    assert tf.train.load_variable(os.path.join(fork, "checkpoints", "ckpt-4"), data_start) == 2
    assert tf.train.load_variable(os.path.join(source, "checkpoints", "ckpt-4"), data_start) == 0
    # Checkpoints past the run's end, missing or mismatched: tests/training/test_init_checkpoint.py.


@pytest.mark.slow
def test_a_run_dir_in_use_is_refused(tmp_path):
    from maskrnn_tf.training.run_dir import run_dir_lock

    run_dir = str(tmp_path / "run")
    with run_dir_lock(run_dir):  # as a training running in it holds it
        proc = run_cli(run_dir, *STEPS)
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert "in use by another training" in proc.stdout and "--run_dir" in proc.stdout
    assert not os.path.exists(os.path.join(run_dir, "checkpoints"))


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(reference_run, tmp_path):
    ref_dir, _ = reference_run
    run_dir = str(tmp_path / "run")
    proc = subprocess.Popen(train_cmd(run_dir, *STEPS), cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 200
    while time.time() < deadline and (_latest_number(run_dir) or 0) < 4:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _latest_number(run_dir)
    assert killed_at is not None and killed_at < 14, "the run finished before it could be killed"
    start = _model_variables(os.path.join(run_dir, "checkpoints", f"ckpt-{killed_at}"))
    # The resume trains in this process: what the resumed run writes is the subject; the kill needs the CLI's.
    resumed, _ = train_in_process(run_dir, *STEPS)
    assert "resumed from" in resumed
    ref = _model_variables(os.path.join(ref_dir, "checkpoints", "ckpt-14"))
    got = _model_variables(os.path.join(run_dir, "checkpoints", "ckpt-14"))
    _assert_same_weights(got, ref, start, **RESUME_TOLERANCE)


@pytest.mark.slow
def test_resume_inside_stage_b_equals_uninterrupted(reference_run, tmp_path):
    """Deterministic stop inside stage B: a run of 10 + 2 steps ends at step 12 (its checkpoint holds the clip
    iterator after 2 clip batches); the same run asked for 10 + 4 steps resumes there (step counts may grow on
    resume) and must reproduce the uninterrupted run's stage B losses and final weights (to float32 round-off:
    _assert_same_weights)."""
    ref_dir, _ = reference_run
    run_dir = str(tmp_path / "run")
    # Both runs train in this process (what they write and print is the subject, not the process); the
    # reference is a CLI run: the in-process loop must reproduce it too.
    first, _ = train_in_process(run_dir, *[f for f in STEPS if not f.startswith("--stage_b_steps")],
                                "--stage_b_steps=2", "--val_videos=1")
    assert _latest_number(run_dir) == 12
    # --eval_every=0 (TINY_ARGS) validates once, at the end (it used to skip validation).
    assert re.findall(r"validation J [0-9.]+ at step (\d+)", first) == ["12"], first[-2000:]
    start = _model_variables(os.path.join(run_dir, "checkpoints", "ckpt-12"))
    resumed, _ = train_in_process(run_dir, *STEPS, "--val_videos=1")
    assert "at step 12" in resumed and "stage B  step 13/14" in resumed
    assert "stage A" not in resumed.split("at step 12", 1)[1]
    ref_losses = dict(_scalars(ref_dir, "loss/total"))
    got_losses = dict(_scalars(run_dir, "loss/total"))
    # Stage B steps after the resume see the same clips (and the same reverse draws) as the reference: another
    # clip or draw changes a loss in its first digits, round-off in its seventh.
    np.testing.assert_allclose([got_losses[s] for s in (11, 12, 13, 14)],
                               [ref_losses[s] for s in (11, 12, 13, 14)], rtol=1e-5)
    ref = _model_variables(os.path.join(ref_dir, "checkpoints", "ckpt-14"))
    got = _model_variables(os.path.join(run_dir, "checkpoints", "ckpt-14"))
    _assert_same_weights(got, ref, start, **RESUME_TOLERANCE)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint(tmp_path):
    run_dir = str(tmp_path / "run")
    proc = subprocess.Popen(train_cmd(run_dir, "--stage_a_steps=1000", "--stage_b_steps=0",
                                      "--checkpoint_every=1000"),
                            cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "stage A  step 3/" in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM, rest
    assert "SIGTERM" in rest
    step = _latest_number(run_dir)
    assert step is not None and 3 <= step < 1000
    assert not os.path.exists(os.path.join(run_dir, "model.keras"))


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path):
    run_dir = str(tmp_path / "run")
    proc = run_cli(run_dir, "--stage_a_steps=20", "--stage_b_steps=0", "--checkpoint_every=4",
                   "--inject_nan_at_step=6")
    assert proc.returncode == 3, proc.stdout[-3000:]
    assert "nan" in proc.stdout.lower() and "ckpt-4" in proc.stdout and "--overwrite_config" in proc.stdout
    assert "stage A, step 6: the loss is nan" in proc.stdout  # the step asked for, as the console numbers it
    assert _latest_number(run_dir) == 4
    assert not os.path.exists(os.path.join(run_dir, "model.keras"))
    weights = _model_variables(os.path.join(run_dir, "checkpoints", "ckpt-4"))
    assert all(np.isfinite(v).all() for v in weights.values())
    # Resumed from ckpt-4 without the NaN, steps 5 and 6 are logged again: the resume marks the event files
    # (SessionLog START at step 5), so TensorBoard's readers keep the new steps 5, 6 and not the stopped run's.
    # Trained in this process: the event files it writes are the subject (the stop's exit code needed the CLI).
    train_in_process(run_dir, "--stage_a_steps=20", "--stage_b_steps=0", "--checkpoint_every=4", "--overwrite_config")
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator

    accumulator = EventAccumulator(os.path.join(run_dir, "logs", "train"), size_guidance={"tensors": 0})
    accumulator.Reload()
    steps = [event.step for event in accumulator.Tensors("loss/total")]
    assert steps == list(range(1, 21)), steps
    logged = dict(_scalars(run_dir, "loss/total"))  # the files' last word for each step: the resumed run's
    assert all(math.isfinite(value) for value in logged.values())


def test_data_settings_that_make_no_batch_fail_before_config_json_is_written(tmp_path):
    """A clip longer than the videos is refused with exit 2 and leaves no config.json, so the corrected rerun
    in the same run folder is not refused as another config."""
    run_dir = str(tmp_path / "run")
    proc = run_cli(run_dir, "--stage_a_steps=1", "--stage_b_steps=1", "--clip_length=13")
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "error: the data settings make no training batches" in proc.stdout and "13" in proc.stdout
    assert "Traceback" not in proc.stdout
    assert not os.path.exists(os.path.join(run_dir, "config.json"))


# epsilon = 1 keeps Adam's first update linear in the gradient, so the comparisons have a real tolerance. Clips of
# two frames (one recurrent step; TINY_ARGS's 3 are longer to trace in every distributed process): the recurrence
# over several frames is compared on one device by the resume tests.
EQUAL_STEPS = ["--stage_a_steps=1", "--stage_b_steps=1", "--checkpoint_every=1", "--deterministic",
               "--set=optim.epsilon=1.0", "--set=reverse_clip_prob=0.0", "--val_videos=0", "--clip_length=2"]


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory):
    """EQUAL_STEPS on one device: (initial weights after step 1, weights after step 2) of the run."""

    def build(folder):
        # The baseline trains in this process; the runs compared with it keep their processes (distribution).
        train_in_process(os.path.join(folder, "run"), *EQUAL_STEPS)

    run_dir = os.path.join(built_once(tmp_path_factory, "one_device_run", build), "run")
    return (_model_variables(os.path.join(run_dir, "checkpoints", "ckpt-1")),
            _model_variables(os.path.join(run_dir, "checkpoints", "ckpt-2")))


def _assert_same_weights(got, want, previous, atol, min_move=1e-5):
    """Two trainings from the same weights `previous` reached the same weights, to `atol`; the most-moved weight
    moved from `previous` by more than `min_move` (the steps compared really updated the weights).

    Resumes compare to float32 round-off, not bit for bit: a run resumed in a pytest worker once ended one float32
    ULP away from the CLI's uninterrupted run (likely oneDNN, whose sums repeat only for the same thread use, with
    TensorFlow's per-thread primitive cache). There atol = 1e-6 stays far below what a lost optimizer state or a
    missed step would show (each Adam step moves weights by up to the learning rate, 1e-3), and min_move = 100 x atol.
    """
    moved = 0.0
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=atol, err_msg=name)
        moved = max(moved, float(np.abs(want[name] - previous[name]).max()))
    assert moved > min_move, moved


@pytest.fixture(scope="module")
def two_replica_run(tmp_path_factory):
    """EQUAL_STEPS on two replicas (--strategy=mirrored on two logical CPUs), a CLI run: its folder, read only."""

    def build(folder):
        two = run_cli(os.path.join(folder, "run"), *EQUAL_STEPS, "--strategy=mirrored", "--logical_cpus=2",
                      timeout=480)
        assert two.returncode == 0, two.stdout[-3000:]

    return os.path.join(built_once(tmp_path_factory, "two_replica_run", build), "run")


@pytest.mark.slow
def test_mirrored_two_cpus_equals_one_device(one_device_run, two_replica_run):
    init, a = one_device_run
    b = _model_variables(os.path.join(two_replica_run, "checkpoints", "ckpt-2"))
    _assert_same_weights(b, a, init, atol=2e-6)


@pytest.mark.slow
def test_multi_worker_two_processes_equal_one_device(one_device_run, tmp_path):
    run_dir = str(tmp_path / "run")
    with two_workers(tmp_path, run_dir, *EQUAL_STEPS) as (procs, logs):
        # Two fresh TensorFlow processes with collectives: on a loaded 2-core machine each needs about 2 minutes.
        codes = [p.wait(timeout=480) for p in procs]
    for code, log in zip(codes, logs):
        assert code == 0, open(log).read()[-3000:]
    assert _latest_number(run_dir) == 2
    assert os.path.exists(os.path.join(run_dir, "model.keras"))
    assert not glob.glob(os.path.join(run_dir, "checkpoints", ".worker*"))
    # Each worker computes half of every global batch; the all-reduced update is the one-device update.
    init, want = one_device_run
    got = _model_variables(os.path.join(run_dir, "checkpoints", "ckpt-2"))
    _assert_same_weights(got, want, init, atol=2e-6)


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["training", "starting"])
def test_sigterm_to_one_worker_stops_every_worker_after_the_same_step(tmp_path, moment):
    """A preempting scheduler signals the workers one at a time: SIGTERM to worker 1 alone stops both after the
    same step, with the stop exit code, and the chief's checkpoint is that step. (Worker 1 used to stop alone and
    the chief failed in the next step's all-reduce: exit 1, no checkpoint.) One that comes while the cluster
    builds its data and network is kept for the first step's agreement: both stop after step 1. (TensorFlow's
    coordination service took it there: the run went on to its last step and both exited 0.)"""
    run_dir = str(tmp_path / "run")
    # Training: worker 1 prints its second step (its handler in place). Starting: the chief prints its precision
    # once the cluster is up; worker 1 records signals from then on too (a second's margin) and builds its data
    # and network for several seconds more before the first step.
    log, text, margin = (1, "stage A  step 2/", 0.0) if moment == "training" else (0, "precision", 1.0)
    with two_workers(tmp_path, run_dir, "--stage_a_steps=1000", "--stage_b_steps=0",
                     "--checkpoint_every=1000") as (procs, logs):
        deadline = time.time() + 300  # the timeouts only guard against a hang
        while text not in open(logs[log]).read():
            assert time.time() < deadline and all(p.poll() is None for p in procs), open(logs[log]).read()[-3000:]
            time.sleep(0.05)
        time.sleep(margin)
        if moment == "starting":
            assert "stage A  step" not in open(logs[1]).read()
        procs[1].send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=180) for p in procs]
    outs = [open(log).read() for log in logs]
    for code, out in zip(codes, outs):
        assert code == 128 + signal.SIGTERM, out[-3000:]
    assert "stopped by signal SIGTERM (sent to another worker); checkpoint" in outs[0]
    last = [int(re.findall(r"stage A  step (\d+)/1000", out)[-1]) for out in outs]
    assert last[0] == last[1] and (2 <= last[0] < 1000 if moment == "training" else last[0] == 1), last
    assert _latest_number(run_dir) == last[0]


@pytest.mark.slow
def test_davis_flagfile_as_typed_names_its_run_dir_and_fails_clearly_without_data(tmp_path):
    """`python -m maskrnn_tf.train --flagfile=davis17.flags`, nothing else: the run dir defaults to
    runs/davis17 under the working directory, and the missing data ends in the layout message (exit 2)."""
    import sys

    empty = tmp_path / "manual"
    empty.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    base = [sys.executable, "-m", "maskrnn_tf.train", f"--flagfile={os.path.join(REPO, 'davis17.flags')}",
            f"--manual_dir={empty}"]
    proc = subprocess.run(base, cwd=work, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert "Flags parsing error" not in proc.stdout
    assert str(empty) in proc.stdout and "JPEGImages" in proc.stdout and "README.md" in proc.stdout
    default = work / "runs" / "davis17"
    assert f"run dir {default} (named after the flag file" in proc.stdout
    assert not default.exists()  # nothing is written before the data is found
    # An explicit --run_dir still wins.
    explicit = tmp_path / "elsewhere"
    proc = subprocess.run(base + [f"--run_dir={explicit}"], cwd=work, env=cli_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert f"run dir {explicit}\n" in proc.stdout and "named after" not in proc.stdout


def test_default_run_dir_comes_from_the_one_command_line_flag_file():
    from maskrnn_tf.train import command_line_flagfiles, default_run_dir

    assert command_line_flagfiles(["train", "--flagfile=davis17.flags", "--stage_a_steps=3"]) == ["davis17.flags"]
    assert command_line_flagfiles(["train", "-flagfile", "cfg/davis16_cpu.flags"]) == ["cfg/davis16_cpu.flags"]
    assert command_line_flagfiles(["train", "--", "--flagfile=x.flags"]) == []
    assert default_run_dir(["davis17.flags"]) == os.path.join("runs", "davis17")
    assert default_run_dir(["/abs/path/segtrackv2.flags"]) == os.path.join("runs", "segtrackv2")
    assert default_run_dir([]) is None
    assert default_run_dir(["a.flags", "b.flags"]) is None  # ambiguous: --run_dir must name the run


def _console_losses(lines: str) -> dict:
    """{step: loss} of the progress lines a run printed."""
    return {int(step): float(loss) for step, loss in re.findall(r"step (\d+)/\d+  loss ([-0-9.]+)", lines)}


@pytest.mark.slow
def test_a_run_made_on_two_replicas_resumes_on_one(two_replica_run, tmp_path):
    """A run trained with --strategy=mirrored on two replicas (two GPUs; here two logical CPUs) and resumed on one
    (a GPU fewer, or --logical_cpus left out) was refused with exit 2: "cannot be restored into this run: the
    network, optimizer or data settings given differ ... need a new --run_dir", as its checkpoints hold no data
    iterators (a run on several replicas skips to its data position instead). It resumes now, inside stage B, from
    the data where the two replicas left it (stage A's batches, never read again, are not replayed), and resumes
    again from its own checkpoint: the steps after the resume are those of an uninterrupted one-device run."""
    # The two-replica run (EQUAL_STEPS: 1 + 1 steps) is the mirrored test's; it is resumed in a copy.
    steps = [flag for flag in EQUAL_STEPS if not flag.startswith("--stage_b_steps")]
    run_dir = str(tmp_path / "run")
    shutil.copytree(two_replica_run, run_dir)
    assert "static_data" not in {name.split("/", 1)[0] for name, _ in tf.train.list_variables(
        os.path.join(run_dir, "checkpoints", "ckpt-2"))}
    # The same command without --logical_cpus: one replica; one more step of stage B, then another.
    lines, result = train_in_process(run_dir, *steps, "--stage_b_steps=2", "--strategy=mirrored")
    assert result.steps == 3, lines
    assert "holds no data position: reading the 1 batches its steps trained on again" in lines
    again, result = train_in_process(run_dir, *steps, "--stage_b_steps=3", "--strategy=mirrored")
    assert result.steps == 4 and "holds no data position" not in again, again
    one_dir = str(tmp_path / "one")
    one_lines, _ = train_in_process(one_dir, *steps, "--stage_b_steps=3")
    want = {step: loss for step, loss in _console_losses(one_lines).items() if step > 2}
    assert sorted(want) == [3, 4]
    assert {**_console_losses(lines), **_console_losses(again)} == pytest.approx(want, abs=2e-4), (lines, one_lines)
    # EQUAL_STEPS turns the reverse draws off, but each stage B step still draws from the checkpointed generator:
    # after each resumed step its state is the uninterrupted run's (one started afresh would lag a draw behind).
    rng_state = "rng/_state_var/.ATTRIBUTES/VARIABLE_VALUE"
    states = {(folder, step): tf.train.load_variable(os.path.join(folder, "checkpoints", f"ckpt-{step}"), rng_state)
              for folder in (run_dir, one_dir) for step in (2, 3, 4)}
    assert not np.array_equal(states[one_dir, 2], states[one_dir, 3])
    for step in (2, 3, 4):
        np.testing.assert_array_equal(states[run_dir, step], states[one_dir, step], err_msg=f"step {step}")


def test_a_training_in_process_leaves_the_global_random_generators_as_they_were(tmp_path):
    """train() seeds Python's, NumPy's, TensorFlow's and Keras' global generators (keras.utils.set_random_seed):
    the tests that follow one trained in process must draw what they would have drawn without it, TensorFlow's
    op seeds included (the stream a global seed starts, which setting the seed again would restart)."""
    import random

    from keras.src.backend.common import global_state
    from tensorflow.python.eager import context

    python_state, numpy_state = random.getstate(), np.random.get_state()
    expected = (random.random(), float(np.random.rand()))
    random.setstate(python_state)
    np.random.set_state(numpy_state)
    tf_seed = context.global_seed()
    keras_seed = global_state.get_global_attribute("global_random_seed")
    try:
        tf.random.set_seed(5)
        tf.random.uniform([])
        expected_tf = float(tf.random.uniform([]))
        tf.random.set_seed(5)
        tf.random.uniform([])
        _, result = train_in_process(str(tmp_path / "run"), "--stage_a_steps=1", "--stage_b_steps=0", "--seed=7")
        assert result.steps == 1
        assert (random.random(), float(np.random.rand())) == expected
        assert context.global_seed() == 5
        assert float(tf.random.uniform([])) == expected_tf
        assert global_state.get_global_attribute("global_random_seed") == keras_seed
    finally:
        context.set_global_seed(tf_seed)  # this test's own seed does not outlive it


def test_an_unreadable_first_annotation_is_named_without_a_traceback(tmp_path):
    """A DAVIS-2017 train sequence whose first annotation is an RGB mask of non-DAVIS colours: the reader's
    refusal came out of the data check as a traceback (it is a ValueError, the check caught only layout and OS
    errors); it is the one-line error naming the file, exit 2, before the run dir is made."""
    import sys

    from PIL import Image

    from maskrnn_tf.io import write_palette_png

    root = tmp_path / "DAVIS"
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "train.txt").write_text("ducks\n")
    (root / "ImageSets" / "2017" / "val.txt").write_text("ducks\n")
    frames, masks = root / "JPEGImages" / "480p" / "ducks", root / "Annotations" / "480p" / "ducks"
    frames.mkdir(parents=True)
    masks.mkdir(parents=True)
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[4:12, 4:12] = (10, 200, 30)  # not a DAVIS palette colour
    for t in range(2):
        Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(frames / f"{t:05d}.jpg")
        Image.fromarray(rgb).save(masks / f"{t:05d}.png")
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "maskrnn_tf.train", f"--flagfile={os.path.join(REPO, 'davis17.flags')}",
               f"--manual_dir={root}", f"--run_dir={run_dir}"]
    proc = subprocess.run(command, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "Traceback" not in proc.stdout
    assert f"{masks / '00000.png'}: RGB annotation with 1 colour(s) that are not DAVIS palette colours" in proc.stdout
    assert "save ground truth as palette PNGs" in proc.stdout
    assert not run_dir.exists()
    # The first annotation right, a later one not: named as a file that cannot be read, not as settings that
    # make no batches.
    ids = np.zeros((24, 32), np.uint8)
    ids[4:12, 4:12] = 1
    write_palette_png(str(masks / "00000.png"), ids)
    proc = subprocess.run(command + ["--vgg_weights=none"], env=cli_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)  # ImageNet weights are not reached offline
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "Traceback" not in proc.stdout and "make no training batches" not in proc.stdout
    assert f"a training file cannot be read: {masks / '00001.png'}: RGB annotation with 1 colour(s)" in proc.stdout
    # A later annotation with an object the first frame does not have: named as the data's fault too.
    ids[14:20, 14:20] = 2
    write_palette_png(str(masks / "00001.png"), ids)
    proc = subprocess.run(command + ["--vgg_weights=none"], env=cli_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout, proc.stdout[-3000:]
    assert "make no training batches" not in proc.stdout, proc.stdout[-3000:]
    assert f"{masks / '00001.png'}: object id 2 exceeds the 1 object(s)" in proc.stdout
