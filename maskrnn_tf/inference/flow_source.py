"""The optical flow the propagation loop uses: computed on the fly by the data component's flow backends,
or read from precomputed `.flo` files (FlowNet2, RAFT, exact synthetic flows) by sequence and frame name."""
from __future__ import annotations

from typing import Optional

import numpy as np

from maskrnn_tf.data.flow_backends import FloFolderFlow, FlowBackend, make_backend
from maskrnn_tf.inference.propagation import AnyFlowFn, NamedFlowFn
from maskrnn_tf.ops import resize_flow


class FloFileFlow(NamedFlowFn):
    """Flows read from `<root>/<sequence>/<stem_a>_<stem_b>.flo` (a `FloFolderFlow`), resized to the frames.

    When frames are processed smaller than the files (`--max_size`), the flow is resized bilinearly with its
    vectors scaled (`maskrnn_tf.ops.resize_flow`). A missing file raises FloFolderFlow's FileNotFoundError.
    """

    def __init__(self, backend: FloFolderFlow, sequence: str = "") -> None:
        self.backend = backend
        self.sequence = sequence

    def for_sequence(self, sequence: str) -> "FloFileFlow":
        return FloFileFlow(self.backend, sequence)

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray, stem_a: str, stem_b: str) -> np.ndarray:
        flow = self.backend.flow(None, None, sequence=self.sequence, stem_a=stem_a, stem_b=stem_b)
        size = tuple(np.shape(frame_a)[:2])
        if tuple(flow.shape[:2]) != size:
            flow = np.asarray(resize_flow(flow[None], size)[0], np.float32)
        return flow


def backend_flow_fn(backend: FlowBackend) -> AnyFlowFn:
    """Adapts a `maskrnn_tf.data.flow_backends.FlowBackend` to the loop: a FlowFn of decoded frames, or a
    `FloFileFlow` for a folder of `.flo` files."""
    if isinstance(backend, FloFolderFlow):
        return FloFileFlow(backend)
    if not backend.needs_frames:
        raise ValueError(
            f"flow backend {type(backend).__name__} reads precomputed files by frame name and has no adapter "
            "for the propagation loop -- use dis, dis-fast, dis-ultrafast, farneback or flo."
        )

    def flow(frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        return backend.flow(frame_a, frame_b)

    return flow


def make_flow_fn(name: str = "dis", flo_dir: Optional[str] = None) -> AnyFlowFn:
    """The loop's flow for a backend name of `maskrnn_tf.data.flow_backends.make_backend` ("dis" = DIS
    medium; "flo" reads `<flo_dir>/<sequence>/<stem_a>_<stem_b>.flo`)."""
    return backend_flow_fn(make_backend(name, flo_dir))
