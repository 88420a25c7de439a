"""Validation during training of a network with the colour prior input: tables from the video's first frame."""
import numpy as np

from maskrnn_tf.data.synthetic import SyntheticConfig, generate_video
from maskrnn_tf.inference.color_gate import fit_color_model
from maskrnn_tf.model import MaskRNN, MaskRNNConfig
from maskrnn_tf.training.validation import evaluate, make_step_fn, segment_video


def _segment_seeing_tables(model, video):
    """(labels, the colour tables fed to each step) of validation's segment_video on `video`."""
    compiled = make_step_fn(model)
    seen = []

    def step(*args, **kwargs):
        seen.append(np.asarray(kwargs["color_model"]))
        return compiled(*args, **kwargs)

    return segment_video(model, step, video), seen


def test_validation_feeds_tables_fitted_on_the_first_frame_at_every_step(no_autograph):
    video = generate_video(3, SyntheticConfig(height=32, width=48, num_frames=4, min_objects=2, max_objects=2))
    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16, color_prior_input=True, color_prior_band=0.1))
    labels, seen = _segment_seeing_tables(model, video)
    ids = [i for i in range(1, 255) if np.any(video["masks"][0] == i)]
    want = fit_color_model(video["frames"][0], video["masks"][0], ids, 0.1, space="rgb")
    assert len(seen) == 3 and len(ids) == 2
    for tables in seen:
        np.testing.assert_array_equal(tables, want)
    assert labels.shape == video["masks"].shape
    j, _ = evaluate(model, [video])
    assert 0.0 <= j <= 1.0
    assert no_autograph == []  # validation's step is traced unconverted


def test_validation_fits_the_tables_at_the_size_training_and_segment_fit_them():
    """Held-out DAVIS videos are validated at the training size, and the tables were fitted on the downscaled first
    frame: fit_color_model's smoothing counts depend on the pixel count (car-turn: up to 0.53 apart from the tables
    training and segment fit on the first frame as stored). The first frame and mask are kept at their size."""
    from maskrnn_tf.training.inputs import _resize_video

    big = generate_video(5, SyntheticConfig(height=96, width=144, num_frames=3, min_objects=2, max_objects=2))
    video = _resize_video(dict(big), 48, 72)
    assert video["frames"].shape[1:3] == (48, 72)
    np.testing.assert_array_equal(video["first_frame"], big["frames"][0])
    np.testing.assert_array_equal(video["first_mask"], big["masks"][0])
    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=16, color_prior_input=True, color_prior_band=0.1))
    _, seen = _segment_seeing_tables(model, video)
    ids = [i for i in range(1, 255) if np.any(video["masks"][0] == i)]
    want = fit_color_model(big["frames"][0], big["masks"][0], ids, 0.1, space="rgb")
    downscaled = fit_color_model(video["frames"][0], video["masks"][0], ids, 0.1, space="rgb")
    assert not np.allclose(want, downscaled)  # the premise: the size matters
    for tables in seen:
        np.testing.assert_array_equal(tables, want)
