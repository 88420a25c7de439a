"""The client against the stand-in gRPC model server on 127.0.0.1 (a stand-in for tensorflow_model_server)."""
import os
import re
import shutil

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from maskrnn_tf.export.client import ClientConfig, ServingClient, ServingError, segment_video_via_serving
from maskrnn_tf.export.tensors import ndarray_to_proto
from maskrnn_tf.export.test_server import StandInModelServer, latest_version
from maskrnn_tf.inference.flow_source import make_flow_fn
from maskrnn_tf.inference.segmenter import SegmentOptions
from maskrnn_tf.inference.segmenter import segment_video
from maskrnn_tf.io import read_mask

OPTIONS = SegmentOptions(progress=False)


@pytest.fixture(scope="module")
def server(export_base):
    with StandInModelServer(export_base, "maskrnn") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with ServingClient(ClientConfig(address=server.address, timeout_s=30)) as c:
        yield c


def test_ready_checks(client):
    assert client.check_ready() == 1
    assert {"serving_default", "first_frame", "step_batched"} <= set(client.signature_defs())


def test_client_masks_equal_segment_loop(tmp_path, server, tiny_model, synthetic_video):
    frames_dir, mask_path, frames = synthetic_video
    local_dir, served_dir = str(tmp_path / "local"), str(tmp_path / "served")

    def local_step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes):
        return tiny_model.step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes)

    n_local = segment_video(local_step, frames_dir, mask_path, make_flow_fn("dis"), local_dir, OPTIONS)
    n_served = segment_video_via_serving(ClientConfig(address=server.address), frames_dir, mask_path, served_dir,
                                         OPTIONS)
    assert n_local == n_served == len(frames)
    names = sorted(n for n in os.listdir(local_dir) if n.endswith(".png"))  # segment_run.json differs in time
    assert sorted(os.listdir(served_dir)) == names + ["segment_run.json"] and len(names) == len(frames)
    for name in names:
        a, b = open(os.path.join(local_dir, name), "rb").read(), open(os.path.join(served_dir, name), "rb").read()
        np.testing.assert_array_equal(read_mask(os.path.join(served_dir, name)), read_mask(os.path.join(local_dir, name)))
        assert a == b, name  # byte-identical palette PNGs
    np.testing.assert_array_equal(read_mask(os.path.join(served_dir, names[0])), read_mask(mask_path))


def test_first_frame_via_server(client):
    ids = np.zeros((10, 12), np.uint8)
    ids[2:5, 3:9] = 2
    ids[6:9, 0:2] = 1
    out = client.first_frame(ids, [2, 1])
    np.testing.assert_array_equal(out["prev_probs"], np.stack([ids == 2, ids == 1]).astype(np.float32))
    np.testing.assert_array_equal(out["prev_boxes"], [[2, 3, 5, 9], [6, 0, 9, 2]])
    with pytest.raises(ServingError, match="(?s)INVALID_ARGUMENT.*input object_ids names an id that does not occur"):
        client.first_frame(ids, [2, 3])


def test_existing_output_dir_names_the_client_flag(tmp_path, synthetic_video):
    frames_dir, mask_path, _ = synthetic_video
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    # No server at this address: the output check comes before any call.
    with pytest.raises(FileExistsError, match="choose another --output_dir or pass --overwrite"):
        segment_video_via_serving(ClientConfig(address="127.0.0.1:1", max_attempts=1), frames_dir, mask_path,
                                  str(out), OPTIONS)
    assert (out / "mine.txt").read_text() == "keep"


def _good_inputs():
    h, w = 16, 20
    return {"frame": np.zeros((h, w, 3), np.uint8), "flow_to_prev": np.zeros((h, w, 2), np.float32),
            "flow_to_next": np.zeros((h, w, 2), np.float32), "prev_probs": np.ones((1, h, w), np.float32),
            "prev_boxes": np.array([[0, 0, h, w]], np.float32)}


def _raw_predict(server, inputs):
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="maskrnn", signature_name="serving_default"))
    for k, v in inputs.items():
        request.inputs[k].CopyFrom(ndarray_to_proto(v))
    with grpc.insecure_channel(server.address) as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)


