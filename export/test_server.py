"""A stand-in for `tensorflow_model_server` in tests and benchmarks -- NOT a production server.

A real gRPC server on 127.0.0.1 that implements tensorflow-serving-api's `PredictionService` (`Predict`,
`GetModelMetadata`) and `ModelService` (`GetModelStatus`) over an exported SavedModel, loaded the way the
model server loads it (`SessionModel`: a TF1 session over the `serve` MetaGraph, variables restored by the
saver's restore op, tensors fed and fetched by the SignatureDef's names), answering in the model server's
encoding (Predict outputs in the typed `*_val` fields, Tensor::AsProtoField, not `tensor_content`) and with its
status codes: unknown model or version -> NOT_FOUND, unknown signature -> FAILED_PRECONDITION, missing /
unexpected input, wrong dtype or shape, or an in-graph check failing -> INVALID_ARGUMENT with a message
naming the input; any other TensorFlow error keeps its own code (a variable the restore op missed is
FAILED_PRECONDITION, as in the model server). With `max_batch_size` it also refuses, as a model server with
--enable_batching does, a request of more rows (axis 0) than that: INVALID_ARGUMENT "Task size 9 is larger than
maximum input batch size 8" (the batching session's other rules are checked on exports by batching_check.py).
It lets the client be tested end to end on machines without the model server binary; deploy with the real
`tensorflow_model_server` (README, export section).
"""
from __future__ import annotations

import os
import threading
from concurrent import futures
from typing import Dict, List, Optional, Tuple

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from maskrnn_tf.export.session_model import SessionModel, SignatureNotFoundError, serve_signature_defs
from maskrnn_tf.export.tensors import ndarray_to_field_proto, proto_to_ndarray
from maskrnn_tf.export.versions import served_children

_MAX_MESSAGE = 2**31 - 1  # what tensorflow_model_server allows


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def latest_version(model_base_path: str) -> int:
    """The highest version under `model_base_path` (what the model server serves by default), read as the model
    server reads it (export/versions.py): a file with a numeric name is a version too, which then fails to load."""
    if not os.path.isdir(model_base_path):
        raise FileNotFoundError(f"Model base path {model_base_path} does not exist.")
    versions = served_children(model_base_path).values()
    if not versions:
        raise FileNotFoundError(f"No numeric version folder under {model_base_path}: export a version first.")
    return max(versions)



class _ServedModel:
    """One loaded version: its signature functions and SignatureDefs."""

    def __init__(self, name: str, model_base_path: str, version: Optional[int]):
        self.name = name
        self.model_base_path = model_base_path
        self.version = version if version is not None else latest_version(model_base_path)
        export_dir = os.path.join(model_base_path, str(self.version))
        self.signature_defs = serve_signature_defs(export_dir)
        self.model = SessionModel(export_dir)

    def replace(self, version: int) -> None:
        """Loads `version`, then unloads the one served (a rollout under the latest-version policy)."""
        export_dir = os.path.join(self.model_base_path, str(version))
        signature_defs, model = serve_signature_defs(export_dir), SessionModel(export_dir)
        old = self.model
        self.version, self.signature_defs, self.model = version, signature_defs, model
        old.close()

    def check_spec(self, spec) -> None:
        if spec.name != self.name:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")
        if spec.HasField("version") and spec.version.value != self.version:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({spec.name}, {spec.version.value})")

    def signature(self, key: str) -> Tuple[str, meta_graph_pb2.SignatureDef]:
        key = key or "serving_default"
        if key not in self.signature_defs or key not in self.model.signature_defs:
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        return key, self.signature_defs[key]


def _decode_inputs(request: predict_pb2.PredictRequest) -> Dict[str, np.ndarray]:
    """The request's TensorProtos as arrays (names and dtypes are checked by SessionModel.run, shapes by the
    export's in-graph checks, as in the model server)."""
    arrays = {}
    for name, proto in request.inputs.items():
        try:
            arrays[name] = proto_to_ndarray(proto)
        except (ValueError, TypeError) as e:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Input '{name}' is malformed: {e}") from e
    return arrays


