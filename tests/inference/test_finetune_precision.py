"""Online finetuning in float16 (with loss scaling) learns like float32; `segment --precision=float16` uses it."""
import importlib
import json
import os

import numpy as np
import pytest

from maskrnn_tf.inference import FinetuneConfig, finetune, first_frame_loss, load_model
from maskrnn_tf.model.rebuild import compute_dtypes

from .test_inference_segment import run_cli

STEPS = 10


@pytest.fixture(scope="module")
def finetuned(synthetic_video, tiny_model_path):
    """precision -> (first-frame loss before, after, the weight change, the per-iteration losses)."""
    frame, ids = synthetic_video["frames"][0], synthetic_video["masks"][0]
    out = {}
    for precision in ("float32", "float16"):
        model = load_model(tiny_model_path, precision=precision)
        assert compute_dtypes(model) == {precision}
        start = [v.numpy().copy() for v in model.trainable_variables]
        before = first_frame_loss(model, frame, ids, [1, 2])
        losses = finetune(model, frame, ids, [1, 2], synthetic_video["flows_to_next"][0],
                          FinetuneConfig(steps=STEPS, learning_rate=1e-3))
        after = first_frame_loss(model, frame, ids, [1, 2])
        delta = np.concatenate([(v.numpy() - s).ravel() for v, s in zip(model.trainable_variables, start)])
        out[precision] = (before, after, delta, losses)
    return out


def test_float16_finetuning_makes_the_float32_update(finetuned):
    *_, ref, ref_losses = finetuned["float32"]
    *_, got, losses = finetuned["float16"]
    # Every update applied (an overflow skipped at the first loss scale is not counted as an iteration).
    assert np.isfinite(losses).sum() == STEPS and len(losses) >= STEPS
    # Measured: 6% after one update (Adam's first step is nearly sign(g), so tiny gradients flip), 9% after 10.
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 0.2
    np.testing.assert_allclose(np.asarray(losses)[np.isfinite(losses)], ref_losses, rtol=0.05)


def test_float16_finetuning_lowers_the_loss_as_float32_does(finetuned):
    before32, after32, *_ = finetuned["float32"]
    before16, after16, *_ = finetuned["float16"]
    assert after32 < 0.8 * before32, (before32, after32)
    np.testing.assert_allclose(before16, before32, rtol=0.01)
    np.testing.assert_allclose(after16 / before16, after32 / before32, rtol=0.1)


def test_segment_cli_finetunes_in_float16(tmp_path, video_on_disk, tiny_model_path, monkeypatch):
    finetune_module = importlib.import_module("maskrnn_tf.inference.finetune")  # not the re-exported function
    seen = []

    def spy(self, first_frame, first_ids, object_ids, flow_to_next=None, color_model=None, step_seconds=None):
        seen.append((compute_dtypes(self.model), self.config.steps))
        return []  # the float16 finetuning itself is checked above; here: what the CLI hands it

    monkeypatch.setattr(finetune_module.StaticFinetuner, "run", spy)
    frames, mask = video_on_disk
    out = str(tmp_path / "out")
    assert run_cli(f"--video={frames}", f"--first_mask={mask}", f"--model={tiny_model_path}", f"--output={out}",
                   "--finetune_steps=3", "--precision=float16") == 0
    assert seen == [({"float16"}, 3)]
    assert sorted(os.listdir(out)) == [f"{t:05d}.png" for t in range(6)] + ["segment_run.json"]
    # The record says which precision made the masks (auto depends on the machine).
    with open(os.path.join(out, "segment_run.json"), encoding="utf-8") as f:
        assert json.load(f)["precision"] == "float16"


def test_float16_recurrent_finetuning_learns_on_every_video(synthetic_video, tiny_model_path):
    """The recurrent finetuner keeps its optimizer across videos of a shape and resets it per video: the reset
    must give the loss scale back its initial value (zeroed, every later video's gradients were 0/0 = NaN and
    every update was skipped). Each video starts from the same weights, so each makes the same updates, all
    of `steps`: an overflow at the initial loss scale is retried on the same clip, not counted. (The float16
    update of the unrolled step against float32's: tests/training/test_precision_training.py.)"""
    from maskrnn_tf.data.dreaming import DreamConfig
    from maskrnn_tf.inference.recurrent_finetune import RecurrentFinetuneConfig, RecurrentFinetuner

    frame, ids = synthetic_video["frames"][0], synthetic_video["masks"][0]
    config = RecurrentFinetuneConfig(steps=3, time_budget_s=0, num_clips=1, learning_rate=1e-3,
                                     dream=DreamConfig(num_frames=3, object_shift=0.03))
    model = load_model(tiny_model_path, precision="float16")
    initial = [v.numpy() for v in model.weights]
    finetuner = RecurrentFinetuner(model, 2, config)
    # Every video starts at a loss scale 2^9 above the default 2^15 (at which these updates do not overflow):
    # its first updates overflow float16 and halve the scale until one fits.
    optimizer = finetuner._steps.optimizer
    assert float(optimizer.dynamic_scale.numpy()) == 2.0 ** 15
    finetuner._optimizer_start[id(optimizer.dynamic_scale)] = np.float32(2.0 ** 24)
    runs = []
    for _ in range(2):  # two videos of the same shape, as segment's prepare runs them
        for variable, value in zip(model.weights, initial):
            variable.assign(value)
        runs.append(finetuner.run(frame, ids, [1, 2]))
    first, second = runs
    assert first.applied_updates == second.applied_updates == 3, (first.losses, second.losses)
    assert first.steps > 3 and np.isnan(first.losses[0])  # the initial scale overflowed: the clip was retried
    np.testing.assert_allclose(np.asarray(second.losses)[np.isfinite(second.losses)],
                               np.asarray(first.losses)[np.isfinite(first.losses)], rtol=0.02)