@pytest.mark.parametrize("name,change", [
    ("frame", lambda x: {**x, "frame": x["frame"].astype(np.float32)}),            # wrong dtype
    ("prev_probs", lambda x: {**x, "prev_probs": x["prev_probs"][0]}),             # wrong rank
    ("prev_boxes", lambda x: {**x, "prev_boxes": np.zeros((1, 3), np.float32)}),   # wrong static dim
    ("flow_to_next", lambda x: {k: v for k, v in x.items() if k != "flow_to_next"}),  # missing
    ("flow_to_prev", lambda x: {**x, "flow_to_prev": np.zeros((16, 21, 2), np.float32)}),  # size mismatch
])
def test_bad_requests_are_invalid_argument_naming_the_input(server, name, change):
    assert _raw_predict(server, _good_inputs()).outputs["labels"].tensor_shape.dim[0].size == 16
    with pytest.raises(grpc.RpcError) as info:
        _raw_predict(server, change(_good_inputs()))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert name in info.value.details()


def test_client_error_names_input(client):
    inputs = _good_inputs()
    with pytest.raises(ServingError, match="INVALID_ARGUMENT.*frame"):
        client.predict("serving_default", {**inputs, "frame": inputs["frame"].astype(np.int32)})


def test_retries_unavailable_with_backoff(export_base):
    sleeps = []
    with StandInModelServer(export_base, "maskrnn", unavailable_first=2) as srv:
        with ServingClient(ClientConfig(address=srv.address, backoff_initial_s=0.1), sleep=sleeps.append) as c:
            out = c.step(**_good_inputs())
    assert out["probs"].shape == (1, 16, 20)
    assert c.retries == 2 and sleeps == [0.1, 0.2]  # exponential backoff
    with StandInModelServer(export_base, "maskrnn", unavailable_first=10) as srv:
        with ServingClient(ClientConfig(address=srv.address, max_attempts=3), sleep=sleeps.append) as c:
            with pytest.raises(ServingError, match="UNAVAILABLE after 3 attempts"):
                c.step(**_good_inputs())


def test_wrong_model_name_is_reported_before_segmenting(tmp_path, server, synthetic_video):
    frames_dir, mask_path, _ = synthetic_video
    with pytest.raises(ServingError, match="NOT_FOUND"):
        segment_video_via_serving(ClientConfig(address=server.address, model_name="other"), frames_dir, mask_path,
                                  str(tmp_path / "out"), OPTIONS)
    assert not os.path.exists(tmp_path / "out")


def test_message_limit_is_checked(server):
    with ServingClient(ClientConfig(address=server.address, max_message_bytes=2_000)) as c:
        with pytest.raises(ServingError, match="message limit; raise --max_message_mb or segment at a smaller"):
            c.step(**_good_inputs())
        # The colour tables' request is at the video's own size: --max_size does not shrink it.
        frame, mask = np.zeros((40, 56, 3), np.uint8), np.zeros((40, 56), np.uint8)
        with pytest.raises(ServingError, match=r"message limit; raise --max_message_mb \(the first frame's colour "
                                               r"tables go at the video's own size.*--batched"):
            c.color_tables(frame, mask, [1, 2])


def test_480p_messages_exceed_grpc_default_and_pass(client):
    # 8 objects at 854x480: the response is 13 MB, over gRPC's 4 MB default receive limit.
    ids = (np.arange(480 * 854).reshape(480, 854) % 9).astype(np.uint8)
    out = client.first_frame(ids, list(range(1, 9)))
    assert out["prev_probs"].nbytes > 4 * 2**20
    np.testing.assert_array_equal(out["prev_probs"][3], (ids == 4).astype(np.float32))


