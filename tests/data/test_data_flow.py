"""Flow backends, the per-sequence cache, the precompute CLI and SequenceSource pipelines on real frames."""
import dataclasses
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.data.augment import AugmentConfig
from maskrnn_tf.data.flow_backends import DISFlow, FarnebackFlow, make_backend
from maskrnn_tf.data.flow_cache import FlowCache
from maskrnn_tf.data.pipelines import make_clip_dataset
from maskrnn_tf.data.sequences import read_segtrack_sequence_list
from maskrnn_tf.data.sources import SequenceSource
from maskrnn_tf.ops import write_flo

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _shifted_pair(dx=3, dy=-2):
    base = np.random.default_rng(0).uniform(0, 255, (12, 16, 3)).astype(np.float32)
    big = cv2.resize(base, (128, 96), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)
    a = big[16:80, 16:112]
    b = big[16 - dy:80 - dy, 16 - dx:112 - dx]  # content of a moves by (dx, dy) in b
    return a, b


@pytest.mark.parametrize("backend", [DISFlow("medium"), FarnebackFlow()])
def test_backends_recover_a_translation(backend):
    a, b = _shifted_pair(3, -2)
    flow = backend.flow(a, b)
    assert flow.shape == (64, 96, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(np.median(flow[16:-16, 16:-16].reshape(-1, 2), axis=0), [3.0, -2.0], atol=0.3)


def test_dis_is_safe_from_many_threads_and_pickles():
    # tf.data's parallel map calls the backend from several threads: one shared cv2 DIS object segfaulted.
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    pairs = [_shifted_pair(dx, dy) for dx, dy in [(3, -2), (1, 2), (-2, 1), (2, 0)] * 4]
    backend = DISFlow("fast")
    expected = [DISFlow("fast").flow(a, b) for a, b in pairs]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda p: backend.flow(*p), pairs))
    for want, have in zip(expected, got):
        np.testing.assert_array_equal(want, have)
    clone = pickle.loads(pickle.dumps(backend))
    np.testing.assert_array_equal(clone.flow(*pairs[0]), expected[0])


def test_flo_folder_and_errors(tmp_path):
    flow = np.random.default_rng(1).normal(size=(5, 7, 2)).astype(np.float32)
    os.makedirs(tmp_path / "seq")
    write_flo(str(tmp_path / "seq" / "00000_00001.flo"), flow)
    backend = make_backend("flo", str(tmp_path))
    np.testing.assert_array_equal(backend.flow(None, None, sequence="seq", stem_a="00000", stem_b="00001"), flow)
    with pytest.raises(FileNotFoundError, match="00001_00000.flo: missing"):
        backend.flow(None, None, sequence="seq", stem_a="00001", stem_b="00000")
    with pytest.raises(ValueError, match="unknown flow backend"):
        make_backend("raft")


class _Counting(FarnebackFlow):
    def __init__(self):
        self.calls = 0

    def flow(self, frame_a, frame_b, **kwargs):
        self.calls += 1
        return super().flow(frame_a, frame_b)


def _short_bmx(shared_data, frames=4):
    (bmx,) = read_segtrack_sequence_list(os.path.join(shared_data, "SegTrackv2-sample"))
    return dataclasses.replace(bmx, frame_paths=bmx.frame_paths[:frames], mask_paths=bmx.mask_paths[:frames])


def test_cache_stores_float16_and_resumes(shared_data, tmp_path):
    sequence = _short_bmx(shared_data)
    backend = _Counting()
    cache = FlowCache(backend, str(tmp_path))
    assert cache.precompute(sequence) == 3 and backend.calls == 6
    path = cache.path(sequence, 1, 2)
    assert path.endswith(os.path.join("farneback", "segtrack_v2", "bmx", "bmx_06669_bmx_06670.npy"))
    stored = np.load(path)
    assert stored.dtype == np.float16 and stored.shape == (360, 640, 2)
    # A rerun computes nothing; a deleted file is the only thing recomputed.
    assert cache.precompute(sequence) == 0 and backend.calls == 6
    os.remove(path)
    assert cache.precompute(sequence) == 1 and backend.calls == 7
    to_prev, to_next = cache.flows_for(sequence, [0, 3])
    assert not to_prev[0].any() and not to_next[1].any()
    np.testing.assert_allclose(to_next[0], np.load(cache.path(sequence, 0, 1)).astype(np.float32))
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".")]


