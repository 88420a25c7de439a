"""The compiled train steps: BPTT really reaches the seed mask through the warps; a step changes weights."""
import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.model import MaskRNN
from maskrnn_tf.ops.boxes import mask_to_box
from maskrnn_tf.training.config import TrainConfig
from maskrnn_tf.training.steps import TrainSteps, make_optimizer


def _tiny(**over):
    values = {"model.width": 0.125, "model.fc_units": 16, "model.side_channels": 4, "data.batch_size": 2,
              "data.clip_batch_size": 2, "optim.learning_rate": 1e-3}
    values.update(over)
    return TrainConfig().override(values)


def _clip(batch=2, length=4, height=24, width=32, shift=2.0):
    """Square objects moving right by `shift` px per frame, with the exact (u, v) flows."""
    masks = np.zeros((batch, length, height, width), np.float32)
    for t in range(length):
        x0 = int(6 + shift * t)
        masks[:, t, 6:16, x0:x0 + 10] = 1
    rng = np.random.default_rng(0)
    frames = rng.uniform(0, 255, (batch, length, height, width, 3)).astype(np.float32)
    to_prev = np.zeros((batch, length, height, width, 2), np.float32)
    to_next = np.zeros_like(to_prev)
    to_prev[:, 1:, ..., 0] = -shift
    to_next[:, :-1, ..., 0] = shift
    return {"frames": frames, "flows_to_prev": to_prev, "flows_to_next": to_next, "masks": masks,
            "void": np.zeros(masks.shape, np.float32)}


def _steps(config):
    model = MaskRNN(config.model)
    optimizer = make_optimizer(config, "float32")
    return TrainSteps(model, optimizer, config, tf.distribute.get_strategy(), tf.Variable(0, dtype=tf.int64))


def _seed_gradient(steps, clip):
    seed = tf.constant(clip["masks"][:, 0])
    with tf.GradientTape() as tape:
        tape.watch(seed)
        batch = {k: tf.constant(v) for k, v in clip.items()}
        batch["masks"] = tf.concat([seed[:, None], batch["masks"][:, 1:]], axis=1)
        loss = tf.reduce_sum(steps.clip_losses(batch)["total"])
    return tape.gradient(loss, seed)


def test_bptt_reaches_the_seed_mask_through_the_warps():
    tf.keras.utils.set_random_seed(0)
    steps = _steps(_tiny(**{"loss.loc_weight": 0.0}))
    clip = _clip(length=4)
    # Only the LAST frame is scored (void elsewhere): the seed (frame 0) reaches that loss only through the
    # predictions of frames 1 and 2 and three warps.
    clip["void"][:, :-1] = 1.0
    grad = _seed_gradient(steps, clip)
    assert grad is not None
    grad = grad.numpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
    # Without the recurrence (the last frame only sees frame T-2's prediction) the seed would not matter:
    # a clip of length 2 scoring nothing leaves a zero gradient, a sanity check that the test can fail.
    clip2 = _clip(length=2)
    clip2["void"][:] = 1.0
    assert np.abs(_seed_gradient(steps, clip2).numpy()).sum() == 0.0


def test_recompute_gives_the_same_gradients_and_update():
    clip = _clip(length=3)
    results = []
    for recompute in (False, True):
        tf.keras.utils.set_random_seed(2)
        steps = _steps(_tiny(recompute=recompute, reverse_clip_prob=0.0))
        before = [v.numpy().copy() for v in steps.model.trainable_variables]
        metrics = steps.clip_step({k: tf.constant(v) for k, v in clip.items()}, tf.constant(False))
        after = [v.numpy() for v in steps.model.trainable_variables]
        results.append((float(metrics["loss"]), [a - b for a, b in zip(after, before)]))
    assert abs(results[0][0] - results[1][0]) < 1e-5
    changed = sum(np.abs(d).sum() > 0 for d in results[0][1])
    assert changed > len(results[0][1]) // 2  # a real update happened
    for d0, d1 in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(d0, d1, atol=1e-6)


