"""TF-Serving warmup records: `assets.extra/tf_serving_warmup_requests`.

The model server replays these `PredictionLog` records (a TFRecord file) when it loads a version, so the
first real request does not pay for graph optimisation and kernel selection.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from maskrnn_tf.export.serving_module import (BATCHED_STEP_SIGNATURE, COLOR_MODEL, COLOR_MODEL_SPEC,
                                              COLOR_TABLES_SIGNATURE, FIRST_FRAME_SIGNATURE, INPUT_ERROR_OUTPUT,
                                              MIN_FRAME_SIZE, STEP_SIGNATURE)
from maskrnn_tf.export.session_model import SessionModel

WARMUP_FILENAME = "tf_serving_warmup_requests"
# TF-Serving's saved_model_warmup_util reads at most this many records and refuses the version above it.
MAX_WARMUP_RECORDS = 1000


def warmup_record_count(shapes_count: int, batching: bool = False, color_prior: bool = False) -> int:
    """How many records `warmup_requests` writes for `shapes_count` shapes (see there)."""
    per_shape = (1 if batching else 2) + (1 if color_prior else 0)
    return shapes_count * per_shape + (0 if batching else 1)


def check_warmup_record_count(shapes_count: int, batching: bool = False, color_prior: bool = False) -> None:
    """Raises ValueError when the warmup file would hold more records than the model server reads."""
    count = warmup_record_count(shapes_count, batching, color_prior)
    if count > MAX_WARMUP_RECORDS:
        per_shape = (count - (0 if batching else 1)) // shapes_count
        most = (MAX_WARMUP_RECORDS - (0 if batching else 1)) // per_shape
        raise ValueError(
            f"{shapes_count} warmup shapes make {count} warmup records ({per_shape} per shape"
            + ("" if batching else " and a first_frame request") + f"), but TF-Serving refuses a version with more "
            f"than {MAX_WARMUP_RECORDS}: give at most {most} shapes (the sizes and object counts clients send most).")


@dataclasses.dataclass(frozen=True)
class WarmupConfig:
    """Which requests to record: one step per (height, width, objects) and one first-frame request."""

    shapes: Tuple[Tuple[int, int, int], ...] = ((96, 128, 1), (96, 128, 2))
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.shapes:
            raise ValueError("WarmupConfig.shapes is empty; pass warmup=None for no warmup file.")
        for height, width, objects in self.shapes:
            if min(height, width) < MIN_FRAME_SIZE or objects < 1:
                raise ValueError(
                    f"Warmup shape {height}x{width}x{objects}: the network needs frames of at least "
                    f"{MIN_FRAME_SIZE}x{MIN_FRAME_SIZE} pixels (its VGG-16 trunk pools 4 times) and at least one "
                    "object, or the model server fails the warmup and refuses the version; use e.g. 96x128x1."
                )


def _request(model_name: str, signature: str, inputs: Dict[str, np.ndarray]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
    )
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def warmup_requests(model_name: str, config: WarmupConfig, batching: bool = False, color_prior: bool = False
                    ) -> List[predict_pb2.PredictRequest]:
    """Synthetic but well-formed requests: a disc-shaped object per channel, small flows.

    Per shape one `serving_default` step and one `step_batched` request (one row per object, every input sharing
    axis 0), then one `first_frame` request; with `batching` (an export for a model server with --enable_batching,
    whose only signature is `step_batched`) only the `step_batched` requests.
    `color_prior` (a network with model.color_prior_input): per shape a `color_tables` request too, and the steps
    carry even colour tables (0.5 everywhere)."""
    rng = np.random.default_rng(config.seed)
    requests = []
    for height, width, objects in config.shapes:
        yy, xx = np.mgrid[:height, :width]
        probs = np.stack(
            [((yy - height / 2) ** 2 + (xx - width * (k + 1) / (objects + 1)) ** 2 < (height / 5) ** 2)
             for k in range(objects)]
        ).astype(np.float32)
        rows = np.any(probs > 0.5, axis=2)
        cols = np.any(probs > 0.5, axis=1)
        boxes = np.array(
            [[r.argmax(), c.argmax(), len(r) - r[::-1].argmax(), len(c) - c[::-1].argmax()] for r, c in zip(rows, cols)],
            np.float32,
        )
        inputs = {
            "frame": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
            "flow_to_prev": rng.normal(0, 1, (height, width, 2)).astype(np.float32),
            "flow_to_next": rng.normal(0, 1, (height, width, 2)).astype(np.float32),
            "prev_probs": probs,
            "prev_boxes": boxes,
        }
        if color_prior:
            inputs[COLOR_MODEL] = np.full((objects, COLOR_MODEL_SPEC[1][1]), 0.5, np.float32)
            ids = np.zeros((height, width), np.uint8)
            for k in range(objects):
                ids[probs[k] > 0.5] = k + 1
            requests.append(_request(model_name, COLOR_TABLES_SIGNATURE, {
                "frame": np.repeat(inputs["frame"][None], objects, axis=0),
                "mask": np.repeat(ids[None], objects, axis=0),
                "object_ids": np.arange(1, objects + 1, dtype=np.int32)}))
        batched = {**inputs, **{key: np.repeat(inputs[key][None], objects, axis=0)
                                for key in ("frame", "flow_to_prev", "flow_to_next")}}
        if not batching:
            requests.append(_request(model_name, STEP_SIGNATURE, inputs))
        requests.append(_request(model_name, BATCHED_STEP_SIGNATURE, batched))
    if batching:
        return requests
    height, width, objects = config.shapes[0]
    mask = (np.arange(height * width).reshape(height, width) % (objects + 1)).astype(np.uint8)
    requests.append(
        _request(model_name, FIRST_FRAME_SIGNATURE, {"mask": mask, "object_ids": np.arange(1, objects + 1, dtype=np.int32)})
    )
    return requests


def write_warmup_file(export_dir: str, model_name: str, config: WarmupConfig, batching: bool = False,
                      color_prior: bool = False) -> str:
    """Writes `<export_dir>/assets.extra/tf_serving_warmup_requests` (see `warmup_requests`); returns its path."""
    folder = os.path.join(export_dir, "assets.extra")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, WARMUP_FILENAME)
    with tf.io.TFRecordWriter(path) as writer:
        for request in warmup_requests(model_name, config, batching, color_prior):
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_file(path: str) -> List[prediction_log_pb2.PredictionLog]:
    """Parses a warmup file back into PredictionLog records."""
    records = []
    for raw in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(raw.numpy())
        records.append(log)
    return records


def request_to_numpy(request: predict_pb2.PredictRequest) -> Dict[str, np.ndarray]:
    """The inputs of a PredictRequest as NumPy arrays."""
    return {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}


class WarmupReplayError(RuntimeError):
    """A warmup request failed when replayed: the model server would refuse to load the version."""


def replay_warmup_file(model: SessionModel) -> int:
    """Replays `<export_dir>/assets.extra/tf_serving_warmup_requests` through `model`, the version loaded by the
    session loader (SessionModel).

    That is what tensorflow_model_server does when it loads a version (a failing record makes the load
    fail). Returns the number of records replayed; raises WarmupReplayError naming the failing record.
    """
    records = read_warmup_file(os.path.join(model.export_dir, "assets.extra", WARMUP_FILENAME))
    for index, record in enumerate(records):
        request = record.predict_log.request
        inputs = request_to_numpy(request)
        shapes = {k: list(v.shape) for k, v in inputs.items()}
        try:
            out = model.run(request.model_spec.signature_name, inputs, list(request.output_filter) or None)
        except tf.errors.ResourceExhaustedError as e:
            # Out of memory here says nothing of the server's machine, whose memory may differ.
            raise WarmupReplayError(
                f"Warmup request {index} ({request.model_spec.signature_name or 'serving_default'}, input shapes "
                f"{shapes}) ran out of memory on this machine when replayed at export ({first_line(e.message)}); "
                "the model server replays it when it loads the version and refuses the version if it runs out "
                "too. Use smaller shapes (the frame sizes the server will see), or export on a machine with the "
                "server's memory."
            ) from e
        except (tf.errors.OpError, KeyError) as e:
            message = e.message if isinstance(e, tf.errors.OpError) else str(e)
            message = " ".join(_message_lines(message))
            raise WarmupReplayError(
                f"Warmup request {index} ({request.model_spec.signature_name or 'serving_default'}, input shapes "
                f"{shapes}) fails through the model server's loader, so the server would refuse this version: "
                f"{message}"
            ) from e
        refused = [e.decode() for e in np.asarray(out.get(INPUT_ERROR_OUTPUT, [])).reshape(-1).tolist() if e]
        if refused:  # the server would load the version, but this record would warm nothing of those rows
            raise WarmupReplayError(
                f"Warmup request {index} ({request.model_spec.signature_name}) has {len(refused)} row(s) the "
                f"export answers with an input error, so it would not warm them: {refused[0]}")
    return len(records)


def _message_lines(message: str) -> List[str]:
    """The lines of a TensorFlow error message that say something: not its "Graph execution error:" opening nor
    the node names ("[[...]]") that end it."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return [line for line in lines if line != "Graph execution error:" and not line.startswith("[[")]


def first_line(message: str) -> str:
    """The first line of a TensorFlow error message that says something (`_message_lines`)."""
    lines = _message_lines(message)
    return lines[0] if lines else message.strip()


def shapes_from_strings(values: Sequence[str]) -> Tuple[Tuple[int, int, int], ...]:
    """Parses "HxWxN" strings (CLI flags) into warmup shapes."""
    shapes = []
    for value in values:
        parts = value.lower().split("x")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ValueError(f"Warmup shape {value!r} must be HEIGHTxWIDTHxOBJECTS with positive integers, e.g. 480x854x2.")
        shapes.append(tuple(int(p) for p in parts))
    return tuple(shapes)
