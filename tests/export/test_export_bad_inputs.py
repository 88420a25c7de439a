"""Bad requests are refused by the exported graph itself (INVALID_ARGUMENT naming the input), as the model
server would refuse them: sent through the session loader directly, and through the stand-in gRPC server. The
row signature step_batched answers a row with bad values alone (its input_error), since a batching server runs
the requests of several clients as one."""
import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from maskrnn_tf.export.serving_module import MIN_FRAME_SIZE
from maskrnn_tf.export.session_model import SessionModel
from maskrnn_tf.export.tensors import ndarray_to_proto
from maskrnn_tf.export.test_server import StandInModelServer

H, W = 24, 28


def _step_inputs(h=H, w=W, n=1):
    probs = np.zeros((n, h, w), np.float32)
    probs[:, 4:12, 4:14] = 1
    return {"frame": np.full((h, w, 3), 90, np.uint8), "flow_to_prev": np.zeros((h, w, 2), np.float32),
            "flow_to_next": np.zeros((h, w, 2), np.float32), "prev_probs": probs,
            "prev_boxes": np.tile(np.array([[4, 4, 12, 14]], np.float32), (n, 1))}


def _batched(inputs):
    n = inputs["prev_probs"].shape[0]
    out = {k: np.repeat(inputs[k][None], n, axis=0) for k in ("frame", "flow_to_prev", "flow_to_next")}
    out.update(prev_probs=inputs["prev_probs"], prev_boxes=inputs["prev_boxes"])
    return out


def _first_frame(object_ids):
    mask = np.zeros((H, W), np.uint8)
    mask[2:8, 3:9] = 1
    mask[10:20, 12:25] = 2
    mask[0, 0] = 255
    return {"mask": mask, "object_ids": np.array(object_ids, np.int32)}


def _with(inputs, **changes):
    return {**inputs, **changes}


def _nan_boxes():
    boxes = _step_inputs()["prev_boxes"].copy()
    boxes[0, 2] = np.nan
    return boxes


def _nan_flow():
    flow = np.zeros((H, W, 2), np.float32)
    flow[3, 4, 1] = np.inf
    return flow


def _inf_probs():
    probs = _step_inputs()["prev_probs"].copy()
    probs[0, 5, 6] = np.inf  # outside [0, 1] too: the message must still say what is wrong first
    return probs


# (signature, inputs, input the error must name, a word of the message)
GRAPH_CASES = {
    "nan_box": ("serving_default", _with(_step_inputs(), prev_boxes=_nan_boxes()), "prev_boxes", "finite"),
    "inverted_box": ("serving_default", _with(_step_inputs(), prev_boxes=np.array([[12, 4, 4, 14]], np.float32)),
                     "prev_boxes", "inverted"),
    "no_objects": ("serving_default", _with(_step_inputs(), prev_probs=np.zeros((0, H, W), np.float32),
                                            prev_boxes=np.zeros((0, 4), np.float32)), "prev_probs", "at least one"),
    "no_objects_batched": ("step_batched", _batched(_with(_step_inputs(), prev_probs=np.zeros((0, H, W), np.float32),
                                                          prev_boxes=np.zeros((0, 4), np.float32))),
                           "prev_probs", "at least one"),
    "8x8_frame": ("serving_default", _step_inputs(8, 8), "frame", f"{MIN_FRAME_SIZE}x{MIN_FRAME_SIZE}"),
    "8x8_frame_batched": ("step_batched", _batched(_step_inputs(8, 8)), "frame", f"{MIN_FRAME_SIZE}x{MIN_FRAME_SIZE}"),
    "inf_flow": ("serving_default", _with(_step_inputs(), flow_to_prev=_nan_flow()), "flow_to_prev", "finite"),
    "nan_mask": ("serving_default", _with(_step_inputs(), prev_probs=np.full((1, H, W), np.nan, np.float32)),
                 "prev_probs", "finite"),
    # A 0/255 mask sent as probabilities answered OK with meaningless masks; NaN / Inf still say "finite".
    "mask_0_255": ("serving_default", _with(_step_inputs(), prev_probs=_step_inputs()["prev_probs"] * 255),
                   "prev_probs", "in [0, 1]"),
    "negative_probs": ("serving_default", _with(_step_inputs(), prev_probs=_step_inputs()["prev_probs"] - 0.5),
                       "prev_probs", "in [0, 1]"),
    "inf_mask": ("serving_default", _with(_step_inputs(), prev_probs=_inf_probs()), "prev_probs", "finite"),
    "size_mismatch": ("serving_default", _with(_step_inputs(), flow_to_next=np.zeros((H, W + 1, 2), np.float32)),
                      "flow_to_next", "height and width"),
    # The model server feeds any shape to a signature input (it checks names and dtypes only): the graph refuses.
    "rank": ("serving_default", _with(_step_inputs(), prev_probs=_step_inputs()["prev_probs"][0]), "prev_probs",
             "rank 3"),
    "rank_batched": ("step_batched", _with(_batched(_step_inputs()), frame=_step_inputs()["frame"]), "frame",
                     "rank 4"),
    "static_dim": ("serving_default", _with(_step_inputs(), prev_boxes=np.zeros((1, 3), np.float32)), "prev_boxes",
                   "4 on axis 1"),
    "rgba_frame": ("serving_default", _with(_step_inputs(), frame=np.zeros((H, W, 4), np.uint8)), "frame",
                   "3 on axis 2"),
    "three_channel_flow": ("serving_default", _with(_step_inputs(), flow_to_prev=np.zeros((H, W, 3), np.float32)),
                           "flow_to_prev", "2 on axis 2"),
    "three_channel_flow_batched": ("step_batched", _with(_batched(_step_inputs()),
                                                         flow_to_next=np.zeros((1, H, W, 3), np.float32)),
                                   "flow_to_next", "2 on axis 3"),
    "mask_rank": ("first_frame", _with(_first_frame([1]), mask=np.zeros((1, H, W), np.uint8)), "mask", "rank 2"),
    "absent_id": ("first_frame", _first_frame([1, 3]), "object_ids", "does not occur"),
    "void_id": ("first_frame", _first_frame([1, 255]), "object_ids", "1..254"),
    "background_id": ("first_frame", _first_frame([0, 2]), "object_ids", "1..254"),
    "no_ids": ("first_frame", _first_frame([]), "object_ids", "at least one"),
}
# Refused before the graph runs, as the model server's session refuses them.
FEED_CASES = {
    "dtype": ("serving_default", _with(_step_inputs(), frame=_step_inputs()["frame"].astype(np.float32)), "frame",
              "expects uint8"),
    "missing": ("serving_default", {k: v for k, v in _step_inputs().items() if k != "flow_to_next"}, "flow_to_next",
                "Missing"),
}


