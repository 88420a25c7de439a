"""gRPC client of a MaskRNN export served by `tensorflow_model_server`: segments whole videos.

The model server holds no per-video state, so the client runs the same propagation loop as the segment
CLI (`maskrnn_tf.inference.segmenter.segment_video`) with a step that is one `Predict` call: the frame, the
two flows (computed here with the segment CLI's flow backend) and the previous probabilities and boxes go
in; probabilities and boxes come back and are carried to the next frame. The outputs of a float32 export
(export_main's default --precision) are therefore exactly what `python -m maskrnn_tf.segment --finetune=none
--precision=float32` writes with the same model and options (a served model is not finetuned on the video).
segment's own default, --precision=auto, computes in bfloat16 on CPUs with AVX512_BF16 or AMX where that is faster
and in float16 on a GPU, so its masks may differ at pixels near the threshold; a bfloat16 or float16 export is
close to segment in that precision, not checked to be identical (the export's precision: `precision` in the
version's assets.extra/maskrnn_export.json).

Before the first frame the client checks `GetModelStatus` (a version is AVAILABLE) and `GetModelMetadata`
(the signatures have the inputs and outputs it sends and reads). Every call has a deadline; UNAVAILABLE and a
batching server's batch of mixed frame sizes (FAILED_PRECONDITION) are retried with exponential backoff; the
message limits are raised for 480p and larger frames; TLS is used when a root certificate is given.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from typing import TYPE_CHECKING, Callable, Dict, Mapping, Optional, Sequence

import grpc
import numpy as np
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from maskrnn_tf.export.serving_module import (
    BATCHED_STEP_SIGNATURE,
    COLOR_MODEL,
    COLOR_TABLES_SIGNATURE,
    FIRST_FRAME_SIGNATURE,
    INPUT_ERROR_OUTPUT,
    MASK_THRESHOLD_OUTPUT,
    PROBS_OUT_OF_RANGE,
    PROBS_SLACK,
    STEP_SIGNATURE,
    signature_tables,
)
from maskrnn_tf.export.serving_commands import read_max_batch_size
from maskrnn_tf.export.tensors import ndarray_to_proto, proto_to_ndarray

if TYPE_CHECKING:
    from maskrnn_tf.inference.segmenter import SegmentOptions

logger = logging.getLogger(__name__)
# How often a video starts over because the version it was segmented with was unloaded (a rollout) mid-video.
MAX_VERSION_RESTARTS = 3
# Room for a 1080p step with 8 objects (frame 6 MB + flows 33 MB + probs 66 MB); gRPC's default is 4 MB,
# which a single 480p flow (3.3 MB) nearly fills.
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class ServingError(RuntimeError):
    """The model server is unreachable, not ready, serves an incompatible model, or refused a request.

    `code` is the gRPC status of the call that failed (None when no call failed)."""

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None):
        super().__init__(message)
        self.code = code


@dataclasses.dataclass(frozen=True)
class ClientConfig:
    """Where the model is served and how to call it."""

    address: str = "localhost:8500"  # host:port of tensorflow_model_server's gRPC port
    model_name: str = "maskrnn"
    model_version: Optional[int] = None  # None = the server's latest
    step_signature: str = STEP_SIGNATURE
    first_frame_signature: str = FIRST_FRAME_SIGNATURE
    timeout_s: float = 60.0  # deadline of each call
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_attempts: int = 6  # calls failing with UNAVAILABLE (or a mixed-size batch) are tried this many times in all
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 8.0
    root_cert_path: Optional[str] = None  # PEM root certificate: use TLS
    ready_timeout_s: float = 60.0  # how long to wait for the server to answer and the model to become AVAILABLE
    # Step through `step_batched` (one object per row), the one signature of an export made for a model server
    # with --enable_batching (export_main --batching); the first-frame state is computed here, not served.
    batched: bool = False
    # With `batched`: rows (objects) per request at most; a frame with more objects is sent in several requests.
    # A batching model server refuses larger requests: keep it at its --batching_parameters_file's max_batch_size.
    # None: with `batched`, the shipped file's (8), read then only, so that a client without batching never
    # depends on that file; without `batched` it stays None (unused).
    max_batch_size: Optional[int] = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.timeout_s <= 0 or self.max_message_bytes <= 0 or self.ready_timeout_s < 0:
            raise ValueError("ClientConfig: max_attempts >= 1, timeout_s > 0, max_message_bytes > 0 and "
                             "ready_timeout_s >= 0 are required.")
        if self.max_batch_size is None and self.batched:
            object.__setattr__(self, "max_batch_size", read_max_batch_size())  # frozen: set once, here
        if self.max_batch_size is not None and self.max_batch_size < 1:
            raise ValueError(f"ClientConfig.max_batch_size must be at least 1 (got {self.max_batch_size}): it is the "
                             "max_batch_size of the model server's --batching_parameters_file.")


def step_request_bytes(height: int, width: int, objects: int) -> int:
    """Approximate size of one step request (uint8 frame, two float32 flows, float32 probabilities)."""
    return height * width * (3 + 2 * 2 * 4 + objects * 4) + objects * 16 + 1024


def make_channel(config: ClientConfig) -> grpc.Channel:
    """A channel with raised message limits; TLS when `config.root_cert_path` is set."""
    options = [
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.max_receive_message_length", config.max_message_bytes),
    ]
    if config.root_cert_path:
        try:
            with open(config.root_cert_path, "rb") as f:
                root = f.read()
        except OSError as e:
            raise ServingError(f"Cannot read the TLS root certificate {config.root_cert_path}: {e}.") from e
        return grpc.secure_channel(config.address, grpc.ssl_channel_credentials(root_certificates=root), options)
    return grpc.insecure_channel(config.address, options)


def _code(error: grpc.RpcError) -> Optional[grpc.StatusCode]:
    return error.code() if hasattr(error, "code") else None


def _refuse_what_the_server_asserts(flow_to_prev: np.ndarray, flow_to_next: np.ndarray, prev_probs: np.ndarray,
                                    prev_boxes: np.ndarray) -> None:
    """The value checks of the export (serving_module), made before a batched request is sent: an export made
    before INPUT_ERROR_OUTPUT fails a bad request in the graph, and a batching model server runs the requests it
    merged as one batch, so there a bad one fails every request batched with it, other clients' too (a current
    export answers the bad row alone, which the client also reads). Only values are checked: `step` builds every
    row of a request from one frame, so its shapes agree (requests of different frame sizes are the batching
    server's FAILED_PRECONDITION, README)."""
    problems = [f"input {name} must be finite (no NaN or Inf)"
                for name, value in (("flow_to_prev", flow_to_prev), ("flow_to_next", flow_to_next),
                                    ("prev_probs", prev_probs), ("prev_boxes", prev_boxes))
                if not np.all(np.isfinite(value))]
    if not problems and not np.all((prev_probs >= -PROBS_SLACK) & (prev_probs <= 1 + PROBS_SLACK)):
        problems.append(PROBS_OUT_OF_RANGE)
    boxes = np.asarray(prev_boxes).reshape(-1, 4)
    if not problems and not np.all((boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])):
        problems.append("input prev_boxes has inverted corners: rows are [y0, x0, y1, x1] with y0 <= y1 and "
                        "x0 <= x1")
    if problems:
        raise ServingError("; ".join(problems) + " (not sent: with an export made before input_error, a batching "
                           "model server would fail every request batched with it)", grpc.StatusCode.INVALID_ARGUMENT)