@pytest.mark.parametrize("batched", [False, True])
def test_the_client_fuses_objects_at_the_served_models_mask_threshold(tmp_path, synthetic_video, batched):
    """A model trained with another mask_threshold: the client's masks are fused at it (as segment's and the
    export's `labels` are), read from the served model, not at a fixed 0.5."""
    import keras

    from maskrnn_tf.export.saved_model_export import ExportConfig, export_saved_model
    from maskrnn_tf.export.warmup import WarmupConfig
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    frames_dir, mask_path, frames = synthetic_video
    keras.utils.set_random_seed(0)
    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=32, mask_threshold=0.3))
    base = str(tmp_path / "maskrnn")
    export_saved_model(model, base, 1, ExportConfig(warmup=WarmupConfig(shapes=((24, 32, 1),)), batching=batched))
    out = tmp_path / "served"
    with StandInModelServer(base, "maskrnn") as server:
        segment_video_via_serving(ClientConfig(address=server.address, batched=batched), frames_dir, mask_path,
                                  str(out), SegmentOptions(progress=False, save_probs="npy"))
    between = 0
    for t in range(1, len(frames)):
        probs = np.load(out / "probs" / f"{t:05d}.npy").astype(np.float32)
        best = probs.max(axis=0)
        sure = np.abs(best - 0.3) > 0.01  # away from float16 rounding of the saved probabilities
        labels = read_mask(str(out / f"{t:05d}.png"))
        np.testing.assert_array_equal((labels > 0)[sure], (best > 0.3)[sure])
        between += int(np.sum((best > 0.31) & (best <= 0.49)))
    assert between > 50  # pixels a 0.5 threshold would have left as background


def test_a_version_unloaded_mid_video_segments_the_video_again_with_the_new_one(tmp_path, export_base,
                                                                                synthetic_video, caplog):
    """A model server on its default policy (the latest version only) unloads version 1 once version 2 is loaded;
    requests pinned to version 1 then answer NOT_FOUND. The client starts the video over on the version now served
    (every frame from one model), says so, and writes what a client of version 2 alone writes."""
    import keras

    from maskrnn_tf.export.saved_model_export import ExportConfig, export_saved_model
    from maskrnn_tf.export.warmup import WarmupConfig
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    frames_dir, mask_path, frames = synthetic_video
    base = str(tmp_path / "maskrnn")
    # Version 1 is the session's export (the tiny model, seed 0), copied: one export less. Version 2 is another
    # network's (seed 2), so that the two versions answer differently.
    shutil.copytree(os.path.join(export_base, "1"), os.path.join(base, "1"), symlinks=True)
    keras.utils.set_random_seed(2)
    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=32))
    export_saved_model(model, base, 2, ExportConfig(warmup=WarmupConfig(shapes=((24, 32, 1),))))
    with StandInModelServer(base, "maskrnn", version=2) as server:
        segment_video_via_serving(ClientConfig(address=server.address), frames_dir, mask_path,
                                  str(tmp_path / "v2"), OPTIONS)
    asked = []
    with StandInModelServer(base, "maskrnn", version=1) as server:
        with ServingClient(ClientConfig(address=server.address)) as client:
            predict = client._prediction.Predict

            def rollout(request, **kwargs):
                asked.append(request.model_spec.version.value)
                if len(asked) == 3:  # version 2 is loaded, version 1 unloaded, before the third step
                    server.serve_version(2)
                return predict(request, **kwargs)

            client._prediction.Predict = rollout
            with caplog.at_level("WARNING"):
                count = segment_video_via_serving(client.config, frames_dir, mask_path, str(tmp_path / "rolled"),
                                                  OPTIONS, client=client)
    assert count == len(frames)
    assert sorted(os.listdir(tmp_path)) == ["maskrnn", "rolled", "v2"]  # nothing left of the first attempt
    assert asked == [1, 1, 1] + [2] * (len(frames) - 1)  # the third step answered NOT_FOUND
    assert "version 1 is no longer served" in caplog.text and "again with version 2" in caplog.text
    for t in range(len(frames)):
        name = f"{t:05d}.png"
        assert open(tmp_path / "rolled" / name, "rb").read() == open(tmp_path / "v2" / name, "rb").read(), name
    # A version the caller pinned is not replaced: the NOT_FOUND is reported, naming the version.
    with StandInModelServer(base, "maskrnn", version=2) as server:
        with pytest.raises(ServingError, match="NOT_FOUND.*version 1 is not served"):
            segment_video_via_serving(ClientConfig(address=server.address, model_version=1), frames_dir, mask_path,
                                      str(tmp_path / "pinned"), OPTIONS)
    assert not os.path.exists(tmp_path / "pinned")


