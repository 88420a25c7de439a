"""Flow cache files damaged in ways the load must survive: named in a warning, recomputed, rewritten."""
import io
import logging
import os

import numpy as np
from PIL import Image

from maskrnn_tf.data.flow_backends import FlowBackend
from maskrnn_tf.data.flow_cache import FlowCache
from maskrnn_tf.data.sequences import Sequence

H, W = 6, 8


class _Constant(FlowBackend):
    """Flow (1, -1) everywhere, counting its calls."""

    tag = "constant"
    needs_frames = False

    def __init__(self):
        self.calls = 0

    def flow(self, frame_a, frame_b, *, sequence="", stem_a="", stem_b=""):
        self.calls += 1
        return np.broadcast_to(np.float32([1, -1]), (H, W, 2)).copy()


def _sequence(folder) -> Sequence:
    os.makedirs(folder)
    paths = []
    for t in range(2):
        paths.append(os.path.join(folder, f"{t:05d}.png"))
        Image.fromarray(np.full((H, W, 3), 50 * t, np.uint8)).save(paths[-1])
    return Sequence(name="seq", dataset="test", frame_paths=tuple(paths), mask_paths=((),) * 2, num_objects=1)


def test_a_cache_file_whose_header_claims_a_huge_shape_is_recomputed_not_allocated(tmp_path, caplog):
    # A header damaged into a huge shape (bit rot, a bad copy) made np.load allocate it all: a bare MemoryError
    # (or the machine swapping) in the middle of training, naming no file.
    sequence = _sequence(str(tmp_path / "frames"))
    backend = _Constant()
    cache = FlowCache(backend, str(tmp_path / "cache"))
    want = cache.flow(sequence, 0, 1)
    path = cache.path(sequence, 0, 1)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f2", "fortran_order": False,
                                                  "shape": (400_000, 400_000, 2)})
    with open(path, "wb") as f:
        f.write(header.getvalue() + np.zeros((H, W, 2), np.float16).tobytes())
    with caplog.at_level(logging.WARNING, logger="maskrnn_tf.data.flow_cache"):
        got = FlowCache(backend, str(tmp_path / "cache")).flow(sequence, 0, 1)
    np.testing.assert_array_equal(got, want)
    assert backend.calls == 2
    assert any(path in r.getMessage() and "recomputing" in r.getMessage() for r in caplog.records)
    assert np.load(path).shape == (H, W, 2)  # rewritten intact
    assert type(got) is np.ndarray and got.dtype == np.float32
