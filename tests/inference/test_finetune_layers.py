"""Online finetuning of some layers only (maskrnn_tf.inference.finetune_layers), with a tiny model."""
import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.data.dreaming import DreamConfig
from maskrnn_tf.inference import FinetuneConfig
from maskrnn_tf.inference.finetune import StaticFinetuner
from maskrnn_tf.inference.finetune_layers import FINETUNE_LAYERS, finetuned_variables
from maskrnn_tf.inference.recurrent_finetune import RecurrentFinetuneConfig, RecurrentFinetuner
from maskrnn_tf.model import MaskRNN, MaskRNNConfig


def _model(**config) -> MaskRNN:
    tf.keras.utils.set_random_seed(3)
    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16, **config))
    model.build()
    return model


def _first_frame():
    frame = np.random.default_rng(1).integers(0, 256, (48, 64, 3)).astype(np.uint8)
    ids = np.zeros((48, 64), np.uint8)
    ids[6:30, 8:30], ids[20:44, 36:60] = 1, 2
    return frame, ids


def _by_kind(model):
    """Trainable variables by the layer their path names: VGG block k (`blockk_convi/...`) or anything else."""
    kinds = {}
    for v in model.trainable_variables:
        kinds.setdefault(v.path.split("_")[0] if v.path.startswith("block") else "head", []).append(v)
    return kinds


@pytest.mark.parametrize("flow_stream", [True, False])
def test_the_layer_sets_by_the_names_of_their_variables(flow_stream):
    model = _model(use_flow_stream=flow_stream)
    kinds = _by_kind(model)
    streams = 2 if flow_stream else 1
    # 13 VGG convs per stream, kernel and bias each; 4 side convs (the default stages) and their fuse per stream.
    assert sum(len(kinds[f"block{k}"]) for k in range(1, 6)) == 26 * streams
    ids = lambda vs: [id(v) for v in vs]  # noqa: E731
    assert ids(finetuned_variables(model, "all")) == ids(model.trainable_variables)
    heads = finetuned_variables(model, "heads")
    assert sorted(ids(heads)) == sorted(ids(kinds["head"]))
    assert len(heads) == 10 * streams + 6  # + stream fusion, fc1 and deltas
    assert {v.path.split("/")[0] for v in heads} >= {"side_fuse", "fc1", "deltas"}
    block5 = finetuned_variables(model, "block5")
    assert sorted(ids(block5)) == sorted(ids(kinds["head"] + kinds["block5"]))
    # In the model's order (the optimizer's slots follow it).
    order = {i: n for n, i in enumerate(ids(model.trainable_variables))}
    assert [order[i] for i in ids(block5)] == sorted(order[i] for i in ids(block5))
    with pytest.raises(ValueError, match="all, block5, heads"):
        finetuned_variables(model, "trunk")
    assert FINETUNE_LAYERS == ("all", "block5", "heads")
    for config in (FinetuneConfig, RecurrentFinetuneConfig):
        with pytest.raises(ValueError, match="layers must be one of"):
            config(layers="head")


def _slot_shapes(optimizer):
    return sorted(tuple(v.shape) for v in optimizer.variables if len(v.shape) > 0)


def _changed(before, model):
    return {kind: [not np.array_equal(b, v.numpy()) for b, v in zip(before[kind], vs)]
            for kind, vs in _by_kind(model).items()}


@pytest.mark.parametrize("layers", ["heads", "block5"])
def test_recurrent_finetuning_updates_only_its_layers_and_still_fits_the_clips(layers):
    model = _model()
    frame, ids = _first_frame()
    before = {kind: [v.numpy() for v in vs] for kind, vs in _by_kind(model).items()}
    config = RecurrentFinetuneConfig(steps=8, time_budget_s=0, num_clips=1, dream=DreamConfig(num_frames=3),
                                     learning_rate=1e-3, layers=layers)
    finetuner = RecurrentFinetuner(model, 2, config)
    loss_before = finetuner.loss(frame, ids, [1, 2])
    result = finetuner.run(frame, ids, [1, 2])
    assert result.applied_updates == 8
    assert finetuner.loss(frame, ids, [1, 2]) < loss_before
    changed = _changed(before, model)
    assert all(changed["head"]), changed["head"]
    for k in range(1, 5):
        assert not any(changed[f"block{k}"]), k
    assert all(changed["block5"]) == (layers == "block5") and any(changed["block5"]) == (layers == "block5")
    # Adam holds its two moments for the trained variables only (not for the trunks' kept weights).
    assert _slot_shapes(finetuner._steps.optimizer) == sorted(2 * [tuple(v.shape) for v in
                                                                   finetuned_variables(model, layers)])


def test_static_finetuning_updates_only_the_heads():
    model = _model()
    frame, ids = _first_frame()
    before = {kind: [v.numpy() for v in vs] for kind, vs in _by_kind(model).items()}
    finetuner = StaticFinetuner(model, FinetuneConfig(steps=3, learning_rate=1e-3, layers="heads"))
    finetuner.run(frame, ids, [1, 2])
    changed = _changed(before, model)
    assert _slot_shapes(finetuner.optimizer) == sorted(2 * [tuple(v.shape) for v in _by_kind(model)["head"]])
    assert all(changed["head"])
    assert not any(any(changed[f"block{k}"]) for k in range(1, 6))
