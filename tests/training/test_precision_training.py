"""Training in bfloat16 and float16 learns like float32: the same update, the same fall of the loss.

Each precision trains the same tiny MaskRNN (same initial weights) on the same fixed batch with the project's
compiled train steps (`TrainSteps`, `make_optimizer`: Adam, plus a LossScaleOptimizer under float16). float16
starts with a loss scale (2^15) at which a few gradients overflow: those steps must leave the weights alone and
halve the scale, and the first applied update must match float32's.
"""
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.model import MaskRNN
from maskrnn_tf.training.config import TrainConfig
from maskrnn_tf.training.steps import TrainSteps, make_optimizer

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
APPLIED = 12  # applied updates per precision
CONFIG = TrainConfig().override({
    "model.width": 0.125, "model.fc_units": 16, "model.side_channels": 4, "data.batch_size": 2,
    "data.clip_batch_size": 2, "optim.learning_rate": 1e-3, "loss.class_balance": False, "reverse_clip_prob": 0.0,
})


def _clip(batch=2, length=3, height=24, width=32, shift=2.0):
    """Textured squares moving right by `shift` px per frame, with the exact (u, v) flows."""
    masks = np.zeros((batch, length, height, width), np.float32)
    for t in range(length):
        x0 = int(6 + shift * t)
        masks[:, t, 6:16, x0:x0 + 10] = 1
    frames = np.random.default_rng(0).uniform(0, 255, (batch, length, height, width, 3)).astype(np.float32)
    to_prev = np.zeros((batch, length, height, width, 2), np.float32)
    to_next = np.zeros_like(to_prev)
    to_prev[:, 1:, ..., 0] = -shift
    to_next[:, :-1, ..., 0] = shift
    return {"frames": frames, "flows_to_prev": to_prev, "flows_to_next": to_next, "masks": masks}


def _static_batch(clip):
    """Stage A batch: frame 1 of the clip with frame 0's mask as the previous mask."""
    return {"frame": clip["frames"][:, 1], "flow_to_prev": clip["flows_to_prev"][:, 1],
            "flow_to_next": clip["flows_to_next"][:, 1], "prev_mask": clip["masks"][:, 0],
            "mask": clip["masks"][:, 1]}


def _build(precision, weights, config=CONFIG):
    """Model (with `weights`), optimizer and train steps under `precision`'s Keras policy."""
    policy = POLICIES[precision]
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = MaskRNN(config.model)
        optimizer = make_optimizer(config, policy)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.set_weights(weights)
    optimizer.build(model.trainable_variables)
    steps = TrainSteps(model, optimizer, config, tf.distribute.get_strategy(), tf.Variable(0, dtype=tf.int64))
    return model, optimizer, steps


