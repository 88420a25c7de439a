"""`segment --finetune`: which finetuning a model gets, its defaults, and the CLI wiring of recurrent finetuning."""
import json
import os
import shutil

import numpy as np
import pytest
from absl import flags

from maskrnn_tf.inference import read_first_mask, trained_step, training_config
from maskrnn_tf.inference.finetune_choice import choose_finetuning, describe_choice
from maskrnn_tf.inference.recurrent_finetune import crop_window

from .test_inference_segment import run_cli

STAGE_B = {"stage_a_steps": 10, "stage_b_steps": 5,
           "loss": {"seg_weight": 2.0, "loc_weight": 0.1, "class_balance": False, "loc_min_iou": 0.4,
                    "iou_weight": 0.5}}
STAGE_A_ONLY = {"stage_a_steps": 10, "stage_b_steps": 0, "loss": {"loc_weight": 0.0, "class_balance": True}}


def test_auto_follows_how_the_model_was_trained():
    recurrent = choose_finetuning("auto", STAGE_B)
    assert (recurrent.mode, recurrent.steps, recurrent.seg_weight, recurrent.loc_weight, recurrent.class_balance) == (
        "recurrent", 50, 2.0, 0.1, False)
    assert "stage B" in describe_choice(recurrent, 60.0) and "or 60 s" in describe_choice(recurrent, 60.0)
    static = choose_finetuning("auto", STAGE_A_ONLY)
    assert (static.mode, static.steps, static.loc_weight, static.class_balance) == ("static", 200, 0.0, True)
    unknown = choose_finetuning("auto", None)
    assert (unknown.mode, unknown.steps, unknown.seg_weight, unknown.loc_weight, unknown.class_balance) == (
        "static", 200, 1.0, 1.0, True)
    assert "no config.json" in unknown.reason
    # A soft Jaccard term and the localization loss's IoU floor follow the training too (0 = none, the paper's).
    assert (recurrent.iou_weight, recurrent.loc_min_iou) == (0.5, 0.4)
    assert (static.iou_weight, static.loc_min_iou) == (unknown.iou_weight, unknown.loc_min_iou) == (0.0, 0.0)


def test_explicit_settings_win():
    choice = choose_finetuning("static", STAGE_B, steps=7, loc_weight=0.5, class_balance=True, iou_weight=0.0)
    assert (choice.mode, choice.steps, choice.loc_weight, choice.class_balance) == ("static", 7, 0.5, True)
    assert (choice.iou_weight, choice.loc_min_iou) == (0.0, 0.4)
    assert choose_finetuning("recurrent", None).steps == 50
    off = choose_finetuning("auto", STAGE_B, steps=0)
    assert (off.mode, off.steps) == ("none", 0) and "--finetune_steps=0" in describe_choice(off, 60)
    assert choose_finetuning("none", STAGE_B, steps=9).steps == 0
    with pytest.raises(ValueError, match="--finetune must be one of"):
        choose_finetuning("dynamic", None)


def test_training_config_is_found_from_every_model_path(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(STAGE_B))
    (run / "model.keras").write_bytes(b"")
    (run / "checkpoints" / "ckpt-5.index").write_bytes(b"")
    for path in (run, run / "model.keras", run / "checkpoints", run / "checkpoints" / "ckpt-5"):
        assert training_config(str(path)) == STAGE_B, path
    elsewhere = tmp_path / "copied.keras"
    elsewhere.write_bytes(b"")
    assert training_config(str(elsewhere)) is None
    (run / "config.json").write_text("{not json")
    assert training_config(str(run)) is None


def test_auto_looks_at_the_checkpoint_not_the_plan():
    """config.json holds the planned steps; a checkpoint from stage A of a run that plans stage B was never
    trained recurrently."""
    early = choose_finetuning("auto", STAGE_B, trained_step=10)  # stage A is steps 1-10
    assert early.mode == "static" and "step 10" in early.reason and "stage A" in early.reason
    assert choose_finetuning("auto", STAGE_B, trained_step=11).mode == "recurrent"
    assert choose_finetuning("auto", STAGE_B, trained_step=None).mode == "recurrent"  # model.keras: finished
    assert choose_finetuning("recurrent", STAGE_B, trained_step=3).mode == "recurrent"  # as asked


