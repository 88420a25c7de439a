"""RunCheckpoint.init_from: which checkpoint a path names, what is restored and what is refused."""
import os

import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.training.checkpoint_files import checkpoint_paths
from maskrnn_tf.training.checkpointing import (CheckpointMismatchError, InitCheckpointError, RunCheckpoint,
                                               resolve_checkpoint)


def _objects(scale=1.0, shape=(3,)):
    return dict(model=tf.Variable(np.full(shape, scale, np.float32)), step=tf.Variable(0, dtype=tf.int64),
                data=tf.Variable(np.full((2,), scale, np.float32)))


def _source_run(tmp_path):
    """A run folder with checkpoints at steps 10 and 20 (model = 1 and 2, data = 1 and 2)."""
    objects = _objects()
    ckpt = RunCheckpoint(str(tmp_path / "source" / "checkpoints"), keep=3, **objects)
    for step in (10, 20):
        objects["model"].assign(np.full((3,), step / 10, np.float32))
        objects["data"].assign(np.full((2,), step / 10, np.float32))
        objects["step"].assign(step)
        ckpt.save(step)
    return str(tmp_path / "source")


def test_a_path_names_a_prefix_or_the_newest_checkpoint_of_a_run_or_checkpoints_folder(tmp_path):
    source = _source_run(tmp_path)
    folder = os.path.join(source, "checkpoints")
    assert resolve_checkpoint(source) == os.path.join(folder, "ckpt-20")
    assert resolve_checkpoint(folder) == os.path.join(folder, "ckpt-20")
    assert resolve_checkpoint(os.path.join(folder, "ckpt-10")) == os.path.join(folder, "ckpt-10")
    assert resolve_checkpoint(str(tmp_path / "nothing")) is None
    (tmp_path / "empty").mkdir()
    assert resolve_checkpoint(str(tmp_path / "empty")) is None


def test_a_relative_path_names_the_same_checkpoints(tmp_path, monkeypatch):
    # As users type it (`--init_checkpoint=runs/davis16_cpu/stage_a`): the state file's names are relative to
    # the folder, and TensorFlow already joins them with a relative folder: joining again found nothing.
    _source_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("source") == os.path.join(str(tmp_path), "source", "checkpoints", "ckpt-20")
    assert resolve_checkpoint(os.path.join("source", "checkpoints")).endswith("ckpt-20")
    assert checkpoint_paths(os.path.join("source", "checkpoints")) == [
        os.path.join(str(tmp_path), "source", "checkpoints", f"ckpt-{n}") for n in (20, 10)]


def test_the_skipped_objects_keep_their_values_and_the_rest_is_restored(tmp_path):
    source = _source_run(tmp_path)
    objects = _objects(scale=7.0)
    ckpt = RunCheckpoint(str(tmp_path / "new" / "checkpoints"), keep=3, **objects)
    prefix = ckpt.init_from(os.path.join(source, "checkpoints", "ckpt-10"), skip=("data",))
    assert prefix.endswith("ckpt-10")
    np.testing.assert_array_equal(objects["model"].numpy(), [1.0, 1.0, 1.0])
    assert int(objects["step"].numpy()) == 10
    np.testing.assert_array_equal(objects["data"].numpy(), [7.0, 7.0])  # not restored: starts over
    assert not os.path.exists(tmp_path / "new" / "checkpoints" / "checkpoint")  # nothing written


def test_missing_damaged_and_mismatched_checkpoints_are_refused_by_name(tmp_path):
    source = _source_run(tmp_path)
    ckpt = RunCheckpoint(str(tmp_path / "new" / "checkpoints"), keep=3, **_objects())
    with pytest.raises(InitCheckpointError, match="no checkpoint there"):
        ckpt.init_from(str(tmp_path / "nothing"))
    other = RunCheckpoint(str(tmp_path / "other" / "checkpoints"), keep=3, **_objects(shape=(4,)))
    with pytest.raises(CheckpointMismatchError, match="cannot be restored into this run"):
        other.init_from(source, skip=("data",))
    # A run folder names its newest checkpoint (step 20): past the end of a 15-step run.
    with pytest.raises(InitCheckpointError, match="ckpt-20 is at step 20, past this run's 15 steps"):
        ckpt.init_from(source, skip=("data",), last_step=15)
    assert ckpt.init_from(os.path.join(source, "checkpoints", "ckpt-10"), skip=("data",), last_step=15)
    data = os.path.join(source, "checkpoints", "ckpt-10.data-00000-of-00001")
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    with pytest.raises(InitCheckpointError, match="ckpt-10"):
        ckpt.init_from(os.path.join(source, "checkpoints", "ckpt-10"))


