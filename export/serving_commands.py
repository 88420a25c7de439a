"""The `tensorflow_model_server` command lines that serve an export (printed by the CLIs, quoted in the README)."""
from __future__ import annotations

import os

# The model server must be at least as new as the TensorFlow that wrote the SavedModel.
SERVING_IMAGE = "tensorflow/serving:2.21.0"
GRPC_PORT = 8500
REST_PORT = 8501


def batching_parameters_path() -> str:
    """Absolute path of the example batching_parameters.txt shipped beside this module."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "batching_parameters.txt")


def serving_commands(export_base: str, model_name: str = "maskrnn", batching: bool = False) -> str:
    """Docker and apt-package command lines serving `export_base` (an absolute model base path).

    `batching=True` adds --enable_batching, for an export made with `--batching` (only `step_batched`): the
    model server then batches every signature of the model, and the per-video ones cannot be batched
    (export/batching_check.py).
    """
    export_base = os.path.abspath(export_base)
    batch_file = batching_parameters_path()
    docker_batch = (
        f' \\\n    -v "{os.path.dirname(batch_file)}:/config:ro"' if batching else ""
    )
    flags_common = f"--port={GRPC_PORT} --rest_api_port={REST_PORT} --model_name={model_name}"
    batch_flags_docker = " --enable_batching --batching_parameters_file=/config/batching_parameters.txt" if batching else ""
    batch_flags_local = f" --enable_batching --batching_parameters_file={batch_file}" if batching else ""
    docker = (
        f"docker run --rm -p {GRPC_PORT}:{GRPC_PORT} -p {REST_PORT}:{REST_PORT} \\\n"
        f'    -v "{export_base}:/models/{model_name}:ro"{docker_batch} \\\n'
        f"    --entrypoint tensorflow_model_server {SERVING_IMAGE} \\\n"
        f"    {flags_common} --model_base_path=/models/{model_name}{batch_flags_docker}"
    )
    local = f"tensorflow_model_server {flags_common} --model_base_path={export_base}{batch_flags_local}"
    return (
        "# Serve with Docker (GPU: add --gpus all and use the tensorflow/serving:2.21.0-gpu image):\n"
        f"{docker}\n"
        "# or with the apt package tensorflow-model-server:\n"
        f"{local}"
    )