def test_the_first_update_is_traced_once(no_autograph):
    """An optimizer not built before the first update made its variables inside the traced step, and TensorFlow
    then traced the step a second time (about 10 s for a tiny network here; a training or a video's finetuning
    pays it at start). TrainSteps builds the optimizer it is given. Both steps are traced without autograph."""
    tf.keras.utils.set_random_seed(5)
    steps = _steps(_tiny())
    assert steps.optimizer.built and len(steps.optimizer.variables) > len(steps.model.trainable_variables)
    clip = {k: tf.constant(v) for k, v in _clip(length=2).items()}
    for _ in range(2):
        steps.clip_step(clip, tf.constant(False))
    assert steps.clip_step.experimental_get_tracing_count() == 1
    steps.static_step({"frame": clip["frames"][:, 1], "flow_to_prev": clip["flows_to_prev"][:, 1],
                       "flow_to_next": clip["flows_to_next"][:, 1], "prev_mask": clip["masks"][:, 0],
                       "mask": clip["masks"][:, 1], "void": clip["void"][:, 1]})
    assert no_autograph == []


def test_a_non_finite_gradient_skips_the_update():
    tf.keras.utils.set_random_seed(4)
    steps = _steps(_tiny())
    before = [v.numpy().copy() for v in steps.model.trainable_variables]
    bad = _clip(length=2)
    bad["masks"][0, 1, 3, 3] = np.nan  # one poisoned target pixel: NaN loss and NaN gradients
    metrics = steps.clip_step({k: tf.constant(v) for k, v in bad.items()}, tf.constant(False))
    assert not np.isfinite(float(metrics["grad_norm"])) and not np.isfinite(float(metrics["loss"]))
    for b, v in zip(before, steps.model.trainable_variables):  # fresh Adam, zero gradient: nothing moves
        np.testing.assert_array_equal(v.numpy(), b)
    clip = {k: tf.constant(v) for k, v in _clip(length=2).items()}
    metrics = steps.clip_step(clip, tf.constant(False))  # a normal update follows
    assert np.isfinite(float(metrics["grad_norm"]))
    assert all(np.all(np.isfinite(v.numpy())) for v in steps.model.trainable_variables)
    assert any(np.abs(v.numpy() - b).sum() > 0 for b, v in zip(before, steps.model.trainable_variables))


def test_reversed_clip_swaps_flows_and_order():
    tf.keras.utils.set_random_seed(3)
    steps = _steps(_tiny())
    clip = _clip(length=3)
    reversed_clip = {k: v[:, ::-1].copy() for k, v in clip.items()}
    reversed_clip["flows_to_prev"], reversed_clip["flows_to_next"] = (clip["flows_to_next"][:, ::-1].copy(),
                                                                      clip["flows_to_prev"][:, ::-1].copy())
    a = steps.clip_losses({k: tf.constant(v) for k, v in clip.items()}, tf.constant(True))
    b = steps.clip_losses({k: tf.constant(v) for k, v in reversed_clip.items()}, tf.constant(False))
    np.testing.assert_allclose(a["total"].numpy(), b["total"].numpy(), rtol=1e-5)


def test_a_clip_whose_last_frame_has_no_object_is_not_played_backwards():
    """Played backwards, a clip whose object has left by its last frame started the recurrence from an empty mask
    (and a whole-frame proposal) and trained the network to make the object appear from nothing, which segmenting
    never asks. Such an element of the batch plays forwards; the others still play backwards."""
    tf.keras.utils.set_random_seed(7)
    steps = _steps(_tiny())
    clip = _clip(length=3)
    clip["masks"][1, -1] = 0  # element 1's object is gone in the last frame
    batch = {k: tf.constant(v) for k, v in clip.items()}
    forwards = steps.clip_losses(batch, tf.constant(False))["total"].numpy()
    backwards = steps.clip_losses(batch, tf.constant(True))["total"].numpy()
    full = {k: tf.constant(v) for k, v in _clip(length=3).items()}
    np.testing.assert_allclose(backwards[1], forwards[1], rtol=1e-6)
    np.testing.assert_allclose(backwards[0], steps.clip_losses(full, tf.constant(True))["total"].numpy()[0],
                               rtol=1e-6)
    assert abs(backwards[0] - forwards[0]) > 1e-4  # element 0 did play backwards
    # With seed masks, the element that plays forwards takes the forwards seed.
    seeds = np.stack([clip["masks"][:, 0], clip["masks"][:, -1]], axis=1)
    seeded = steps.clip_losses({**batch, "seed_masks": tf.constant(seeds)}, tf.constant(True))["total"].numpy()
    np.testing.assert_allclose(seeded, backwards, rtol=1e-6)