@pytest.mark.parametrize("source,target", [("float16", "float32"), ("float32", "float16"), ("bfloat16", "float16")])
def test_a_checkpoint_of_another_optimizer_precision_is_refused_naming_the_precisions(tmp_path, source, target):
    """float16 runs train with loss scaling (a LossScaleOptimizer, other checkpoint variables): starting a run of
    another kind from one is refused before any restore is tried, naming both precisions and the flag to pass."""
    import keras

    from maskrnn_tf.training.checkpointing import PrecisionMismatchError
    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.precision import set_precision
    from maskrnn_tf.training.steps import make_optimizer

    def objects(precision):
        policy = set_precision(precision)
        try:
            model = tf.Variable(np.ones((3,), np.float32))
            optimizer = make_optimizer(TrainConfig(), policy)
            optimizer.build([model])
        finally:
            keras.mixed_precision.set_global_policy("float32")
        return dict(model=model, optimizer=optimizer, step=tf.Variable(0, dtype=tf.int64))

    RunCheckpoint(str(tmp_path / "source" / "checkpoints"), keep=1, **objects(source)).save(5)
    ckpt = RunCheckpoint(str(tmp_path / "new" / "checkpoints"), keep=1, **objects(target))
    with pytest.raises(PrecisionMismatchError) as err:
        ckpt.init_from(str(tmp_path / "source"), precision=target)
    message = str(err.value)
    assert os.path.join(str(tmp_path / "source"), "checkpoints", "ckpt-5") in message
    made_in = "float16" if source == "float16" else "float32 or bfloat16"
    assert f"made in {made_in}" in message and f"this run trains in {target}" in message
    assert ("--precision=float16" if source == "float16" else "--precision=float32") in message


_TINY_RUN = {
    "data.dataset": "synthetic_vos", "data.height": 32, "data.width": 48, "data.synthetic_train_videos": 2,
    "data.synthetic_video_frames": 4, "data.batch_size": 2, "data.clip_length": 3, "data.val_videos": 0,
    "eval_every": 0, "model.width": 0.125, "model.fc_units": 16, "model.side_channels": 4,
    "precision": "float32", "stage_a_steps": 1, "stage_b_steps": 0, "checkpoint_every": 1,
}


def test_a_run_with_checkpoints_of_its_own_refuses_a_new_init_checkpoint(tmp_path):
    """--init_checkpoint only starts a run that has no checkpoint yet. Given to a stopped run with
    --overwrite_config, it was ignored in silence: the run resumed from its own checkpoint and config.json
    recorded a start it never made. It is refused (exit 2 in the CLI), the run dir left as it was."""
    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.loop import train
    from maskrnn_tf.training.run_dir import ConfigMismatchError, prepare_run_dir

    run_dir = str(tmp_path / "run")
    config = TrainConfig().override(_TINY_RUN)
    # The run as a first training leaves it (a checkpoint of its own, found by name), without training one.
    prepare_run_dir(run_dir, config)
    tf.train.Checkpoint(step=tf.Variable(1, dtype=tf.int64)).write(os.path.join(run_dir, "checkpoints", "ckpt-1"))
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        stored = f.read()
    source = str(tmp_path / "other_run")
    more = config.override({"stage_a_steps": 2, "init_checkpoint": source})
    with pytest.raises(ConfigMismatchError) as err:
        train(more, run_dir, overwrite_config=True, printer=lambda line: None)
    assert f"init_checkpoint {source!r} would be ignored" in str(err.value), str(err.value)
    assert "ckpt-1" in str(err.value) and "new --run_dir" in str(err.value)
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        assert f.read() == stored
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == ["ckpt-1.data-00000-of-00001", "ckpt-1.index"]


