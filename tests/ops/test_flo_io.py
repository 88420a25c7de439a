"""Middlebury .flo read/write round trip and corrupt-file rejection."""
import numpy as np
import pytest

from maskrnn_tf.ops import FloFormatError, read_flo, write_flo


def test_round_trip(tmp_path):
    flow = np.random.default_rng(0).standard_normal((7, 11, 2)).astype(np.float32)
    path = tmp_path / "a.flo"
    write_flo(path, flow)
    np.testing.assert_array_equal(read_flo(path), flow)
    raw = path.read_bytes()
    assert len(raw) == 12 + 7 * 11 * 2 * 4
    assert np.frombuffer(raw[:4], "<f4")[0] == np.float32(202021.25)
    assert list(np.frombuffer(raw[4:12], "<i4")) == [11, 7]  # width, then height
    np.testing.assert_array_equal(np.frombuffer(raw[12:20], "<f4"), flow[0, 0])  # u, v interleaved
    assert [p.name for p in tmp_path.iterdir()] == ["a.flo"]  # no temporary file left


def _write(path, magic, width, height, payload_floats):
    path.write_bytes(
        np.array([magic], "<f4").tobytes()
        + np.array([width, height], "<i4").tobytes()
        + np.zeros(payload_floats, "<f4").tobytes()
    )


@pytest.mark.parametrize(
    "magic,width,height,floats,message",
    [
        (1.0, 4, 3, 24, "bad .flo magic"),
        (202021.25, 0, 3, 0, "absurd"),
        (202021.25, 4, 10**7, 24, "absurd"),
        (202021.25, 4, 3, 20, "truncated"),
        (202021.25, 4, 3, 30, "trailing"),
    ],
)
def test_rejects_corrupt_files(tmp_path, magic, width, height, floats, message):
    path = tmp_path / "bad.flo"
    _write(path, magic, width, height, floats)
    with pytest.raises(FloFormatError, match=message) as err:
        read_flo(path)
    assert str(path) in str(err.value)


def test_rejects_truncated_header(tmp_path):
    path = tmp_path / "short.flo"
    path.write_bytes(b"\x00\x01")
    with pytest.raises(FloFormatError, match="truncated .flo header"):
        read_flo(path)


def test_huge_header_in_a_small_file_is_truncated_not_a_memory_error(tmp_path):
    # A corrupt header claiming 100000x100000 (80 GB) in a 76-byte file: checked against the file's size
    # before anything is read, so no payload-sized buffer is ever asked for.
    import tracemalloc

    path = tmp_path / "huge.flo"
    _write(path, 202021.25, 100_000, 100_000, 16)
    tracemalloc.start()
    try:
        with pytest.raises(FloFormatError, match="truncated") as err:
            read_flo(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(err.value) and "100000x100000" in str(err.value)
    assert peak < 1 << 20
