"""Where flows come from and which ones are trusted: `.flo` folders in the flow cache (one cache entry per
folder) and `.flo` files in the segment loop (refused when their size is not the frames')."""
import os
import re

import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.data.flow_backends import FlowBackend, make_backend
from maskrnn_tf.data.flow_cache import FlowCache, FlowCacheError
from maskrnn_tf.data.sequences import Sequence
from maskrnn_tf.inference import SegmentOptions, flow_propagation_step, make_flow_fn, segment_video
from maskrnn_tf.io import write_palette_png
from maskrnn_tf.ops import write_flo

H, W, T = 40, 56, 3


def _frames(folder, count=T) -> list:
    """`count` 40x56 PNG frames in `folder`; their paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for t in range(count):
        path = os.path.join(folder, f"{t:05d}.png")
        Image.fromarray(np.full((H, W, 3), 60 + 40 * t, np.uint8)).save(path)
        paths.append(path)
    return paths


def _flo_folder(root, sequence, u, size=(H, W), count=T) -> str:
    """`<root>/<sequence>/<a>_<b>.flo` for every consecutive pair: a uniform flow (u, 0) forward, (-u, 0) back."""
    folder = os.path.join(root, sequence)
    os.makedirs(folder, exist_ok=True)
    for t in range(count - 1):
        for a, b, du in ((t, t + 1, u), (t + 1, t, -u)):
            write_flo(os.path.join(folder, f"{a:05d}_{b:05d}.flo"),
                      np.broadcast_to(np.float32([du, 0]), (*size, 2)).astype(np.float32))
    return root


def _sequence(paths, name="seq") -> Sequence:
    return Sequence(name=name, dataset="davis2017", frame_paths=tuple(paths), mask_paths=((),) * len(paths),
                    num_objects=1)


# -- 1. one flow-cache entry per .flo folder -------------------------------------------------------------------

def test_flo_folders_with_the_same_name_get_their_own_cache_entries(tmp_path):
    seq = _sequence(_frames(str(tmp_path / "frames" / "seq")))
    raft = _flo_folder(str(tmp_path / "raft" / "DAVIS"), "seq", 4.0)
    flownet2 = _flo_folder(str(tmp_path / "flownet2" / "DAVIS"), "seq", 1.5)
    cache = str(tmp_path / "cache")
    first = FlowCache(make_backend("flo", raft), cache).flow(seq, 0, 1)
    second = FlowCache(make_backend("flo", flownet2), cache).flow(seq, 0, 1)
    np.testing.assert_array_equal(first, np.broadcast_to(np.float32([4, 0]), (H, W, 2)))
    # The second folder's own flows, not the first folder's cached ones.
    np.testing.assert_array_equal(second, np.broadcast_to(np.float32([1.5, 0]), (H, W, 2)))
    assert len(os.listdir(cache)) == 2


def test_the_flow_cache_names_a_flo_file_not_of_the_frames_size(tmp_path):
    """README: a .flo file not of the frames' size is refused, naming the file; the flow CLI (through the cache)
    named a cache tag."""
    seq = _sequence(_frames(str(tmp_path / "frames" / "seq")))
    flo = _flo_folder(str(tmp_path / "raft"), "seq", 4.0, size=(H // 2, W // 2))
    with pytest.raises(FlowCacheError) as err:
        FlowCache(make_backend("flo", flo), str(tmp_path / "cache")).flow(seq, 0, 1)
    assert os.path.join(flo, "seq", "00000_00001.flo") in str(err.value), str(err.value)


def test_flo_tag_is_readable_stable_per_folder_and_a_valid_folder_name(tmp_path, monkeypatch):
    raft = tmp_path / "raft" / "DAVIS"
    other = tmp_path / "flownet2" / "DAVIS"
    raft.mkdir(parents=True)
    other.mkdir(parents=True)
    tag = make_backend("flo", str(raft)).tag
    assert re.fullmatch(r"flo-DAVIS-[0-9a-f]{8}", tag), tag
    assert make_backend("flo", str(other)).tag != tag
    # The same folder spelt differently (trailing slash, relative, through a symlink) is the same entry.
    monkeypatch.chdir(tmp_path)
    os.symlink(raft, tmp_path / "link")
    for spelling in (str(raft) + os.sep, os.path.join("raft", "DAVIS"), os.path.join("raft", ".", "DAVIS"), "link"):
        assert make_backend("flo", spelling).tag == tag, spelling
    # A folder name with characters a path component should not carry still gives one plain folder name.
    odd = tmp_path / "flows #1 (raft)"
    odd.mkdir()
    odd_tag = make_backend("flo", str(odd)).tag
    assert os.sep not in odd_tag and re.fullmatch(r"[A-Za-z0-9._-]+", odd_tag), odd_tag
    assert make_backend("flo", ".").tag.startswith("flo-" + tmp_path.name[:30])  # the folder, not "."


# -- 2. .flo files in the segment loop must have the frames' size --------------------------------------------

@pytest.fixture()
def clip(tmp_path):
    """(frames folder `clip` of 3 40x56 frames, first mask)."""
    frames = str(tmp_path / "clip")
    _frames(frames)
    ids = np.zeros((H, W), np.uint8)
    ids[10:30, 10:26] = 1
    mask = str(tmp_path / "first.png")
    write_palette_png(mask, ids)
    return frames, mask


@pytest.mark.parametrize("size,why", [((W, H), "width and height swapped"), ((48, 64), "RAFT-padded")])
def test_segment_refuses_flo_files_not_of_the_frames_size(tmp_path, clip, size, why):
    frames, mask = clip
    flo_dir = _flo_folder(str(tmp_path / "flo"), "clip", 4.0, size=size)
    out = str(tmp_path / "out")
    with pytest.raises(ValueError) as err:
        segment_video(flow_propagation_step, frames, mask, make_flow_fn("flo", flo_dir), out,
                      SegmentOptions(progress=False))
    message = str(err.value)
    # Names the file, its size and the frames' size (the flow cache's wording), and what to do.
    assert os.path.join(flo_dir, "clip", "00001_00000.flo") in message
    assert f"shape ({size[0]}, {size[1]}, 2) is not ({H}, {W}, 2) (the frames' height, width, then u, v)" in message
    assert f"{size[1]}x{size[0]}" in message and f"{W}x{H}" in message
    assert "recompute" in message
    # The same files under --max_size are refused too (only files of the full frame size are scaled down).
    with pytest.raises(ValueError, match=re.escape(os.path.join(flo_dir, "clip", "00001_00000.flo"))):
        segment_video(flow_propagation_step, frames, mask, make_flow_fn("flo", flo_dir), str(tmp_path / "small"),
                      SegmentOptions(progress=False, max_size=28))


def test_segment_refuses_flo_files_a_whole_multiple_of_the_frames_size(tmp_path, clip):
    """Files 2x the frames (flows of the full-resolution video beside half-size frames) are not scaled down as if
    --max_size had made the frames smaller: segment knows the frames' own size and refuses them."""
    frames, mask = clip
    flo_dir = _flo_folder(str(tmp_path / "flo"), "clip", 4.0, size=(2 * H, 2 * W))
    with pytest.raises(ValueError) as err:
        segment_video(flow_propagation_step, frames, mask, make_flow_fn("flo", flo_dir), str(tmp_path / "out"),
                      SegmentOptions(progress=False))
    assert os.path.join(flo_dir, "clip", "00001_00000.flo") in str(err.value)
    assert f"{2 * W}x{2 * H}" in str(err.value) and f"{W}x{H}" in str(err.value)
    assert not os.path.exists(tmp_path / "out" / "clip")
    # Bound to the video's full size, the function refuses them at any processing size.
    flow_fn = make_flow_fn("flo", flo_dir).for_sequence("clip", full_size=(H, W))
    small = np.zeros((H // 2, W // 2, 3), np.uint8)
    with pytest.raises(ValueError, match="frames are"):
        flow_fn(small, small, "00000", "00001")


def test_flo_files_of_the_full_size_are_scaled_under_max_size(clip, tmp_path):
    frames, _ = clip
    flow_fn = make_flow_fn("flo", _flo_folder(str(tmp_path / "flo"), "clip", 4.0)).for_sequence("clip")
    small = np.zeros((20, 28, 3), np.uint8)
    flow = flow_fn(small, small, "00000", "00001")
    # Half the size: the vectors are halved too.
    np.testing.assert_allclose(flow, np.broadcast_to(np.float32([2, 0]), (20, 28, 2)), atol=1e-6)
    full = np.zeros((H, W, 3), np.uint8)
    np.testing.assert_array_equal(flow_fn(full, full, "00000", "00001"),
                                  np.broadcast_to(np.float32([4, 0]), (H, W, 2)))


# -- 4. cached flows belong to the frames they were computed from ------------------------------------------------

class _MeanFlow(FlowBackend):
    """A uniform flow (mean of frame a / 10, 0): tells which frames a flow was computed from; counts calls."""

    tag = "mean"

    def __init__(self) -> None:
        self.calls = 0

    def flow(self, frame_a, frame_b, *, sequence="", stem_a="", stem_b=""):
        self.calls += 1
        return np.broadcast_to(np.float32([frame_a.mean() / 10, 0]), frame_a.shape[:2] + (2,)).copy()


def _uniform_frames(folder, values) -> list:
    os.makedirs(folder, exist_ok=True)
    paths = []
    for t, value in enumerate(values):
        paths.append(os.path.join(folder, f"{t:05d}.png"))
        Image.fromarray(np.full((H, W, 3), value, np.uint8)).save(paths[-1])
    return paths


def test_cache_recomputes_the_flows_of_a_sequence_whose_frames_changed(tmp_path, caplog):
    cache = str(tmp_path / "cache")
    a = _sequence(_uniform_frames(str(tmp_path / "A" / "seq"), [60, 100, 140]))
    b = _sequence(_uniform_frames(str(tmp_path / "B" / "seq"), [10, 20, 30, 40]))  # same name, other frames
    backend = _MeanFlow()
    shared = FlowCache(backend, cache)  # one process using both trees
    np.testing.assert_array_equal(shared.flow(a, 0, 1)[0, 0], [6, 0])
    with caplog.at_level("WARNING", logger="maskrnn_tf.data.flow_cache"):
        np.testing.assert_array_equal(shared.flow(b, 1, 2)[0, 0], [2, 0])
        np.testing.assert_array_equal(shared.flow(b, 0, 1)[0, 0], [1, 0])
    assert backend.calls == 3 and shared.stale == 1
    # Back to A in the same process: B's flows replaced A's, so A's are computed again (it read B's before).
    np.testing.assert_array_equal(shared.flow(a, 0, 1)[0, 0], [6, 0])
    np.testing.assert_array_equal(shared.flow(b, 0, 1)[0, 0], [1, 0])
    np.testing.assert_array_equal(shared.flow(b, 1, 2)[0, 0], [2, 0])
    assert shared.stale == 3
    folder = os.path.join(cache, "mean", "davis2017", "seq")
    assert any(folder in r.getMessage() and "recomput" in r.getMessage() for r in caplog.records)
    # A's flows were replaced, not kept beside B's: B's two flows only.
    assert sorted(f for f in os.listdir(folder) if f.endswith(".npy")) == ["00000_00001.npy", "00001_00002.npy"]
    # Another process on the same frames trusts the cache: nothing recomputed.
    fill = _MeanFlow()
    assert FlowCache(fill, cache).precompute(b) == 3 and fill.calls == 4  # B's two flows kept, 4 missing
    again = _MeanFlow()
    assert FlowCache(again, cache).precompute(b) == 0 and again.calls == 0
    # Frames re-extracted in place with other pixels (same names): recomputed too.
    b2 = _sequence(_uniform_frames(str(tmp_path / "B" / "seq"), [50, 20, 30, 40]))
    np.testing.assert_array_equal(FlowCache(_MeanFlow(), cache).flow(b2, 0, 1)[0, 0], [5, 0])
    # The same frames in another tree (copied later: other modification times) share the flows.
    import shutil

    shutil.copytree(str(tmp_path / "B" / "seq"), str(tmp_path / "C" / "seq"))
    for path in sorted(os.listdir(tmp_path / "C" / "seq")):
        os.utime(tmp_path / "C" / "seq" / path, ns=(1, 1))
    c = _sequence([str(tmp_path / "C" / "seq" / n) for n in sorted(os.listdir(tmp_path / "C" / "seq"))])
    copy = _MeanFlow()
    np.testing.assert_array_equal(FlowCache(copy, cache).flow(c, 0, 1)[0, 0], [5, 0])
    assert copy.calls == 0


def test_a_flow_float16_cannot_hold_is_refused_not_recomputed_on_every_read(tmp_path):
    """A flow beyond float16's range (a .flo's 'unknown flow' 1e10) was stored as inf, then found 'damaged' and
    recomputed at every read, with a warning each time."""
    class _Huge(_MeanFlow):
        def flow(self, frame_a, frame_b, **kwargs):
            flow = super().flow(frame_a, frame_b, **kwargs)
            flow[0, 0, 0] = 1e10
            return flow

    seq = _sequence(_uniform_frames(str(tmp_path / "A" / "seq"), [60, 100, 140]))
    cache = FlowCache(_Huge(), str(tmp_path / "cache"))
    with pytest.raises(FlowCacheError, match=r"from frame 00000 to 00001 of seq: .*float16.*65504"):
        cache.flow(seq, 0, 1)
    assert cache.repaired == 0


def test_cache_fingerprint_keeps_caches_made_before_it_and_frame_subsets(tmp_path):
    cache = str(tmp_path / "cache")
    seq = _sequence(_uniform_frames(str(tmp_path / "A" / "seq"), [60, 100, 140]))
    FlowCache(_MeanFlow(), cache).precompute(seq)
    folder = os.path.join(cache, "mean", "davis2017", "seq")
    # A cache written before fingerprints existed: its flows are adopted, not thrown away.
    for name in os.listdir(folder):
        if not name.endswith(".npy"):
            os.remove(os.path.join(folder, name))
    backend = _MeanFlow()
    assert FlowCache(backend, cache).precompute(seq) == 0 and backend.calls == 0
    # A sequence cut to its first frames (as tests and tools do) is the same frames, not a change.
    head = _sequence(seq.frame_paths[:2])
    np.testing.assert_array_equal(FlowCache(backend, cache).flow(head, 1, 0)[0, 0], [10, 0])
    assert backend.calls == 0