class _RpcError(grpc.RpcError):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def test_a_batch_of_mixed_frame_sizes_is_explained():
    """TF-Serving's batching session fails a batch whose requests differ in H or W (padding off): the batched
    client says what to do. Its message, from tensorflow_serving/batching/batching_session.cc."""
    details = ("Tensors with name 'frame:0' from different tasks have different shapes and padding is turned off."
               "Set pad_variable_length_inputs to true, or ensure that all tensors with the same name"
               "have equal dimensions starting with the first dim.")

    def failing(request, timeout):
        raise _RpcError(grpc.StatusCode.FAILED_PRECONDITION, details)

    sleeps = []
    with ServingClient(ClientConfig(address="127.0.0.1:1", batched=True, max_attempts=3), sleep=sleeps.append) as c:
        with pytest.raises(ServingError, match="FAILED_PRECONDITION.*after 3 attempts.*one size.*--max_size.*"
                                               "color_tables.*own resolution") as info:
            c._call(failing, None, "Predict(step_batched)")
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION and len(sleeps) == 2


def test_a_batch_failed_by_another_videos_frame_size_is_retried():
    """The batching server fails every request of a batch that merged two frame sizes, the other client's
    included: a matter of timing. color_tables requests go at each video's own size, whatever --max_size, so two
    videos starting together failed; the client gave up at once. Retried with backoff now, as UNAVAILABLE."""
    details = "Tensors with name 'frame:0' from different tasks have different shapes and padding is turned off."
    calls = []

    def once_mixed(request, timeout):
        calls.append(request)
        if len(calls) == 1:
            raise _RpcError(grpc.StatusCode.FAILED_PRECONDITION, details)
        return "answer"

    sleeps = []
    with ServingClient(ClientConfig(address="127.0.0.1:1", backoff_initial_s=0.1), sleep=sleeps.append) as c:
        assert c._call(once_mixed, "request", "Predict(color_tables)") == "answer"
    assert calls == ["request", "request"] and sleeps == [0.1] and c.retries == 1

    def other_precondition(request, timeout):  # not a mixed batch: no retry
        raise _RpcError(grpc.StatusCode.FAILED_PRECONDITION, "Could not find variable conv1_1/kernel")

    with ServingClient(ClientConfig(address="127.0.0.1:1"), sleep=sleeps.append) as c:
        with pytest.raises(ServingError, match="Could not find variable"):
            c._call(other_precondition, None, "Predict(serving_default)")
    assert sleeps == [0.1]


@pytest.mark.parametrize("batched", [False, True])
def test_a_colour_prior_network_segments_through_the_server_as_in_process(tmp_path, synthetic_video, batched):
    """A network with model.color_prior_input behind the server: the client asks color_tables for the video's tables
    (the server fits them from the first frame it sends) and sends them with every step; the masks are those of
    the in-process loop (segment's ColorPriorPrepare, NumPy fit), with and without step_batched (a batching
    export, whose rows are split at max_batch_size 1)."""
    import keras

    from maskrnn_tf.export.saved_model_export import ExportConfig, export_saved_model
    from maskrnn_tf.inference.color_gate import ColorPriorPrepare
    from maskrnn_tf.inference.model_step import model_step_fn
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    keras.utils.set_random_seed(3)
    model = MaskRNN(MaskRNNConfig(width=0.125, fc_units=32, color_prior_input=True, color_prior_band=0.1))
    base = str(tmp_path / "exports")
    export_saved_model(model, base, 1, ExportConfig(warmup=None, batching=batched))
    frames_dir, mask_path, frames = synthetic_video
    step = model_step_fn(model)
    local_dir, served_dir = str(tmp_path / "local"), str(tmp_path / "served")
    segment_video(step, frames_dir, mask_path, make_flow_fn("dis"), local_dir, OPTIONS,
                  prepare=ColorPriorPrepare([(step, 0.1)], step, None))
    with StandInModelServer(base, "maskrnn", max_batch_size=1 if batched else None) as srv:
        config = ClientConfig(address=srv.address, timeout_s=60, batched=batched, max_batch_size=1)
        assert segment_video_via_serving(config, frames_dir, mask_path, served_dir, OPTIONS) == len(frames)
        with ServingClient(config) as bare:
            bare.check_ready()
            assert bare.color_prior
            with pytest.raises(ServingError, match="color_tables"):
                bare.step(*(np.zeros((24, 32, k)) for k in (3, 2, 2)), np.zeros((1, 24, 32)), np.zeros((1, 4)))
            # The server answers a bad row in input_error (the call succeeds); the client refuses it by name.
            ids = np.zeros((24, 32), np.uint8)
            ids[4:12, 4:12] = 1
            with pytest.raises(ServingError, match="color_tables refused 1 row.*object row 1: input object_ids names "
                                                   "an id that does not occur") as info:
                bare.color_tables(np.full((24, 32, 3), 90, np.uint8), ids, [1, 9])
            assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    names = sorted(n for n in os.listdir(local_dir) if n.endswith(".png"))
    assert len(names) == len(frames)
    for name in names:
        np.testing.assert_array_equal(read_mask(os.path.join(served_dir, name)), read_mask(os.path.join(local_dir, name)))


