"""A flow-cache folder's `frames.json`: the frames its flows are of, seen whole and kept whole when processes
check the folder at once, and read again only where a file's stat changed."""
import io
import json
import os
import shutil
import threading
import time
from typing import List

import numpy as np
from PIL import Image

import maskrnn_tf.data.flow_cache as flow_cache
from maskrnn_tf.data.flow_backends import FlowBackend
from maskrnn_tf.data.flow_cache import FlowCache
from maskrnn_tf.data.sequences import Sequence


class _MeanStep(FlowBackend):
    """A uniform flow of mean(frame b) - mean(frame a) in u and v: tells which frames a flow is of."""

    tag = "mean-step"

    def __init__(self) -> None:
        self.calls = 0

    def flow(self, frame_a, frame_b, *, sequence="", stem_a="", stem_b=""):
        self.calls += 1
        step = float(frame_b.mean()) - float(frame_a.mean())
        return np.full(frame_a.shape[:2] + (2,), step, np.float32)


def _sequence(paths) -> Sequence:
    return Sequence(name="seq", dataset="test", frame_paths=tuple(paths), mask_paths=((),) * len(paths),
                    num_objects=1)


def _recorded_stems(folder: str) -> set:
    with open(os.path.join(folder, "frames.json"), encoding="utf-8") as f:
        return set(json.load(f)[flow_cache.WHOLE_FILES])


def test_a_bmp_frame_rewritten_in_rows_the_fingerprint_did_not_read_gets_its_flows_recomputed(tmp_path):
    """BMP frames were fingerprinted by 32 chunks of 4 KB: rows 3-10 of a 640x360 BMP lie between two chunks, so
    a frame rewritten there kept the flows of the old one, silently."""
    folder = tmp_path / "frames"
    folder.mkdir()
    paths = [str(folder / f"{t:05d}.bmp") for t in range(2)]
    for path in paths:
        Image.fromarray(np.zeros((360, 640, 3), np.uint8)).save(path)
    sequence = _sequence(paths)
    cache_dir = str(tmp_path / "cache")
    np.testing.assert_array_equal(FlowCache(_MeanStep(), cache_dir).flow(sequence, 0, 1)[0, 0], [0, 0])
    pixels = np.zeros((360, 640, 3), np.uint8)
    pixels[3:11] = 255
    Image.fromarray(pixels).save(paths[1])
    backend = _MeanStep()
    cache = FlowCache(backend, cache_dir)  # a new process
    np.testing.assert_allclose(cache.flow(sequence, 0, 1)[0, 0], [8 * 255 / 360] * 2, rtol=1e-3)
    assert cache.stale == 1 and backend.calls == 1