def _save_checkpoints(folder, steps):
    """Real (tiny) checkpoints numbered by step, with the state file a training run writes."""
    import tensorflow as tf

    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), str(folder), max_to_keep=None)
    for step in steps:
        manager.save(checkpoint_number=step)


def test_trained_step_of_every_model_path(tmp_path):
    run = tmp_path / "run"
    (run / "config.json").parent.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(STAGE_B))
    _save_checkpoints(run / "checkpoints", (5, 12))
    assert trained_step(str(run / "checkpoints" / "ckpt-5")) == 5
    assert trained_step(str(run / "checkpoints")) == 12 and trained_step(str(run)) == 12
    (run / "model.keras").write_bytes(b"")  # written when training finishes: all its steps
    assert trained_step(str(run)) is None and trained_step(str(run / "model.keras")) is None


def test_trained_step_is_the_step_of_the_checkpoint_that_loads(tmp_path):
    """A damaged newest checkpoint is skipped by the loader; the step (which --finetune=auto reads to tell stage A
    weights from stage B ones) must be the loaded one's: 10 (stage A, static), not the damaged 15 (recurrent)."""
    run = tmp_path / "run"
    (run / "config.json").parent.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(STAGE_B))
    _save_checkpoints(run / "checkpoints", (10, 15))
    data = run / "checkpoints" / "ckpt-15.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:3])
    assert trained_step(str(run)) == 10 and trained_step(str(run / "checkpoints")) == 10
    choice = choose_finetuning("auto", training_config(str(run)), 50, trained_step=trained_step(str(run)))
    assert choice.mode == "static"


@pytest.fixture(scope="module")
def stage_b_run(tmp_path_factory, tiny_model_path):
    """A run folder of the tiny model whose config.json says it was trained with stage B."""
    run = tmp_path_factory.mktemp("stage_b_run")
    shutil.copy(tiny_model_path, run / "model.keras")
    (run / "config.json").write_text(json.dumps(STAGE_B))
    return str(run)


def _probs(folder: str, frame: str = "00004") -> np.ndarray:
    return np.load(os.path.join(folder, "probs", f"{frame}.npy")).astype(np.float32)


def test_cli_finetunes_a_stage_b_model_recurrently_within_its_budget(tmp_path, video_on_disk, stage_b_run, capsys):
    frames, mask = video_on_disk
    common = [f"--video={frames}", f"--first_mask={mask}", f"--model={stage_b_run}", "--save_probs",
              "--precision=float32"]
    none = str(tmp_path / "none")
    assert run_cli(*common, f"--output={none}", "--finetune=none") == 0
    assert "--finetune_budget" not in capsys.readouterr().out  # nothing finetuned, nothing cut short
    # A 1 ms budget: on the video that traces the step, the first two updates always run (the second one tells
    # an update's cost from the tracing), no third one fits.
    out = str(tmp_path / "recurrent")
    assert run_cli(*common, f"--output={out}", "--finetune_lr=1e-3", "--finetune_budget=0.001",
                   "--finetune_clip_length=3", "--finetune_crop=36", "--finetune_check_frames=0",
                   "--finetune_objects_per_update=1") == 0
    with open(os.path.join(out, "segment_run.json")) as f:
        record = json.load(f)
    assert (record["finetune"], record["finetune_steps"], record["finetune_clip_length"]) == ("recurrent", 50, 3)
    assert record["finetune_crop"] == 36 and record["finetune_objects_per_update"] == 1
    log = record["finetune_log"]["frames"]
    window = crop_window(read_first_mask(mask).labels, [1, 2], 36)
    assert log["window"] == (None if window is None else list(window))
    assert log["updates"] == 2 and log["stopped_by_budget"] is True and log["seconds"] > log["trace_seconds"] > 0
    assert record["segment_seconds"] > 0
    # The console says the budget cut the updates short, and how to run them all.
    assert "ended it before its --finetune_steps on 1 of 1 videos, after 2 applied updates" in capsys.readouterr().out
    # The finetuned weights segmented the video (no cycle check to undo them): its probabilities moved away from
    # the untouched model's.
    assert np.abs(_probs(out) - _probs(none)).max() > 1e-3
    with open(os.path.join(none, "segment_run.json")) as f:
        assert json.load(f)["finetune"] == "none"


