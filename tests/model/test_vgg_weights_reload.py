"""A model trained from a VGG-16 weights file loads without that file: its own weights replace them anyway."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf import inference
from maskrnn_tf.model import MaskRNN, MaskRNNConfig
from maskrnn_tf.training.config import TrainConfig


def _assert_same_weights(got, want):
    assert len(got.weights) == len(want.weights)
    for a, b in zip(got.weights, want.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(model, {kind: path}): a full-width model (the only width VGG-16 weights fit) initialised from a VGG-16
    weights file made here (random, no download), with a weight changed after as training does, saved as a
    .keras file and as a run folder's checkpoint; then the weights file is deleted."""
    folder = tmp_path_factory.mktemp("vgg_reload")
    keras.utils.set_random_seed(0)
    h5 = str(folder / "vgg16.weights.h5")
    keras.applications.VGG16(include_top=False, weights=None).save_weights(h5)
    model = MaskRNN(MaskRNNConfig(width=1.0, fc_units=8, side_channels=2, vgg_weights=h5))
    kernel = model.appearance_stream.get_layer("appearance_stream_vgg16").get_layer("block1_conv1").kernel
    kernel.assign(kernel + 1.0)  # not the file's weights any more: a reload that read the file would differ
    keras_path = str(folder / "model.keras")
    model.save(keras_path)
    run_dir = folder / "run"
    os.makedirs(run_dir)
    config = TrainConfig().override({"model.width": 1.0, "model.fc_units": 8, "model.side_channels": 2,
                                     "model.vgg_weights": h5})
    (run_dir / "config.json").write_text(config.to_json())
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(run_dir / "checkpoints"), 1).save(5)
    assert json.loads((run_dir / "config.json").read_text())["model"]["vgg_weights"] == h5
    os.remove(h5)  # moved, deleted, or the model copied to another machine
    return model, {"keras": keras_path, "checkpoint": str(run_dir)}


@pytest.mark.parametrize("kind", ["keras", "checkpoint"])
def test_a_model_loads_after_its_vgg_weights_file_is_gone(saved, kind):
    model, paths = saved
    loaded = inference.load_model(paths[kind])
    assert loaded.config == model.config  # still records where the training started from
    _assert_same_weights(loaded, model)


def test_a_run_config_of_the_wrong_type_is_named_when_its_checkpoint_is_loaded(saved, tmp_path):
    """A run folder whose config.json says "side_channels": "2" (hand-edited) is refused naming the file and key."""
    _, paths = saved
    run_dir = tmp_path / "run"
    os.makedirs(run_dir)
    os.symlink(os.path.join(paths["checkpoint"], "checkpoints"), run_dir / "checkpoints")
    config = json.loads(open(os.path.join(paths["checkpoint"], "config.json")).read())
    config["model"]["side_channels"] = "2"
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(inference.ModelLoadError) as err:
        inference.load_model(str(run_dir))
    assert str(run_dir / "config.json") in str(err.value) and "side_channels='2': expected an integer" in str(err.value)