def test_seed_masks_start_the_recurrence_in_their_direction():
    tf.keras.utils.set_random_seed(5)
    steps = _steps(_tiny())
    clip = _clip(length=3)
    plain = {k: tf.constant(v) for k, v in clip.items()}
    grown = np.zeros_like(clip["masks"][:, :2])
    grown[:, 0, 2:20, 2:24] = 1  # a forwards seed far larger than frame 0's object
    grown[:, 1] = clip["masks"][:, -1]  # the backwards seed: the truth of the last frame
    for reverse in (False, True):
        base = steps.clip_losses(plain, tf.constant(reverse))["total"].numpy()
        truth_seeds = steps.clip_losses(
            {**plain, "seed_masks": tf.constant(clip["masks"][:, [0, -1]])}, tf.constant(reverse))["total"].numpy()
        np.testing.assert_allclose(truth_seeds, base, rtol=1e-6)  # the truth as seed = no seed_masks
        seeded = steps.clip_losses({**plain, "seed_masks": tf.constant(grown)}, tf.constant(reverse))["total"]
        if reverse:  # played backwards the last frame's seed (the truth here) starts it
            np.testing.assert_allclose(seeded.numpy(), base, rtol=1e-6)
        else:
            assert np.all(np.abs(seeded.numpy() - base) > 1e-4)


def test_burn_in_frames_seed_the_clip_with_the_networks_own_prediction():
    tf.keras.utils.set_random_seed(6)
    steps = _steps(_tiny(**{"data.clip_burn_in": 2}))
    clip = _clip(length=5)
    batch = {k: tf.constant(v) for k, v in clip.items()}
    got = steps.clip_losses(batch)
    # Reference: the model run by hand, frames 1-2 without loss, frames 3-4 scored from their prediction.
    prev = tf.constant(clip["masks"][:, 0])
    prev_boxes = mask_to_box(prev)[0]
    want = None
    for t in range(1, 5):
        out = steps.model({"frame": batch["frames"][:, t], "flow_to_prev": batch["flows_to_prev"][:, t],
                           "flow_to_next": batch["flows_to_next"][:, t], "prev_probs": prev,
                           "prev_boxes": prev_boxes}, training=True)
        if t > 2:
            losses = steps._losses(out, batch["masks"][:, t], batch["void"][:, t])
            want = losses if want is None else {k: want[k] + losses[k] for k in losses}
        prev, prev_boxes = out["probs"], out["boxes"]
    for key in ("total", "seg", "loc"):
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), rtol=1e-5)
    # The burn-in is a constant seed: no gradient reaches the first mask, unlike without a burn-in.
    grad = _seed_gradient(steps, clip)
    assert grad is None or np.abs(grad.numpy()).sum() == 0.0
    plain = _steps(_tiny())
    plain.model.set_weights(steps.model.get_weights())
    assert np.abs(_seed_gradient(plain, clip).numpy()).sum() > 0
    with pytest.raises(ValueError, match="burn-in"):
        steps.clip_losses({k: tf.constant(v) for k, v in _clip(length=3).items()})


def _dense_update(config, grad_value=0.0, policy="float32"):
    """One update of a small Dense layer by make_optimizer(config): (kernel, bias) before and after."""
    tf.keras.utils.set_random_seed(0)
    layer = tf.keras.layers.Dense(3)
    layer.build((None, 4))
    layer.bias.assign(np.full(3, 0.5, np.float32))
    before = [v.numpy() for v in (layer.kernel, layer.bias)]
    grads = [tf.fill(tf.shape(v), grad_value) for v in (layer.kernel, layer.bias)]
    make_optimizer(config, policy).apply_gradients(zip(grads, [layer.kernel, layer.bias]))
    return before, [v.numpy() for v in (layer.kernel, layer.bias)]