def test_profile_steps_the_run_does_not_train_are_refused_before_the_run_dir_is_written(tmp_path):
    """--profile_steps counts the run's steps from 1 (resumes and init_checkpoint starts included): a range the run
    never reaches (past its end, or before the step an init_checkpoint start begins at) traced nothing and said
    nothing."""
    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.loop import TrainSettingsError, train

    run_dir = str(tmp_path / "run")
    with pytest.raises(TrainSettingsError) as err:
        train(TrainConfig().override(_TINY_RUN), run_dir, profile_steps=(5, 6), printer=lambda line: None)
    assert str(err.value).startswith("--profile_steps=5,6: this run trains steps 1 to 1;"), str(err.value)
    assert not os.path.exists(os.path.join(run_dir, "config.json"))
    assert not os.path.exists(os.path.join(run_dir, "checkpoints"))


def test_the_same_command_with_profile_steps_resumes_a_stopped_run_past_its_range(tmp_path, monkeypatch):
    """`--profile_steps` in a training command stopped after its range (Ctrl-C, a scheduler's SIGTERM): the message
    said "rerun the same command to resume", and the same command was refused (exit 2) for a range before the resume
    step. It resumes, noting that nothing is traced; a first start's range before its first step is still refused."""
    import signal

    from maskrnn_tf.training import loop
    from maskrnn_tf.training.config import TrainConfig

    class StopAfterOneStep(loop._SignalFlag):  # as if Ctrl-C came during step 1
        def __enter__(self):
            self.signum = signal.SIGINT
            return self

    config = TrainConfig().override({**_TINY_RUN, "stage_a_steps": 3})
    run_dir = str(tmp_path / "run")
    with monkeypatch.context() as patch:
        patch.setattr(loop, "_SignalFlag", StopAfterOneStep)
        with pytest.raises(loop.TrainingInterrupted) as stopped:
            loop.train(config, run_dir, profile_steps=(1, 1), printer=lambda line: None)
    assert stopped.value.checkpoint.endswith("ckpt-1")
    profiles = os.path.join(run_dir, "logs", "plugins", "profile")
    traced = os.listdir(profiles)  # step 1's trace, before the stop
    lines = []
    result = loop.train(config, run_dir, profile_steps=(1, 1), printer=lines.append)
    assert "note: --profile_steps=1,1: this run resumes at step 2, after those steps; nothing is traced (give later " \
           "steps to trace some)" in lines, lines
    assert result.steps == 3 and os.path.isfile(os.path.join(run_dir, "model.keras"))
    assert len(traced) == 1 and os.listdir(profiles) == traced
    # Started from another run's checkpoint, a range before its first step is a mistake, not a rerun.
    with pytest.raises(loop.TrainSettingsError, match="this run trains steps 4 to 4"):
        loop.train(TrainConfig().override({**_TINY_RUN, "stage_a_steps": 4, "init_checkpoint": run_dir}),
                   str(tmp_path / "second"), profile_steps=(1, 1), printer=lambda line: None)


def test_a_profile_range_the_run_trains_only_in_part_says_which_steps_it_traces(tmp_path):
    """A range partly past the run's end was clipped in silence, and on a finished run it was dropped in silence."""
    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.loop import train

    run_dir, lines = str(tmp_path / "run"), []
    config = TrainConfig().override(_TINY_RUN)
    train(config, run_dir, profile_steps=(1, 3), printer=lines.append)
    assert "note: --profile_steps=1,3: this run trains steps 1 to 1, so steps 1 to 1 are traced" in lines, lines
    lines.clear()
    train(config, run_dir, profile_steps=(1, 1), printer=lines.append)
    assert any(line.startswith("note: --profile_steps=1,1: the run is finished (step 1), nothing is traced")
               for line in lines), lines


def test_a_finished_run_says_more_steps_need_no_overwrite_config(tmp_path):
    """Rerun once finished, the run told the user to pass --overwrite_config to train more steps: that switch takes
    every other changed setting too, while more steps alone resume the run without it."""
    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.loop import train

    lines = []
    config = TrainConfig().override({**_TINY_RUN, "stage_a_steps": 0})
    train(config, str(tmp_path / "run"), printer=lines.append)
    said = [line for line in lines if line.startswith("already trained")]
    assert said == ["already trained to step 0 of 0: nothing to train (more steps, e.g. a larger --stage_b_steps in "
                    "the same command, train further; a new --run_dir starts another run)"], lines


