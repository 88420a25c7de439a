"""The run directory: config.json refusal and the lock that keeps two trainings out of one folder."""
import os
import signal
import subprocess
import sys
import time

import pytest

from maskrnn_tf.training.config import TrainConfig
from maskrnn_tf.training.run_dir import (ConfigMismatchError, RunDirBusyError, config_diff, prepare_run_dir,
                                         run_dir_lock)


def test_config_json_is_written_once_and_another_config_is_refused(tmp_path):
    run_dir = str(tmp_path / "run")
    config = TrainConfig().override({"seed": 7})
    path = prepare_run_dir(run_dir, config)
    assert prepare_run_dir(run_dir, config) == path
    with pytest.raises(ConfigMismatchError, match="seed: stored 7, now 8"):
        prepare_run_dir(run_dir, config.override({"seed": 8}))
    prepare_run_dir(run_dir, config.override({"seed": 8}), overwrite_config=True)


def test_overwrite_config_says_which_settings_the_run_continues_with(tmp_path):
    """--overwrite_config took any other config in silence: a flag file edited since the run began (or a --set
    left on the command line) changed the training with nothing on the console to say so."""
    run_dir = str(tmp_path / "run")
    prepare_run_dir(run_dir, TrainConfig().override({"seed": 7}))
    reports = []
    new = TrainConfig().override({"seed": 7, "optim.learning_rate": 1e-3, "data.manual_dir": "/data"})
    prepare_run_dir(run_dir, new, overwrite_config=True, report=reports.append)
    assert reports == ["--overwrite_config: continuing the run with data.manual_dir: stored None, now '/data'; "
                       "optim.learning_rate: stored 1e-05, now 0.001"]
    reports.clear()
    prepare_run_dir(run_dir, new, overwrite_config=True, report=reports.append)
    assert reports == []  # the same config: nothing to say


def test_a_runs_best_model_folder_is_refused_as_a_run_dir(tmp_path):
    """<run>/best holds a config.json as a run does: --run_dir=<run>/best (to go on from the best model) was taken
    for that run and trained from step 0 in it, replacing its model.keras while best.json still named the step
    and J of the model it had held."""
    best = tmp_path / "run" / "best"
    best.mkdir(parents=True)
    config = TrainConfig().override({"seed": 7})
    (best / "config.json").write_text(config.to_json() + "\n")
    (best / "model.keras").write_bytes(b"the best model")
    from maskrnn_tf.training.best_model import RECORD_NAME

    (best / RECORD_NAME).write_text('{"step": 250, "J": 0.5}\n')
    with pytest.raises(ConfigMismatchError, match="best model.*not a run.*--init_checkpoint"):
        prepare_run_dir(str(best), config)
    assert sorted(os.listdir(best)) == sorted([RECORD_NAME, "config.json", "model.keras"])


def test_a_folder_of_the_users_that_training_would_replace_files_in_is_refused(tmp_path):
    # --run_dir pointed at a folder holding a model.keras and a best/ of the user's (no config.json: not a run).
    run_dir = tmp_path / "models"
    (run_dir / "best").mkdir(parents=True)
    (run_dir / "model.keras").write_bytes(b"the user's model")
    with pytest.raises(ConfigMismatchError, match="not a training run.*best, model.keras.*new --run_dir"):
        prepare_run_dir(str(run_dir), TrainConfig())
    assert sorted(os.listdir(run_dir)) == ["best", "model.keras"]
    assert (run_dir / "model.keras").read_bytes() == b"the user's model"
    # stage_a/ too: at the end of stage A training saves there with a manager that keeps one checkpoint, which
    # deleted the others a user's stage_a/ listed.
    own = tmp_path / "experiments"
    (own / "stage_a").mkdir(parents=True)
    (own / "stage_a" / "ckpt-1.index").write_bytes(b"theirs")
    with pytest.raises(ConfigMismatchError, match="not a training run.*holds stage_a"):
        prepare_run_dir(str(own), TrainConfig())
    assert sorted(os.listdir(own)) == ["stage_a"] and os.listdir(own / "stage_a") == ["ckpt-1.index"]
    # Other files of theirs are never touched by training: such a folder may hold a run.
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    prepare_run_dir(str(other), TrainConfig())
    assert sorted(os.listdir(other)) == ["config.json", "notes.txt"]