# TensorFlow's error codes are gRPC's (both follow google.rpc.Code).
_STATUS_BY_CODE = {code.value[0]: code for code in grpc.StatusCode}


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, served: _ServedModel, unavailable_first: int, max_batch_size: Optional[int] = None):
        self.served = served
        self.max_batch_size = max_batch_size
        self._unavailable_left = unavailable_first
        self._count_lock = threading.Lock()
        self.predict_calls = 0

    def Predict(self, request, context):
        with self._count_lock:
            self.predict_calls += 1
            if self._unavailable_left > 0:
                self._unavailable_left -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "stand-in server: simulated UNAVAILABLE")
        try:
            self.served.check_spec(request.model_spec)
            key, sig = self.served.signature(request.model_spec.signature_name)
            arrays = _decode_inputs(request)
            if self.max_batch_size is not None:
                # The batch scheduler's check (batch_scheduler.h), before the request joins a batch.
                task_size = max((a.shape[0] for a in arrays.values() if a.ndim), default=0)
                if task_size > self.max_batch_size:
                    raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Task size {task_size} is larger than maximum "
                                                                   f"input batch size {self.max_batch_size}")
            wanted = list(request.output_filter) or list(sig.outputs)
            unknown = sorted(set(wanted) - set(sig.outputs))
            if unknown:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f"output_filter names unknown output(s) {unknown}; signature '{key}' has {sorted(sig.outputs)}.")
            try:
                outputs = self.served.model.run(key, arrays, wanted)
            except SignatureNotFoundError as e:
                raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, str(e)) from e
            except tf.errors.OpError as e:
                raise _Abort(_STATUS_BY_CODE.get(e.error_code, grpc.StatusCode.UNKNOWN), e.message) from e
        except _Abort as e:
            context.abort(e.code, e.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.served.name
        response.model_spec.version.value = self.served.version
        response.model_spec.signature_name = key
        for name in wanted:  # typed *_val fields, as the model server's Predict answers (AsProtoField)
            response.outputs[name].CopyFrom(ndarray_to_field_proto(outputs[name]))
        return response

    def GetModelMetadata(self, request, context):
        try:
            self.served.check_spec(request.model_spec)
            if list(request.metadata_field) != ["signature_def"]:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f"Metadata field(s) {list(request.metadata_field)} not supported; ask for ['signature_def'].")
        except _Abort as e:
            context.abort(e.code, e.message)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in self.served.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(sig)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.served.name
        response.model_spec.version.value = self.served.version
        response.metadata["signature_def"].Pack(signature_map)
        return response


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, served: _ServedModel):
        self.served = served

    def GetModelStatus(self, request, context):
        try:
            self.served.check_spec(request.model_spec)
        except _Abort as e:
            context.abort(e.code, e.message)
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add()
        status.version = self.served.version
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response


class StandInModelServer:
    """Serves the latest (or a given) version of `<model_base_path>` as `model_name` on 127.0.0.1.

    Usage: `with StandInModelServer(base, "maskrnn") as server: client(server.address)`. `port=0` picks a
    free port. `unavailable_first=k` makes the first k Predict calls fail with UNAVAILABLE (to test retries).
    `tls=(private_key_pem, certificate_chain_pem)` serves over TLS (what `--ssl_config_file` does for the model server).
    `max_batch_size=n` refuses requests of more than n rows, as a model server with --enable_batching and a
    --batching_parameters_file setting `max_batch_size { value: n }` does.
    """

    def __init__(self, model_base_path: str, model_name: str, version: Optional[int] = None, port: int = 0,
                 max_workers: int = 4, unavailable_first: int = 0, tls: Optional[Tuple[bytes, bytes]] = None,
                 max_batch_size: Optional[int] = None):
        self.served = _ServedModel(model_name, model_base_path, version)
        self.prediction_service = _PredictionService(self.served, unavailable_first, max_batch_size)
        options: List[Tuple[str, int]] = [
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ]
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(self.prediction_service, self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(self.served), self._server)
        if tls is None:
            self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        else:
            self.port = self._server.add_secure_port(f"127.0.0.1:{port}", grpc.ssl_server_credentials([tls]))
        if self.port == 0:
            raise OSError(f"Cannot bind 127.0.0.1:{port}.")

    def serve_version(self, version: int) -> None:
        """Serves `version` of the model base path instead of the one served, as a model server on its default
        policy (`latest { num_versions: 1 }`) does when a newer version appears: from then on requests for the
        old version answer NOT_FOUND. Call it between requests (a request running meanwhile may fail)."""
        self.served.replace(version)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "StandInModelServer":
        self._server.start()
        return self

    def stop(self, grace: float = 0.5) -> None:
        self._server.stop(grace).wait()
        self.served.model.close()

    def __enter__(self) -> "StandInModelServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["StandInModelServer", "latest_version"]
