"""What a model server started with --enable_batching refuses in an export, checked before it is deployed.

With batching on, tensorflow_model_server wraps the session of every model in a batching session that batches
requests to *every* SignatureDef of the model (saved_model_bundle_factory.cc: "Enable batching of requests to
any one signature_def in the SavedModel"). The batching session concatenates requests on axis 0 and refuses a
request whose inputs have no axis 0 ("Batching Run() input tensors must have at least one dimension") or
differ in its size ("... must have equal 0th-dimension size"). The warmup records are replayed through that
session when a version loads, and a failing record fails the version.
"""
from __future__ import annotations

import os
from typing import List

from maskrnn_tf.export.session_model import serve_signature_defs
from maskrnn_tf.export.warmup import WARMUP_FILENAME, read_warmup_file, request_to_numpy


def batching_problems(export_dir: str) -> List[str]:
    """Why a model server with --enable_batching would refuse requests to this export or its warmup records
    (empty: none). Reads the served SignatureDefs and `assets.extra/tf_serving_warmup_requests`."""
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
            if len(set(sizes.values())) > 1:
                problems.append(f"warmup request {index} ('{request.model_spec.signature_name or 'serving_default'}'):"
                                f" inputs differ on axis 0 ({', '.join(f'{k} {v}' for k, v in sizes.items())})")
    return problems