def test_the_signatures_checked_are_those_of_the_version_found_ready(tmp_path, export_base):
    """check_ready learns the served version from GetModelStatus, then asks GetModelMetadata for that version:
    unpinned, a newer version loaded in between would be the one checked (colour prior or not) while every
    request went to the older one. When the version found is unloaded in between (a rollout), the client asks
    again which version is served, and checks and returns that one."""
    base = tmp_path / "maskrnn"
    for version in ("1", "2"):
        shutil.copytree(os.path.join(export_base, "1"), base / version, symlinks=True)
    with StandInModelServer(str(base), "maskrnn", version=1) as server:
        with ServingClient(ClientConfig(address=server.address)) as client:
            asked, rollouts = [], []
            metadata, status = client._prediction.GetModelMetadata, client._models.GetModelStatus

            def recording(request, **kwargs):
                asked.append(request.model_spec.version.value if request.model_spec.HasField("version") else None)
                return metadata(request, **kwargs)

            def status_then_rollout(request, **kwargs):
                response = status(request, **kwargs)
                if rollouts:  # version 2 is loaded and version 1 unloaded right after the status answer
                    server.serve_version(rollouts.pop())
                return response

            client._prediction.GetModelMetadata = recording
            client._models.GetModelStatus = status_then_rollout
            assert client.check_ready() == 1
            assert asked == [1]
            rollouts.append(2)
            asked.clear()
            assert client.check_ready() == 2
            assert asked == [1, 2]  # version 1's metadata answered NOT_FOUND: asked again, of version 2


def test_the_stand_in_takes_a_numeric_file_for_a_version_as_the_model_server_does(tmp_path, export_base):
    """The model server takes every child of its base path whose name parses as an int64 for a version, files too
    (file_system_storage_path_source.cc: GetChildren, then safe_strto64 on each name): with a notes file named 5
    beside version 1 it tries to load "version 5" and fails. The stand-in counted folders only and served 1."""
    base = tmp_path / "maskrnn"
    shutil.copytree(os.path.join(export_base, "1"), base / "1", symlinks=True)
    (base / "5").write_text("notes")
    assert latest_version(str(base)) == 5
    with pytest.raises(OSError, match=re.escape(str(base / "5"))):
        StandInModelServer(str(base), "maskrnn")


def test_a_not_found_names_model_version_only_when_the_user_gave_it(tmp_path, server, synthetic_video):
    """A version the client pinned itself (the one found ready) that answers NOT_FOUND: the error must not tell the
    user to leave out a --model_version they never gave; it still does when they gave one."""
    frames_dir, mask_path, _ = synthetic_video

    def not_found(request, **kwargs):
        raise _RpcError(grpc.StatusCode.NOT_FOUND,
                        f"Servable not found for request: Specific(maskrnn, {request.model_spec.version.value})")

    errors = {}
    for given in (None, 1):
        with ServingClient(ClientConfig(address=server.address, model_version=given)) as c:
            c._prediction.Predict = not_found
            with pytest.raises(ServingError, match="NOT_FOUND") as info:
                segment_video_via_serving(c.config, frames_dir, mask_path, str(tmp_path / f"out_{given}"), OPTIONS,
                                          client=c)
            assert c.config.model_version == given  # the version pinned for the video is not left behind
        errors[given] = str(info.value)
    assert "--model_version" not in errors[None] and "version 1" in errors[None], errors[None]
    assert "leave --model_version out" in errors[1], errors[1]
    assert os.listdir(tmp_path) == []


