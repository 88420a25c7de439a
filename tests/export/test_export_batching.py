"""Exports for a model server with --enable_batching.

With batching on, tensorflow_model_server batches requests to every SignatureDef of a model and refuses a
request (warmup records included: a failing one fails the version) whose inputs have no axis 0 or differ in
its size, or that has more rows than its max_batch_size. `batching_problems` applies those rules to the served
SignatureDefs and the warmup file; the per-video export breaks them (which is why it must be served without
batching), the `--batching` export, whose only signature is `step_batched`, does not, and the client segments
through it, in requests of at most max_batch_size rows.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from maskrnn_tf.export.batching_check import batching_problems, serve_signature_defs
from maskrnn_tf.export.client import ClientConfig, ServingClient, ServingError, segment_video_via_serving
from maskrnn_tf.export.saved_model_export import ExportConfig, export_saved_model
from maskrnn_tf.export.session_model import SessionModel
from maskrnn_tf.export.test_server import StandInModelServer
from maskrnn_tf.export.warmup import (WARMUP_FILENAME, WarmupConfig, read_warmup_file, request_to_numpy,
                                     write_warmup_file)
from maskrnn_tf.inference.segmenter import SegmentOptions
from maskrnn_tf.io import read_mask

OPTIONS = SegmentOptions(progress=False)


@pytest.fixture(scope="module")
def batching_base(tmp_path_factory, tiny_model):
    base = str(tmp_path_factory.mktemp("exports_batching") / "maskrnn")
    export_saved_model(tiny_model, base, 1, ExportConfig(batching=True, warmup=WarmupConfig(shapes=((24, 32, 2),))))
    return base


def test_the_per_video_export_breaks_the_batching_rules(export_base):
    problems = batching_problems(os.path.join(export_base, "1"))
    # serving_default: frame [H, W, 3] and prev_probs [N, H, W] (24 and 1 or 2 on axis 0) in its warmup records.
    assert any("warmup request 0 ('serving_default'): inputs differ on axis 0" in p and "frame 24" in p
               and "prev_probs 1" in p for p in problems), problems
    assert any("('first_frame'): inputs differ on axis 0" in p for p in problems), problems


def test_the_batching_export_serves_step_batched_only_and_keeps_the_rules(batching_base, tiny_model):
    export_dir = os.path.join(batching_base, "1")
    defs = serve_signature_defs(export_dir)
    # A batching export serves step_batched as serving_default too (the model server needs that key).
    assert sorted(k for k in defs if not k.startswith("__")) == ["serving_default", "step_batched"]
    def table(signature):
        return {k: (v.dtype, [d.size for d in v.tensor_shape.dim]) for k, v in signature.inputs.items()}

    assert table(defs["serving_default"]) == table(defs["step_batched"])
    # The export's record lists what the server serves, the alias too.
    with open(os.path.join(export_dir, "assets.extra", "maskrnn_export.json"), encoding="utf-8") as f:
        recorded = json.load(f)["signatures"]
    assert sorted(recorded) == ["serving_default", "step_batched"]
    assert recorded["serving_default"] == recorded["step_batched"]
    assert batching_problems(export_dir) == []
    records = read_warmup_file(os.path.join(export_dir, "assets.extra", WARMUP_FILENAME))
    assert [r.predict_log.request.model_spec.signature_name for r in records] == ["step_batched"]
    inputs = request_to_numpy(records[0].predict_log.request)
    assert {k: v.shape[0] for k, v in inputs.items()} == dict.fromkeys(inputs, 2)  # one row per object
    # Run through the model server's loader, each row is that object's per-video step.
    with SessionModel(export_dir) as served:
        out = served.run("step_batched", inputs)
    for row in range(2):
        want = tiny_model.step(inputs["frame"][row], inputs["flow_to_prev"][row], inputs["flow_to_next"][row],
                               inputs["prev_probs"][row:row + 1], inputs["prev_boxes"][row:row + 1])
        np.testing.assert_allclose(out["probs"][row], np.asarray(want["probs"][0]), atol=1e-5)
        np.testing.assert_allclose(out["boxes"][row], np.asarray(want["boxes"][0]), atol=1e-3)


def test_the_batched_client_writes_the_per_video_clients_masks(tmp_path, export_base, batching_base, synthetic_video):
    """Also: every request of a video names the version found ready at its start (a version exported meanwhile
    cannot take over mid-video), a caller's client is left unpinned, and every step request has the video's
    frame size: a batching model server fails a whole batch whose requests differ in H or W (padding off), so a
    request of another size (a probe) would break the steps of videos batched with it."""
    frames_dir, mask_path, frames = synthetic_video
    outputs, versions, shapes = {}, {}, {}
    for name, base, batched in (("per_video", export_base, False), ("batched", batching_base, True)):
        with StandInModelServer(base, "maskrnn") as server:
            with ServingClient(ClientConfig(address=server.address, batched=batched)) as client:
                seen = versions[name] = []
                sizes = shapes[name] = set()
                predict = client._prediction.Predict

                def recording(request, predict=predict, seen=seen, **kwargs):
                    seen.append(request.model_spec.version.value if request.model_spec.HasField("version") else None)
                    frame = request.inputs["frame"] if "frame" in request.inputs else None  # (no insert)
                    sizes.add((request.model_spec.signature_name,
                               frame and tuple(d.size for d in frame.tensor_shape.dim)))
                    return predict(request, **kwargs)

                client._prediction.Predict = recording
                outputs[name] = str(tmp_path / name)
                assert segment_video_via_serving(client.config, frames_dir, mask_path, outputs[name], OPTIONS,
                                                 client=client) == len(frames)
                assert client.config.model_version is None
    # One step per frame after the first, nothing else, all of version 1, all at the video's size.
    assert versions == {"per_video": [1] * (len(frames) - 1), "batched": [1] * (len(frames) - 1)}
    height, width = frames[0].shape[:2]
    assert shapes == {"per_video": {("serving_default", (height, width, 3))},
                      "batched": {("step_batched", (2, height, width, 3))}}
    for t in range(len(frames)):
        name = f"{t:05d}.png"
        np.testing.assert_array_equal(read_mask(os.path.join(outputs["batched"], name)),
                                      read_mask(os.path.join(outputs["per_video"], name)), err_msg=name)


def test_the_client_waits_for_a_server_that_is_still_starting(export_base):
    """The model server opens its port only after loading its models and their warmup: until then every call is
    UNAVAILABLE, which check_ready waits out within ready_timeout_s (not just the per-call retries)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    servers = []
    starter = threading.Timer(2.0, lambda: servers.append(StandInModelServer(export_base, "maskrnn", port=port).__enter__()))
    starter.start()
    try:
        config = ClientConfig(address=f"127.0.0.1:{port}", max_attempts=2, backoff_initial_s=0.05, backoff_max_s=0.2,
                              ready_timeout_s=30)
        start = time.monotonic()
        with ServingClient(config) as client:
            assert client.check_ready() == 1
        assert time.monotonic() - start >= 1.5
    finally:
        starter.join()
        for server in servers:
            server.__exit__(None, None, None)


