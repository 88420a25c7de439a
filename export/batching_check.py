"""What a model server started with --enable_batching refuses in an export, checked before it is deployed.

With batching on, tensorflow_model_server wraps the session of every model in a batching session that batches
requests to *every* SignatureDef of the model (saved_model_bundle_factory.cc: "Enable batching of requests to
any one signature_def in the SavedModel"). The batching session concatenates requests on axis 0 and refuses a
request whose inputs have no axis 0 ("Batching Run() input tensors must have at least one dimension") or
differ in its size ("... must have equal 0th-dimension size"), and its batch scheduler one of more rows than
the --batching_parameters_file's max_batch_size ("Task size 9 is larger than maximum input batch size 8").
The warmup records are replayed through that session when a version loads, and a failing record fails the
version.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

from maskrnn_tf.export.serving_commands import batching_parameters_path, read_max_batch_size
from maskrnn_tf.export.session_model import serve_signature_defs
from maskrnn_tf.export.warmup import WARMUP_FILENAME, read_warmup_file, request_to_numpy


def _row_limit(max_batch_size: Optional[int]) -> Tuple[int, str]:
    """The rows a request may have (default: the shipped batching_parameters.txt's) and where that comes from."""
    if max_batch_size is not None:
        return max_batch_size, f"max_batch_size {max_batch_size}"
    limit = read_max_batch_size()
    return limit, f"max_batch_size {limit} of {batching_parameters_path()}"


def _over_the_limit(rows: int, limit: int, source: str) -> str:
    return (f"{rows} rows, over {source}: the model server refuses it ('Task size {rows} is larger than maximum "
            f"input batch size {limit}'), and with a failing warmup record the whole version")


def check_batching_warmup_shapes(shapes: Sequence[Tuple[int, int, int]], max_batch_size: Optional[int] = None) -> None:
    """Raises ValueError for a warmup shape whose `step_batched` request (one row per object) has more rows than
    `max_batch_size` (default: the shipped batching_parameters.txt's), which a batching server refuses."""
    limit, source = _row_limit(max_batch_size)
    for height, width, objects in shapes:
        if objects > limit:
            raise ValueError(
                f"Warmup shape {height}x{width}x{objects} has {objects} objects, so its step_batched warmup request "
                f"has {_over_the_limit(objects, limit, source)}. Use warmup shapes of at most {limit} objects (e.g. "
                f"{height}x{width}x{limit}), or raise max_batch_size in the batching parameters file the server uses.")


def batching_problems(export_dir: str, max_batch_size: Optional[int] = None) -> List[str]:
    """Why a model server with --enable_batching would refuse requests to this export or its warmup records
    (empty: none). Reads the served SignatureDefs and `assets.extra/tf_serving_warmup_requests`; a warmup
    record may have at most `max_batch_size` rows (default: the shipped batching_parameters.txt's)."""
    limit, source = _row_limit(max_batch_size)
    problems = []
    for key, signature in sorted(serve_signature_defs(export_dir).items()):
        if key.startswith("__"):  # e.g. __saved_model_init_op: not a servable signature
            continue
        for name, info in sorted(signature.inputs.items()):
            if info.tensor_shape.unknown_rank or not info.tensor_shape.dim:
                problems.append(f"signature '{key}': input '{name}' has no axis 0 (rank 0 or unknown)")
    path = os.path.join(export_dir, "assets.extra", WARMUP_FILENAME)
    if os.path.isfile(path):
        for index, record in enumerate(read_warmup_file(path)):
            request = record.predict_log.request
            sizes = {name: (value.shape[0] if value.ndim else None)
                     for name, value in sorted(request_to_numpy(request).items())}
            signature_name = request.model_spec.signature_name or "serving_default"
            if len(set(sizes.values())) > 1:
                problems.append(f"warmup request {index} ('{signature_name}'):"
                                f" inputs differ on axis 0 ({', '.join(f'{k} {v}' for k, v in sizes.items())})")
            rows = max((size for size in sizes.values() if size is not None), default=0)
            if rows > limit:
                problems.append(f"warmup request {index} ('{signature_name}'): {_over_the_limit(rows, limit, source)}")
    return problems