def _status_answer(*versions):
    """A GetModelStatus answer: (version, state name, error code, error message) per version, as a model server
    reports a version whose load failed (state END, its status the load's error)."""
    from tensorflow_serving.apis import get_model_status_pb2

    response = get_model_status_pb2.GetModelStatusResponse()
    for version, state, code, message in versions:
        status = response.model_version_status.add()
        status.version = version
        status.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
        status.status.error_code = code
        status.status.error_message = message
    return response


def test_a_version_that_failed_to_load_is_reported_at_once_with_the_servers_reason(server):
    """A version the server failed to load (a warmup record refused, a non-batching export behind
    --enable_batching) is END with the load's error: the client waited the whole --ready_timeout as for a version
    still loading, then said only 'check the server log'."""
    reason = "Batching session Run() input tensors must have equal 0th-dimension size"
    sleeps = []
    with ServingClient(ClientConfig(address=server.address, ready_timeout_s=5), sleep=sleeps.append) as client:
        client._models.GetModelStatus = lambda request, **kwargs: _status_answer((1, "END", 3, reason))
        with pytest.raises(ServingError, match=rf"version 1 failed to load: {re.escape(reason)}"):
            client.wait_until_available()
        assert sleeps == []
        # One still loading: waited for; at the timeout, the failed one's reason is given with the states.
        client.config = ClientConfig(address=server.address, ready_timeout_s=0)
        client._models.GetModelStatus = lambda request, **kwargs: _status_answer(
            (1, "END", 3, reason), (2, "LOADING", 0, ""))
        with pytest.raises(ServingError, match=rf"'LOADING'.*version 1 failed to load: {re.escape(reason)}"):
            client.wait_until_available()
        # One unloaded normally beside the failed one: nothing can still load, so at once too.
        client.config = ClientConfig(address=server.address, ready_timeout_s=5)
        client._models.GetModelStatus = lambda request, **kwargs: _status_answer(
            (1, "END", 0, ""), (2, "END", 3, reason))
        with pytest.raises(ServingError, match=rf"version 2 failed to load: {re.escape(reason)}"):
            client.wait_until_available()
        assert sleeps == []
        client.config = ClientConfig(address=server.address, ready_timeout_s=0)
        # Versions unloaded normally (END, OK) are no failure.
        client._models.GetModelStatus = lambda request, **kwargs: _status_answer((1, "END", 0, ""))
        with pytest.raises(ServingError) as err:
            client.wait_until_available()
        assert "failed to load" not in str(err.value)


@pytest.mark.parametrize("details, wanted, unwanted", [
    # gRPC's own size limit (grpc/src/core/ext/filters/message_size): the message-size flag is the cure.
    ("Received message larger than max (9437184 vs. 4194304)", "--max_message_mb", "--max_size"),
    # A GPU model server out of memory is RESOURCE_EXHAUSTED too: a bigger gRPC limit would not help.
    ("OOM when allocating tensor with shape[8,64,480,854] and type half on /job:localhost/replica:0/task:0/"
     "device:GPU:0 by allocator GPU_0_bfc", "--max_size", "--max_message_mb"),
])
def test_resource_exhausted_is_told_apart_by_its_cause(details, wanted, unwanted):
    def failing(request, timeout):
        raise _RpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, details)

    with ServingClient(ClientConfig(address="127.0.0.1:1", batched=True)) as c:
        with pytest.raises(ServingError) as info:
            c._call(failing, None, "Predict(step_batched)")
    assert wanted in str(info.value) and unwanted not in str(info.value), str(info.value)


@pytest.mark.parametrize("details", ["Task size 3 is larger than maximum input batch size 2",
                                     "Task size 3 is larger than maximum batch size 2"])  # older schedulers' words
def test_a_task_larger_than_the_servers_batch_limit_names_the_flag(details):
    """A --batched client sending more rows than the server's batching max_batch_size: TF-Serving's batch scheduler
    refuses the task (tensorflow_serving/batching: "Task size ... is larger than maximum input batch size ...")."""
    def failing(request, timeout):
        raise _RpcError(grpc.StatusCode.INVALID_ARGUMENT, details)

    with ServingClient(ClientConfig(address="127.0.0.1:1", batched=True, max_batch_size=8)) as c:
        with pytest.raises(ServingError, match=r"pass --max_batch_size=2 \(the server's batching parameters"):
            c._call(failing, None, "Predict(step_batched)")