def test_flow_cli_precomputes_and_resumes(shared_data, tmp_path):
    command = [sys.executable, "-m", "maskrnn_tf.flow", "--dataset=davis", "--year=2017",
               f"--manual_dir={os.path.join(shared_data, 'DAVIS-2017-sample')}", f"--cache_dir={tmp_path}",
               "--backend=dis-ultrafast", "--sequences=bear", "--noprogress"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # Python's import log: the flow CLI (OpenCV and NumPy) starts without TensorFlow's seconds of start-up.
    first = subprocess.run(command, capture_output=True, text=True, env=dict(env, PYTHONPROFILEIMPORTTIME="1"),
                           cwd=REPO, timeout=120)
    assert first.returncode == 0, first.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in first.stderr.splitlines() if line.startswith("import time:")}
    assert "cv2" in imported and "maskrnn_tf.data.flow_cache" in imported
    assert not {name for name in imported if name.split(".")[0] in ("tensorflow", "keras")}
    assert "1 frame pairs computed, 0 already cached" in first.stdout
    files = sorted(os.listdir(tmp_path / "dis-ultrafast" / "davis-480p" / "bear"))
    assert files == ["00000_00001.npy", "00001_00000.npy", "frames.json"]  # + the frames they came from
    again = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert "0 frame pairs computed, 1 already cached" in again.stdout
    # `--cache_dir=~/...` as the README writes it: ~ is the user's home, not a folder named "~" in the cwd
    home = dict(env, HOME=str(tmp_path / "home"))
    tilde = command[:6] + ["--cache_dir=~/flows"] + command[7:]
    assert subprocess.run(tilde, capture_output=True, text=True, env=home, cwd=str(tmp_path), timeout=120).returncode == 0
    assert os.path.isdir(tmp_path / "home" / "flows" / "dis-ultrafast" / "davis-480p" / "bear")
    assert not os.path.exists(tmp_path / "~")
    bad = subprocess.run(command[:4] + [f"--manual_dir={tmp_path}/nowhere", f"--cache_dir={tmp_path}"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert bad.returncode == 1 and "DAVIS-2017-trainval-480p.zip" in bad.stderr


def test_sequence_source_clip_pipeline(shared_data, tmp_path):
    from maskrnn_tf.io import read_frame, read_mask

    sequence = _short_bmx(shared_data, frames=3)
    cache = FlowCache(FarnebackFlow(), str(tmp_path))
    source = SequenceSource([sequence], cache)
    clip = next(iter(make_clip_dataset(source, clip_length=3, augment=AugmentConfig(crop_size=(90, 160)))))
    assert clip["frames"].shape == (3, 90, 160, 3) and clip["flows_to_prev"].shape == (3, 90, 160, 2)
    assert float(tf.reduce_max(clip["masks"])) == 1.0 and not clip["flows_to_prev"][0].numpy().any()
    # Identity geometry (the frame size, no randomness): the clip holds the real frames, the SegTrack masks
    # (grey > 127) and the cached flows, each in its place; no flow before the first or after the last frame.
    identity = AugmentConfig(crop_size=(360, 640), random=False)
    clip = next(iter(make_clip_dataset(source, clip_length=3, augment=identity, shuffle=False, repeat=False)))
    for t in range(3):
        np.testing.assert_array_equal(clip["frames"][t].numpy(), read_frame(sequence.frame_paths[t]))
        # mask_paths[t] holds one path per object layer; bmx has one (the single-object layout).
        np.testing.assert_array_equal(clip["masks"][t].numpy(), read_mask(sequence.mask_paths[t][0]) == 1)
        if t > 0:
            np.testing.assert_allclose(clip["flows_to_prev"][t].numpy(), cache.flow(sequence, t, t - 1), atol=1e-4)
        if t < 2:
            np.testing.assert_allclose(clip["flows_to_next"][t].numpy(), cache.flow(sequence, t, t + 1), atol=1e-4)
    assert not clip["flows_to_prev"][0].numpy().any() and not clip["flows_to_next"][2].numpy().any()
    assert not clip["void"].numpy().any()  # every output pixel is inside the frame, SegTrack has no void
    assert 0.01 < float(tf.reduce_mean(clip["masks"])) < 0.5


def test_a_flow_computed_is_the_flow_read_back(shared_data, tmp_path):
    """The cache stores float16 but returned the float32 it had just computed: a run that filled the cache trained on
    other flows than its rerun, its resume or its own later epochs (0.03 px on DIS), and a seed did not fix the data."""
    sequence = _short_bmx(shared_data)
    cache = FlowCache(_Counting(), str(tmp_path))
    computed = cache.flow(sequence, 1, 0)
    read_back = cache.flow(sequence, 1, 0)
    assert computed.dtype == read_back.dtype == np.float32
    np.testing.assert_array_equal(computed, read_back)
    np.testing.assert_array_equal(computed, np.load(cache.path(sequence, 1, 0)).astype(np.float32))
