"""The `tensorflow_model_server` command lines that serve an export (printed by the CLIs, quoted in the README)."""
from __future__ import annotations

import os
import re
import shlex
from typing import Optional

# The model server must be at least as new as the TensorFlow that wrote the SavedModel.
SERVING_IMAGE = "tensorflow/serving:2.21.0"
GRPC_PORT = 8500
REST_PORT = 8501


def batching_parameters_path() -> str:
    """Absolute path of the example batching_parameters.txt shipped beside this module."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "batching_parameters.txt")


# Text format writes a message field as `name { ... }`, `name: { ... }` or with < > brackets.
_MAX_BATCH_SIZE = re.compile(r"\bmax_batch_size\s*:?\s*[{<]\s*value\s*:\s*(\d+)\s*[}>]")


def read_max_batch_size(parameters_path: Optional[str] = None) -> int:
    """`max_batch_size { value: N }` of a text-format BatchingParameters file (default: the shipped one).

    A model server with --enable_batching refuses any request of more than N rows ("Task size 9 is larger than
    maximum input batch size 8"), with or without enable_large_batch_splitting (that only splits the batches
    it executes), so the batched client sends at most N rows per request and a batching export's warmup
    records hold at most N. Raises ValueError naming the file when it cannot be read or sets no max_batch_size.
    """
    path = parameters_path or batching_parameters_path()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f"Cannot read the batching parameters file {path}: {e}.") from e
    text = re.sub(r"#[^\n]*", "", text)  # comments may quote other values
    match = _MAX_BATCH_SIZE.search(text)
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"{path} sets no max_batch_size {{ value: N }} with N >= 1; add one (the rows a request may "
                         "carry, e.g. max_batch_size { value: 8 }).")
    return int(match.group(1))


def batching_parameters_text(max_batch_size: int) -> str:
    """The shipped batching parameters (comments left out) with `max_batch_size { value: max_batch_size }`."""
    path = batching_parameters_path()
    read_max_batch_size(path)  # a ValueError naming the file when it has no max_batch_size to replace
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    body = _MAX_BATCH_SIZE.sub(f"max_batch_size {{ value: {max_batch_size} }}", "\n".join(lines), count=1)
    return (f"# export/batching_parameters.txt with max_batch_size {max_batch_size} (export_main --max_batch_size)\n"
            f"{body}\n")


def serving_commands(export_base: str, model_name: str = "maskrnn", batching: bool = False,
                     max_batch_size: Optional[int] = None) -> str:
    """Docker and apt-package command lines serving `export_base` (an absolute model base path).

    `batching=True` adds --enable_batching, for an export made with `--batching` (only `step_batched`): the
    model server then batches every signature of the model, and the per-video ones cannot be batched
    (export/batching_check.py). `max_batch_size` (export_main --max_batch_size): when it is not the shipped
    batching_parameters.txt's, whose server would refuse the version's larger warmup records, the commands
    first write the shipped parameters with it to `<export_base>.batching_parameters.txt` and serve with that.
    """
    export_base = os.path.abspath(export_base)
    batch_file = batching_parameters_path()
    prelude = ""
    shipped = read_max_batch_size(batch_file) if batching and max_batch_size is not None else None
    if shipped is not None and max_batch_size != shipped:
        # Beside the model base path, not in it: the model server polls that folder for version folders.
        batch_file = f"{export_base}.batching_parameters.txt"
        prelude = (
            f"# This version needs a server with max_batch_size {max_batch_size} (--max_batch_size; the shipped "
            f"batching_parameters.txt has {shipped}):\n"
            "# write its batching parameters beside the model base path first (replacing a file of that name); "
            f"segment with\n# client_main --batched --max_batch_size={max_batch_size}.\n"
            f"cat > {shlex.quote(batch_file)} <<'EOF'\n{batching_parameters_text(max_batch_size)}EOF\n"
        )
    # Quoted for the shell the commands are pasted into: a path may hold spaces. The one file is mounted, as
    # /config/batching_parameters.txt, whatever its name outside.
    docker_batch = (
        f" \\\n    -v {shlex.quote(batch_file + ':/config/batching_parameters.txt:ro')}" if batching else ""
    )
    flags_common = f"--port={GRPC_PORT} --rest_api_port={REST_PORT} --model_name={model_name}"
    batch_flags_docker = " --enable_batching --batching_parameters_file=/config/batching_parameters.txt" if batching else ""
    batch_flags_local = (f" --enable_batching {shlex.quote('--batching_parameters_file=' + batch_file)}"
                         if batching else "")
    docker = (
        f"docker run --rm -p {GRPC_PORT}:{GRPC_PORT} -p {REST_PORT}:{REST_PORT} \\\n"
        f"    -v {shlex.quote(f'{export_base}:/models/{model_name}:ro')}{docker_batch} \\\n"
        f"    --entrypoint tensorflow_model_server {SERVING_IMAGE} \\\n"
        f"    {flags_common} --model_base_path=/models/{model_name}{batch_flags_docker}"
    )
    local = (f"tensorflow_model_server {flags_common} {shlex.quote('--model_base_path=' + export_base)}"
             f"{batch_flags_local}")
    return (
        f"{prelude}"
        "# Serve with Docker (GPU: add --gpus all and use the tensorflow/serving:2.21.0-gpu image):\n"
        f"{docker}\n"
        "# or with the apt package tensorflow-model-server:\n"
        f"{local}"
    )