def test_a_run_from_an_older_version_resumes_when_the_new_settings_are_at_their_defaults(tmp_path):
    """A config.json written before a setting existed lacks its key: at the setting's default it is the same
    run (resumed, the key added), at any other value it is another config."""
    import json

    run_dir = str(tmp_path / "run")
    path = prepare_run_dir(run_dir, TrainConfig().override({"seed": 7}))
    with open(path, encoding="utf-8") as f:
        stored = json.load(f)
    del stored["data"]["dream_fraction"], stored["data"]["dream_videos"]  # as an older version wrote it
    with open(path, "w", encoding="utf-8") as f:
        json.dump(stored, f)
    reports = []
    with pytest.raises(ConfigMismatchError, match="data.dream_fraction: stored None, now 0.5"):
        prepare_run_dir(run_dir, TrainConfig().override({"seed": 7, "data.dream_fraction": 0.5}), report=reports.append)
    prepare_run_dir(run_dir, TrainConfig().override({"seed": 7}), report=reports.append)
    assert reports == ["config.json predates data.dream_fraction, data.dream_videos; "
                       "continuing the run with their defaults (0.0, 1000)"]
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == json.loads(TrainConfig().override({"seed": 7}).to_json())


@pytest.mark.parametrize("stored_value", [None, "~/tensorflow_datasets"])
def test_a_run_whose_config_has_the_retired_data_dir_resumes_and_the_flag_is_gone(tmp_path, stored_value):
    """data.data_dir was never read by training (DAVIS comes from data.manual_dir): the key is retired. A
    config.json that still holds it, at any value, is the same run; the train CLI no longer offers --data_dir."""
    import json

    from maskrnn_tf import train
    from maskrnn_tf.training.config import known_keys

    run_dir = str(tmp_path / "run")
    config = TrainConfig().override({"seed": 7})
    path = prepare_run_dir(run_dir, config)
    with open(path, encoding="utf-8") as f:
        stored = json.load(f)
    stored["data"]["data_dir"] = stored_value  # as an older version wrote it
    with open(path, "w", encoding="utf-8") as f:
        json.dump(stored, f)
    reports = []
    prepare_run_dir(run_dir, config, report=reports.append)
    assert reports == []
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == json.loads(config.to_json())
    assert TrainConfig.from_dict(stored) == config
    assert "data.data_dir" not in known_keys() and "data_dir" not in train._FIELDS
    with pytest.raises(ValueError, match="data.data_dir"):
        config.override({"data.data_dir": "x"})  # --set gets the unknown-key error


def test_config_diff_names_nested_keys():
    assert config_diff({"a": 1, "m": {"w": 0.5, "f": 8}}, {"a": 1, "m": {"w": 1.0, "f": 8}, "n": 2}) == [
        "m.w: stored 0.5, now 1.0", "n: stored None, now 2"]


def test_the_lock_keeps_a_second_holder_out_and_is_released(tmp_path):
    run_dir = str(tmp_path / "run")
    with run_dir_lock(run_dir):
        with pytest.raises(RunDirBusyError, match=rf"in use by another training \(pid {os.getpid()}\)"):
            with run_dir_lock(run_dir):
                pass
    with run_dir_lock(run_dir):  # free again
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    run_dir = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from maskrnn_tf.training.run_dir import run_dir_lock\n"
        f"with run_dir_lock({run_dir!r}):\n    print('held', flush=True); time.sleep(120)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunDirBusyError, match=f"pid {holder.pid}"):
        with run_dir_lock(run_dir):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    deadline = time.time() + 10
    while True:
        try:
            with run_dir_lock(run_dir):
                break
        except RunDirBusyError:
            assert time.time() < deadline
            time.sleep(0.1)


