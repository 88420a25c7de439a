"""The tuning options of TrainConfig: loss.class_balance and the stage A perturbation passthrough."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.data.perturb import PerturbConfig, mask_iou, perturb_mask
from maskrnn_tf.training.config import TrainConfig
from maskrnn_tf.training.inputs import perturb_config


def test_defaults_keep_the_papers_recipe():
    config = TrainConfig()
    assert config.loss.class_balance is True
    assert perturb_config(config.data) == PerturbConfig()


def test_overrides_reach_the_perturbation_and_round_trip():
    config = TrainConfig().override({"data.perturb_amount": 2.0, "data.perturb_min_iou": 0.3,
                                     "loss.class_balance": False})
    p = perturb_config(config.data)
    base = PerturbConfig()
    assert p.max_scale == pytest.approx(2 * base.max_scale)
    assert p.max_rotation_deg == pytest.approx(2 * base.max_rotation_deg)
    assert p.max_translation == pytest.approx(2 * base.max_translation)
    assert p.max_dilation == 2 * base.max_dilation
    assert p.elastic_alpha == pytest.approx(2 * base.elastic_alpha)
    assert p.min_iou == 0.3
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_zero_amount_gives_the_truth_back():
    mask = np.zeros((24, 32), np.float32)
    mask[6:15, 8:20] = 1
    p = perturb_config(TrainConfig().override({"data.perturb_amount": 0.0}).data)
    out = perturb_mask(tf.constant(mask), tf.constant([1, 2]), p).numpy()
    np.testing.assert_array_equal(out, mask)
    stronger = perturb_config(TrainConfig().override({"data.perturb_amount": 3.0, "data.perturb_min_iou": 0.0}).data)
    ious = [float(mask_iou(perturb_mask(tf.constant(mask), tf.constant([s, 0]), stronger), mask)) for s in range(4)]
    assert min(ious) < 0.9  # strong perturbations really move the mask


def test_clip_seed_options_reach_the_stage_b_dataset():
    from maskrnn_tf.data.sources import synthetic_source
    from maskrnn_tf.training.inputs import clip_seed_perturb_config, make_train_datasets

    data = TrainConfig().override({"data.clip_seed_amount": 2.0, "data.clip_seed_min_iou": 0.4}).data
    assert data.clip_seed_grow_only is False
    p = clip_seed_perturb_config(data)
    assert p.max_dilation == 2 * PerturbConfig().max_dilation and p.min_iou == 0.4
    assert perturb_config(data) == PerturbConfig()  # stage A's perturbation is its own
    small = {"data.height": 32, "data.width": 48, "data.clip_length": 3, "data.clip_batch_size": 1}
    source = synthetic_source(2, seed=0)
    for fraction, has_seeds in ((0.0, False), (1.0, True)):
        config = TrainConfig().override({**small, "data.clip_seed_fraction": fraction,
                                         "data.clip_seed_grow_only": True})
        _, clips = make_train_datasets(config.data, source, seed=1)
        batch = next(iter(clips))
        assert ("seed_masks" in batch) is has_seeds
        if has_seeds:  # grow_only reached the dataset: the seeds hold the truth of both ends
            assert batch["seed_masks"].shape == (1, 2, 32, 48)
            assert np.all(batch["seed_masks"].numpy() >= batch["masks"].numpy()[:, [0, -1]])
        assert TrainConfig.from_dict(config.to_dict()) == config


def test_burn_in_lengthens_the_stage_b_clips():
    from maskrnn_tf.data.sources import synthetic_source
    from maskrnn_tf.training.inputs import make_train_datasets

    config = TrainConfig().override({"data.height": 32, "data.width": 48, "data.clip_length": 3,
                                     "data.clip_batch_size": 1, "data.clip_burn_in": 2})
    _, clips = make_train_datasets(config.data, synthetic_source(2, seed=0), seed=1)
    assert next(iter(clips))["frames"].shape == (1, 5, 32, 48, 3)  # 2 burn-in frames, then the 3 of the clip
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="clip_burn_in"):
        TrainConfig().override({"data.clip_burn_in": -1})


@pytest.mark.parametrize("values", [{"data.clip_seed_fraction": 1.5}, {"data.clip_seed_amount": -1.0},
                                    {"data.clip_seed_min_iou": -0.1}])
def test_bad_clip_seed_values_raise(values):
    with pytest.raises(ValueError, match="clip_seed"):
        TrainConfig().override(values)


@pytest.mark.parametrize("values", [{"data.perturb_amount": -1.0}, {"data.perturb_min_iou": 1.5}])
def test_bad_perturbation_values_raise(values):
    with pytest.raises(ValueError, match="perturb"):
        TrainConfig().override(values)


def test_synthetic_flow_computed_from_the_frames():
    from maskrnn_tf.data.flow_backends import make_backend
    from maskrnn_tf.training.inputs import train_source, validation_videos

    data = TrainConfig().override({"data.val_videos": 1, "data.val_frames": 3, "data.height": 32,
                                   "data.width": 48, "data.synthetic_flow": "dis"}).data
    exact = validation_videos(dataclasses.replace(data, synthetic_flow="exact"))[0]
    computed = validation_videos(data)[0]
    np.testing.assert_array_equal(computed["frames"], exact["frames"])
    np.testing.assert_array_equal(computed["masks"], exact["masks"])
    dis = make_backend("dis")
    np.testing.assert_allclose(computed["flows_to_prev"][2], dis.flow(exact["frames"][2], exact["frames"][1]),
                               atol=1e-5)
    np.testing.assert_allclose(computed["flows_to_next"][0], dis.flow(exact["frames"][0], exact["frames"][1]),
                               atol=1e-5)
    np.testing.assert_array_equal(computed["flows_to_prev"][0], 0.0)  # no frame before the first
    assert not np.allclose(computed["flows_to_prev"][1:], exact["flows_to_prev"][1:])
    source = train_source(dataclasses.replace(data, synthetic_train_videos=2, synthetic_video_frames=3), seed=5)
    assert len(source) == 2
    np.testing.assert_allclose(source.load(0, [1])["flows_to_prev"][0],
                               dis.flow(source.load(0, [1])["frames"][0], source.load(0, [0])["frames"][0]),
                               atol=1e-5)


def test_unknown_synthetic_flow_raises():
    with pytest.raises(ValueError, match="synthetic_flow"):
        TrainConfig().override({"data.synthetic_flow": "raft"})


def test_color_jitter_reaches_both_training_datasets():
    from maskrnn_tf.data.sources import synthetic_source
    from maskrnn_tf.training.inputs import make_train_datasets

    frames = {}
    for jitter in (0.0, 1.0):
        config = TrainConfig().override({"data.height": 32, "data.width": 48, "data.clip_length": 3,
                                         "data.clip_batch_size": 1, "data.batch_size": 2,
                                         "data.color_jitter": jitter})
        static, clips = make_train_datasets(config.data, synthetic_source(2, seed=0), seed=1)
        frames[jitter] = (next(iter(static))["frame"].numpy(), next(iter(clips))["frames"].numpy())
        assert TrainConfig.from_dict(config.to_dict()) == config
    assert np.abs(frames[1.0][0] - frames[0.0][0]).mean() > 1.0
    assert np.abs(frames[1.0][1] - frames[0.0][1]).mean() > 1.0
    with pytest.raises(ValueError, match="color_jitter"):
        TrainConfig().override({"data.color_jitter": -0.5})


def test_training_refuses_the_flo_backend_by_name():
    """`--flow=flo` was offered by train's help, passed the config, and failed later saying the data made no
    batches (training has no folder of .flo files); it is refused with the config, saying where .flo files go."""
    from maskrnn_tf.training.config import TrainConfig

    with pytest.raises(ValueError, match=r"DataConfig.flow 'flo' .* is for segment \(--flow=flo --flo_dir\)"):
        TrainConfig().override({"data.flow": "flo"})
    with pytest.raises(ValueError, match="DataConfig.flow must be one of"):
        TrainConfig().override({"data.flow": "dis_fast"})
    assert TrainConfig().override({"data.flow": "farneback"}).data.flow == "farneback"


def test_the_colour_prior_input_takes_colour_jitter():
    """With the prior, colour jitter is a way to show the network a first-frame table that no longer matches the
    object's colours (a change of light): the config takes the pair (the pipelines' test checks the tables)."""
    config = TrainConfig().override({"model.color_prior_input": True, "data.color_jitter": 0.2})
    assert config.model.color_prior_input and config.data.color_jitter == 0.2