def _without_row_errors(outputs: Dict[str, np.ndarray], signature: str, first_row: int) -> Dict[str, np.ndarray]:
    """The outputs of a row signature without its INPUT_ERROR_OUTPUT; raises ServingError (INVALID_ARGUMENT) naming
    the object rows the server refused and why (`first_row`: the object index of the request's first row)."""
    outputs = dict(outputs)
    errors = outputs.pop(INPUT_ERROR_OUTPUT, None)
    if errors is None:
        return outputs
    bad = [(first_row + i, e.decode() if isinstance(e, bytes) else str(e))
           for i, e in enumerate(np.asarray(errors).reshape(-1).tolist()) if e]
    if bad:
        shown = "; ".join(f"object row {row}: {message}" for row, message in bad[:3])
        raise ServingError(f"{signature} refused {len(bad)} row(s): {shown}" + (" ..." if len(bad) > 3 else ""),
                           grpc.StatusCode.INVALID_ARGUMENT)
    return outputs


class ServingClient:
    """Calls one model on one server; `step` is a propagation-loop step function."""

    def __init__(self, config: ClientConfig, channel: Optional[grpc.Channel] = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self._channel = channel or make_channel(config)
        self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._sleep = sleep
        self.retries = 0  # retries so far (UNAVAILABLE, mixed-size batches; for logs and tests)
        # A network trained with a first-frame colour prior (found by check_signatures) takes each video's colour
        # tables at every step: `color_tables` fits them and `color_model` holds the current video's.
        self.color_prior = False
        self.color_model: Optional[np.ndarray] = None
        # True while `config.model_version` is the version this client found ready and pinned for a video
        # (segment_video_via_serving), not one the user gave: its NOT_FOUND must not blame --model_version.
        self.version_pinned_here = False

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "ServingClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------------------
    def _model_spec(self, signature: str = "", version: Optional[int] = None) -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self.config.model_name, signature_name=signature)
        version = self.config.model_version if version is None else version
        if version is not None:
            spec.version.value = version
        return spec

    def _call(self, method, request, what: str):
        """Calls `method` with the deadline, retrying with exponential backoff UNAVAILABLE and a batching
        server's FAILED_PRECONDITION for a batch of mixed frame sizes (another client's request of another size
        went into the batch: a matter of timing, which the next batch may not repeat)."""
        delay = self.config.backoff_initial_s
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                return method(request, timeout=self.config.timeout_s)
            except grpc.RpcError as e:
                code = _code(e)
                details = e.details() if hasattr(e, "details") else str(e)
                mixed_sizes = code == grpc.StatusCode.FAILED_PRECONDITION and "padding is turned off" in str(details)
                if (code == grpc.StatusCode.UNAVAILABLE or mixed_sizes) and attempt < self.config.max_attempts:
                    self.retries += 1
                    self._sleep(delay)
                    delay = min(delay * 2, self.config.backoff_max_s)
                    continue
                hint = ""
                if code == grpc.StatusCode.UNAVAILABLE:
                    hint = f" after {attempt} attempts; is tensorflow_model_server running at {self.config.address}?"
                elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    hint = f" (deadline {self.config.timeout_s}s; raise it with --timeout)"
                elif code == grpc.StatusCode.RESOURCE_EXHAUSTED and "OOM when allocating" in str(details):
                    # The server's device ran out of memory (a GPU's, mostly): a bigger message limit cannot help.
                    hint = (" (the model server ran out of memory for this step: segment at a smaller --max_size, "
                            "send fewer object rows per request (--max_batch_size with --batched, and the server's "
                            "batching max_batch_size), or serve a float16 export)")
                elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    hint = " (message too large? raise --max_message_mb)"
                elif code == grpc.StatusCode.INVALID_ARGUMENT and self.config.batched and (
                        limit := re.search(r"larger than maximum (?:input )?batch size (\d+)", str(details))):
                    hint = (f" (pass --max_batch_size={limit.group(1)} (the server's batching parameters' "
                            "max_batch_size), so that a frame's objects go in requests the server takes)")
                elif code == grpc.StatusCode.NOT_FOUND and self.version_pinned_here:
                    hint = (f" (version {self.config.model_version}, found AVAILABLE when the video started, is no "
                            "longer served: the server unloaded it, e.g. for a newer version; run the client again)")
                elif code == grpc.StatusCode.NOT_FOUND and self.config.model_version is not None:
                    hint = (f" (version {self.config.model_version} is not served: a newer version replaced it, or it "
                            "was never exported; leave --model_version out to use the newest)")
                elif mixed_sizes:
                    tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                    hint = (f" after {tries} (a batching model server fails a batch whose requests differ in frame "
                            "size: segment the videos it serves at one size, e.g. one --max_size for videos "
                            "of one aspect ratio; a colour prior network's color_tables requests go at each video's "
                            "own resolution, so its videos need one resolution; or serve without --enable_batching)")
                raise ServingError(f"{what} failed: {code.name if code else 'error'}: {details}{hint}", code) from e
        raise AssertionError("unreachable")

    # -- readiness -----------------------------------------------------------------------------------------
    def wait_until_available(self) -> int:
        """Waits (up to `ready_timeout_s`) until a version of the model is AVAILABLE; returns that version.

        A model server opens its port only once its models and their warmup have loaded, so until then every
        call is UNAVAILABLE: that is waited out too, within the same timeout."""
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=self._model_spec())
        deadline = time.monotonic() + self.config.ready_timeout_s
        while True:
            try:
                response = self._call(self._models.GetModelStatus, request,
                                      f"GetModelStatus({self.config.model_name})")
            except ServingError as e:
                if not (isinstance(e.__cause__, grpc.RpcError) and _code(e.__cause__) == grpc.StatusCode.UNAVAILABLE
                        and time.monotonic() < deadline):
                    raise
                self._sleep(min(1.0, self.config.backoff_max_s))
                continue
            states = {s.version: s.state for s in response.model_version_status}
            available = [v for v, s in states.items() if s == get_model_status_pb2.ModelVersionStatus.AVAILABLE]
            if available:
                return max(available)
            # A version whose load failed (a warmup record refused, an export the server's batching refuses) ends
            # in END with the load's error as its status: no use waiting for it, and the reason is the server's.
            failed = {s.version: s.status.error_message or f"error code {s.status.error_code}"
                      for s in response.model_version_status
                      if s.state == get_model_status_pb2.ModelVersionStatus.END and s.status.error_code != 0}
            reasons = "".join(f"; version {v} failed to load: {m}" for v, m in sorted(failed.items()))
            # Versions that ended: nothing left that may still load (one unloaded normally is no hope either).
            if failed and all(s == get_model_status_pb2.ModelVersionStatus.END for s in states.values()):
                raise ServingError(f"Model {self.config.model_name} at {self.config.address} has no version that "
                                   f"loaded{reasons}.")
            if time.monotonic() > deadline:
                names = {v: get_model_status_pb2.ModelVersionStatus.State.Name(s) for v, s in states.items()}
                raise ServingError(
                    f"Model {self.config.model_name} at {self.config.address} has no AVAILABLE version after "
                    f"{self.config.ready_timeout_s}s (versions: {names}){reasons}; check the server log."
                )
            self._sleep(min(1.0, self.config.backoff_max_s))

    def signature_defs(self, version: Optional[int] = None) -> Dict[str, meta_graph_pb2.SignatureDef]:
        """The served model's SignatureDefs (GetModelMetadata) of `version` (default: `config.model_version`, or
        the server's latest when that is None)."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=self._model_spec(version=version), metadata_field=["signature_def"]
        )
        response = self._call(self._prediction.GetModelMetadata, request, "GetModelMetadata")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        if not response.metadata["signature_def"].Unpack(signature_map):
            raise ServingError("GetModelMetadata returned no SignatureDefMap.")
        return dict(signature_map.signature_def)

    def check_signatures(self, version: Optional[int] = None) -> None:
        """Raises ServingError unless the signatures this client uses (the step and first-frame ones, or with
        `batched` step_batched) of `version` (as in `signature_defs`) take and return what it sends and reads."""
        defs = self.signature_defs(version)
        step_key = BATCHED_STEP_SIGNATURE if self.config.batched else self.config.step_signature
        self.color_prior = step_key in defs and COLOR_MODEL in defs[step_key].inputs
        self.color_model = None  # a new check, perhaps of another version: no tables of an earlier video
        tables = signature_tables(color_prior=self.color_prior)
        expected = [
            (self.config.step_signature,) + tables[STEP_SIGNATURE],
            (self.config.first_frame_signature,) + tables[FIRST_FRAME_SIGNATURE],
        ]
        if self.config.batched:
            expected = [(BATCHED_STEP_SIGNATURE,) + tables[BATCHED_STEP_SIGNATURE]]
        if self.color_prior:
            expected.append((COLOR_TABLES_SIGNATURE,) + tables[COLOR_TABLES_SIGNATURE])
        if (not self.config.batched and self.config.first_frame_signature not in defs
                and BATCHED_STEP_SIGNATURE in defs):
            raise ServingError(
                f"Model {self.config.model_name} at {self.config.address} is a batching export (export_main "
                f"--batching): it serves '{BATCHED_STEP_SIGNATURE}' only (served: {sorted(defs)}). Run the client "
                "with --batched (and --max_batch_size=<the server's>), or serve an export made without --batching "
                "on a server without --enable_batching.")
        problems = []
        for key, inputs, outputs in expected:
            sig = defs.get(key)
            if sig is None:
                problems.append(f"signature '{key}' is missing (served: {sorted(defs)})")
                continue
            if sig.method_name != "tensorflow/serving/predict":
                problems.append(f"signature '{key}' has method {sig.method_name!r}, not tensorflow/serving/predict")
            for kind, table, served in (("input", inputs, sig.inputs), ("output", outputs, sig.outputs)):
                for name, (dtype, shape) in table.items():
                    info = served.get(name)
                    if info is None and name in (MASK_THRESHOLD_OUTPUT, INPUT_ERROR_OUTPUT):
                        continue  # an export older than the output: fused at the default 0.5; bad rows fail there
                    if info is None:
                        problems.append(f"signature '{key}' has no {kind} '{name}'")
                    elif info.dtype != dtype.as_datatype_enum:
                        problems.append(f"{kind} '{name}' of '{key}' is dtype enum {info.dtype}, expected {dtype.name}")
                    elif len(info.tensor_shape.dim) != len(shape):
                        problems.append(f"{kind} '{name}' of '{key}' has rank {len(info.tensor_shape.dim)}, expected {len(shape)}")
        if problems:
            raise ServingError(
                f"Model {self.config.model_name} at {self.config.address} is not a compatible MaskRNN export: "
                + "; ".join(problems) + ". Export it with python -m maskrnn_tf.export.export_main."
            )

    def check_ready(self) -> int:
        """GetModelStatus, then GetModelMetadata of the version found AVAILABLE; returns that version.

        The metadata is asked of that version, not of the latest: a newer one loaded in between would be the one
        checked (and its colour prior, or none, used) while every request goes to the version returned. When the
        version found is unloaded in between (NOT_FOUND), the server is asked again which version it serves."""
        for attempt in range(MAX_VERSION_RESTARTS + 1):
            version = self.wait_until_available()
            try:
                self.check_signatures(version)
                return version
            except ServingError as e:
                if (e.code != grpc.StatusCode.NOT_FOUND or self.config.model_version is not None
                        or attempt == MAX_VERSION_RESTARTS):
                    raise
        raise AssertionError("unreachable")

    # -- prediction ----------------------------------------------------------------------------------------
    def predict(self, signature: str, inputs: Mapping[str, np.ndarray],
                output_filter: Sequence[str] = ()) -> Dict[str, np.ndarray]:
        """One Predict call; returns the outputs as NumPy arrays."""
        request = predict_pb2.PredictRequest(model_spec=self._model_spec(signature), output_filter=list(output_filter))
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(ndarray_to_proto(value))
        size = request.ByteSize()
        if size > self.config.max_message_bytes:
            raise ServingError(
                f"A {signature} request is {size / 2**20:.1f} MB, over the {self.config.max_message_bytes / 2**20:.0f} MB "
                "message limit; raise --max_message_mb" + (
                    " (the first frame's colour tables go at the video's own size, one row per object: "
                    "--batched sends them in --max_batch_size rows)." if signature == COLOR_TABLES_SIGNATURE
                    else " or segment at a smaller --max_size.")
            )
        response = self._call(self._prediction.Predict, request, f"Predict({signature})")
        return {name: proto_to_ndarray(proto) for name, proto in response.outputs.items()}

    def step(self, frame: np.ndarray, flow_to_prev: np.ndarray, flow_to_next: np.ndarray,
             prev_probs: np.ndarray, prev_boxes: np.ndarray, color_model: Optional[np.ndarray] = None
             ) -> Dict[str, np.ndarray]:
        """One recurrent step on the server (the propagation loop's `step_fn`); with `batched`, through
        `step_batched`, the shared frame and flows repeated for each object's row, in requests of at most
        `max_batch_size` rows whose answers are joined in object order. `color_model` [N, 4096] (a colour prior
        network; `self.color_model` when not given): the objects' tables, sent with their rows."""
        color_model = (self.color_model if color_model is None else color_model) if self.color_prior else None
        if self.color_prior and color_model is None:
            raise ServingError("the served network takes first-frame colour tables at every step: fit them with "
                               "color_tables (the first frame and its id mask) and keep them for the video.")
        prior = {} if color_model is None else {COLOR_MODEL: np.asarray(color_model, np.float32)}
        if self.config.batched:
            prev_probs = np.asarray(prev_probs, np.float32)
            prev_boxes = np.asarray(prev_boxes, np.float32)
            objects = int(prev_probs.shape[0])
            shared = {"frame": np.asarray(frame, np.uint8), "flow_to_prev": np.asarray(flow_to_prev, np.float32),
                      "flow_to_next": np.asarray(flow_to_next, np.float32)}
            _refuse_what_the_server_asserts(shared["flow_to_prev"], shared["flow_to_next"], prev_probs, prev_boxes)
            parts = []
            # An empty frame (no object) still goes as one request, so that the server answers it as before.
            for start in range(0, max(objects, 1), self.config.max_batch_size):
                stop = min(start + self.config.max_batch_size, objects)
                inputs = {key: np.repeat(value[None], stop - start, axis=0) for key, value in shared.items()}
                inputs.update(prev_probs=prev_probs[start:stop], prev_boxes=prev_boxes[start:stop],
                              **{key: value[start:stop] for key, value in prior.items()})
                parts.append(_without_row_errors(self.predict(BATCHED_STEP_SIGNATURE, inputs), BATCHED_STEP_SIGNATURE,
                                                 start))
            if len(parts) == 1:
                return parts[0]
            return {key: np.concatenate([part[key] for part in parts], axis=0) for key in parts[0]}
        return self.predict(self.config.step_signature, {
            "frame": np.asarray(frame, np.uint8),
            "flow_to_prev": np.asarray(flow_to_prev, np.float32),
            "flow_to_next": np.asarray(flow_to_next, np.float32),
            "prev_probs": np.asarray(prev_probs, np.float32),
            "prev_boxes": np.asarray(prev_boxes, np.float32),
            **prior,
        })

    def first_frame(self, mask: np.ndarray, object_ids: Sequence[int]) -> Dict[str, np.ndarray]:
        """The initial state (prev_probs [N, H, W], prev_boxes [N, 4]) of an id mask, computed by the server."""
        return self.predict(self.config.first_frame_signature, {
            "mask": np.asarray(mask, np.uint8), "object_ids": np.asarray(object_ids, np.int32)})

    def color_tables(self, frame: np.ndarray, mask: np.ndarray, object_ids: Sequence[int]) -> np.ndarray:
        """[N, 4096] the objects' colour tables of a colour prior network, fitted by the server (`color_tables`)
        on the first frame (uint8 RGB) and its id mask, one row per object (requests of at most `max_batch_size`
        rows with `batched`)."""
        frame, mask = np.asarray(frame, np.uint8), np.asarray(mask, np.uint8)
        object_ids = np.asarray(object_ids, np.int32)
        step = self.config.max_batch_size if self.config.batched else max(len(object_ids), 1)
        parts = []
        for start in range(0, len(object_ids), step):
            rows = len(object_ids[start:start + step])
            parts.append(_without_row_errors(self.predict(COLOR_TABLES_SIGNATURE, {
                "frame": np.repeat(frame[None], rows, axis=0), "mask": np.repeat(mask[None], rows, axis=0),
                "object_ids": object_ids[start:start + step]}), COLOR_TABLES_SIGNATURE, start)[COLOR_MODEL])
        return np.concatenate(parts, axis=0)

    def color_prior_prepare(self, source, first) -> Callable:
        """A `prepare` callback of the segmenting loop for a colour prior network: asks the server for the video's
        tables (its first frame and annotation at the video's own size, as `segment` fits them) and binds them
        (`self.color_model`)."""
        from maskrnn_tf.inference.color_gate import first_frame_of

        self.color_model = self.color_tables(first_frame_of(source), first.labels, first.object_ids)
        return self.step


def segment_video_via_serving(
    config: ClientConfig,
    video: str,
    first_mask: str,
    output_dir: str,
    options: Optional["SegmentOptions"] = None,
    flow_backend: str = "dis",
    overlay_path: Optional[str] = None,
    overwrite: bool = False,
    client: Optional[ServingClient] = None,
    flo_dir: Optional[str] = None,
) -> int:
    """Segments a whole video through the model server; writes what the segment CLI writes with --finetune=none
    (and, for a float32 export, --precision=float32: module docstring).

    Args:
      config: server address, model name, deadlines, retries, TLS.
      video: a folder of frames (jpg/png) or a video file (mp4).
      first_mask: the first frame's mask (palette PNG of object ids, or a binary mask).
      output_dir: the results folder (`<frame>.png` palette masks), created atomically; refused when it
        exists unless `overwrite`.
      options: the segment CLI's options (max_size, save_probs, ...); defaults to its defaults.
      flow_backend: the segment CLI's flow backend name.
      flo_dir: with flow_backend="flo", the folder of `<video name>/<stem_a>_<stem_b>.flo` files.
      overlay_path: optional mp4 with the masks blended into the frames.
      client: an open client to reuse (otherwise one is made from `config` and closed at the end).
    Returns the number of frames written.
    """
    # The inference loop and flow pull in OpenCV and the model; import them only when segmenting.
    from maskrnn_tf.inference.flow_source import make_flow_fn
    from maskrnn_tf.inference.segmenter import SegmentOptions, segment_video

    options = options or SegmentOptions()
    if os.path.exists(output_dir) and not overwrite:  # before the server is asked anything
        raise FileExistsError(
            f"{output_dir}: output folder already exists; choose another --output_dir or pass --overwrite to replace it."
        )
    owned = client is None
    client = client or ServingClient(config)
    unpinned = client.config
    try:
        for attempt in range(1, MAX_VERSION_RESTARTS + 2):
            version = client.check_ready()  # fail before reading a single frame when the server cannot serve
            if unpinned.model_version is None:  # every frame from the version checked: a newer one may appear
                client.config = dataclasses.replace(unpinned, model_version=version)
                client.version_pinned_here = True
            try:
                # Objects are fused at the served model's threshold, as segment fuses them with the model file:
                # each step answer carries it (`mask_threshold`), which the loop uses (exports without it: 0.5).
                return segment_video(
                    client.step, video, first_mask, make_flow_fn(flow_backend, flo_dir), output_dir,
                    options, overlay_path=overlay_path, overwrite=overwrite, metadata={"carry": options.carry},
                    prepare=client.color_prior_prepare if client.color_prior else None,
                )
            except ServingError as e:
                # A server on the latest-version policy unloads the version a video started with once a newer
                # one is loaded. Mixing versions within a video would make its masks come from two models, so
                # the video starts over (nothing of the failed attempt is kept) on the version served now.
                if (e.code != grpc.StatusCode.NOT_FOUND or unpinned.model_version is not None
                        or attempt > MAX_VERSION_RESTARTS):
                    raise
                client.config, client.version_pinned_here = unpinned, False
                newest = client.wait_until_available()
                if newest == version:
                    raise
                logger.warning("%s: version %d is no longer served (version %d replaced it); segmenting the video "
                               "again with version %d from its first frame.", video, version, newest, newest)
        raise AssertionError("unreachable")
    finally:
        client.config, client.version_pinned_here = unpinned, False
        if owned:
            client.close()
