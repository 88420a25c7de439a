"""The two CLIs end to end (subprocesses): export a saved .keras model, then segment through the server.

Run as users run them (no TF_CPP_MIN_LOG_LEVEL set): neither prints TensorFlow's C++ start-up noise."""
import json
import os
import subprocess
import sys

import numpy as np

from maskrnn_tf.export.test_server import StandInModelServer
from maskrnn_tf.io import read_mask


NOISE = ("absl::InitializeLog", "Could not find cuda drivers", "failed call to cuInit", "oneDNN custom operations")


def _run(args):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MASKRNN_TF_VERBOSE")}
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300, env=env)
    for text in NOISE:
        assert text not in result.stderr and text not in result.stdout, result.stderr
    return result


def test_export_then_client_cli(tmp_path, tiny_model, synthetic_video):
    model_path = str(tmp_path / "model.keras")
    tiny_model.save(model_path)
    base = str(tmp_path / "exports")
    args = ["maskrnn_tf.export.export_main", f"--model={model_path}", f"--export_base={base}", "--version=7",
            "--warmup_shapes=24x32x1", "--precision=auto"]
    result = _run(args)
    assert result.returncode == 0, result.stderr
    # auto resolves as training and segment resolve it (float32 on an AVX2-only CPU, bfloat16 with AMX, ...).
    from maskrnn_tf.training.precision import resolve_precision

    expected = resolve_precision("auto")
    with open(os.path.join(base, "7", "assets.extra", "maskrnn_export.json"), encoding="utf-8") as f:
        assert json.load(f)["precision"] == expected
    assert f"precision auto -> {expected} (" in result.stdout
    assert "tensorflow_model_server" in result.stdout and f"--model_base_path={base}" in result.stdout
    assert os.listdir(base) == ["7"]

    frames_dir, mask_path, frames = synthetic_video
    out_dir = str(tmp_path / "masks")
    with StandInModelServer(base, "maskrnn") as server:
        result = _run(["maskrnn_tf.export.client_main", f"--server={server.address}", f"--video={frames_dir}",
                       f"--first_mask={mask_path}", f"--output_dir={out_dir}", "--noprogress"])
    assert result.returncode == 0, result.stderr
    written = sorted(os.listdir(out_dir))
    assert written == [f"{t:05d}.png" for t in range(len(frames))] + ["segment_run.json"]
    np.testing.assert_array_equal(read_mask(os.path.join(out_dir, written[0])), read_mask(mask_path))
