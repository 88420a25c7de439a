"""Flow cache files damaged in ways the load must survive: named in a warning, recomputed, rewritten."""
import io
import logging
import os

import numpy as np
from PIL import Image

from maskrnn_tf.data.flow_backends import FlowBackend
from maskrnn_tf.data.flow_cache import FlowCache
from maskrnn_tf.data.sequences import Sequence
from maskrnn_tf.io import tmp_dirs

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


def test_flo_files_exported_again_into_the_same_folder_are_read_again_not_served_from_the_cache(tmp_path, caplog):
    # The .flo backend's cache key is its folder: flows re-exported there (another RAFT checkpoint) used to be
    # served from the cache of the old ones, silently, for good.
    from maskrnn_tf.data.flow_backends import FloFolderFlow
    from maskrnn_tf.ops.flo_io import write_flo

    sequence = _sequence(str(tmp_path / "frames"))
    flo_dir = tmp_path / "flo"
    (flo_dir / "seq").mkdir(parents=True)

    def export(value):
        for a, b in ((0, 1), (1, 0)):
            write_flo(str(flo_dir / "seq" / f"{a:05d}_{b:05d}.flo"), np.full((H, W, 2), value * (1 if a < b else -1),
                                                                              np.float32))

    export(1.5)
    cache_dir = str(tmp_path / "cache")
    np.testing.assert_array_equal(FlowCache(FloFolderFlow(str(flo_dir)), cache_dir).flow(sequence, 0, 1), 1.5)
    export(-2.25)
    with caplog.at_level(logging.WARNING, logger="maskrnn_tf.data.flow_cache"):
        cache = FlowCache(FloFolderFlow(str(flo_dir)), cache_dir)  # a new process: the check runs once per process
        np.testing.assert_array_equal(cache.flow(sequence, 0, 1), -2.25)
        np.testing.assert_array_equal(cache.flow(sequence, 1, 0), 2.25)
    assert cache.stale == 1 and "flows of other" in caplog.text
    # Unchanged .flo files keep their cache (no recompute, no warning).
    caplog.clear()
    again = FlowCache(FloFolderFlow(str(flo_dir)), cache_dir)
    np.testing.assert_array_equal(again.flow(sequence, 0, 1), -2.25)
    assert again.stale == 0 and not caplog.text


def test_stale_flows_are_deleted_but_not_another_process_s_file_being_written(tmp_path):
    # Deleting "every .npy" of a stale folder took the hidden temporary file another process was writing (its
    # rename then failed: a crash in the middle of its training).
    sequence = _sequence(str(tmp_path / "frames"))
    cache = FlowCache(_Constant(), str(tmp_path / "cache"))
    cache.flow(sequence, 0, 1)
    folder = os.path.dirname(cache.path(sequence, 0, 1))
    in_flight = os.path.join(folder, f".00001_00000.npy.tmp-{tmp_dirs.owner_tag()}-x1y2.npy")  # atomic_write's
    with open(in_flight, "wb") as f:
        f.write(b"half of another process's flow")
    Image.fromarray(np.full((H, W, 3), 99, np.uint8)).save(sequence.frame_paths[1])  # frames changed: stale
    again = FlowCache(_Constant(), str(tmp_path / "cache"))
    again.flow(sequence, 0, 1)
    assert again.stale == 1 and again.backend.calls == 1
    assert os.path.isfile(in_flight)


def test_a_read_only_cache_without_a_fingerprint_is_read_not_refused(tmp_path, monkeypatch, caplog):
    # A shared, read-only cache filled before frames.json existed raised PermissionError when the check tried to
    # record the frames: its flows were there, complete, and could not be used. (The write is refused by a patch:
    # the tests run as root, whom mode bits do not stop.)
    import maskrnn_tf.data.flow_cache as flow_cache

    sequence = _sequence(str(tmp_path / "frames"))
    cache = FlowCache(_Constant(), str(tmp_path / "cache"))
    want = cache.flow(sequence, 0, 1)
    folder = os.path.dirname(cache.path(sequence, 0, 1))
    os.remove(os.path.join(folder, "frames.json"))

    def read_only(path, write, suffix=""):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(flow_cache, "atomic_write", read_only)
    backend = _Constant()
    with caplog.at_level(logging.WARNING, logger="maskrnn_tf.data.flow_cache"):
        np.testing.assert_array_equal(FlowCache(backend, str(tmp_path / "cache")).flow(sequence, 0, 1), want)
    assert backend.calls == 0 and "frames.json" in caplog.text and "Permission denied" in caplog.text


