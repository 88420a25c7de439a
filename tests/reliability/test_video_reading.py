"""Which frames segment reads: a mask among the frames, natural order, truncated video files (issue 16,
items 4, 5, 8)."""
import os
import shutil

import cv2
import numpy as np
import pytest

from maskrnn_tf.inference import SegmentOptions, VideoReadError, VideoSource, flow_propagation_step, segment_video
from maskrnn_tf.io import read_mask

from .conftest import FRAMES, frame_image, make_frames, run_cli, square_ids, write_palette_png


def zero_flow(a, b):
    return np.zeros(a.shape[:2] + (2,), np.float32)


def test_first_mask_among_jpg_frames_is_not_a_frame(tmp_path, caplog):
    frames = make_frames(tmp_path / "vid", ext="jpg")
    mask = os.path.join(frames, "00000.png")  # saved beside the frames, as users do
    write_palette_png(mask, square_ids(0))
    out = str(tmp_path / "out")
    with caplog.at_level("WARNING"):
        count = segment_video(flow_propagation_step, frames, mask, zero_flow, out, SegmentOptions(progress=False))
    assert count == FRAMES
    assert "skipped 1 other file(s): 00000.png" in caplog.text
    # Frame 0 of the output is the first mask, and the mask file is untouched.
    np.testing.assert_array_equal(read_mask(os.path.join(out, "00000.png")), square_ids(0))
    np.testing.assert_array_equal(read_mask(mask), square_ids(0))


def test_majority_type_wins_and_the_first_mask_is_excluded_even_of_that_type(tmp_path):
    frames = make_frames(tmp_path / "vid", ext="png")
    cv2.imwrite(os.path.join(frames, "thumb.jpg"), np.zeros((8, 8, 3), np.uint8))
    mask = os.path.join(frames, "mask.png")
    write_palette_png(mask, square_ids(0))
    source = VideoSource(frames, exclude=[mask])
    assert source.frame_names == [f"{t:05d}" for t in range(FRAMES)]
    assert sorted(os.path.basename(p) for p in source.skipped) == ["mask.png", "thumb.jpg"]


def test_frames_numbered_without_padding_are_read_in_numeric_order(tmp_path):
    names = ["1", "2", "10", "11"]  # lexicographic order would be 1, 10, 11, 2
    frames = make_frames(tmp_path / "vid", names=names)
    source = VideoSource(frames)
    assert source.frame_names == names
    got = list(source.frames())
    assert len(got) == len(names)
    for t, frame in enumerate(got):
        np.testing.assert_array_equal(frame, frame_image(t))



def test_a_frame_of_another_size_is_refused_before_any_work(tmp_path):
    """A frame of another size was refused only when the loop reached it, after the model had loaded and the
    online finetuning had run; the frame headers are read when the video is opened."""
    from PIL import Image

    frames = make_frames(tmp_path / "vid")
    odd = os.path.join(frames, "00002.png")
    Image.fromarray(frame_image(2)[:-4]).save(odd)
    with pytest.raises(VideoReadError) as raised:
        VideoSource(frames)
    assert str(raised.value).startswith(f"{odd}: frame size ") and "differs from the first frame" in str(raised.value)


@pytest.mark.parametrize("twin", ["00002.jpeg", "00002.JPG"])
def test_two_frames_of_one_name_stem_are_refused(tmp_path, twin):
    """Frames 00002.jpg and 00002.jpeg (or .JPG) are both frames and both write 00002.png: one result was
    overwritten by the other without a word, fewer files than the frames segment_run.json counts."""
    frames = make_frames(tmp_path / "vid", ext="jpg")
    shutil.copyfile(os.path.join(frames, "00001.jpg"), os.path.join(frames, twin))
    mask = str(tmp_path / "first.png")
    write_palette_png(mask, square_ids(0))
    pair = rf"(00002\.jpg and {twin}|{twin} and 00002\.jpg)"
    with pytest.raises(VideoReadError, match=rf"vid: frames {pair} have the same name stem.*00002\.png"):
        run_cli(f"--video={frames}", f"--first_mask={mask}", f"--output={tmp_path / 'out'}")
    assert not os.path.exists(tmp_path / "out")

