"""`python -m bench finetune`: what its columns measure, checked on fakes whose costs the tests choose."""
import argparse
import time
import types

import numpy as np
import pytest

from bench import finetune as bench_finetune

# The fakes' costs in (fake) seconds.
STATIC_SETUP = [5.0, 3.0, 1.0]  # per call (dataset, optimizer, tf.function): varies more than the updates it frames
STATIC_TRACE, STATIC_UPDATE = 2.0, 1.0
UPDATE, DREAM, INPAINT, TRACE, FIXED = 4.0, 1.0, 5.0, 20.0, 0.5  # recurrent: see FakeRecurrent.run


@pytest.fixture
def fake_bench(monkeypatch):
    """bench.finetune on a fake clock with fake finetunings and dreaming (no TensorFlow work); returns the clock."""
    clock = [0.0]
    setups = iter(STATIC_SETUP)

    def static(model, frame, ids, objects, flow_to_next=None, config=None, color_model=None, step_seconds=None):
        clock[0] += next(setups)
        for index in range(config.steps):
            cost = STATIC_UPDATE + (STATIC_TRACE if index == 0 else 0.0)
            clock[0] += cost
            if step_seconds is not None:
                step_seconds.append(cost)
        return [0.5] * config.steps

    class FakeRecurrent:
        """Costs as RecurrentFinetuner.run's: each of the first num_clips updates dreams its clip (the first also
        inpaints the background), the first update of the finetuner's first run traces."""

        def __init__(self, model, objects, config):
            self.config, self.traced = config, False

        def run(self, frame, ids, objects):
            steps, clips = self.config.steps, self.config.num_clips
            clock[0] += FIXED
            step_seconds = []
            for index in range(steps):
                cost = UPDATE + (DREAM if index < clips else 0.0) + (INPAINT if index == 0 else 0.0)
                cost += TRACE if index == 0 and not self.traced else 0.0
                clock[0] += cost
                step_seconds.append(cost)
            self.traced = True
            return types.SimpleNamespace(step_seconds=step_seconds, steps=steps, window=None,
                                         seconds=FIXED + sum(step_seconds),
                                         dream_seconds=INPAINT + DREAM * min(clips, steps))

    class FakeDreams:
        def __init__(self, frame, ids, config, motion_size=None):
            self.inpainted = False

        def __getitem__(self, index):
            clock[0] += DREAM + (0.0 if self.inpainted else INPAINT)
            self.inpainted = True

    def inpaint(frame, ids, dilation, radius):
        clock[0] += INPAINT
        return frame

    monkeypatch.setattr(bench_finetune, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(bench_finetune, "finetune", static)
    monkeypatch.setattr(bench_finetune, "RecurrentFinetuner", FakeRecurrent)
    monkeypatch.setattr(bench_finetune, "DreamtClips", FakeDreams)
    monkeypatch.setattr(bench_finetune, "inpaint_background", inpaint)
    monkeypatch.setattr(bench_finetune, "_first_frame",
                        lambda args: (np.zeros((24, 40, 3), np.uint8), np.zeros((24, 40), np.uint8)))
    monkeypatch.setattr(bench_finetune, "MaskRNN", lambda config: "model")
    monkeypatch.setattr(bench_finetune, "rebuild_with_precision", lambda model, precision: model)
    monkeypatch.setattr(bench_finetune, "resolve_precision", lambda precision: "float32")
    return clock


def run_bench(argv):
    parser = argparse.ArgumentParser()
    bench_finetune.add_arguments(parser)
    return bench_finetune.run(parser.parse_args(argv))


def test_static_update_time_is_measured_inside_one_call(fake_bench):
    """It was the difference of two finetune calls, each with its own setup and tracing: their variation swamped
    the few updates (the update time came out near zero or negative). Per update timing recovers the update's cost."""
    static_row, _ = run_bench(["--updates", "2", "--budget", "30"])
    assert static_row["update_s"] == STATIC_UPDATE
    assert static_row["first_call_s"] == STATIC_SETUP[1] + STATIC_TRACE + STATIC_UPDATE  # the warm-up is untimed
    assert static_row["budget_s"] == static_row["fit_first_video"] == static_row["fit_later_videos"] == "-"
    assert "no budget" in static_row["note"] and "~205 s" in static_row["note"]  # 6 + 199 x 1 s: 200 updates


def test_recurrent_fit_charges_dreaming_once_and_inpainting_on_later_videos_only(fake_bench):
    """The step times already include dreaming their clips; the fit added the dreaming again, and both fit columns
    were the same expression. On the first video of a frame size the first update (tracing, inpainting the
    background) is charged as long as the second; later videos pay the inpainting."""
    static_row, recurrent_row = run_bench(["--updates", "2", "--budget", "30"])
    assert list(static_row) == list(recurrent_row)  # one table: the same keys in every row
    assert recurrent_row["update_s"] == UPDATE and recurrent_row["dream_s"] == DREAM
    assert recurrent_row["inpaint_s"] == INPAINT and static_row["inpaint_s"] == 0.0
    assert recurrent_row["first_call_s"] == TRACE + INPAINT + DREAM + UPDATE
    assert recurrent_row["budget_s"] == 30.0 and recurrent_row["note"] == ""
    # Unless --layers says otherwise, the layers segment's recurrent finetuning updates by default.
    from maskrnn_tf.flag_validation import AUTO_FINETUNE_LAYERS

    assert recurrent_row["mode"] == f"recurrent, {AUTO_FINETUNE_LAYERS['recurrent']} trained"
    # First video: 0.5 s + 5 updates x (4 + 1 s) = 25.5 s, a sixth would end at 30.5 s.
    assert recurrent_row["fit_first_video"] == 5
    # Later videos: 0.5 + 5 s (inpainting) + 4 x 5 s = 25.5 s, a fifth would end at 30.5 s.
    assert recurrent_row["fit_later_videos"] == 4


def test_fits_follows_the_finetuners_budget_rule():
    """Another update starts while the time charged so far plus the last update's fits; only the first num_clips
    updates dream a clip; the first `always` updates run whatever the budget."""
    # 2 s (first) + 2 s (the second dreams) + 1 s each after: 10 s hold 8 updates.
    assert bench_finetune._fits(10.0, 0.0, first=2.0, update=1.0, dream=1.0, num_clips=2, always=1) == 8
    assert bench_finetune._fits(1.0, 0.0, first=3.0, update=3.0, dream=0.0, num_clips=8, always=2) == 2
    assert bench_finetune._fits(1.0, 0.0, first=3.0, update=3.0, dream=0.0, num_clips=8, always=1) == 1


def test_finetune_reports_the_wall_time_of_each_update():
    """The static bench times updates inside one call: finetune gives one duration per iteration (its losses)."""
    from maskrnn_tf.inference.finetune import FinetuneConfig, finetune
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=32))
    frame = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    ids = np.zeros((32, 48), np.uint8)
    ids[8:24, 12:36] = 1
    step_seconds = []
    start = time.monotonic()
    losses = finetune(model, frame, ids, [1], config=FinetuneConfig(steps=3), step_seconds=step_seconds)
    wall = time.monotonic() - start
    assert len(step_seconds) == len(losses) == 3
    assert all(s > 0 for s in step_seconds) and sum(step_seconds) <= wall
    assert step_seconds[0] > max(step_seconds[1:])  # the first traces the update