def test_weight_decay_is_decoupled_and_spares_the_biases():
    # AdamW: w <- w - lr * wd * w besides Adam's step; with a zero gradient Adam's step is zero, so one update
    # at the schedule's first rate (1e-3) scales the kernel by exactly 1 - 1e-3 * 2 and leaves the bias alone.
    (kernel, bias), (new_kernel, new_bias) = _dense_update(_tiny(**{"optim.weight_decay": 2.0}))
    np.testing.assert_allclose(new_kernel, kernel * (1 - 1e-3 * 2.0), rtol=1e-6)
    np.testing.assert_array_equal(new_bias, bias)
    # The same under float16's LossScaleOptimizer, which hands the update to the Adam inside it.
    (kernel, _), (new_kernel, _) = _dense_update(_tiny(**{"optim.weight_decay": 2.0}), policy="mixed_float16")
    np.testing.assert_allclose(new_kernel, kernel * (1 - 1e-3 * 2.0), rtol=1e-6)
    # Off by default: the same update changes nothing.
    (kernel, bias), (new_kernel, new_bias) = _dense_update(_tiny())
    np.testing.assert_array_equal(new_kernel, kernel)
    np.testing.assert_array_equal(new_bias, bias)
    # Decoupled: added to Adam's step (first Adam step = lr * sign(g) for a constant gradient g), not fed
    # through its moments.
    (kernel, _), (new_kernel, _) = _dense_update(_tiny(**{"optim.weight_decay": 2.0}), grad_value=1.0)
    np.testing.assert_allclose(new_kernel, kernel * (1 - 1e-3 * 2.0) - 1e-3, rtol=1e-5, atol=1e-7)


def test_negative_weight_decay_is_refused():
    from maskrnn_tf.training.config_bounds import check_config_bounds

    config = _tiny(**{"optim.weight_decay": -0.1})
    with pytest.raises(ValueError, match=r"optim.weight_decay=-0.1: must be >= 0"):
        check_config_bounds(config)
    check_config_bounds(_tiny(**{"optim.weight_decay": 0.0}))


def test_the_steps_add_loss_iou_weight_times_the_soft_jaccard_to_seg():
    from maskrnn_tf.training.losses import soft_jaccard_per_example

    tf.keras.utils.set_random_seed(7)
    steps = _steps(_tiny(**{"loss.iou_weight": 0.5}))
    plain = _steps(_tiny())
    plain.model.set_weights(steps.model.get_weights())
    clip = _clip(length=3)
    batch = {k: tf.constant(v) for k, v in clip.items()}
    prev = tf.constant(clip["masks"][:, 0])
    out = steps.model({"frame": batch["frames"][:, 1], "flow_to_prev": batch["flows_to_prev"][:, 1],
                       "flow_to_next": batch["flows_to_next"][:, 1], "prev_probs": prev,
                       "prev_boxes": mask_to_box(prev)[0]}, training=False)
    target, void = batch["masks"][:, 1], batch["void"][:, 1]
    with_term, without = steps._losses(out, target, void)["seg"], plain._losses(out, target, void)["seg"]
    jaccard = soft_jaccard_per_example(out["logits"], target, void)
    np.testing.assert_allclose(with_term.numpy(), without.numpy() + 0.5 * jaccard.numpy(), rtol=1e-5)
    assert float(tf.reduce_min(jaccard)) > 0.01  # a random network: the term is there to be added


@pytest.mark.parametrize("recompute", [False, True])
def test_the_colour_tables_reach_every_unrolled_frame_and_the_static_step(recompute):
    """model.color_prior_input: the batch's color_model [B, 4096] is fed to each frame of the recurrence (also
    through tf.recompute_grad) and to the stage A step; other tables give other losses, and a batch without
    them is refused by name."""
    tf.keras.utils.set_random_seed(5)
    steps = _steps(_tiny(recompute=recompute, **{"model.color_prior_input": True}))
    clip = {k: tf.constant(v) for k, v in _clip(length=3).items()}
    rng = np.random.default_rng(1)
    tables = rng.uniform(0, 1, (2, 4096)).astype(np.float32)
    losses = [float(tf.reduce_sum(steps.clip_losses({**clip, "color_model": tf.constant(t)})["total"]))
              for t in (tables, 1.0 - tables)]
    assert np.isfinite(losses).all() and abs(losses[0] - losses[1]) > 1e-4
    metrics = steps.clip_step({**clip, "color_model": tf.constant(tables)}, tf.constant(False))
    assert np.isfinite(float(metrics["loss"]))
    static = {"frame": clip["frames"][:, 1], "flow_to_prev": clip["flows_to_prev"][:, 1],
              "flow_to_next": clip["flows_to_next"][:, 1], "prev_mask": clip["masks"][:, 0],
              "mask": clip["masks"][:, 1], "void": clip["void"][:, 1]}
    a, b = (float(tf.reduce_sum(steps.static_losses({**static, "color_model": tf.constant(t)})["total"]))
            for t in (tables, 1.0 - tables))
    assert abs(a - b) > 1e-4
    with pytest.raises(ValueError, match="color_model"):
        steps.static_losses(static)
