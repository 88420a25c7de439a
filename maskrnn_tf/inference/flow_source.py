"""The optical flow the propagation loop computes on the fly, from the data component's flow backends."""
from __future__ import annotations

from typing import Optional

import numpy as np

from maskrnn_tf.data.flow_backends import FlowBackend, make_backend
from maskrnn_tf.inference.propagation import FlowFn


def backend_flow_fn(backend: FlowBackend) -> FlowFn:
    """Adapts a `maskrnn_tf.data.flow_backends.FlowBackend` of decoded frames to the loop's FlowFn."""
    if not backend.needs_frames:
        raise ValueError(
            f"flow backend {type(backend).__name__} reads precomputed files by frame name; the propagation "
            "loop computes flow from decoded frames -- use dis, dis-fast, dis-ultrafast or farneback."
        )

    def flow(frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        return backend.flow(frame_a, frame_b)

    return flow


def make_flow_fn(name: str = "dis", flo_dir: Optional[str] = None) -> FlowFn:
    """The FlowFn for a backend name of `maskrnn_tf.data.flow_backends.make_backend` ("dis" = DIS medium)."""
    return backend_flow_fn(make_backend(name, flo_dir))
