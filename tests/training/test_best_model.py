"""BestModel: the run's best/ folder follows the highest held-out validation J, survives resumes and crashes,
and is never kept for a validation on the reported split."""
import json
import os

import pytest
from killed_runs import die_before_rename  # tests/killed_runs.py

from maskrnn_tf.training.best_model import BestModel, read_record, selection_set
from maskrnn_tf.training.config import DataConfig, TrainConfig
from maskrnn_tf.training.run_dir import ConfigMismatchError


def _config(**data):
    return TrainConfig(data=DataConfig(**data))


def _saver(step):
    def save(path):
        with open(path, "w") as f:
            f.write(f"weights of step {step}")
    return save


def _kept(run_dir):
    with open(os.path.join(run_dir, "best", "model.keras")) as f:
        return f.read()


def test_the_folder_follows_the_highest_j_and_skips_non_finite_values(tmp_path):
    best = BestModel(str(tmp_path), _config(val_videos=2))
    # (step, J, kept?): a lower, equal or non-finite J keeps the earlier model.
    offers = [(10, 0.30, True), (20, 0.50, True), (30, 0.40, False), (40, float("nan"), False),
              (50, 0.50, False), (60, 0.61, True), (70, float("inf"), False), (80, 0.60, False)]
    for step, j, expected in offers:
        assert best.offer(step, j, _saver(step)) is expected, step
    assert (best.step, best.j) == (60, 0.61)
    assert _kept(tmp_path) == "weights of step 60"
    record = read_record(str(tmp_path / "best"))
    assert record["step"] == 60 and record["J"] == 0.61
    assert record["selection"] == selection_set(DataConfig(val_videos=2))
    with open(tmp_path / "best" / "config.json") as f:
        assert TrainConfig.from_dict(json.load(f)) == _config(val_videos=2)
    assert sorted(os.listdir(tmp_path)) == ["best"]  # no temporary or old folder left
    assert best.describe() == f"best model: J 0.6100 at step 60, in {tmp_path / 'best'}"


def test_a_resumed_run_keeps_the_record_of_the_same_selection_and_restarts_it_for_another(tmp_path):
    BestModel(str(tmp_path), _config(val_videos=2)).offer(100, 0.7, _saver(100))
    resumed = BestModel(str(tmp_path), _config(val_videos=2))
    assert (resumed.step, resumed.j) == (100, 0.7)
    assert not resumed.offer(200, 0.65, _saver(200))
    assert _kept(tmp_path) == "weights of step 100"
    # Other validation frames (or videos, or size): J is not comparable, the first new J replaces the record.
    other = BestModel(str(tmp_path), _config(val_videos=2, val_frames=12))
    assert other.step is None and "step 100) was chosen on other validation videos" in other.note
    assert resumed.note is None
    assert other.offer(300, 0.2, _saver(300))
    assert _kept(tmp_path) == "weights of step 300" and read_record(str(tmp_path / "best"))["J"] == 0.2


def test_other_validation_flows_restart_the_record_and_older_records_without_flows_are_kept(tmp_path):
    """The flows of the validation videos are part of what J is measured on: after --overwrite_config changed
    --flow (or synthetic_flow), J used to be compared with the old best as if on the same input."""
    davis = dict(dataset="davis16", val_sequences=("car-turn", "dog-agility"))
    BestModel(str(tmp_path), _config(**davis)).offer(100, 0.7, _saver(100))
    assert read_record(str(tmp_path / "best"))["selection"]["flow"] == "dis"
    other = BestModel(str(tmp_path), _config(flow="farneback", **davis))
    assert other.step is None and "chosen on other validation videos" in other.note
    synthetic = str(tmp_path / "synthetic")
    os.makedirs(synthetic)
    BestModel(synthetic, _config(val_videos=2)).offer(10, 0.5, _saver(10))
    assert BestModel(synthetic, _config(val_videos=2, synthetic_flow="dis")).step is None
    # A record written before the flows were part of it: the same run's resume keeps it.
    path = tmp_path / "synthetic" / "best" / "best.json"
    record = json.loads(path.read_text())
    del record["selection"]["flow"]
    path.write_text(json.dumps(record))
    kept = BestModel(synthetic, _config(val_videos=2))
    assert (kept.step, kept.j, kept.note) == (10, 0.5, None)