def _step_rows(objects, height=24, width=32, seed=0):
    """One frame, its flows and `objects` distinct previous masks (so that a row out of order shows)."""
    rng = np.random.default_rng(seed)
    probs = np.zeros((objects, height, width), np.float32)
    boxes = np.zeros((objects, 4), np.float32)
    for k in range(objects):
        y0, x0 = k % 3 * 6, k * 3
        probs[k, y0:y0 + 8, x0:x0 + 6] = 1
        boxes[k] = (y0, x0, y0 + 8, x0 + 6)
    return {"frame": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
            "flow_to_prev": rng.normal(0, 1, (height, width, 2)).astype(np.float32),
            "flow_to_next": rng.normal(0, 1, (height, width, 2)).astype(np.float32),
            "prev_probs": probs, "prev_boxes": boxes}


def test_the_shipped_max_batch_size_is_read_from_the_parameters_file(tmp_path):
    from maskrnn_tf.export.serving_commands import read_max_batch_size

    assert read_max_batch_size() == 8 == ClientConfig(batched=True).max_batch_size  # export/batching_parameters.txt
    assert ClientConfig().max_batch_size is None  # unused without batched: the file is not read
    own = tmp_path / "batching.txt"
    own.write_text("# max_batch_size { value: 2 }\nmax_batch_size {\n  value: 32\n}\n"
                   "batch_timeout_micros { value: 1 }\n")
    assert read_max_batch_size(str(own)) == 32
    own.write_text("max_batch_size: <value: 16>\n")  # the other ways text format writes a message field
    assert read_max_batch_size(str(own)) == 16
    own.write_text("batch_timeout_micros { value: 1 }\n")
    with pytest.raises(ValueError, match=f"{own} sets no max_batch_size"):
        read_max_batch_size(str(own))
    with pytest.raises(ValueError, match="max_batch_size must be at least 1"):
        ClientConfig(max_batch_size=0)


