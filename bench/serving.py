"""Serving overhead: per-frame latency of one MaskRNN step through gRPC on loopback vs. in process, at 480p.

Both rows run the same exported SavedModel signature (`serving_default`) loaded the way the model server
loads it (`SessionModel`: a TF1 session over the `serve` graph, tensors fed by the SignatureDef's names), so
the difference is the transport: request encoding, gRPC over 127.0.0.1, decoding, response. The server is
the stand-in model server (`maskrnn_tf.export.test_server`, a Python gRPC server over that session) in a
separate process, not `tensorflow_model_server`, which is not installed here. The network is narrow (--width, default 0.25) so the
benchmark finishes on a 2-core CPU; a full-width model makes the step slower and the relative overhead
smaller, so the ratio measured here is pessimistic.

    python -m bench serving [--width 0.25] [--height 480] [--frame_width 854] [--objects 2] [--frames 8]

--frames is even: each row times two halves of --frames / 2 steps, the rows' halves alternated.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import numpy as np

from bench._arg_types import even_count, frame_side, positive_float, positive_int
from maskrnn_tf.export.client import ClientConfig, ServingClient
from maskrnn_tf.export.saved_model_export import ExportConfig, export_saved_model
from maskrnn_tf.export.session_model import SessionModel
from maskrnn_tf.model import MaskRNN, MaskRNNConfig

_SERVER = """
import sys
from maskrnn_tf.export.test_server import StandInModelServer
server = StandInModelServer(sys.argv[1], "maskrnn", port=int(sys.argv[2])).start()
print("READY", flush=True)
sys.stdin.read()
server.stop()
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    parser.add_argument("--width", type=positive_float, default=0.25, help="VGG channel multiplier (1.0 = paper)")
    parser.add_argument("--height", type=frame_side, default=480)
    parser.add_argument("--frame_width", type=frame_side, default=854)
    parser.add_argument("--objects", type=positive_int, default=2)
    # Even: an odd count would time one step fewer than asked (two halves of frames // 2).
    parser.add_argument("--frames", type=even_count, default=8,
                        help="timed steps per row, even (>= 2): two halves of N/2, alternated with the other row's, "
                        "each after 2 warmup steps")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inputs(h: int, w: int, n: int) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    probs = np.zeros((n, h, w), np.float32)
    for k in range(n):
        probs[k, h // 4 : h // 2, w * k // (n + 1) : w * (k + 1) // (n + 1)] = 1
    return {
        "frame": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "flow_to_prev": rng.normal(0, 2, (h, w, 2)).astype(np.float32),
        "flow_to_next": rng.normal(0, 2, (h, w, 2)).astype(np.float32),
        "prev_probs": probs,
        "prev_boxes": np.array([[h // 4, w * k // (n + 1), h // 2, w * (k + 1) // (n + 1)] for k in range(n)], np.float32),
    }


def _time(fn, frames: int) -> List[float]:
    for _ in range(2):
        fn()
    times = []
    for _ in range(frames):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def run(args: argparse.Namespace) -> List[Dict]:
    """Rows: in-process signature call; gRPC Predict through the stand-in server; the overhead ratio."""
    inputs = _inputs(args.height, args.frame_width, args.objects)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as base:
        model = MaskRNN(MaskRNNConfig(width=args.width))
        export_saved_model(model, base, 1, ExportConfig(warmup=None))
        session = SessionModel(os.path.join(base, "1"))

        def local():
            return session.run("serving_default", inputs)

        port = _free_port()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        server = subprocess.Popen([sys.executable, "-c", _SERVER, base, str(port)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, env=env, text=True)
        try:
            if server.stdout.readline().strip() != "READY":
                raise RuntimeError("the stand-in server did not start")
            with ServingClient(ClientConfig(address=f"127.0.0.1:{port}")) as client:
                client.check_ready()
                served = client.step(**inputs)
                reference = local()
                if not np.allclose(served["probs"], reference["probs"], atol=1e-5):
                    raise RuntimeError("gRPC and in-process outputs differ")
                # Interleave the two so machine load affects both alike.
                local_times, grpc_times = [], []
                for _ in range(2):
                    local_times += _time(local, args.frames // 2)
                    grpc_times += _time(lambda: client.step(**inputs), args.frames // 2)
        finally:
            server.stdin.close()
            server.wait(timeout=30)
            session.close()
    request_mb = sum(v.nbytes for v in inputs.values()) / 2**20
    local_ms = statistics.median(local_times) * 1e3
    grpc_ms = statistics.median(grpc_times) * 1e3
    common = {"size": f"{args.frame_width}x{args.height}", "objects": args.objects, "width": args.width,
              "request_MB": round(request_mb, 2)}
    return [
        {"path": "in-process session", **common, "ms_per_frame": local_ms, "overhead": 0.0},
        {"path": "gRPC loopback (stand-in server, session-loaded)", **common, "ms_per_frame": grpc_ms,
         "overhead": grpc_ms / local_ms - 1.0},
    ]