def test_frames_that_differ_in_any_byte_have_other_fingerprints(tmp_path):
    """The fingerprint hashed a frame's size and last 4 KB, then (BMP, .flo) 32 chunks of 4 KB spread over the file:
    a BMP is stored bottom-up, and two 640x360 frames differing in rows 3-10 (between the last two chunks) had one
    fingerprint, so frames extracted again with other pixels there kept their stale flows (SegTrack v2 ships BMP
    frames)."""
    from PIL import Image

    from maskrnn_tf.data.flow_cache import _frame_fingerprint

    first = np.zeros((360, 640, 3), np.uint8)
    second = first.copy()
    second[3:11] = 7
    for name, pixels in (("a", first), ("b", second)):
        os.makedirs(tmp_path / name)
        Image.fromarray(pixels).save(tmp_path / name / "00000.bmp")
        Image.fromarray(pixels).save(tmp_path / name / "00000.png")
    for ext in ("bmp", "png"):
        prints = [_frame_fingerprint([str(tmp_path / name / f"00000.{ext}")])["00000"] for name in ("a", "b")]
        assert prints[0] != prints[1], ext
    # Any one byte, wherever it is (a .flo file is raw floats after a 12-byte header).
    data = bytearray(range(256)) * 400
    path = tmp_path / "00000_00001.flo"
    path.write_bytes(bytes(data))
    original = _frame_fingerprint([str(path)])
    for offset in (0, 5000, len(data) // 2, len(data) - 4097, len(data) - 1):
        changed = bytearray(data)
        changed[offset] ^= 1
        path.write_bytes(bytes(changed))
        assert _frame_fingerprint([str(path)]) != original, offset
    # A copy elsewhere, made later, keeps the fingerprint (DAVIS-2016 and -2017 trees share cache folders).
    os.makedirs(tmp_path / "copy")
    with open(tmp_path / "a" / "00000.bmp", "rb") as f, open(tmp_path / "copy" / "00000.bmp", "wb") as g:
        g.write(f.read())
    assert _frame_fingerprint([str(tmp_path / "copy" / "00000.bmp")]) == _frame_fingerprint(
        [str(tmp_path / "a" / "00000.bmp")])


def test_a_cache_of_bmp_frames_recorded_by_older_versions_is_kept_and_upgraded(tmp_path, caplog):
    """Frames are recorded by their whole files since a sample of their bytes proved blind to some pixels; records
    of the two older forms (the last 4 KB; 32 chunks of 4 KB spread over a BMP) must not be taken for flows of
    other frames when those bytes match, and must be when they do not."""
    import json

    from maskrnn_tf.data.flow_cache import (FILE_STATS, WHOLE_FILES, _frame_fingerprint, _sampled_fingerprint,
                                            _tail_fingerprint)

    def recorded() -> dict:
        """The record but its files' stats (recorded, or not, by how long ago the test wrote the frames)."""
        with open(record) as f:
            return {key: value for key, value in json.load(f).items() if key != FILE_STATS}

    class Sized(_Constant):  # frames above 4 KB, where the three fingerprints differ
        def flow(self, frame_a, frame_b, **names):
            self.calls += 1
            return np.zeros((64, 80, 2), np.float32)

    folder = str(tmp_path / "frames")
    os.makedirs(folder)
    paths = []
    for t in range(2):
        paths.append(os.path.join(folder, f"{t:05d}.bmp"))
        Image.fromarray(np.full((64, 80, 3), 50 * t, np.uint8)).save(paths[-1])
    sequence = Sequence(name="seq", dataset="test", frame_paths=tuple(paths), mask_paths=((),) * 2, num_objects=1)
    cache = FlowCache(Sized(), str(tmp_path / "cache"))
    cache.flow(sequence, 0, 1)
    record = os.path.join(os.path.dirname(cache.path(sequence, 0, 1)), "frames.json")
    for older in (_tail_fingerprint, _sampled_fingerprint):
        old = {stem: older(p) for stem, p in zip(("00000", "00001"), paths)}
        assert old != _frame_fingerprint(paths)
        with open(record, "w") as f:
            json.dump(old, f)
        backend = Sized()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="maskrnn_tf.data.flow_cache"):
            cache = FlowCache(backend, str(tmp_path / "cache"))
            cache.flow(sequence, 0, 1)
        assert backend.calls == 0 and cache.stale == 0 and "other frames" not in caplog.text, older.__name__
        assert "recorded by an older version" in caplog.text
        # Recorded whole; the older entries stay for a process of an older version sharing the cache.
        assert recorded() == {**old, WHOLE_FILES: _frame_fingerprint(paths)}
    # An older entry that does not match is a frame of other pixels.
    with open(record, "w") as f:
        json.dump({"00000": _sampled_fingerprint(paths[0]), "00001": [1, "0" * 40]}, f)
    backend = Sized()
    cache = FlowCache(backend, str(tmp_path / "cache"))
    cache.flow(sequence, 0, 1)
    assert backend.calls == 1 and cache.stale == 1
    assert recorded() == {WHOLE_FILES: _frame_fingerprint(paths)}


def test_a_record_without_file_stats_is_read_and_its_files_stats_added(tmp_path, monkeypatch):
    """frames.json of the version before (whole files, no stats) keeps its flows, gets the stats of the files it
    hashed, and keeps its entries in the form that version compares them in ([size, sha1]: it may still run)."""
    import json

    import maskrnn_tf.data.flow_cache as flow_cache

    monkeypatch.setattr(flow_cache, "_RACY_NS", 0)  # frames written just now may be recorded by their stat
    sequence = _sequence(str(tmp_path / "frames"))
    cache = FlowCache(_Constant(), str(tmp_path / "cache"))
    cache.flow(sequence, 0, 1)
    record = os.path.join(os.path.dirname(cache.path(sequence, 0, 1)), "frames.json")
    whole = flow_cache._frame_fingerprint(sequence.frame_paths)
    with open(record, "w") as f:
        json.dump({flow_cache.WHOLE_FILES: whole}, f)
    backend = _Constant()
    cache = FlowCache(backend, str(tmp_path / "cache"))
    cache.flow(sequence, 0, 1)
    assert backend.calls == 0 and cache.stale == 0
    with open(record) as f:
        got = json.load(f)
    assert got[flow_cache.WHOLE_FILES] == whole
    assert sorted(got[flow_cache.FILE_STATS]) == sorted(os.path.abspath(p) for p in sequence.frame_paths)
    for path in sequence.frame_paths:
        size, sha1 = whole[os.path.basename(path)[:-4]]
        assert got[flow_cache.FILE_STATS][os.path.abspath(path)] == [size, os.stat(path).st_mtime_ns,
                                                                     os.stat(path).st_ctime_ns,
                                                                     os.stat(path).st_ino, sha1]