@pytest.mark.parametrize("limit,objects,expected", [(None, 9, [8, 1]), (3, 7, [3, 3, 1]), (4, 4, [4])])
def test_the_batched_client_sends_at_most_max_batch_size_rows_per_request(batching_base, limit, objects, expected):
    """A model server with --enable_batching refuses a request of more rows than its max_batch_size ("Task size 9
    is larger than maximum input batch size 8"); the client splits a frame's object rows, and the answer is the
    one the whole frame gets in one run."""
    inputs = _step_rows(objects)
    served_limit = 8 if limit is None else limit
    with SessionModel(os.path.join(batching_base, "1")) as served:  # no row limit: the unsplit answer
        whole = served.run("step_batched", {
            **{k: np.repeat(inputs[k][None], objects, axis=0) for k in ("frame", "flow_to_prev", "flow_to_next")},
            "prev_probs": inputs["prev_probs"], "prev_boxes": inputs["prev_boxes"]})
    config = {} if limit is None else {"max_batch_size": limit}
    with StandInModelServer(batching_base, "maskrnn", max_batch_size=served_limit) as server:
        with ServingClient(ClientConfig(address=server.address, batched=True, **config)) as client:
            rows = []
            predict = client._prediction.Predict

            def recording(request, **kwargs):
                sizes = {k: v.tensor_shape.dim[0].size for k, v in request.inputs.items()}
                assert len(set(sizes.values())) == 1, sizes
                rows.append(sizes["prev_probs"])
                return predict(request, **kwargs)

            client._prediction.Predict = recording
            out = client.step(**inputs)
        assert rows == expected and max(rows) <= served_limit
        assert whole.pop("input_error").tolist() == [b""] * objects  # the client reads it and drops it
        assert sorted(out) == sorted(whole)
        for key in whole:
            # Up to float rounding (2e-7 seen): CPU kernels sum in an order that depends on the batch size, as when
            # the server batches requests of several videos. A row out of order would differ by far more.
            np.testing.assert_allclose(out[key], whole[key], rtol=1e-5, atol=1e-6, err_msg=key)
        # The stand-in refuses what the model server refuses: one request of every row.
        with ServingClient(ClientConfig(address=server.address, batched=True, max_batch_size=objects + 1)) as client:
            if objects > served_limit:
                with pytest.raises(ServingError, match=f"INVALID_ARGUMENT: Task size {objects} is larger than "
                                                       f"maximum input batch size {served_limit}"):
                    client.step(**inputs)


def test_warmup_shapes_with_more_objects_than_max_batch_size_are_refused():
    with pytest.raises(ValueError, match=r"(?s)Warmup shape 24x32x9 has 9 objects.*max_batch_size 8.*"
                                         r"batching_parameters\.txt.*at most 8 objects"):
        ExportConfig(batching=True, warmup=WarmupConfig(shapes=((24, 32, 2), (24, 32, 9))))
    ExportConfig(batching=True, warmup=WarmupConfig(shapes=((24, 32, 8),)))  # the limit itself is fine
    ExportConfig(batching=False, warmup=WarmupConfig(shapes=((24, 32, 9),)))  # no batching server: no limit
    ExportConfig(batching=True, warmup=WarmupConfig(shapes=((24, 32, 9),)), max_batch_size=9)  # a file of your own


def test_batching_problems_reports_warmup_records_over_max_batch_size(tmp_path, batching_base):
    export_dir = str(tmp_path / "1")
    shutil.copytree(os.path.join(batching_base, "1"), export_dir)
    write_warmup_file(export_dir, "maskrnn", WarmupConfig(shapes=((24, 32, 2), (24, 32, 9))), batching=True)
    problems = batching_problems(export_dir)
    assert len(problems) == 1 and "warmup request 1 ('step_batched'): 9 rows" in problems[0], problems
    assert "max_batch_size 8" in problems[0] and "Task size 9 is larger than maximum input batch size 8" in problems[0]
    assert batching_problems(export_dir, max_batch_size=9) == []