def _tree(folder):
    """Every entry under `folder`: a file's bytes, a folder's None (the folder exactly as it is)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), folder)] = None
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                out[os.path.relpath(os.path.join(root, name), folder)] = f.read()
    return out


# What a run writes into its folder (or reads there as its own) besides config.json: a folder without config.json
# that holds one is someone else's. "/": a folder.
RUN_ENTRIES = ["precision.json", "last_validation.json", "checkpoints/", "logs/", "model_step40.keras",
               "model_step40_2.keras", "model_earlier.keras", ".best.new-1@host-abc/", ".best.old-250/"]


@pytest.mark.parametrize("entry", RUN_ENTRIES)
def test_a_users_folder_holding_anything_a_run_writes_is_refused_as_it_was(tmp_path, entry):
    """Only best/, model.keras and stage_a/ were refused: a user's precision.json and last_validation.json were
    replaced, their checkpoints/ taken for the run's, their logs/ written into."""
    run_dir = tmp_path / "theirs"
    name = entry.rstrip("/")
    if entry.endswith("/"):
        (run_dir / name).mkdir(parents=True)
        (run_dir / name / "their.txt").write_text("theirs")
    else:
        run_dir.mkdir()
        (run_dir / name).write_text("theirs")
    (run_dir / "notes.txt").write_text("mine")
    before = _tree(run_dir)
    with pytest.raises(ConfigMismatchError, match=rf"not a training run \(it has no config.json\) but holds "
                                                  rf"{name.replace('.', '[.]')},.*new --run_dir.*move them"):
        prepare_run_dir(str(run_dir), TrainConfig())
    assert _tree(run_dir) == before


def test_a_lock_file_that_no_training_wrote_is_theirs(tmp_path):
    """`.lock` is the run's only file before config.json (see test_a_run_stopped_before_config_json...): a training
    writes its pid there, so anything else in it is another program's (the run would truncate it)."""
    run_dir = tmp_path / "theirs"
    run_dir.mkdir()
    (run_dir / ".lock").write_text("held by the backup tool\n")
    before = _tree(run_dir)
    with pytest.raises(ConfigMismatchError, match=r"no config.json\) but holds [.]lock"):
        prepare_run_dir(str(run_dir), TrainConfig())
    assert _tree(run_dir) == before
    # A link, whatever it points to: taking the lock would write into the file it names.
    linked = tmp_path / "linked"
    linked.mkdir()
    (tmp_path / "their_file").write_text("42\n")
    os.symlink(tmp_path / "their_file", linked / ".lock")
    with pytest.raises(ConfigMismatchError, match=r"holds [.]lock"):
        prepare_run_dir(str(linked), TrainConfig())
    assert os.listdir(linked) == [".lock"] and (tmp_path / "their_file").read_text() == "42\n"


TINY = {"data.dataset": "synthetic_vos", "data.height": 32, "data.width": 48, "data.synthetic_train_videos": 4,
        "data.synthetic_video_frames": 6, "data.val_videos": 0, "data.batch_size": 4, "data.clip_batch_size": 2,
        "data.clip_length": 3, "model.width": 0.125, "model.fc_units": 16, "model.side_channels": 4,
        "precision": "float32", "eval_every": 0, "stage_a_steps": 1, "stage_b_steps": 1}


class _StrategyBuilt(Exception):
    pass