def test_cli_dream_speed_reaches_the_recurrent_finetuning(tmp_path, video_on_disk, stage_b_run, monkeypatch):
    """--finetune_dream_speed and --finetune_clip_length make the dreaming config the finetuner gets."""
    from maskrnn_tf import inference
    from maskrnn_tf.data.dreaming import DreamConfig

    seen = []

    def spy(model, step_fn, max_size, config, flow_fn=None):
        seen.append((config, flow_fn))
        return lambda source, first: step_fn  # segments without finetuning

    monkeypatch.setattr(inference, "recurrent_finetuning_prepare", spy)
    frames, mask = video_on_disk
    out = str(tmp_path / "out")
    assert run_cli(f"--video={frames}", f"--first_mask={mask}", f"--model={stage_b_run}", f"--output={out}",
                   "--finetune_dream_speed=2.5", "--finetune_clip_length=4", "--finetune_dream_flow=dis",
                   "--finetune_num_clips=64", "--precision=float32") == 0
    config, flow_fn = seen[0]
    assert config.dream == DreamConfig(num_frames=4).with_speed(2.5) and not config.match_video_motion
    assert config.num_clips == 64
    assert flow_fn is None and config.dream_flow == "dis"
    assert (config.seg_weight, config.loc_weight, config.class_balance) == (2.0, 0.1, False)  # as trained
    assert (config.iou_weight, config.loc_min_iou) == (0.5, 0.4)
    with open(os.path.join(out, "segment_run.json")) as f:
        record = json.load(f)
    assert (record["finetune_dream_speed"], record["finetune_dream_flow"]) == (2.5, "dis")
    assert record["finetune_num_clips"] == 64
    # 'video': the speeds come from each video's first flow, so the finetuning gets segment's flow function.
    video = str(tmp_path / "video")
    assert run_cli(f"--video={frames}", f"--first_mask={mask}", f"--model={stage_b_run}", f"--output={video}",
                   "--finetune_dream_speed=video", "--precision=float32") == 0
    config, flow_fn = seen[1]
    assert config.match_video_motion and config.dream == DreamConfig(num_frames=5) and callable(flow_fn)
    assert config.dream_flow == "exact" and config.num_clips == 8
    with open(os.path.join(video, "segment_run.json")) as f:
        assert json.load(f)["finetune_dream_speed"] == "video"
    with pytest.raises(flags.IllegalFlagValueError, match="finetune_num_clips"):
        run_cli(f"--video={frames}", f"--first_mask={mask}", f"--model={stage_b_run}",
                f"--output={tmp_path / 'bad'}", "--finetune_num_clips=0")
    for bad in ("0", "fast"):
        with pytest.raises(flags.IllegalFlagValueError, match="must be a number > 0"):
            run_cli(f"--video={frames}", f"--first_mask={mask}", f"--model={stage_b_run}",
                    f"--output={tmp_path / 'bad'}", f"--finetune_dream_speed={bad}")


