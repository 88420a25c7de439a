"""Recurrent online finetuning on dreamt clips (maskrnn_tf.inference.recurrent_finetune), with a tiny model."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.data.dreaming import DreamConfig, dream_clip
from maskrnn_tf.inference import load_model
from maskrnn_tf.inference.recurrent_finetune import (
    RecurrentFinetuneConfig, RecurrentFinetuner, clip_batch, recurrent_finetune,
)
from maskrnn_tf.ops import mask_to_box
from maskrnn_tf.training.losses import frame_losses

SHORT = DreamConfig(num_frames=3, object_shift=0.03)


def _first(synthetic_video):
    return synthetic_video["frames"][0], synthetic_video["masks"][0]


def _reference_first_loss(model, clip):
    """The recurrence written out with MaskRNN.step: from the true first mask, each prediction fed on."""
    prev = np.stack([clip.masks[0] == i for i in (1, 2)]).astype(np.float32)
    boxes, _ = mask_to_box(tf.constant(prev))
    total = 0.0
    for t in range(1, clip.frames.shape[0]):
        out = model.step(clip.frames[t], clip.flows_to_prev[t], clip.flows_to_next[t], prev, boxes, training=True)
        truth = np.stack([clip.masks[t] == i for i in (1, 2)]).astype(np.float32)
        total += frame_losses(out, truth, None, model.config.delta_weights, 1.0, 1.0)["total"].numpy()
        prev, boxes = out["probs"], out["boxes"]
    return float(np.mean(total))


def test_recurrent_finetuning_fits_the_dreamt_clips_within_its_budget(synthetic_video, tiny_model_path):
    # One finetuner for all checks: tracing the unrolled step dominates the time of this test.
    model = load_model(tiny_model_path)
    frame, ids = _first(synthetic_video)
    config = RecurrentFinetuneConfig(steps=20, time_budget_s=0, num_clips=2, dream=SHORT, learning_rate=1e-3,
                                     reverse_every_other=True)
    finetuner = RecurrentFinetuner(model, 2, config)
    expected_first = _reference_first_loss(model, dream_clip(frame, ids, seed=0, config=SHORT))  # clip 0
    before = finetuner.loss(frame, ids, [1, 2])
    result = finetuner.run(frame, ids, [1, 2])
    after = finetuner.loss(frame, ids, [1, 2])
    # The first update's loss is the unrolled recurrence on the first clip, all objects, before any update.
    assert result.losses[0] == pytest.approx(expected_first, rel=1e-4)
    assert result.steps == 20 and not result.stopped_by_budget and np.isfinite(result.losses).all()
    assert 0 < result.dream_seconds < result.seconds
    assert after < 0.8 * before, (before, after)

    # The budget ends a run that would go on much longer; no update starts unless the last one's duration
    # still fits, so the overshoot is at most about one update.
    budget = 3.0
    finetuner.config = dataclasses.replace(config, steps=100000, time_budget_s=budget)
    result = finetuner.run(frame, ids, [1, 2])
    assert result.stopped_by_budget and 1 <= result.steps < 100000
    assert len(result.step_seconds) == result.steps
    assert result.seconds <= budget + max(result.step_seconds) + 0.1, (result.seconds, result.step_seconds)


def test_clip_batch_and_bad_object_ids(synthetic_video):
    frame, ids = _first(synthetic_video)
    clip = dream_clip(frame, ids, seed=1, config=SHORT)
    batch = clip_batch(clip, [2, 1])
    assert batch["frames"].shape == (2, 3) + frame.shape
    np.testing.assert_array_equal(batch["masks"][0].numpy(), clip.masks == 2)
    np.testing.assert_array_equal(batch["masks"][1].numpy(), clip.masks == 1)
    for key, flows in (("flows_to_prev", clip.flows_to_prev), ("flows_to_next", clip.flows_to_next)):
        np.testing.assert_array_equal(batch[key][1].numpy(), flows)
    with pytest.raises(ValueError, match=r"object ids \[7\] are not in the first-frame mask"):
        recurrent_finetune(None, frame, ids, [1, 7])
    with pytest.raises(ValueError, match="object_ids is empty"):
        recurrent_finetune(None, frame, ids, [])
    with pytest.raises(ValueError, match="num_clips >= 1"):
        RecurrentFinetuneConfig(num_clips=0)