def test_a_davis_record_scored_at_the_training_size_is_not_compared_with_j_scored_at_the_stored_size(tmp_path):
    """Validation J of DAVIS held-out sequences was scored at the training size with objects thinner than a cell
    dropped (usually higher): a resumed run kept such a best.json and compared the new J with it, so `best/` could
    stay at an old step for good. Its record names no "scored": the first new J replaces it."""
    davis = dict(dataset="davis16", val_sequences=("car-turn", "dog-agility"))
    BestModel(str(tmp_path), _config(**davis)).offer(100, 0.9, _saver(100))
    path = tmp_path / "best" / "best.json"
    record = json.loads(path.read_text())
    assert BestModel(str(tmp_path), _config(**davis)).step == 100  # the same scoring: kept
    del record["selection"]["scored"]  # as validation before the stored-size scoring wrote it
    path.write_text(json.dumps(record))
    resumed = BestModel(str(tmp_path), _config(**davis))
    assert resumed.step is None and "step 100) was scored at the training size" in resumed.note
    assert "other validation videos" not in resumed.note  # the same videos: only the scoring changed
    # A record without "scored" on other videos is still told as another selection.
    other = BestModel(str(tmp_path), _config(dataset="davis16", val_sequences=("car-turn",)))
    assert other.step is None and "chosen on other validation videos" in other.note
    # A scoring this version does not know is named as such, and a record of the same selection without a finite
    # J is not told as other videos either.
    path.write_text(json.dumps({**record, "selection": {**record["selection"], "scored": "some later scoring"}}))
    later = BestModel(str(tmp_path), _config(**davis))
    assert later.step is None and "was scored another way ('some later scoring')" in later.note
    full = json.loads(json.dumps(record))
    full["selection"]["scored"] = BestModel(str(tmp_path), _config(**davis)).selection["scored"]
    path.write_text(json.dumps({**full, "J": float("nan")}))
    unscored = BestModel(str(tmp_path), _config(**davis))
    assert unscored.step is None and "records no finite J (nan)" in unscored.note
    path.write_text(json.dumps(record))
    assert resumed.offer(200, 0.7, _saver(200)) and _kept(tmp_path) == "weights of step 200"


def test_davis_without_held_out_train_sequences_keeps_no_best_model(tmp_path):
    # Validation then runs on the first val sequences: the reported ones, never a split to choose on.
    best = BestModel(str(tmp_path), _config(dataset="davis16", val_videos=4))
    assert not best.enabled and not best.offer(10, 0.9, _saver(10))
    assert os.listdir(tmp_path) == []
    assert "--val_sequences" in best.describe()
    held_out = selection_set(DataConfig(dataset="davis16", val_sequences=("dog-agility", "car-turn"),
                                        val_frames=20, height=240, width=432))
    assert held_out == {"dataset": "davis16", "videos": ["dog-agility", "car-turn"], "frames": 20,
                        "height": 240, "width": 432, "flow": "dis", "scored": "stored size, seeded as segment"}
    assert selection_set(DataConfig(val_videos=0)) is None


def test_a_failed_save_leaves_the_previous_best_whole(tmp_path):
    best = BestModel(str(tmp_path), _config())
    best.offer(10, 0.4, _saver(10))

    def broken(path):
        with open(path, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        best.offer(20, 0.9, broken)
    assert _kept(tmp_path) == "weights of step 10" and (best.step, best.j) == (10, 0.4)
    assert sorted(os.listdir(tmp_path)) == ["best"]


def test_a_training_killed_between_the_renames_gets_its_best_folder_back(tmp_path):
    BestModel(str(tmp_path), _config()).offer(10, 0.4, _saver(10))
    # A training dies after moving best/ away, before moving the new one in.
    die_before_rename(lambda: BestModel(str(tmp_path), _config()).offer(20, 0.9, _saver(20)), 2)
    assert not (tmp_path / "best").exists()
    resumed = BestModel(str(tmp_path), _config())
    assert (resumed.step, resumed.j) == (10, 0.4)
    assert sorted(os.listdir(tmp_path)) == ["best"] and _kept(tmp_path) == "weights of step 10"


def test_a_crash_between_the_renames_of_an_earlier_version_is_repaired_by_the_next_run(tmp_path):
    best = BestModel(str(tmp_path), _config())
    best.offer(10, 0.4, _saver(10))
    # The old folder was moved aside and the process died before the new one was renamed into place; an
    # unfinished new folder is left too (the names earlier versions used).
    os.rename(tmp_path / "best", tmp_path / ".best.old-20")
    (tmp_path / ".best.new-abc").mkdir()
    (tmp_path / ".best.new-abc" / "model.keras").write_text("half")
    resumed = BestModel(str(tmp_path), _config())
    assert (resumed.step, resumed.j) == (10, 0.4)
    assert sorted(os.listdir(tmp_path)) == ["best"] and _kept(tmp_path) == "weights of step 10"


def test_a_best_folder_without_its_record_is_not_the_runs_and_is_never_replaced(tmp_path):
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "model.keras").write_text("the user's own model")
    with pytest.raises(ConfigMismatchError, match="no best.json.*Move it out"):
        BestModel(str(tmp_path), _config(val_videos=2))
    assert os.listdir(tmp_path / "best") == ["model.keras"]