def test_cli_static_on_request(tmp_path, video_on_disk, stage_b_run, monkeypatch):
    from maskrnn_tf import inference

    real, configs = inference.finetuning_prepare, []

    def recording(model, step_fn, flow_fn, max_size, config):
        configs.append(config)
        return real(model, step_fn, flow_fn, max_size, config)

    monkeypatch.setattr(inference, "finetuning_prepare", recording)
    frames, mask = video_on_disk
    out = str(tmp_path / "static")
    assert run_cli(f"--video={frames}", f"--first_mask={mask}", f"--model={stage_b_run}", f"--output={out}",
                   "--finetune=static", "--finetune_steps=2", "--precision=float32") == 0
    with open(os.path.join(out, "segment_run.json")) as f:
        record = json.load(f)
    assert (record["finetune"], record["finetune_steps"]) == ("static", 2)
    assert (configs[0].seg_weight, configs[0].loc_weight, configs[0].class_balance) == (2.0, 0.1, False)
    assert (configs[0].iou_weight, configs[0].loc_min_iou) == (0.5, 0.4)
    assert record["finetune_log"]["frames"]["updates"] == 2
    assert "stopped_by_budget" not in record["finetune_log"]["frames"]
    # --finetune_iou_weight=0: finetuned with the BCE alone, as segment did before the term followed the training.
    assert run_cli(f"--video={frames}", f"--first_mask={mask}", f"--model={stage_b_run}", f"--output={out}_bce",
                   "--finetune=static", "--finetune_steps=1", "--finetune_iou_weight=0", "--precision=float32") == 0
    assert (configs[1].iou_weight, configs[1].loc_min_iou) == (0.0, 0.4)
    with open(os.path.join(f"{out}_bce", "segment_run.json")) as f:  # the losses it finetuned with, resolved
        assert json.load(f)["finetune_loss"] == dict(seg_weight=2.0, loc_weight=0.1, class_balance=False,
                                                     iou_weight=0.0, loc_min_iou=0.4)


def test_static_finetuning_trains_on_an_object_smaller_than_a_cell_of_the_downscale(monkeypatch, video_on_disk):
    """A first-frame object of one pixel falls between the pixel centres halving samples: it was left out of
    finetuning (and of the segmentation's seed). It is finetuned on at the cell its pixel lies in."""
    import importlib
    import types

    from maskrnn_tf.inference import FinetuneConfig
    from maskrnn_tf.inference.first_mask import FirstMask
    from maskrnn_tf.inference.video_reader import VideoSource

    finetune_module = importlib.import_module("maskrnn_tf.inference.finetune")
    calls = []
    monkeypatch.setattr(finetune_module, "finetune", lambda *args, **kwargs: calls.append(args) or [0.5])
    frames, _ = video_on_disk
    source = VideoSource(frames)
    labels = np.zeros(source.size, np.uint8)
    labels[4, 4] = 1  # even row and column: halving samples pixel centres, rows and columns 1, 3, 5, ...
    first = FirstMask(labels, (1,), np.zeros((256, 3), np.uint8))
    half = max(source.size) // 2
    model = types.SimpleNamespace(config=types.SimpleNamespace(color_prior_input=False))  # finetune is the spy
    assert finetune_module.finetune_on_video(model, source, first, None, half, FinetuneConfig(steps=3)) == [0.5]
    (_, _, ids, present, _, _), = calls
    assert present == [1] and np.argwhere(ids == 1).tolist() == [[2, 2]]


def test_static_finetuning_gives_a_colour_prior_network_the_tables_segmenting_binds(monkeypatch, video_on_disk):
    """Static finetuning of a colour prior network trains with the tables segment binds for the video: fitted on
    the first frame at the video's own size (not the working size), at the network's band, one row per object
    finetuned on."""
    import importlib
    import types

    from maskrnn_tf.inference import FinetuneConfig
    from maskrnn_tf.inference.color_gate import first_frame_tables
    from maskrnn_tf.inference.video_reader import VideoSource

    finetune_module = importlib.import_module("maskrnn_tf.inference.finetune")
    seen = []
    monkeypatch.setattr(finetune_module, "finetune",
                        lambda *args, color_model=None, **kwargs: seen.append((args[3], color_model)) or [0.5])
    frames, mask = video_on_disk
    source = VideoSource(frames)
    first = read_first_mask(mask, source.size)
    model = types.SimpleNamespace(config=types.SimpleNamespace(color_prior_input=True, color_prior_band=0.2))
    half = max(source.size) // 2
    assert finetune_module.finetune_on_video(model, source, first, None, half, FinetuneConfig(steps=3)) == [0.5]
    (present, tables), = seen
    assert present == list(first.object_ids) and len(present) == 2
    np.testing.assert_array_equal(tables, first_frame_tables(source, first, 0.2, object_ids=present))
    for other in (first_frame_tables(source, first, 0.2, max_size=half, object_ids=present),
                  first_frame_tables(source, first, 1.0, object_ids=present)):
        assert np.abs(other - tables).max() > 1e-3
