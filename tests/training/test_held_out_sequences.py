"""`data.val_sequences`: train sequences held out of training and validated on (the selection split)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from maskrnn_tf.data.sequences import read_davis_sequence_list
from maskrnn_tf.training.config import DataConfig, TrainConfig
from maskrnn_tf.training.inputs import (DataNotFoundError, check_data_available, split_held_out,
                                        validation_videos)

HELD = ("dog-agility", "car-turn")


def _davis16(shared_data, **kw) -> DataConfig:
    return DataConfig(dataset="davis16", manual_dir=os.path.join(shared_data, "DAVIS-2016"), **kw)


def test_held_out_sequences_leave_the_training_set(shared_data):
    data = _davis16(shared_data, val_sequences=HELD)
    everything = read_davis_sequence_list(data.manual_dir, 2016, "train")
    train, held = split_held_out(data, everything)
    assert [s.name for s in held] == list(HELD)
    assert len(train) == len(everything) - 2 == 24
    assert not {s.name for s in train} & set(HELD)
    assert {s.name for s in train} | set(HELD) == {s.name for s in everything}


def test_an_unknown_sequence_is_refused_by_name(shared_data):
    data = _davis16(shared_data, val_sequences=("dog-agility", "blackswan"))  # blackswan is a val sequence
    with pytest.raises(DataNotFoundError, match=r"\['blackswan'\].*sequences are: bmx-bumps, boat"):
        check_data_available(data)


def test_holding_out_everything_is_refused(shared_data):
    data = _davis16(shared_data)
    names = tuple(s.name for s in read_davis_sequence_list(data.manual_dir, 2016, "train"))
    with pytest.raises(DataNotFoundError, match="every train sequence"):
        check_data_available(DataConfig(dataset="davis16", manual_dir=data.manual_dir, val_sequences=names))


def test_validation_reads_the_held_out_sequences_not_the_val_split(shared_data):
    data = _davis16(shared_data, val_sequences=("car-turn",), val_videos=4, val_frames=2, height=48, width=96,
                    flow="farneback")
    videos = validation_videos(data)
    assert [str(v["name"]) for v in videos] == ["car-turn"]  # all held-out ones, val_videos unused
    frames = read_davis_sequence_list(data.manual_dir, 2016, "train")
    car = next(s for s in frames if s.name == "car-turn")
    import cv2

    first = cv2.cvtColor(cv2.imread(car.frame_paths[0]), cv2.COLOR_BGR2RGB)
    expected = cv2.resize(first, (96, 48), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(videos[0]["frames"][0], expected)
    assert videos[0]["masks"].shape == (2, 48, 96) and set(np.unique(videos[0]["masks"])) == {0, 1}


@pytest.mark.parametrize("value, expected", [(["a", "b"], ("a", "b")), ("a,b", ("a", "b")), ((), ())])
def test_names_normalise_to_a_tuple_and_round_trip(value, expected):
    config = TrainConfig().override({"data.dataset": "davis16", "data.val_sequences": value})
    assert config.data.val_sequences == expected
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config


@pytest.mark.parametrize("value", [["a", "a"], ["a", ""]])
def test_repeated_or_empty_names_raise(value):
    with pytest.raises(ValueError, match="distinct non-empty"):
        DataConfig(dataset="davis16", val_sequences=value)


def test_synthetic_data_has_no_sequences_to_hold_out():
    with pytest.raises(ValueError, match="synthetic_vos validates on videos of unseen seeds"):
        DataConfig(val_sequences=("boat",))


def test_the_flag_reaches_the_config():
    out = subprocess.run(
        [sys.executable, "-m", "maskrnn_tf.train", "--dataset=davis16", "--val_sequences=boat,surf",
         "--print_config"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout[out.stdout.index("{"):])["data"]["val_sequences"] == ["boat", "surf"]
