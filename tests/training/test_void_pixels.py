"""Void pixels (id 255) in training data: the three pipelines turn them into the `void` map, and the losses of
the train steps and of online finetuning leave them out (checked against a NumPy reference)."""
import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.data.augment import AugmentConfig
from maskrnn_tf.data.pipelines import make_clip_dataset, make_finetune_dataset, make_static_dataset
from maskrnn_tf.data.sources import ArraySource
from maskrnn_tf.inference.finetune import FinetuneConfig, _batch_losses, first_frame_loss
from maskrnn_tf.model import MaskRNN
from maskrnn_tf.ops import mask_to_box
from maskrnn_tf.training.config import TrainConfig
from maskrnn_tf.training.steps import TrainSteps, make_optimizer

H, W, T = 32, 40, 3
# Identity geometry (output size = input size, no randomness): the maps come out exactly as they went in.
IDENTITY = AugmentConfig(crop_size=(H, W), random=False)


def _video():
    """Object 1 (a square moving right), object 2 (a bar), and a void band (255) along each object's border."""
    rng = np.random.default_rng(0)
    masks = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        masks[t, 8:20, 6 + 2 * t:18 + 2 * t] = 1
        masks[t, 7, 5 + 2 * t:19 + 2 * t] = 255
        masks[t, 24:28, 4:36] = 2
        masks[t, 28, 4:36] = 255
    return {"frames": rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8), "masks": masks,
            "flows_to_prev": np.zeros((T, H, W, 2), np.float32), "flows_to_next": np.zeros((T, H, W, 2), np.float32)}


def _tiny_config(**over):
    values = {"model.width": 0.125, "model.fc_units": 16, "model.side_channels": 4, "data.batch_size": 2,
              "data.clip_batch_size": 2, "optim.learning_rate": 1e-3, "loss.loc_weight": 0.0}
    values.update(over)
    return TrainConfig().override(values)


def _balanced_bce(logits, labels, void):
    """NumPy (float64) class-balanced BCE of one example, void pixels removed before anything is counted."""
    keep = void == 0
    x, y = logits[keep].astype(np.float64), labels[keep].astype(np.float64)
    n_fg, n_bg = y.sum(), (1 - y).sum()
    n = n_fg + n_bg
    log_p, log_q = -np.logaddexp(0, -x), -np.logaddexp(0, x)  # log sigmoid(x), log(1 - sigmoid(x))
    return ((n_bg / n) * -(y * log_p).sum() + (n_fg / n) * -((1 - y) * log_q).sum()) / n


def test_static_and_clip_pipelines_turn_255_into_the_void_map():
    video = _video()
    source = ArraySource([video])
    static = list(make_static_dataset(source, augment=IDENTITY, shuffle=False, repeat=False))
    # Frames t = 1, 2, objects 1 and 2 in turn (item order: video, t, object id).
    assert len(static) == 4
    for element, (t, k) in zip(static, [(1, 1), (1, 2), (2, 1), (2, 2)]):
        np.testing.assert_array_equal(element["void"].numpy(), (video["masks"][t] == 255).astype(np.float32))
        np.testing.assert_array_equal(element["mask"].numpy(), (video["masks"][t] == k).astype(np.float32))
    clips = list(make_clip_dataset(source, clip_length=T, augment=IDENTITY, shuffle=False, repeat=False))
    assert len(clips) == 2
    for clip, k in zip(clips, (1, 2)):
        np.testing.assert_array_equal(clip["void"].numpy(), (video["masks"] == 255).astype(np.float32))
        np.testing.assert_array_equal(clip["masks"].numpy(), (video["masks"] == k).astype(np.float32))


def test_finetune_pipeline_turns_255_of_the_first_mask_into_the_void_map():
    video = _video()
    elements = list(make_finetune_dataset(video["frames"][0], video["masks"][0], [1, 2], augment=IDENTITY).take(2))
    for element, k in zip(elements, (1, 2)):
        np.testing.assert_array_equal(element["void"].numpy(), (video["masks"][0] == 255).astype(np.float32))
        np.testing.assert_array_equal(element["mask"].numpy(), (video["masks"][0] == k).astype(np.float32))


def _flip_under_void(batch, mask_key, outside=False):
    """The batch with the target flipped (0 <-> 1) on every void pixel: a loss that ignores void cannot tell.
    With `outside`, flipped on every other pixel instead: the control, which any loss of the targets sees."""
    flipped = dict(batch)
    void = batch["void"].numpy() != 0
    where = ~void if outside else void
    mask = batch[mask_key].numpy()
    flipped[mask_key] = tf.constant(np.where(where, 1.0 - mask, mask).astype(np.float32))
    assert void.any() and where.any()
    return flipped


