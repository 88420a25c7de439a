"""Exports load and run through the model server's own loader (a TF1 session over the `serve` MetaGraph).

`tensorflow_model_server` restores variables with the saver's restore op, not through the TF2 object graph;
an export whose variables that op misses fails every Predict with FAILED_PRECONDITION "Could not find
variable ...". Every signature of every export precision is run here that way and compared with the model.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.export.saved_model_export import ExportConfig, export_saved_model
from maskrnn_tf.export.session_model import SessionModel

H, W = 40, 56
# Reduced-precision exports against the float32 model: the bound the export tests already use for bfloat16;
# the same export through the TF2 loader must agree to float32 rounding.
TOLERANCE = {"float32": 1e-5, "bfloat16": 0.05, "float16": 0.05}


def _video_inputs(seed: int, n: int):
    rng = np.random.default_rng(seed)
    probs = np.zeros((n, H, W), np.float32)
    boxes = np.zeros((n, 4), np.float32)
    for k in range(n):
        y0, x0 = int(rng.integers(0, H // 2)), int(rng.integers(0, W // 2))
        y1, x1 = y0 + int(rng.integers(8, H // 2)), x0 + int(rng.integers(8, W // 2))
        probs[k, y0:y1, x0:x1] = 1.0
        boxes[k] = (y0, x0, y1, x1)
    return {
        "frame": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        "flow_to_prev": rng.normal(0, 2, (H, W, 2)).astype(np.float32),
        "flow_to_next": rng.normal(0, 2, (H, W, 2)).astype(np.float32),
        "prev_probs": probs,
        "prev_boxes": boxes,
    }


def _step(model, inputs):
    out = model.step(inputs["frame"], inputs["flow_to_prev"], inputs["flow_to_next"], inputs["prev_probs"],
                     inputs["prev_boxes"])
    return {k: v.numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def versions(tmp_path_factory, export_base, tiny_model):
    """precision -> version folder: the shared float32 export and a bfloat16 and a float16 one."""
    base = str(tmp_path_factory.mktemp("precisions"))
    out = {"float32": os.path.join(export_base, "1")}
    for version, precision in ((2, "bfloat16"), (3, "float16")):
        out[precision] = export_saved_model(tiny_model, base, version, ExportConfig(precision=precision, warmup=None))
    return out


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "float16"])
def test_every_signature_runs_through_the_session_loader(versions, tiny_model, precision):
    atol = TOLERANCE[precision]
    with open(os.path.join(versions[precision], "assets.extra", "maskrnn_export.json"), encoding="utf-8") as f:
        assert json.load(f)["precision"] == precision
    with SessionModel(versions[precision]) as served:
        assert {"serving_default", "first_frame", "step_batched"} <= set(served.signature_defs)

        # serving_default: one step of a 2-object video against the model's own step.
        inputs = _video_inputs(seed=1, n=2)
        ref = _step(tiny_model, inputs)
        out = served.run("serving_default", inputs)
        assert out["probs"].dtype == np.float32 and out["labels"].dtype == np.int32
        np.testing.assert_allclose(out["probs"], ref["probs"], atol=atol)
        np.testing.assert_allclose(out["boxes"], ref["boxes"], atol=max(atol, 1e-4) * max(H, W))
        if precision == "float32":
            np.testing.assert_array_equal(out["labels"], tiny_model.fuse(ref["probs"]).numpy())
        else:
            assert not np.array_equal(out["probs"], ref["probs"])  # really computed in the lower precision
        # The TF2 loader of the same version computes the same thing.
        tf2 = tf.saved_model.load(versions[precision]).signatures["serving_default"]
        tf2_out = tf2(**{k: tf.constant(v) for k, v in inputs.items()})
        np.testing.assert_allclose(out["probs"], tf2_out["probs"].numpy(), atol=1e-5)

        # step_batched: two rows from two different videos, each compared with its own one-object step.
        rows = [_video_inputs(seed=2, n=1), _video_inputs(seed=3, n=1)]
        batched = {k: np.stack([r[k] for r in rows]) for k in ("frame", "flow_to_prev", "flow_to_next")}
        batched.update(prev_probs=np.concatenate([r["prev_probs"] for r in rows]),
                       prev_boxes=np.concatenate([r["prev_boxes"] for r in rows]))
        out = served.run("step_batched", batched)
        for i, row in enumerate(rows):
            ref = _step(tiny_model, row)
            np.testing.assert_allclose(out["probs"][i], ref["probs"][0], atol=atol)
            np.testing.assert_allclose(out["boxes"][i], ref["boxes"][0], atol=max(atol, 1e-4) * max(H, W))
        assert not np.allclose(out["probs"][0], out["probs"][1])  # the rows really differ

        # first_frame: the 0/1 maps and tight boxes of a hand-made id mask.
        ids = np.zeros((H, W), np.uint8)
        ids[5:20, 5:25] = 1
        ids[22:35, 30:50] = 3
        out = served.run("first_frame", {"mask": ids, "object_ids": np.array([3, 1], np.int32)})
        np.testing.assert_array_equal(out["prev_probs"], np.stack([ids == 3, ids == 1]).astype(np.float32))
        np.testing.assert_array_equal(out["prev_boxes"], [[22, 30, 35, 50], [5, 5, 20, 25]])


def test_saved_model_cli_run_answers_serving_default(tmp_path, export_base, tiny_model):
    """The README's `saved_model_cli run` line (the .venv's CLI, which loads through the session loader)."""
    inputs = _video_inputs(seed=4, n=2)
    for name, value in inputs.items():
        np.save(tmp_path / f"{name}.npy", value)
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    outdir = tmp_path / "out"
    result = subprocess.run(
        [cli, "run", "--dir", os.path.join(export_base, "1"), "--tag_set", "serve", "--signature_def",
         "serving_default", "--inputs", ";".join(f"{k}={tmp_path / k}.npy" for k in inputs), "--outdir", str(outdir)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    ref = _step(tiny_model, inputs)
    np.testing.assert_allclose(np.load(outdir / "probs.npy"), ref["probs"], atol=1e-5)
    np.testing.assert_array_equal(np.load(outdir / "labels.npy"), tiny_model.fuse(ref["probs"]).numpy())


def test_a_median_flow_reference_export_runs_through_the_session_loader(tmp_path):
    """model.flow_reference='median' (a sort inside the graph): the served steps equal the model's, with each
    row of step_batched centred on its own frame's median flow (rows of two videos, panning differently)."""
    import keras

    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    keras.utils.set_random_seed(4)
    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=32, flow_reference="median"))
    version = export_saved_model(model, str(tmp_path / "maskrnn"), 1, ExportConfig(warmup=None))
    rows = [_video_inputs(seed=5, n=1), _video_inputs(seed=6, n=1)]
    for row, pan in zip(rows, ([6.0, -4.0], [-5.0, 3.0])):
        row["flow_to_prev"] += np.float32(pan)
        row["flow_to_next"] -= np.float32(pan)
    with SessionModel(version) as served:
        inputs = _video_inputs(seed=7, n=2)
        np.testing.assert_allclose(served.run("serving_default", inputs)["probs"], _step(model, inputs)["probs"],
                                   atol=1e-5)
        batched = {k: np.stack([r[k] for r in rows]) for k in ("frame", "flow_to_prev", "flow_to_next")}
        batched.update(prev_probs=np.concatenate([r["prev_probs"] for r in rows]),
                       prev_boxes=np.concatenate([r["prev_boxes"] for r in rows]))
        out = served.run("step_batched", batched)
    for i, row in enumerate(rows):
        np.testing.assert_allclose(out["probs"][i], _step(model, row)["probs"][0], atol=1e-5)