def _faststart_mp4(path: str, count: int) -> bytes:
    """A `count`-frame mp4v file with its index (moov) before the data, as streamed files are."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 24, (56, 40))
    for t in range(count):
        writer.write(cv2.cvtColor(frame_image(t % FRAMES), cv2.COLOR_RGB2BGR))
    writer.release()
    data, atoms, i = open(path, "rb").read(), {}, 0
    while i < len(data):
        size = int.from_bytes(data[i:i + 4], "big")
        atoms[data[i + 4:i + 8]] = data[i:i + size]
        i += size
    moov = bytearray(atoms[b"moov"])
    k = moov.find(b"stco")  # chunk offsets move by the size of moov
    for j in range(int.from_bytes(moov[k + 8:k + 12], "big")):
        o = k + 12 + 4 * j
        moov[o:o + 4] = (int.from_bytes(moov[o:o + 4], "big") + len(moov)).to_bytes(4, "big")
    return b"".join(v for key, v in atoms.items() if key != b"moov" and key != b"mdat") + bytes(moov) \
        + atoms[b"mdat"]


def test_truncated_mp4_is_refused_or_segmented_partially_on_request(tmp_path, caplog):
    full = _faststart_mp4(str(tmp_path / "w.mp4"), 20)
    video = str(tmp_path / "cut.mp4")
    with open(video, "wb") as f:
        f.write(full[: int(len(full) * 0.6)])  # an interrupted download
    mask = str(tmp_path / "first.png")
    write_palette_png(mask, square_ids(0))
    with pytest.raises(VideoReadError, match=r"cut.mp4: only \d+ of the 20 frames .*--allow_partial_video"):
        run_cli(f"--video={video}", f"--first_mask={mask}", f"--output={tmp_path / 'out'}")
    assert not os.path.exists(tmp_path / "out")
    with caplog.at_level("WARNING"):
        assert run_cli(f"--video={video}", f"--first_mask={mask}", f"--output={tmp_path / 'out'}",
                       "--allow_partial_video") == 0
    written = len([n for n in os.listdir(tmp_path / "out") if n.endswith(".png")])
    assert 0 < written < 20 and f"only {written} of the 20 frames" in caplog.text
    # An intact file of the same kind is read whole.
    with open(video, "wb") as f:
        f.write(full)
    assert VideoSource(video).num_frames == 20


def test_a_box_prompt_on_a_truncated_mp4_keeps_allow_partial_video(tmp_path):
    """--first_box read the video without --allow_partial_video: a cut file was refused, with the advice to pass
    the flag that had been passed."""
    full = _faststart_mp4(str(tmp_path / "w.mp4"), 20)
    video = str(tmp_path / "cut.mp4")
    with open(video, "wb") as f:
        f.write(full[: int(len(full) * 0.6)])
    assert run_cli(f"--video={video}", "--first_box=8,6,30,24", "--method=flow_propagation",
                   f"--output={tmp_path / 'out'}", "--allow_partial_video") == 0
    written = [n for n in os.listdir(tmp_path / "out") if n.endswith(".png")]
    assert 0 < len(written) < 20


def test_a_container_that_stores_no_frame_count_is_read_whole_when_opencv_estimates_more(tmp_path, monkeypatch):
    """Matroska/WebM store no frame count: OpenCV estimates it from the duration (a sound track or frame-rate gaps
    included), and a whole recording was refused as truncated ("12 of 25 frames"). The check stays for containers
    that store it (an mp4 declaring more than decodes is cut)."""
    from maskrnn_tf.inference import video_reader

    for name, fourcc in (("clip.mkv", "XVID"), ("clip.mp4", "mp4v")):
        writer = cv2.VideoWriter(str(tmp_path / name), cv2.VideoWriter_fourcc(*fourcc), 25, (56, 40))
        for t in range(6):
            writer.write(cv2.cvtColor(frame_image(t % FRAMES), cv2.COLOR_RGB2BGR))
        writer.release()
    real = cv2.VideoCapture

    class Estimating:  # OpenCV's reading of a Matroska file with a 0.5 s longer sound track
        def __init__(self, path):
            self._capture = real(path)

        def get(self, prop):
            value = self._capture.get(prop)
            return value + 7 if prop == cv2.CAP_PROP_FRAME_COUNT else value

        def __getattr__(self, name):
            return getattr(self._capture, name)

    monkeypatch.setattr(video_reader.cv2, "VideoCapture", Estimating)
    source = VideoSource(str(tmp_path / "clip.mkv"))
    assert source.num_frames == 6 and len(list(source.frames())) == 6
    with pytest.raises(VideoReadError, match=r"clip.mp4: only 6 of the 13 frames"):
        VideoSource(str(tmp_path / "clip.mp4"))
