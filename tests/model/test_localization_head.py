"""Localization head: zero-initialised deltas, shapes, save/load."""
import keras
import numpy as np

from maskrnn_tf.model.localization_head import build_localization_head


def test_starts_at_the_proposal_and_round_trips(tmp_path):
    head = build_localization_head(roi_size=3, channels=8, fc_units=16)
    rois = np.random.default_rng(0).random((5, 3, 3, 8)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(head(rois)), np.zeros((5, 4)))
    head.get_layer("deltas").set_weights([np.ones((16, 4), np.float32), np.zeros(4, np.float32)])
    out = np.asarray(head(rois))
    head.save(tmp_path / "h.keras")
    np.testing.assert_allclose(np.asarray(keras.models.load_model(tmp_path / "h.keras")(rois)), out)
    assert head.count_params() == 3 * 3 * 8 * 16 + 16 + 16 * 4 + 4