def test_two_processes_recording_clips_of_one_folder_at_once_keep_both_clips_frames(tmp_path, monkeypatch):
    """frames.json was read, merged and rewritten with only a thread lock: two processes checking one folder at
    once (two clips of a sequence) both read it before either wrote, and the last write dropped the other clip's
    frames; a frame of that clip rewritten later was not noticed and its stale flows were served."""
    folder = tmp_path / "frames"
    folder.mkdir()
    paths = [str(folder / f"{t:05d}.png") for t in range(4)]
    for t, path in enumerate(paths):
        Image.fromarray(np.full((6, 8, 3), 10 * t, np.uint8)).save(path)
    cache_dir = str(tmp_path / "cache")
    FlowCache(_MeanStep(), cache_dir).precompute(_sequence(paths))
    cache_folder = FlowCache(_MeanStep(), cache_dir).folder(_sequence(paths))
    os.remove(os.path.join(cache_folder, "frames.json"))  # flows cached before any record: both checks write one

    # Both checks read the record before either writes it, when the cache lets them (a lock holds the second
    # read back until the first write: the barrier then times out, and the first goes on alone).
    read = flow_cache._read_fingerprint
    both_read = threading.Barrier(2, timeout=2)

    def read_together(path):
        got = read(path)
        try:
            both_read.wait()
        except threading.BrokenBarrierError:
            pass
        return got

    monkeypatch.setattr(flow_cache, "_read_fingerprint", read_together)
    clips = [_sequence(paths[:2]), _sequence(paths[2:])]
    caches = [FlowCache(_MeanStep(), cache_dir) for _ in clips]
    errors = []

    def check(cache, clip):
        try:
            cache.path(clip, 0, 1)
        except Exception as err:  # re-raised below: a thread's exception would otherwise only be printed
            errors.append(err)

    threads = [threading.Thread(target=check, args=pair) for pair in zip(caches, clips)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    monkeypatch.setattr(flow_cache, "_read_fingerprint", read)
    assert _recorded_stems(cache_folder) == {"00000", "00001", "00002", "00003"}
    # Either clip's frame rewritten is noticed by the next process.
    Image.fromarray(np.full((6, 8, 3), 200, np.uint8)).save(paths[3])
    backend = _MeanStep()
    cache = FlowCache(backend, cache_dir)
    np.testing.assert_allclose(cache.flow(clips[1], 0, 1)[0, 0], [180, 180])
    assert cache.stale == 1 and backend.calls == 1


class _CountingFile(io.FileIO):
    """A file opened for reading that adds every byte read from it to `counted[0]`."""

    def __init__(self, path, counted: List[int]) -> None:
        super().__init__(path, "r")
        self.counted = counted

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.counted[0] += len(data)
        return data

    def readall(self) -> bytes:
        data = super().readall()
        self.counted[0] += len(data)
        return data

    def readinto(self, buffer) -> int:
        got = super().readinto(buffer)
        self.counted[0] += got or 0
        return got


def _count_reads(monkeypatch) -> List[int]:
    """Counts the bytes flow_cache reads from files it opens in binary mode (frames, .flo files)."""
    counted = [0]

    def counting_open(file, mode="r", *args, **kwargs):
        if mode == "rb":
            return _CountingFile(file, counted)
        return open(file, mode, *args, **kwargs)

    monkeypatch.setattr(flow_cache, "open", counting_open, raising=False)
    return counted


def _flo_sequence(tmp_path):
    """(sequence, .flo root, {pair: .flo path}, bytes of all its files): 3 PNG frames of noise, 4 .flo files."""
    from maskrnn_tf.ops.flo_io import write_flo

    rng = np.random.default_rng(0)
    folder = tmp_path / "frames"
    folder.mkdir()
    paths = [str(folder / f"{t:05d}.png") for t in range(3)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
    flo_root = tmp_path / "flo"
    (flo_root / "seq").mkdir(parents=True)
    flos = {}
    for a, b in ((0, 1), (1, 0), (1, 2), (2, 1)):
        flos[a, b] = str(flo_root / "seq" / f"{a:05d}_{b:05d}.flo")
        write_flo(flos[a, b], rng.standard_normal((48, 64, 2)).astype(np.float32))
    total = sum(os.path.getsize(p) for p in paths + list(flos.values()))
    return _sequence(paths), str(flo_root), flos, total


def test_a_second_check_of_unchanged_frames_and_flo_files_reads_far_less_than_they_hold(tmp_path, monkeypatch):
    """Every process's first use of a folder hashed each frame and .flo source whole, under the lock tf.data's
    readers wait on: ~1 s per DAVIS sequence of .flo files (0.05 s before), ~12 GB read per process start for
    DAVIS-2016. A file whose stat is the recorded one is taken as its recorded hash; one rewritten with the same
    size and other content is still hashed and found, with a new mtime or with its old mtime put back."""
    from maskrnn_tf.data.flow_backends import FloFolderFlow
    from maskrnn_tf.ops.flo_io import write_flo

    # A file is taken by its stat only when older than the racy margin when hashed (a rewrite within the same tick
    # of the file system's clock keeps its stat): these were written just now.
    monkeypatch.setattr(flow_cache, "_RACY_NS", 0, raising=False)
    sequence, flo_root, flos, total = _flo_sequence(tmp_path)
    cache_dir = str(tmp_path / "cache")
    counted = _count_reads(monkeypatch)
    FlowCache(FloFolderFlow(flo_root), cache_dir).flow(sequence, 0, 1)
    assert counted[0] >= total  # the first check reads every file whole
    counted[0] = 0
    cache = FlowCache(FloFolderFlow(flo_root), cache_dir)  # a new process
    cache.flow(sequence, 0, 1)
    assert counted[0] < total // 20 and cache.stale == 0, (counted[0], total)
    # Exported again: same size, other content, a new file (write_flo renames) with a new mtime.
    write_flo(flos[0, 1], np.full((48, 64, 2), -2.25, np.float32))
    cache = FlowCache(FloFolderFlow(flo_root), cache_dir)
    np.testing.assert_array_equal(cache.flow(sequence, 0, 1), -2.25)
    assert cache.stale == 1
    # Rewritten in place with its mtime put back (cp -p, rsync -a, tar and unzip restore mtimes): the ctime moved.
    before = os.stat(flos[0, 1])
    time.sleep(0.05)  # a later tick of the file system's clock than the recorded ctime
    with open(flos[0, 1], "r+b") as f:
        f.seek(12)  # past the .flo header
        f.write(np.full((48, 64, 2), 3.0, "<f4").tobytes())
    os.utime(flos[0, 1], ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(flos[0, 1])
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    cache = FlowCache(FloFolderFlow(flo_root), cache_dir)
    np.testing.assert_array_equal(cache.flow(sequence, 0, 1), 3.0)
    assert cache.stale == 1


def test_a_copy_of_the_frames_made_later_keeps_the_flows_and_is_hashed_once(tmp_path, monkeypatch):
    """DAVIS-2016 and -2017 trees hold the same frames, extracted at other times, under one cache folder: the copy's
    files (other mtimes, inodes) are hashed and compared by content, keep the flows, and are not read again at the
    next check; nor are the first tree's (both are recorded)."""
    monkeypatch.setattr(flow_cache, "_RACY_NS", 0, raising=False)
    sequence, _, _, _ = _flo_sequence(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "frames", copy)  # new mtimes
    copied = _sequence([str(copy / os.path.basename(p)) for p in sequence.frame_paths])
    frames_bytes = sum(os.path.getsize(p) for p in sequence.frame_paths)
    cache_dir = str(tmp_path / "cache")
    FlowCache(_MeanStep(), cache_dir).precompute(sequence)
    counted = _count_reads(monkeypatch)
    backend = _MeanStep()
    cache = FlowCache(backend, cache_dir)
    cache.flow(copied, 0, 1)
    assert counted[0] >= frames_bytes and cache.stale == 0 and backend.calls == 0  # compared by content
    for tree in (copied, sequence):
        counted[0] = 0
        cache = FlowCache(backend, cache_dir)
        cache.flow(tree, 0, 1)
        assert counted[0] < frames_bytes // 20 and cache.stale == 0 and backend.calls == 0


def test_files_written_just_before_a_check_are_read_whole_again_at_the_next(tmp_path, monkeypatch):
    """A file rewritten within one tick of the file system's clock after it was hashed (a coarse clock: 1-2 s on
    some file systems) keeps its size, mtime, ctime and inode: a file that recent when hashed is not taken by its
    stat later."""
    from maskrnn_tf.data.flow_backends import FloFolderFlow

    sequence, flo_root, _, total = _flo_sequence(tmp_path)
    cache_dir = str(tmp_path / "cache")
    FlowCache(FloFolderFlow(flo_root), cache_dir).flow(sequence, 0, 1)
    counted = _count_reads(monkeypatch)
    FlowCache(FloFolderFlow(flo_root), cache_dir).flow(sequence, 0, 1)
    assert counted[0] >= total
