"""The two CLIs end to end (subprocesses): export a saved .keras model, then segment through the server."""
import os
import subprocess
import sys

import numpy as np

from maskrnn_tf.export.test_server import StandInModelServer
from maskrnn_tf.io import read_mask


def _run(args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300, env=env)


def test_export_then_client_cli(tmp_path, tiny_model, synthetic_video):
    model_path = str(tmp_path / "model.keras")
    tiny_model.save(model_path)
    base = str(tmp_path / "exports")
    args = ["maskrnn_tf.export.export_main", f"--model={model_path}", f"--export_base={base}", "--version=7",
            "--warmup_shapes=24x32x1"]
    result = _run(args)
    assert result.returncode == 0, result.stderr
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
