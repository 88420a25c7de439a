"""The float16 SavedModel export computes what the float32 model computes, within float16's error."""
import keras
import numpy as np
import tensorflow as tf

from maskrnn_tf.export.saved_model_export import ExportConfig, export_saved_model
from maskrnn_tf.model import MaskRNN, MaskRNNConfig

H, W = 40, 56


def _inputs(seed):
    rng = np.random.default_rng(seed)
    probs = np.zeros((2, H, W), np.float32)
    probs[0, 5:20, 5:25] = 1.0
    probs[1, 22:35, 30:50] = 1.0
    return {
        "frame": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        "flow_to_prev": rng.normal(0, 2, (H, W, 2)).astype(np.float32),
        "flow_to_next": rng.normal(0, 2, (H, W, 2)).astype(np.float32),
        "prev_probs": probs,
        "prev_boxes": np.array([[5, 5, 20, 25], [22, 30, 35, 50]], np.float32),
    }


def test_float16_export_matches_the_float32_model(tmp_path):
    keras.utils.set_random_seed(5)
    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=32))
    path = export_saved_model(model, str(tmp_path), 1, ExportConfig(precision="float16", warmup=None))
    loaded = tf.saved_model.load(path)
    # Measured on the in-memory model: float16 probs differ from float32's by at most 0.003 (tests/model/
    # test_maskrnn.py); the export must not add more (a float32 graph would give 0, a broken one far more).
    rows = [_inputs(0), _inputs(1)]
    refs = [model.step(r["frame"], r["flow_to_prev"], r["flow_to_next"], r["prev_probs"], r["prev_boxes"]) for r in rows]
    for inputs, ref in zip(rows, refs):
        out = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
        diff = np.abs(out["probs"].numpy() - ref["probs"].numpy())
        assert 0 < diff.max() < 0.005, diff.max()
        np.testing.assert_allclose(out["boxes"].numpy(), ref["boxes"].numpy(), atol=0.05)
    # The batched signature, one object per row with distinct frames: each row against its own step.
    batched = {k: np.stack([rows[0][k], rows[1][k]]) for k in ("frame", "flow_to_prev", "flow_to_next")}
    batched.update(prev_probs=np.stack([rows[0]["prev_probs"][0], rows[1]["prev_probs"][1]]),
                   prev_boxes=np.stack([rows[0]["prev_boxes"][0], rows[1]["prev_boxes"][1]]))
    out = loaded.signatures["step_batched"](**{k: tf.constant(v) for k, v in batched.items()})
    np.testing.assert_allclose(out["probs"].numpy()[0], refs[0]["probs"].numpy()[0], atol=0.005)
    np.testing.assert_allclose(out["probs"].numpy()[1], refs[1]["probs"].numpy()[1], atol=0.005)