def test_a_colour_prior_export_fits_the_tables_and_steps_with_them_through_the_session_loader(tmp_path):
    """model.color_prior_input: color_tables fits the objects' colour tables from the first frame and its id mask,
    one row per object (the NumPy fit's), the steps take them (serving_default and step_batched rows equal the
    model's step with those tables), a request without them is refused, and the warmup replays."""
    import keras

    from maskrnn_tf.export.warmup import WarmupConfig
    from maskrnn_tf.inference.color_gate import fit_color_model
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    keras.utils.set_random_seed(8)
    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=32, color_prior_input=True, color_prior_band=0.1))
    version = export_saved_model(model, str(tmp_path / "maskrnn"), 1,
                                 ExportConfig(warmup=WarmupConfig(shapes=((24, 32, 2),))))
    inputs = _video_inputs(seed=9, n=2)
    ids = np.zeros((H, W), np.uint8)
    ids[5:20, 5:25] = 1
    ids[22:35, 30:50] = 3
    ids[0:3, 0:6] = 255
    frame = inputs["frame"].copy()
    frame[ids == 1] = (220, 30, 30)
    want = fit_color_model(frame, ids, [3, 1], 0.1, space="rgb")
    with SessionModel(version) as served:
        assert set(served.signature_defs["serving_default"].inputs) >= {"color_model"}
        first = served.run("color_tables", {"mask": np.stack([ids, ids]), "object_ids": np.array([3, 1], np.int32),
                                            "frame": np.stack([frame, frame])})
        np.testing.assert_allclose(first["color_model"], want, rtol=1e-5, atol=1e-6)
        assert first["input_error"].tolist() == [b"", b""]
        # A row whose id is absent from its mask is answered alone (a batching server may have merged it with
        # another client's rows): its message, a zero table; the other row as before.
        absent = served.run("color_tables", {"mask": np.stack([ids, ids]), "object_ids": np.array([3, 2], np.int32),
                                             "frame": np.stack([frame, frame])})
        assert absent["input_error"][0] == b"" and b"names an id that does not occur" in absent["input_error"][1]
        np.testing.assert_allclose(absent["color_model"][0], want[0], rtol=1e-5, atol=1e-6)
        assert not absent["color_model"][1].any()
        step = served.run("serving_default", {**inputs, "color_model": first["color_model"]})
        ref = model.step(inputs["frame"], inputs["flow_to_prev"], inputs["flow_to_next"], inputs["prev_probs"],
                         inputs["prev_boxes"], color_model=want)
        np.testing.assert_allclose(step["probs"], ref["probs"].numpy(), atol=1e-5)
        other = served.run("serving_default", {**inputs, "color_model": 1.0 - first["color_model"]})
        assert np.abs(other["probs"] - step["probs"]).max() > 1e-4  # the tables reach the network
        batched = {k: np.stack([inputs[k]] * 2) for k in ("frame", "flow_to_prev", "flow_to_next")}
        batched.update(prev_probs=inputs["prev_probs"], prev_boxes=inputs["prev_boxes"],
                       color_model=first["color_model"])
        np.testing.assert_allclose(served.run("step_batched", batched)["probs"], ref["probs"].numpy(), atol=1e-5)
        nan_table = first["color_model"].copy()
        nan_table[1, 7] = np.nan  # one object's table broken: that row alone is refused
        out = served.run("step_batched", {**batched, "color_model": nan_table})
        assert out["input_error"][0] == b"" and b"input color_model must be finite" in out["input_error"][1]
        np.testing.assert_allclose(out["probs"][0], ref["probs"].numpy()[0], atol=1e-5)
        assert not out["probs"][1].any()
        with pytest.raises(tf.errors.InvalidArgumentError, match="color_model"):
            served.run("serving_default", {**inputs, "color_model": first["color_model"][:1]})
        with pytest.raises(Exception, match="color_model"):
            served.run("serving_default", inputs)
    assert os.path.isfile(os.path.join(version, "assets.extra", "tf_serving_warmup_requests"))


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "float16"])
def test_each_weight_is_saved_once(versions, tiny_model, precision):
    """The model server restores (and on a GPU holds) every variable the checkpoint names: a second copy of the
    weights doubles a loaded version's memory. The export's checkpoint holds each weight of the model once."""
    stored = [(name, shape) for name, shape in tf.train.list_variables(
        os.path.join(versions[precision], "variables", "variables"))
        if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH") and "save_counter" not in name]
    assert len(stored) == len(tiny_model.weights), sorted(name for name, _ in stored)[:6]
    assert sum(int(np.prod(shape)) for _, shape in stored) == sum(int(np.prod(w.shape)) for w in tiny_model.weights)