@pytest.mark.parametrize("loc_weight", [0.0, 1.0])
def test_stage_a_loss_leaves_void_pixels_out(loc_weight):
    tf.keras.utils.set_random_seed(0)
    config = _tiny_config(**{"loss.loc_weight": loc_weight})
    model = MaskRNN(config.model)
    steps = TrainSteps(model, make_optimizer(config, "float32"), config, tf.distribute.get_strategy(),
                       tf.Variable(0, dtype=tf.int64))
    source = ArraySource([_video()])
    batch = next(iter(make_static_dataset(source, augment=IDENTITY, shuffle=False, repeat=False, batch_size=2)))
    losses = steps.static_losses(batch, training=False)
    # Reference: the model's own logits, scored in NumPy without the void pixels.
    prev = tf.cast(batch["prev_mask"], tf.float32)
    logits = model({"frame": batch["frame"], "flow_to_prev": batch["flow_to_prev"],
                    "flow_to_next": batch["flow_to_next"], "prev_probs": prev, "prev_boxes": mask_to_box(prev)[0]},
                   training=False)["logits"].numpy()
    want = [_balanced_bce(logits[i], batch["mask"].numpy()[i], batch["void"].numpy()[i]) for i in range(2)]
    np.testing.assert_allclose(losses["seg"].numpy(), want, rtol=1e-5)
    # Labels under void do not matter: not to the segmentation loss, not to the box of the localization loss.
    flipped = steps.static_losses(_flip_under_void(batch, "mask"), training=False)
    for key in ("seg", "loc", "total"):
        np.testing.assert_allclose(flipped[key].numpy(), losses[key].numpy(), rtol=1e-6, err_msg=key)
    # Control: without the void map the same flip does change the loss.
    no_void = {k: v for k, v in batch.items() if k != "void"}
    changed = steps.static_losses({**no_void, "mask": _flip_under_void(batch, "mask")["mask"]}, training=False)
    assert not np.allclose(changed["seg"].numpy(), steps.static_losses(no_void, training=False)["seg"].numpy())


def test_stage_b_loss_leaves_void_pixels_out():
    tf.keras.utils.set_random_seed(0)
    config = _tiny_config(**{"loss.loc_weight": 1.0})
    model = MaskRNN(config.model)
    steps = TrainSteps(model, make_optimizer(config, "float32"), config, tf.distribute.get_strategy(),
                       tf.Variable(0, dtype=tf.int64))
    source = ArraySource([_video()])
    batch = next(iter(make_clip_dataset(source, clip_length=T, augment=IDENTITY, shuffle=False, repeat=False,
                                        batch_size=2)))
    # Frame 0 seeds the recurrence: flip only frames 1..T-1 (the scored ones).
    def flip(outside):
        flipped = _flip_under_void(batch, "masks", outside)
        flipped["masks"] = tf.concat([batch["masks"][:, :1], flipped["masks"][:, 1:]], axis=1)
        return steps.clip_losses(flipped)

    base, got = steps.clip_losses(batch), flip(outside=False)
    for key in ("seg", "loc", "total"):
        np.testing.assert_allclose(got[key].numpy(), base[key].numpy(), rtol=1e-6, err_msg=key)
    assert float(tf.reduce_min(base["seg"])) > 0
    # Control: the same flip on the scored pixels outside void changes the loss.
    assert not np.allclose(flip(outside=True)["seg"].numpy(), base["seg"].numpy(), rtol=1e-3)


def test_finetuning_loss_leaves_void_of_the_first_mask_out():
    tf.keras.utils.set_random_seed(0)
    model = MaskRNN(_tiny_config().model)
    video = _video()
    frame, ids = video["frames"][0], video["masks"][0]
    config = FinetuneConfig(steps=1, loc_weight=0.0)
    # The un-augmented first-frame loss against NumPy: the objects' mean of the balanced BCE without void.
    masks = np.stack([(ids == k).astype(np.float32) for k in (1, 2)])
    logits = model({"frame": np.broadcast_to(frame.astype(np.float32), (2, H, W, 3)),
                    "flow_to_prev": np.zeros((2, H, W, 2), np.float32),
                    "flow_to_next": np.zeros((2, H, W, 2), np.float32), "prev_probs": masks,
                    "prev_boxes": mask_to_box(tf.constant(masks))[0]}, training=False)["logits"].numpy()
    want = np.mean([_balanced_bce(logits[i], masks[i], ids == 255) for i in range(2)])
    assert first_frame_loss(model, frame, ids, [1, 2], config) == pytest.approx(want, rel=1e-5)
    # The loss finetuning minimises, on the finetune pipeline's batches, ignores labels under void too.
    batch = next(iter(make_finetune_dataset(frame, ids, [1, 2], batch_size=2)))
    full = FinetuneConfig(steps=1, loc_weight=1.0)
    base = float(_batch_losses(model, batch, full, training=False))
    assert float(_batch_losses(model, _flip_under_void(batch, "mask"), full, training=False)) == pytest.approx(
        base, rel=1e-6)
    # Control: flipped outside void, the labels do count.
    changed = float(_batch_losses(model, _flip_under_void(batch, "mask", outside=True), full, training=False))
    assert changed != pytest.approx(base, rel=1e-3)