def test_training_refuses_a_users_folder_before_writing_anything_not_even_its_lock(tmp_path, monkeypatch):
    """The reviewer's folder: a precision.json, a last_validation.json and a checkpoints/ of TensorFlow checkpoints
    of another program. The checkpoints were taken for the run's ("the network ... differ; the run's config.json was
    left as it was", with no config.json there) and a .lock was left behind; now the refusal comes first."""
    import tensorflow as tf

    from maskrnn_tf.training import loop

    run_dir = tmp_path / "theirs"
    run_dir.mkdir()
    (run_dir / "precision.json").write_text('{"bits": 16}\n')
    (run_dir / "last_validation.json").write_text('{"epoch": 3, "accuracy": 0.9}\n')
    tf.train.CheckpointManager(tf.train.Checkpoint(w=tf.Variable([1.0, 2.0])), str(run_dir / "checkpoints"), 1).save()
    before = _tree(run_dir)

    def no_strategy(name):
        raise _StrategyBuilt(name)

    monkeypatch.setattr(loop, "make_strategy", no_strategy)  # nothing past the refusal may run
    with pytest.raises(ConfigMismatchError) as err:
        loop.train(TrainConfig().override(TINY), str(run_dir), printer=lambda s: None)
    assert str(err.value) == (
        f"{run_dir} is not a training run (it has no config.json) but holds checkpoints, last_validation.json, "
        "precision.json, which training writes (replacing what is there) or reads as its own. Use a new --run_dir, "
        "or move them out of it first.")
    assert _tree(run_dir) == before  # no .lock either


def test_a_run_stopped_before_config_json_is_its_own_and_goes_on(tmp_path, monkeypatch):
    """config.json is written once the run's checkpoint fits its settings: a run stopped before (here its data make
    no batch) leaves only its .lock in a folder that already held the user's notes. That folder is still the run's:
    the corrected rerun is not refused as someone else's."""
    from conftest import _global_generators_kept  # train() seeds the global generators

    from maskrnn_tf.training import loop

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    with _global_generators_kept(), pytest.raises(loop.TrainDataError, match="make no training batches"):
        loop.train(TrainConfig().override({**TINY, "data.clip_length": 13}), str(run_dir), printer=lambda s: None)
    assert sorted(os.listdir(run_dir)) == [".lock", "notes.txt"]
    assert (run_dir / ".lock").read_text() == f"{os.getpid()}\n"

    def no_strategy(name):
        raise _StrategyBuilt(name)

    monkeypatch.setattr(loop, "make_strategy", no_strategy)
    with pytest.raises(_StrategyBuilt):  # past the run dir's checks
        loop.train(TrainConfig().override(TINY), str(run_dir), printer=lambda s: None)
    prepare_run_dir(str(run_dir), TrainConfig().override(TINY))
    assert sorted(os.listdir(run_dir)) == [".lock", "config.json", "notes.txt"]
    # A lock left empty (stopped between creating it and writing the pid) is a run's too.
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".lock").write_bytes(b"")
    prepare_run_dir(str(empty), TrainConfig())


def test_a_run_with_config_json_resumes_with_everything_it_wrote(tmp_path):
    """The refusal is for folders without config.json: a run's own files are what a resume reads."""
    run_dir = tmp_path / "run"
    config = TrainConfig().override({"seed": 7})
    prepare_run_dir(str(run_dir), config)
    for name in ("checkpoints", "logs", "stage_a", "best"):
        (run_dir / name).mkdir()
    for name in ("precision.json", "last_validation.json", "model.keras", "model_step4.keras", ".lock"):
        (run_dir / name).write_text("the run's")
    prepare_run_dir(str(run_dir), config)


def test_the_names_refused_are_those_the_training_modules_write(tmp_path):
    """run_dir cannot import the modules that name them (they import it): the names must not drift apart."""
    from maskrnn_tf.training import best_model, checkpointing, loop
    from maskrnn_tf.training.run_dir import earlier_finish_stem, foreign_entries

    names = [loop.MODEL_NAME, loop.STAGE_A_DIR, loop.VALIDATED_NAME, checkpointing.PRECISION_FILE, best_model.BEST_DIR,
             "checkpoints", "logs", earlier_finish_stem(40) + ".keras", earlier_finish_stem(0) + ".keras",
             best_model._NEW_PREFIX + "1@host-abc", best_model._OLD_PREFIX + "250"]
    for name in names:
        (tmp_path / name).write_text("")
    (tmp_path / "notes.txt").write_text("mine")
    assert foreign_entries(str(tmp_path)) == sorted(names)