@pytest.fixture(scope="module")
def session(export_base):
    with SessionModel(os.path.join(export_base, "1")) as model:
        yield model


@pytest.fixture(scope="module")
def server(export_base):
    with StandInModelServer(export_base, "maskrnn") as srv:
        yield srv


def test_good_requests_pass(session):
    out = session.run("serving_default", _step_inputs(MIN_FRAME_SIZE, MIN_FRAME_SIZE + 3, n=2))
    assert out["probs"].shape == (2, MIN_FRAME_SIZE, MIN_FRAME_SIZE + 3)
    assert session.run("step_batched", _batched(_step_inputs(n=2)))["probs"].shape == (2, H, W)
    out = session.run("first_frame", _first_frame([2, 1]))
    np.testing.assert_array_equal(out["prev_boxes"], [[10, 12, 20, 25], [2, 3, 8, 9]])
    # Probabilities resized by a client with a bicubic or Lanczos filter ring a little past 0 and 1: not refused.
    ringing = _step_inputs()["prev_probs"] * 1.0005 - 0.0002
    assert session.run("serving_default", _with(_step_inputs(), prev_probs=ringing))["probs"].shape == (1, H, W)
    assert session.run("step_batched", _batched(_with(_step_inputs(), prev_probs=ringing)))["input_error"][0] == b""


@pytest.mark.parametrize("case", sorted({**GRAPH_CASES, **FEED_CASES}))
def test_session_loader_refuses_naming_the_input(session, case):
    signature, inputs, name, words = {**GRAPH_CASES, **FEED_CASES}[case]
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        session.run(signature, inputs)
    assert f"input {name}" in info.value.message and words in info.value.message, info.value.message


def test_graph_cases_are_refused_by_the_graph_not_by_the_feed_checks(session):
    # check_inputs (the server-side checks) accepts every GRAPH_CASES request: only the graph refuses them.
    for signature, inputs, _, _ in GRAPH_CASES.values():
        session.check_inputs(signature, inputs)


@pytest.mark.parametrize("case", sorted(GRAPH_CASES))
def test_stand_in_server_answers_invalid_argument(server, case):
    signature, inputs, name, words = GRAPH_CASES[case]
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="maskrnn", signature_name=signature))
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(ndarray_to_proto(value))
    with grpc.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"input {name}" in info.value.details() and words in info.value.details(), info.value.details()


