"""Middlebury `.flo` optical-flow files: float32 magic 202021.25, int32 width, int32 height, then
height x width x 2 float32 (u, v) in row-major order, little-endian."""
from __future__ import annotations

import os
import stat

import numpy as np

from maskrnn_tf.io.atomic_file import atomic_write

FLO_MAGIC = 202021.25
MAX_FLO_SIDE = 100_000  # larger sides are certainly a corrupt header, not a real flow field


class FloFormatError(ValueError):
    """A `.flo` file is corrupt or not a `.flo` file."""


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Reads a `.flo` file into a float32 array [H, W, 2] of (u, v)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12:
            raise FloFormatError(
                f"{path}: truncated .flo header ({len(header)} of 12 bytes); the file is incomplete, "
                "rewrite it with write_flo or recompute the flow."
            )
        magic = np.frombuffer(header[:4], "<f4")[0]
        if magic != np.float32(FLO_MAGIC):
            raise FloFormatError(
                f"{path}: bad .flo magic number {magic!r} (expected {FLO_MAGIC}); "
                "this is not a Middlebury .flo file."
            )
        width, height = (int(v) for v in np.frombuffer(header[4:12], "<i4"))
        if not (0 < width <= MAX_FLO_SIDE and 0 < height <= MAX_FLO_SIDE):
            raise FloFormatError(
                f"{path}: absurd .flo dimensions {width}x{height} (each side must be 1..{MAX_FLO_SIDE}); "
                "the header is corrupt."
            )
        expected = width * height * 2 * 4
        # Checked against the file's size before reading: a corrupt header can claim up to 80 GB, and asking
        # for that much ends in a bare MemoryError instead of naming the file.
        info = os.fstat(f.fileno())
        size = info.st_size - 12 if stat.S_ISREG(info.st_mode) else None  # a pipe has no size to check
        payload = b""
        if size is None or size == expected:
            payload = f.read(expected + 1)
            size = len(payload)  # what was really read (the file may have changed since)
    if size < expected:
        raise FloFormatError(
            f"{path}: truncated .flo payload: {size} bytes, expected {expected} for {width}x{height}x2 float32 "
            "(or a corrupt header); the file is incomplete, rewrite it with write_flo or recompute the flow."
        )
    if size > expected:
        raise FloFormatError(
            f"{path}: .flo payload has {size} bytes, expected {expected} for {width}x{height}x2 float32: "
            "trailing data after the flow (or a corrupt header); rewrite it with write_flo or recompute the flow."
        )
    flow = np.frombuffer(payload, "<f4").reshape(height, width, 2).astype(np.float32)
    finite = np.isfinite(flow)
    if not finite.all():
        # NaN or Inf coordinates make the warp gather out of range on CPU (and read garbage elsewhere).
        rows, cols, _ = np.nonzero(~finite)
        raise FloFormatError(
            f"{path}: {int((~finite).sum())} non-finite flow values (NaN or Inf), the first at row {rows[0]}, "
            f"column {cols[0]}; the flow method failed or the file is corrupt: recompute this flow."
        )
    return flow


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Writes a [H, W, 2] (u, v) flow as a `.flo` file, atomically (temporary file, then rename)."""
    path = os.fspath(path)
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"write_flo({path}): flow must be [H, W, 2], got shape {flow.shape}.")
    height, width = flow.shape[:2]

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(np.array([FLO_MAGIC], "<f4").tobytes())
            f.write(np.array([width, height], "<i4").tobytes())
            f.write(np.ascontiguousarray(flow, dtype="<f4").tobytes())

    atomic_write(path, write, suffix=".flo")