def _momentums(optimizer):
    """Adam's first moments, one per trainable variable: after one update, (1 - beta_1) x the gradient it got."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return [m.numpy().copy() for m in inner._momentums]


def _flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def initial_weights():
    keras.utils.set_random_seed(0)
    return MaskRNN(CONFIG.model).get_weights()


@pytest.fixture(scope="module")
def runs(initial_weights):
    """precision -> the run on the fixed batch: losses by applied-update count, the first applied update."""
    batch = {k: tf.constant(v) for k, v in _static_batch(_clip()).items()}
    out = {}

    def run(precision):
        if precision in out:
            return out[precision]
        model, optimizer, steps = _build(precision, initial_weights)
        start = [v.numpy().copy() for v in model.trainable_variables]
        losses, skipped, scales, first = {}, 0, [], None
        while int(optimizer.iterations) < APPLIED:
            before = int(optimizer.iterations)
            scales.append(float(getattr(optimizer, "dynamic_scale", 1.0)))
            metrics = steps.static_step(batch)
            losses.setdefault(before, float(metrics["seg"]))  # the loss at the weights after `before` updates
            if int(optimizer.iterations) == before:  # skipped: the weights must not have moved
                skipped += 1
                assert not math.isfinite(float(metrics["grad_norm"])), metrics
                for v, s in zip(model.trainable_variables, start):
                    np.testing.assert_array_equal(v.numpy(), s, err_msg=f"{precision}: a skipped step moved {v.path}")
                assert skipped <= 6, f"{precision}: {skipped} updates skipped in a row (scales {scales})"
            elif first is None:
                first = {"delta": _flat([v.numpy() - s for v, s in zip(model.trainable_variables, start)]),
                         "momentum": _flat(_momentums(optimizer))}
        out[precision] = {"losses": losses, "skipped": skipped, "scales": scales, "first": first}
        return out[precision]

    return run


@pytest.mark.parametrize("precision,momentum_tol,delta_tol", [("float16", 0.02, 0.15), ("bfloat16", 0.1, 0.3)])
def test_first_update_matches_float32(runs, precision, momentum_tol, delta_tol):
    # Measured: the gradient Adam receives differs from float32's by 0.24% (float16) and 3.8% (bfloat16)
    # (relative L2); Adam's first step divides by |g| elementwise, so the weight change differs more (4%, 16%).
    ref, got = runs("float32")["first"], runs(precision)["first"]
    assert np.abs(got["delta"]).max() > 0, f"{precision}: the first applied update changed no weight"
    assert _rel(got["momentum"], ref["momentum"]) < momentum_tol
    assert _rel(got["delta"], ref["delta"]) < delta_tol


def test_float16_overflow_skips_updates_and_halves_the_scale(runs):
    run = runs("float16")
    # At 2^15 some float16 kernel gradients of this net overflow: the first steps are skipped (asserted in
    # the fixture to leave the weights untouched) and the scale halves until the gradient fits.
    assert 1 <= run["skipped"] <= 6
    scales = run["scales"]
    assert scales[0] == 2.0 ** 15
    assert scales[: run["skipped"] + 1] == [2.0 ** (15 - i) for i in range(run["skipped"] + 1)]
    assert scales[-1] == scales[run["skipped"]]  # no growth within 2000 steps, no more skips


def test_float32_training_learns_the_batch(runs):
    # The reference the other precisions are held to must itself learn: float32 on this batch goes
    # 3.41 -> 0.074 after 11 updates (factor 0.022).
    losses = runs("float32")["losses"]
    assert runs("float32")["skipped"] == 0
    assert losses[APPLIED - 1] / losses[0] < 0.1, losses


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_training_learns_like_float32(runs, precision):
    ref, got = runs("float32")["losses"], runs(precision)["losses"]
    last = APPLIED - 1
    ref_factor, factor = ref[last] / ref[0], got[last] / got[0]
    # Every precision must fall as far as float32 within 10% (measured: the final factors differ by 0.4%
    # (float16) and 1.2% (bfloat16), the curves by at most 2% at any update count).
    assert abs(math.log(factor / ref_factor)) < math.log(1.1), (precision, got, ref)
    assert abs(got[0] - ref[0]) / ref[0] < 0.02  # the same starting point


def test_float16_clip_step_update_matches_float32_gradient(initial_weights):
    # Stage B's step scales its loss separately: its first applied float16 update must carry the float32
    # gradient of the unrolled clip loss (computed eagerly here, clipped as the step clips it).
    clip = {k: tf.constant(v) for k, v in _clip(length=2).items()}
    reference, _, ref_steps = _build("float32", initial_weights)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(ref_steps.clip_losses(clip)["total"]) / CONFIG.data.clip_batch_size
    grads = tape.gradient(loss, reference.trainable_variables)
    grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, reference.trainable_variables)]
    grads, _ = tf.clip_by_global_norm(grads, CONFIG.optim.clip_norm)
    expected = (1.0 - 0.9) * _flat([g.numpy() for g in grads])  # Adam's first moment after one update

    model, optimizer, steps = _build("float16", initial_weights)
    for _ in range(7):
        steps.clip_step(clip, tf.constant(False))
        if int(optimizer.iterations):
            break
    assert int(optimizer.iterations) == 1
    assert _rel(_flat(_momentums(optimizer)), expected) < 0.02


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_jit_compile_in_mixed_precision_on_a_cpu_is_refused_before_any_work(tmp_path, precision):
    """XLA on the CPU fails on this model's mixed-precision backward pass ("mixed precision is disallowed" at a
    ReluGrad): the run is refused at its start, naming the two flags, not ended by a traceback at step 1."""
    from maskrnn_tf.training.loop import TrainSettingsError, train

    config = CONFIG.override({"jit_compile": True, "precision": precision})
    with pytest.raises(TrainSettingsError) as err:
        train(config, str(tmp_path / "run"), printer=lambda line: None)
    assert "--jit_compile" in str(err.value) and "--precision=float32" in str(err.value)
    assert precision in str(err.value)
    assert not os.path.exists(tmp_path / "run" / "config.json")
    assert keras.mixed_precision.global_policy().name == "float32"  # nothing of the refused run stays set


def test_a_run_the_cli_refuses_leaves_no_folder_it_made(tmp_path):
    """The CLI makes --run_dir before train() refuses a setting: a refused new run left a folder holding only the
    run-dir lock. A folder that was there before stays, with what it held."""
    from conftest import run_cli  # tests/training/conftest.py

    proc = run_cli(str(tmp_path / "run"), "--jit_compile", "--precision=bfloat16")
    assert proc.returncode == 2 and "--jit_compile" in proc.stdout, proc.stdout[-2000:]
    assert not os.path.exists(tmp_path / "run")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    proc = run_cli(str(tmp_path / "mine"), "--jit_compile", "--precision=bfloat16")
    assert proc.returncode == 2
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_jit_compile_on_several_cpu_replicas_is_refused_before_any_work(tmp_path, monkeypatch):
    """XLA cannot reach a variable on another logical CPU device: `--strategy=mirrored --logical_cpus=2
    --jit_compile` ended at step 1 with InvalidArgumentError ("Trying to access resource ... replica_1"), after
    config.json was written, so the rerun without --jit_compile was refused as another config."""
    import types

    from maskrnn_tf.training import loop

    monkeypatch.setattr(loop, "make_strategy", lambda name: types.SimpleNamespace(num_replicas_in_sync=2))
    config = CONFIG.override({"jit_compile": True, "precision": "float32", "strategy": "mirrored"})
    with pytest.raises(loop.TrainSettingsError, match=r"--jit_compile .* one device.*--logical_cpus"):
        loop.train(config, str(tmp_path / "run"), printer=lambda line: None)
    assert not os.path.exists(tmp_path / "run" / "config.json")


def test_a_float16_loss_scale_that_collapses_stops_the_run_and_skips_are_reported(tmp_path, monkeypatch):
    """Gradients that are never finite (a bug, not an overflow) halve the float16 loss scale at every step; Keras'
    LossScaleOptimizer has no floor, so it reaches 0 and every later update is skipped in silence. The run stops
    (NonFiniteLossError, exit 3 in the CLI) once the scale is below 1, before a checkpoint holds it, and every
    skipped update is reported as without loss scaling."""
    from maskrnn_tf.training import steps as steps_module
    from maskrnn_tf.training.checkpoint_files import checkpoint_paths
    from maskrnn_tf.training.loop import NonFiniteLossError, train

    real = steps_module.apply_clipped

    def poisoned(optimizer, grads, variables, clip_norm, replicas=1):
        return real(optimizer, [None if g is None else g * float("nan") for g in grads], variables, clip_norm,
                    replicas)

    monkeypatch.setattr(steps_module, "apply_clipped", poisoned)
    config = TrainConfig().override({
        "data.dataset": "synthetic_vos", "data.height": 32, "data.width": 48, "data.synthetic_train_videos": 4,
        "data.synthetic_video_frames": 6, "data.batch_size": 2, "data.clip_length": 3, "data.val_videos": 0,
        "eval_every": 0,
        "model.width": 0.125, "model.fc_units": 16, "model.side_channels": 4, "precision": "float16",
        "stage_a_steps": 40, "stage_b_steps": 0, "checkpoint_every": 5, "log_every": 5,
    })
    lines = []
    try:
        with pytest.raises(NonFiniteLossError) as err:
            train(config, str(tmp_path / "run"), printer=lines.append)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert "loss scale" in str(err.value) and "ckpt-15" in str(err.value)
    skips = [line for line in lines if "update skipped" in line]
    assert len(skips) == 16 and "(16 so far)" in skips[-1], lines[-5:]
    # The checkpoints kept hold a usable scale (>= 1); none was written once it had collapsed.
    newest = checkpoint_paths(str(tmp_path / "run" / "checkpoints"))[0]
    assert newest.endswith("ckpt-15")
    scale = tf.train.load_variable(newest, "optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE")
    assert scale >= 1.0


def test_a_dropped_gradient_without_loss_scaling_is_reported_as_what_happens(tmp_path, monkeypatch):
    """Without loss scaling a non-finite gradient becomes a zero gradient and Adam still steps on its momentum: the
    warning called that an update skipped, which only float16's LossScaleOptimizer does."""
    from maskrnn_tf.training import steps as steps_module
    from maskrnn_tf.training.loop import train

    real = steps_module.apply_clipped
    calls = tf.Variable(0, dtype=tf.int64, trainable=False)

    def poisoned(optimizer, grads, variables, clip_norm, replicas=1):
        # Traced once: the second and fourth steps' gradients are NaN (the first leaves Adam a momentum).
        factor = tf.where(calls.assign_add(1) % 2 == 0, float("nan"), 1.0)
        return real(optimizer, [None if g is None else g * factor for g in grads], variables, clip_norm, replicas)

    monkeypatch.setattr(steps_module, "apply_clipped", poisoned)
    config = TrainConfig().override({
        "data.dataset": "synthetic_vos", "data.height": 32, "data.width": 48, "data.synthetic_train_videos": 2,
        "data.synthetic_video_frames": 4, "data.batch_size": 2, "data.clip_length": 3, "data.val_videos": 0,
        "eval_every": 0, "model.width": 0.125, "model.fc_units": 16, "model.side_channels": 4,
        "precision": "float32", "stage_a_steps": 4, "stage_b_steps": 0, "checkpoint_every": 4, "log_every": 1,
    })
    lines = []
    train(config, str(tmp_path / "run"), printer=lines.append)
    dropped = [line for line in lines if "non-finite gradient" in line]
    assert len(dropped) == 2 and all("gradient dropped: the update ran on a zero gradient" in line
                                     for line in dropped), lines
    assert not any("skipped" in line for line in dropped)


def test_a_refused_run_leaves_a_folder_whose_lock_another_run_holds(tmp_path):
    """Two runs started on one new folder: the one that made it and was refused removed the folder with the lock the
    other run held."""
    from maskrnn_tf.train import _remove_if_only_lock
    from maskrnn_tf.training.run_dir import LOCK_NAME, run_dir_lock

    run = tmp_path / "run"
    with run_dir_lock(str(run)):
        _remove_if_only_lock(str(run))
        assert (run / LOCK_NAME).exists()
    _remove_if_only_lock(str(run))  # nobody holds it now
    assert not run.exists()


def test_a_run_refused_before_it_took_the_lock_leaves_no_empty_folder(tmp_path):
    """train() refuses some settings before it takes the run-dir lock: the folder the CLI made stayed, empty."""
    from maskrnn_tf.train import _remove_if_only_lock

    run = tmp_path / "run"
    run.mkdir()
    _remove_if_only_lock(str(run))
    assert not run.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    _remove_if_only_lock(str(kept))
    assert (kept / "notes.txt").read_text() == "mine"
