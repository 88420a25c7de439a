"""Exports for a model server with --enable_batching.

With batching on, tensorflow_model_server batches requests to every SignatureDef of a model and refuses a
request (warmup records included: a failing one fails the version) whose inputs have no axis 0 or differ in
its size. `batching_problems` applies those two rules to the served SignatureDefs and the warmup file; the
per-video export breaks them (which is why it must be served without batching), the `--batching` export,
whose only signature is `step_batched`, does not, and the client segments through it.
"""
import os
import socket
import threading
import time

import numpy as np
import pytest

from maskrnn_tf.export.batching_check import batching_problems, serve_signature_defs
from maskrnn_tf.export.client import ClientConfig, ServingClient, segment_video_via_serving
from maskrnn_tf.export.saved_model_export import ExportConfig, export_saved_model
from maskrnn_tf.export.session_model import SessionModel
from maskrnn_tf.export.test_server import StandInModelServer
from maskrnn_tf.export.warmup import WARMUP_FILENAME, WarmupConfig, read_warmup_file, request_to_numpy
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
    # Keras' ExportArchive names its first endpoint serving_default as well when none has that name.
    assert sorted(k for k in defs if not k.startswith("__")) == ["serving_default", "step_batched"]
    def table(signature):
        return {k: (v.dtype, [d.size for d in v.tensor_shape.dim]) for k, v in signature.inputs.items()}

    assert table(defs["serving_default"]) == table(defs["step_batched"])
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
    cannot take over mid-video), and a caller's client is left unpinned."""
    frames_dir, mask_path, frames = synthetic_video
    outputs, versions = {}, {}
    for name, base, batched in (("per_video", export_base, False), ("batched", batching_base, True)):
        with StandInModelServer(base, "maskrnn") as server:
            with ServingClient(ClientConfig(address=server.address, batched=batched)) as client:
                seen = versions[name] = []
                predict = client._prediction.Predict

                def recording(request, predict=predict, seen=seen, **kwargs):
                    seen.append(request.model_spec.version.value if request.model_spec.HasField("version") else None)
                    return predict(request, **kwargs)

                client._prediction.Predict = recording
                outputs[name] = str(tmp_path / name)
                assert segment_video_via_serving(client.config, frames_dir, mask_path, outputs[name], OPTIONS,
                                                 client=client) == len(frames)
                assert client.config.model_version is None
    assert versions == {"per_video": [1] * (len(frames) - 1), "batched": [1] * (len(frames) - 1)}
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