def test_a_rerun_of_a_finished_run_stores_no_settings_it_did_not_train_with(tmp_path):
    """A finished run rerun with --overwrite_config trained nothing and still rewrote config.json and model.keras:
    segment's finetuning reads its losses from config.json, so it took settings the model never had."""
    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.loop import train

    config = TrainConfig().override(_TINY_RUN)
    run_dir = str(tmp_path / "run")
    train(config, run_dir, printer=lambda line: None)
    kept = {name: open(os.path.join(run_dir, name), "rb").read() for name in ("config.json", "model.keras")}
    stamps = {name: os.stat(os.path.join(run_dir, name)).st_mtime_ns for name in kept}
    lines = []
    train(config.override({"loss.loc_weight": 5.0}), run_dir, overwrite_config=True, printer=lines.append)
    assert {name: open(os.path.join(run_dir, name), "rb").read() for name in kept} == kept
    assert {name: os.stat(os.path.join(run_dir, name)).st_mtime_ns for name in kept} == stamps
    assert any("config.json keeps the settings the run was trained with" in line for line in lines), lines
    # A config.json of an earlier version (without a key added since) rerun unchanged: nothing to say.
    import json

    path = os.path.join(run_dir, "config.json")
    with open(path) as f:
        older = json.load(f)
    del older["model"]["roi_feature_stride"]
    with open(path, "w") as f:
        json.dump(older, f)
    lines.clear()
    train(config, run_dir, printer=lines.append)
    assert not any("keeps the settings" in line for line in lines), lines
    # More steps with a changed setting train on and store it.
    train(config.override({"loss.loc_weight": 5.0, "stage_a_steps": 2}), run_dir, overwrite_config=True,
          printer=lambda line: None)
    assert '"loc_weight": 5.0' in open(os.path.join(run_dir, "config.json")).read()


