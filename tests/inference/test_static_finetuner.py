"""StaticFinetuner: static online finetuning video after video, its update traced once, each run a fresh start."""
import importlib

import numpy as np

from maskrnn_tf.inference import FinetuneConfig, finetune, load_model
from maskrnn_tf.inference.finetune import restore_weights


def test_each_run_is_a_fresh_finetuning_and_the_update_is_traced_once(synthetic_video, tiny_model_path, monkeypatch,
                                                                      no_autograph):
    """Two videos through one finetuner give what two new `finetune` calls give (every optimizer variable starts
    again: Adam's moments and count, so the learning-rate schedule, and under float16 the loss scale), with one
    trace of the update for both."""
    from maskrnn_tf.inference.finetune import StaticFinetuner

    module = importlib.import_module("maskrnn_tf.inference.finetune")
    traced = []
    original = module._batch_losses

    def counting(*args, **kwargs):  # Python runs only while tf.function traces
        traced.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "_batch_losses", counting)
    frames, masks, flows = synthetic_video["frames"], synthetic_video["masks"], synthetic_video["flows_to_next"]
    videos = [(frames[0], masks[0], flows[0]), (frames[3], masks[3], flows[3])]
    config = FinetuneConfig(steps=4, learning_rate=1e-3)

    model = load_model(tiny_model_path, precision="float32")
    start = [v.numpy() for v in model.weights]
    expected = []
    for frame, ids, flow in videos:  # the reference: a new finetuning for each video
        restore_weights(model, start)
        losses = finetune(model, frame, ids, [1, 2], flow, config)
        expected.append((losses, [v.numpy() for v in model.trainable_variables]))
    fresh_traces = len(traced)
    traced.clear()

    finetuner = StaticFinetuner(model, config)
    for (frame, ids, flow), (losses, weights) in zip(videos, expected):
        restore_weights(model, start)
        for variable in finetuner.optimizer.variables:  # whatever the last video (or anything) left there
            variable.assign(np.full(variable.shape, 7, variable.dtype))
        got = finetuner.run(frame, ids, [1, 2], flow)
        np.testing.assert_allclose(got, losses, rtol=1e-5)
        for variable, value in zip(model.trainable_variables, weights):
            np.testing.assert_allclose(variable.numpy(), value, rtol=1e-5, atol=1e-7)
    assert fresh_traces == 2 and len(traced) == 1
    assert no_autograph == []  # the update is traced unconverted


def test_segments_callback_traces_the_static_update_once_for_every_video(video_on_disk, tiny_model_path,
                                                                         monkeypatch):
    """finetuning_prepare (segment --finetune=static) made a new optimizer and update for each video: one trace
    of the two-stream update per video (seconds each on a CPU, with no budget to absorb them)."""
    from maskrnn_tf.inference import VideoSource, read_first_mask
    from maskrnn_tf.inference.finetune import finetuning_prepare

    module = importlib.import_module("maskrnn_tf.inference.finetune")
    traced = []
    original = module._batch_losses
    monkeypatch.setattr(module, "_batch_losses", lambda *a, **k: traced.append(1) or original(*a, **k))
    model = load_model(tiny_model_path, precision="float32")
    start = [v.numpy() for v in model.weights]
    frames_dir, mask_path = video_on_disk
    source, first = VideoSource(frames_dir), read_first_mask(mask_path)
    prepare = finetuning_prepare(model, object(), None, 28, FinetuneConfig(steps=2, learning_rate=1e-3))
    prepare(source, first)
    after_first = [v.numpy() for v in model.weights]
    prepare(source, first)  # the same video again: from the same weights, the same finetuning
    assert len(traced) == 1 and prepare.log[source.name]["updates"] == 2
    for variable, value, before in zip(model.weights, after_first, start):
        np.testing.assert_allclose(variable.numpy(), value, rtol=1e-5, atol=1e-7)
    assert any(not np.array_equal(a, b) for a, b in zip(after_first, start))