def _row_request(seed, n):
    """A step_batched request of n object rows with random frames, flows and masks (another client's video)."""
    rng = np.random.default_rng(seed)
    probs = (rng.random((n, H, W)) > 0.6).astype(np.float32)
    return {"frame": rng.integers(0, 255, (n, H, W, 3), dtype=np.uint8),
            "flow_to_prev": rng.normal(0, 2, (n, H, W, 2)).astype(np.float32),
            "flow_to_next": rng.normal(0, 2, (n, H, W, 2)).astype(np.float32), "prev_probs": probs,
            "prev_boxes": np.tile(np.array([[3, 2, 18, 20]], np.float32), (n, 1))}


def _bad_row(name):
    request = _row_request(5, 1)
    if name == "inf_flow":
        request["flow_to_prev"][0, 3, 4, 1] = np.inf
    elif name == "nan_flow_to_next":
        request["flow_to_next"][0, 7, 9, 0] = np.nan
    elif name == "nan_box":
        request["prev_boxes"][0, 2] = np.nan
    elif name == "nan_mask":
        request["prev_probs"][0, 5, 6] = np.nan
    elif name == "mask_0_255":
        request["prev_probs"] *= 255
    else:
        request["prev_boxes"][0] = [12, 4, 4, 14]
    return request


# (bad row, input its input_error must name, a word of the message)
ROW_CASES = {"inf_flow": ("flow_to_prev", "finite"), "nan_flow_to_next": ("flow_to_next", "finite"),
             "nan_box": ("prev_boxes", "finite"), "inverted_box": ("prev_boxes", "inverted"),
             "nan_mask": ("prev_probs", "finite"), "mask_0_255": ("prev_probs", "in [0, 1]")}


@pytest.mark.parametrize("case", sorted(ROW_CASES))
def test_a_bad_row_merged_with_other_requests_fails_alone(session, case):
    """A batching model server concatenates the requests of several clients on axis 0 and runs them as one: the
    bad row's message comes back in its input_error with zero outputs, and the other clients' rows are answered
    exactly as when they were sent alone (before, the graph's Assert failed the whole batch)."""
    name, words = ROW_CASES[case]
    first, second, bad = _row_request(1, 2), _row_request(2, 1), _bad_row(case)
    alone = [session.run("step_batched", request) for request in (first, second)]
    merged = session.run("step_batched", {k: np.concatenate([first[k], bad[k], second[k]]) for k in first})
    errors = merged["input_error"].tolist()
    assert errors[0] == errors[1] == errors[3] == b"", errors
    assert f"input {name}" in errors[2].decode() and words in errors[2].decode(), errors
    assert not merged["probs"][2].any() and not merged["boxes"][2].any()
    for rows, out in ((slice(0, 2), alone[0]), (slice(3, 4), alone[1])):
        assert out["input_error"].tolist() == [b""] * (rows.stop - rows.start)
        np.testing.assert_allclose(merged["probs"][rows], out["probs"], atol=1e-5)
        np.testing.assert_allclose(merged["boxes"][rows], out["boxes"], atol=1e-4)
    assert alone[0]["probs"].std() > 1e-3  # the rows compared are not trivially equal


def test_stand_in_server_answers_a_bad_row_in_input_error(server):
    """Through gRPC the bad row's request succeeds; its input_error comes back as the model server sends strings
    (string_val), the good row's empty."""
    request_inputs = {k: np.concatenate([v, _bad_row("nan_box")[k]]) for k, v in _row_request(1, 1).items()}
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="maskrnn", signature_name="step_batched"))
    for key, value in request_inputs.items():
        request.inputs[key].CopyFrom(ndarray_to_proto(value))
    with grpc.insecure_channel(server.address) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
    errors = list(response.outputs["input_error"].string_val)
    assert errors[0] == b"" and b"input prev_boxes must be finite" in errors[1]


def test_the_client_reads_input_error_and_takes_exports_without_it():
    """Rows answered with an error are refused by name (object rows counted across the split requests); an export
    made before input_error answers without it, and its outputs pass unchanged."""
    from maskrnn_tf.export.client import ServingError, _without_row_errors

    probs = np.zeros((2, 3, 3), np.float32)
    assert set(_without_row_errors({"probs": probs}, "step_batched", 0)) == {"probs"}
    good = _without_row_errors({"probs": probs, "input_error": np.array([b"", b""], object)}, "step_batched", 0)
    assert set(good) == {"probs"}
    with pytest.raises(ServingError, match=r"step_batched refused 1 row\(s\): object row 9: input prev_boxes must"):
        _without_row_errors({"probs": probs, "input_error": np.array([b"", b"input prev_boxes must be finite"],
                                                                      object)}, "step_batched", 8)