def test_the_last_step_validated_in_the_loop_writes_its_overlay_images(tmp_path):
    """--image_every promises images "at the validations of every N-th step and at the end": a last validation made
    inside the loop (eval_every dividing the steps, as the demo's 350 of 700) was not the end's, so a run whose
    validation steps are no multiple of image_every (the demo's, at the default 200) wrote no image at all."""
    import glob

    from maskrnn_tf.training.config import TrainConfig
    from maskrnn_tf.training.loop import train

    config = TrainConfig().override({**_TINY_RUN, "stage_a_steps": 2, "data.val_videos": 1, "data.val_frames": 3,
                                     "eval_every": 2, "image_every": 3})
    run_dir = str(tmp_path / "run")
    train(config, run_dir, printer=lambda line: None)
    tags = {}
    for path in glob.glob(os.path.join(run_dir, "logs", "val", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    assert tags.get("J") == [2] and tags.get("frame_truth_prediction") == [2], tags


def test_a_final_validation_cut_short_runs_when_the_finished_run_is_rerun(tmp_path, monkeypatch):
    """Ctrl-C during the final validation (after the last checkpoint) ended in a KeyboardInterrupt traceback, and
    the rerun said "already trained" without validating the last step: best/ never saw it. The interruption is
    now the usual "stopped by signal", and the rerun validates the last step once."""
    import signal

    from maskrnn_tf.training import loop
    from maskrnn_tf.training.config import TrainConfig

    config = TrainConfig().override({**_TINY_RUN, "stage_a_steps": 2, "data.val_videos": 1, "data.val_frames": 3})
    run_dir = str(tmp_path / "run")
    evaluate, calls = loop.evaluate, []

    def interrupted(*args, **kwargs):
        calls.append("cut")
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "evaluate", interrupted)
    with pytest.raises(loop.TrainingInterrupted) as stopped:
        loop.train(config, run_dir, printer=lambda line: None)
    assert stopped.value.signum == signal.SIGINT and stopped.value.checkpoint.endswith("-2")

    def counted(*args, **kwargs):
        calls.append("ran")
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", counted)
    lines = []
    result = loop.train(config, run_dir, printer=lines.append)
    assert calls == ["cut", "ran"] and result.steps == 2 and result.validation_j is not None
    assert any(line.startswith("validation J") and line.endswith("at step 2") for line in lines), lines
    # Validated once: a further rerun trains and validates nothing.
    again = loop.train(config, run_dir, printer=lambda line: None)
    assert calls == ["cut", "ran"] and again.validation_j is None


def test_a_stop_while_best_is_saved_leaves_the_last_step_to_validate_again(tmp_path, monkeypatch):
    """The last validation was recorded before best/ was written: Ctrl-C while best/ was saved left a run whose
    rerun said "already trained" and never offered its last step to best/ (no best/ at all here)."""
    import json

    from maskrnn_tf.training import loop
    from maskrnn_tf.training.config import TrainConfig

    config = TrainConfig().override({**_TINY_RUN, "stage_a_steps": 2, "data.val_videos": 1, "data.val_frames": 3})
    run_dir = str(tmp_path / "run")
    offer = loop.BestModel.offer

    def cut(self, step, j, save_model):
        raise KeyboardInterrupt  # as if the signal came while best/model.keras was written

    monkeypatch.setattr(loop.BestModel, "offer", cut)
    with pytest.raises(loop.TrainingInterrupted):
        loop.train(config, run_dir, printer=lambda line: None)
    assert not os.path.exists(os.path.join(run_dir, "best"))
    monkeypatch.setattr(loop.BestModel, "offer", offer)
    result = loop.train(config, run_dir, printer=lambda line: None)
    assert result.best_step == 2 and os.path.isfile(os.path.join(run_dir, "best", "model.keras"))
    with open(os.path.join(run_dir, "best", "best.json")) as f:
        assert json.load(f)["step"] == 2


def test_training_further_moves_the_earlier_final_model_aside(tmp_path, monkeypatch):
    """A finished run trained further kept the earlier finish's model.keras while it trained (and for good if it was
    stopped): segment, export and finetune_selection load model.keras before any checkpoint, so they took the old
    finish for the run's model, and `--finetune=auto` read the new config's stage B into it. The old model.keras is
    moved to model_step<N>.keras (kept, not deleted) and the run's folder gives its newest checkpoint until the run
    writes its own model.keras."""
    import signal

    from maskrnn_tf.inference.model_loading import trained_step
    from maskrnn_tf.training import loop
    from maskrnn_tf.training.config import TrainConfig

    run_dir = str(tmp_path / "run")
    loop.train(TrainConfig().override(_TINY_RUN), run_dir, printer=lambda line: None)  # finished at step 1
    with open(os.path.join(run_dir, "model.keras"), "rb") as f:
        finished = f.read()

    class StopAfterOneStep(loop._SignalFlag):  # as if SIGTERM came during the first step trained further
        def __enter__(self):
            self.signum = signal.SIGTERM
            return self

    monkeypatch.setattr(loop, "_SignalFlag", StopAfterOneStep)
    further = TrainConfig().override({**_TINY_RUN, "stage_b_steps": 2})
    lines = []
    with pytest.raises(loop.TrainingInterrupted):
        loop.train(further, run_dir, printer=lines.append)
    assert not os.path.exists(os.path.join(run_dir, "model.keras"))
    with open(os.path.join(run_dir, "model_step1.keras"), "rb") as f:
        assert f.read() == finished
    assert any("model_step1.keras" in line for line in lines), lines
    assert trained_step(run_dir) == 2  # the newest checkpoint, what load_model takes now
    # The earlier finish keeps its step: --finetune=auto finetunes it as the stage A network it is, though the
    # run's config.json now plans a stage B.
    from maskrnn_tf.inference.finetune_choice import choose_finetuning
    from maskrnn_tf.inference.model_loading import training_config

    kept = os.path.join(run_dir, "model_step1.keras")
    assert trained_step(kept) == 1
    assert choose_finetuning("auto", training_config(kept), trained_step=trained_step(kept)).mode == "static"
    assert choose_finetuning("auto", training_config(run_dir), trained_step=trained_step(run_dir)).mode == "recurrent"

    monkeypatch.undo()
    loop.train(further, run_dir, printer=lambda line: None)
    assert trained_step(run_dir) is None and os.path.isfile(os.path.join(run_dir, "model.keras"))  # finished: 3
    assert sorted(name for name in os.listdir(run_dir) if name.endswith(".keras")) == ["model.keras",
                                                                                       "model_step1.keras"]


def test_the_earlier_model_is_named_by_the_finish_step_and_never_overwrites(tmp_path):
    """The name carries the finish's step (its last checkpoint, even when the run resumes from an older one after a
    damaged newer one), `model_earlier.keras` when no checkpoint says, and never replaces a file already there."""
    from maskrnn_tf.training.loop import _move_earlier_model_aside

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-5"\\nall_model_checkpoint_paths: "ckpt-4"\\nall_model_checkpoint_paths: "ckpt-5"\\n')
    for name in ("ckpt-4", "ckpt-5"):
        (run_dir / "checkpoints" / f"{name}.index").write_bytes(b"")
    (run_dir / "model.keras").write_bytes(b"finish")
    (run_dir / "model_step5.keras").write_bytes(b"older")
    said = []
    _move_earlier_model_aside(str(run_dir), 4, said.append)  # resumed from ckpt-4: ckpt-5 was damaged
    assert (run_dir / "model_step5_2.keras").read_bytes() == b"finish"
    assert (run_dir / "model_step5.keras").read_bytes() == b"older" and not (run_dir / "model.keras").exists()
    assert said == ["the earlier finish's model.keras moved to model_step5_2.keras: until this run writes its own, "
                    "the run folder gives its newest checkpoint"]

    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model.keras").write_bytes(b"finish")
    _move_earlier_model_aside(str(bare), 0, said.append)  # its checkpoints were deleted: it starts again
    assert sorted(os.listdir(bare)) == ["model_earlier.keras"]
    _move_earlier_model_aside(str(bare), 0, said.append)  # nothing to move
    assert sorted(os.listdir(bare)) == ["model_earlier.keras"] and len(said) == 2


@pytest.mark.parametrize("start, done, stage_a_steps, expected", [
    (0, 7, 10, (7, 0)), (0, 13, 10, (10, 3)),  # a run from scratch
    (4, 7, 10, (3, 0)), (4, 13, 10, (6, 3)),  # started mid stage A (a larger --stage_a_steps than the source's)
    (12, 15, 10, (0, 3)), (10, 10, 10, (0, 0)),  # started in stage B, or at the end of stage A (stage_a/)
])
def test_the_batches_a_run_trained_on_are_counted_from_where_its_data_started(start, done, stage_a_steps,
                                                                              expected):
    """A run started from --init_checkpoint at step S reads its data from the beginning: after `done` steps it has
    trained on the batches of steps S+1..done, which a resume on several replicas skips."""
    from maskrnn_tf.training.loop import _consumed

    assert _consumed(done, stage_a_steps, start) == expected


def test_a_signal_on_a_checkpoint_step_saves_that_step_once(tmp_path, monkeypatch):
    """A stop signal during a step whose checkpoint was due saved the same checkpoint twice, rewriting its files in
    place: a SIGKILL after a scheduler's SIGTERM could land in the rewrite and damage the newest checkpoint."""
    import signal

    from maskrnn_tf.training import loop
    from maskrnn_tf.training.checkpointing import RunCheckpoint
    from maskrnn_tf.training.config import TrainConfig

    class StopAfterOneStep(loop._SignalFlag):
        def __enter__(self):
            self.signum = signal.SIGTERM
            return self

    saved, save = [], RunCheckpoint.save

    def counted(self, step):
        saved.append(step)
        return save(self, step)

    monkeypatch.setattr(loop, "_SignalFlag", StopAfterOneStep)
    monkeypatch.setattr(RunCheckpoint, "save", counted)
    with pytest.raises(loop.TrainingInterrupted) as stopped:
        loop.train(TrainConfig().override({**_TINY_RUN, "stage_a_steps": 2}), str(tmp_path / "run"),
                   printer=lambda line: None)
    assert saved == [1] and stopped.value.checkpoint.endswith("-1")
    # Off a checkpoint step, the signal's save is the one.
    saved.clear()
    with pytest.raises(loop.TrainingInterrupted) as stopped:
        loop.train(TrainConfig().override({**_TINY_RUN, "stage_a_steps": 2, "checkpoint_every": 2}),
                   str(tmp_path / "run2"), printer=lambda line: None)
    assert saved == [1] and stopped.value.checkpoint.endswith("-1")
