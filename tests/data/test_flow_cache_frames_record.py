"""A flow-cache folder's `frames.json`: the frames its flows are of, seen whole and kept whole when processes
check the folder at once."""
import json
import os
import threading

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
