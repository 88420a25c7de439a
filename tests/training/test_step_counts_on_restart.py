"""Step counts when a run restarts without the config it was trained with, or from another run's checkpoint.

- config.json unreadable (emptied by a crash), --overwrite_config (the fix its error names) skipped the check that
  stage_a_steps may not change past the end of stage A: a longer stage A trained over stage B's steps and replaced
  the kept stage_a/ checkpoint, the start of the user's other stage B runs.
- Its error said "fix or delete it": a run folder without config.json is refused as someone else's folder.
- --init_checkpoint of a checkpoint past this run's stage A (another run's stage_a/, a flag file with another
  stage_a_steps) counted the source's stage A steps as this run's stage B: fewer stage B steps, in silence.
- Step counts cut to exactly the step a stopped run reached: "continuing the run with them", then config.json kept
  the old counts.
"""
import json
import os

import pytest

from maskrnn_tf.training.config import TrainConfig
from maskrnn_tf.training.loop import TrainSettingsError, train
from maskrnn_tf.training.run_dir import ConfigMismatchError

TINY = {
    "data.dataset": "synthetic_vos", "data.height": 32, "data.width": 48, "data.synthetic_train_videos": 2,
    "data.synthetic_video_frames": 4, "data.batch_size": 2, "data.clip_batch_size": 1, "data.clip_length": 3,
    "data.val_videos": 0, "eval_every": 0, "model.width": 0.125, "model.fc_units": 16, "model.side_channels": 4,
    "precision": "float32", "stage_a_steps": 2, "stage_b_steps": 2, "checkpoint_every": 1,
}


def quiet(line):
    del line


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run (stage A 2 steps, stage B 2), its folder copied by each test that changes it."""
    run_dir = str(tmp_path_factory.mktemp("finished") / "run")
    train(TrainConfig().override(TINY), run_dir, printer=quiet)
    assert sorted(os.listdir(os.path.join(run_dir, "stage_a"))) == ["checkpoint", "ckpt-2.data-00000-of-00001",
                                                                     "ckpt-2.index"]
    return run_dir


def copy_of(run_dir, tmp_path):
    import shutil

    target = str(tmp_path / "run")
    shutil.copytree(run_dir, target)
    return target


def test_an_unreadable_config_names_overwrite_config_only(finished, tmp_path):
    run_dir = copy_of(finished, tmp_path)
    open(os.path.join(run_dir, "config.json"), "w").close()
    with pytest.raises(ConfigMismatchError) as err:
        train(TrainConfig().override(TINY), run_dir, printer=quiet)
    assert "config.json: unreadable" in str(err.value) and "--overwrite_config" in str(err.value)
    assert "delete" not in str(err.value), str(err.value)


def test_an_unreadable_config_keeps_stage_a_where_the_kept_checkpoint_says_it_ended(finished, tmp_path):
    run_dir = copy_of(finished, tmp_path)
    open(os.path.join(run_dir, "config.json"), "w").close()
    with pytest.raises(ConfigMismatchError) as err:
        train(TrainConfig().override({**TINY, "stage_a_steps": 6}), run_dir, overwrite_config=True, printer=quiet)
    assert "past the end of stage A (2 steps, as its stage_a/ checkpoint says; 6 now)" in str(err.value), str(err.value)
    assert "ckpt-2.index" in os.listdir(os.path.join(run_dir, "stage_a"))
    assert os.path.getsize(os.path.join(run_dir, "config.json")) == 0  # nothing written
    # The same counts resume, and config.json is readable again (the run is finished: it trains nothing).
    train(TrainConfig().override(TINY), run_dir, overwrite_config=True, printer=quiet)
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        assert json.load(f)["stage_a_steps"] == 2


def test_an_unreadable_config_of_a_run_without_stage_a_checks_the_total_only(finished, tmp_path):
    """Without stage_a/ nothing tells where stage A ended (a run still in it, one without a stage A, one started past
    it from another run's checkpoint): the run's own counts must resume; a total below the steps done is refused."""
    import shutil

    from maskrnn_tf.training.run_dir import prepare_run_dir

    run_dir = copy_of(finished, tmp_path)
    open(os.path.join(run_dir, "config.json"), "w").close()
    shutil.rmtree(os.path.join(run_dir, "stage_a"))
    for counts in ({"stage_a_steps": 2, "stage_b_steps": 2}, {"stage_a_steps": 0, "stage_b_steps": 4}):
        prepare_run_dir(run_dir, TrainConfig().override({**TINY, **counts}), overwrite_config=True, write=False,
                        report=quiet)
    with pytest.raises(ConfigMismatchError, match="the run is at step 4 but stage_a_steps"):
        prepare_run_dir(run_dir, TrainConfig().override({**TINY, "stage_b_steps": 1}), overwrite_config=True,
                        write=False, report=quiet)


def test_an_init_checkpoint_past_this_run_s_stage_a_is_refused_naming_the_source_s(finished, tmp_path):
    source = os.path.join(finished, "stage_a")
    run_dir = str(tmp_path / "variant")
    with pytest.raises(TrainSettingsError) as err:
        train(TrainConfig().override({**TINY, "stage_a_steps": 1, "init_checkpoint": source}), run_dir, printer=quiet)
    message = str(err.value)
    assert "ckpt-2" in message and "--stage_a_steps=2" in message and "stage A" in message, message
    assert not os.path.isdir(os.path.join(run_dir, "checkpoints")) or not os.listdir(
        os.path.join(run_dir, "checkpoints"))


def test_an_init_checkpoint_in_stage_b_with_the_source_s_stage_a_continues(finished, tmp_path):
    lines = []
    result = train(TrainConfig().override({**TINY, "stage_b_steps": 3, "init_checkpoint": finished}),
                   str(tmp_path / "longer"), printer=lines.append)
    assert result.steps == 5 and any("started from" in line and "ckpt-4" in line for line in lines), lines


def test_step_counts_cut_to_the_step_reached_are_stored(finished, tmp_path):
    run_dir = copy_of(finished, tmp_path)
    path = os.path.join(run_dir, "config.json")
    with open(path, encoding="utf-8") as f:
        stored = json.load(f)
    stored["stage_b_steps"] = 20  # as a run stopped at step 4 of 22 leaves it
    with open(path, "w", encoding="utf-8") as f:
        json.dump(stored, f)
    lines = []
    train(TrainConfig().override(TINY), run_dir, printer=lines.append)
    assert not any("keeps the settings" in line for line in lines), lines
    with open(path, encoding="utf-8") as f:
        assert json.load(f)["stage_b_steps"] == 2