def test_client_cli_max_batch_size(tmp_path, batching_base, synthetic_video):
    """client_main --batched --max_batch_size=1 against a server allowing 1 row: one request per object (with the
    default of 8 the 2-object frames would be refused)."""
    frames_dir, mask_path, frames = synthetic_video
    out_dir = tmp_path / "masks"
    with StandInModelServer(batching_base, "maskrnn", max_batch_size=1) as server:
        result = subprocess.run(
            [sys.executable, "-m", "maskrnn_tf.export.client_main", f"--server={server.address}", "--batched",
             "--max_batch_size=1", f"--video={frames_dir}", f"--first_mask={mask_path}", f"--output_dir={out_dir}",
             "--noprogress"], capture_output=True, text=True, timeout=600)
        calls = server.prediction_service.predict_calls
    assert result.returncode == 0, result.stderr
    # 2 objects, one row each, every frame after the first; nothing else.
    assert calls == 2 * (len(frames) - 1)
    assert sorted(os.listdir(out_dir)) == [f"{t:05d}.png" for t in range(len(frames))] + ["segment_run.json"]


@pytest.mark.parametrize("name, value", [("flow_to_prev", np.nan), ("flow_to_next", np.inf), ("prev_boxes", np.nan),
                                         ("prev_boxes", "inverted"), ("prev_probs", 255.0)])
def test_the_batched_client_refuses_what_the_server_asserts_before_sending(batching_base, name, value):
    """A batching model server runs the requests it merged as one Session::Run: the export answers a bad row alone
    (input_error), but one made before that output fails every request batched with it, another client's too. The
    batched client checks those values before it sends, so its own bad input fails its own call only."""
    good = _step_rows(2)
    bad = {key: array.copy() for key, array in good.items()}
    if value == "inverted":
        bad["prev_boxes"][1] = (10, 4, 2, 9)  # y1 < y0
    else:
        bad[name].reshape(-1)[0] = value
    shared = ("frame", "flow_to_prev", "flow_to_next")
    merged = {key: np.concatenate([np.repeat(part[key][None], 2, axis=0) for part in (good, bad)]) for key in shared}
    merged.update({key: np.concatenate([good[key], bad[key]]) for key in ("prev_probs", "prev_boxes")})
    with SessionModel(os.path.join(batching_base, "1")) as served:
        alone = served.run("step_batched", {key: array[:2] for key, array in merged.items()})  # the good request
        both = served.run("step_batched", merged)  # what the batching server runs
    np.testing.assert_allclose(both["probs"][:2], alone["probs"], atol=1e-5)
    assert both["input_error"][:2].tolist() == [b"", b""]
    # The bad request's rows: both for a flow (shared by the frame's rows), row 0 for a NaN box, row 1 inverted.
    bad_rows = {2, 3} if name.startswith("flow") else ({3} if value == "inverted" else {2})
    for row, error in enumerate(both["input_error"].tolist()):
        assert (f"input {name}".encode() in error) if row in bad_rows else error == b"", (row, error)
    with StandInModelServer(batching_base, "maskrnn", max_batch_size=8) as server:
        with ServingClient(ClientConfig(address=server.address, batched=True)) as client:
            sent = []
            predict = client._prediction.Predict
            client._prediction.Predict = lambda request, **kwargs: sent.append(request) or predict(request, **kwargs)
            with pytest.raises(ServingError, match=f"input {name} (must be finite|has inverted corners|must hold "
                                                   r"probabilities in \[0, 1\]).*not sent"):
                client.step(**bad)
            assert sent == []
            client.step(**good)
            assert len(sent) == 1


def test_a_per_video_client_at_a_batching_export_is_told_to_add_batched(batching_base):
    """Without --batched, the client read the batching export's serving_default (step_batched's alias) as the
    per-video step, listed rank mismatches and told the user to export again, which does not help."""
    with StandInModelServer(batching_base, "maskrnn") as server:
        with ServingClient(ClientConfig(address=server.address)) as client:
            with pytest.raises(ServingError) as err:
                client.check_ready()
    message = str(err.value)
    assert "batching export (export_main --batching)" in message and "--batched" in message
    assert "has rank" not in message and "Export it with" not in message
