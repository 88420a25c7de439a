"""Writers that OpenCV lets fail quietly: `cv2.imwrite` and `VideoWriter.write` return False (a missing folder, a
name over 255 bytes, a full disk) instead of raising. A failed write must raise, naming the file, so that the
atomic results folder (and the overlay) is discarded, not published without the files."""
import os

import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.inference import SegmentOptions, flow_propagation_step, segment_video, writers
from maskrnn_tf.inference.writers import OverlayWriter, ProbabilityWriter
from maskrnn_tf.io import davis_palette


def _zero_flow(frame_a, frame_b):
    return np.zeros(frame_a.shape[:2] + (2,), np.float32)


def _no_imwrite(path, image, *args):
    return False


def test_a_probability_png_opencv_does_not_write_raises_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(writers.cv2, "imwrite", _no_imwrite)
    writer = ProbabilityWriter(str(tmp_path / "probs"), (1, 4), "png")
    with pytest.raises(OSError, match="00003_1.png"):
        writer.write("00003", np.full((2, 4, 5), 0.7, np.float32))


def _left_beside(folder):
    """What is in `folder`'s parent other than the inputs: the results, their hidden temporaries, an overlay."""
    return sorted(name for name in os.listdir(os.path.dirname(folder)) if name not in ("frames", "first.png"))


@pytest.mark.parametrize("overlay", [False, True])
def test_segment_leaves_no_results_when_a_probability_png_is_not_written(tmp_path, video_on_disk, monkeypatch,
                                                                         overlay):
    """The probability PNGs went missing without a word and segment_run.json was written over the rest: an
    output folder that looks whole. Now the run fails and leaves neither it nor an overlay outside it."""
    frames, mask = video_on_disk
    monkeypatch.setattr(writers.cv2, "imwrite", _no_imwrite)
    work = tmp_path / "work"
    work.mkdir()
    out, video = str(work / "out"), str(work / "overlay.mp4")
    with pytest.raises(OSError, match=r"00000_1\.png"):
        segment_video(flow_propagation_step, frames, mask, _zero_flow, out,
                      SegmentOptions(progress=False, save_probs="png", need_next_flow=False),
                      overlay_path=video if overlay else None)
    assert _left_beside(out) == []


def test_segment_leaves_no_results_when_frame_names_are_too_long_for_the_probability_pngs(tmp_path):
    """The reviewer's case, no patching: frames named with 250 characters give masks of 254 (written) and
    probability PNGs of 256 (over the 255 bytes of a file name: OpenCV returns False)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    stem = "f" * 245
    frame = np.zeros((24, 32, 3), np.uint8)
    for t in range(3):
        Image.fromarray(frame).save(folder / f"{stem}{t:05d}.jpg")
    labels = np.zeros((24, 32), np.uint8)
    labels[6:14, 8:20] = 1
    first = str(tmp_path / "first.png")
    image = Image.fromarray(labels, mode="P")
    image.putpalette(davis_palette().reshape(-1).tolist())
    image.save(first)
    out = str(tmp_path / "out")
    with pytest.raises(OSError, match=f"{stem}00000_1.png"):
        segment_video(flow_propagation_step, str(folder), first, _zero_flow, out,
                      SegmentOptions(progress=False, save_probs="png", need_next_flow=False))
    assert _left_beside(out) == []


class _FailingVideo:
    """A cv2.VideoWriter whose frame writes fail (OpenCV 5 returns False; OpenCV 4 returned nothing)."""

    def __init__(self, *args):
        self._video = _REAL_VIDEO_WRITER(*args)

    def isOpened(self):
        return self._video.isOpened()

    def write(self, frame):
        return False

    def release(self):
        self._video.release()


_REAL_VIDEO_WRITER = writers.cv2.VideoWriter


def test_an_overlay_frame_opencv_does_not_write_raises_and_leaves_no_overlay(tmp_path, video_on_disk, monkeypatch):
    monkeypatch.setattr(writers.cv2, "VideoWriter", _FailingVideo)
    path = str(tmp_path / "alone.mp4")
    overlay = OverlayWriter(path, (24, 32), davis_palette())
    with pytest.raises(OSError, match="alone.mp4"):
        overlay.write(np.zeros((24, 32, 3), np.uint8), np.zeros((24, 32), np.uint8))
    overlay.abort()
    frames, mask = video_on_disk
    work = tmp_path / "work"
    work.mkdir()
    out = str(work / "out")
    for target in (str(work / "overlay.mp4"), str(work / "out" / "overlay.mp4")):  # outside and inside the results
        with pytest.raises(OSError, match="overlay.mp4"):
            segment_video(flow_propagation_step, frames, mask, _zero_flow, out,
                          SegmentOptions(progress=False, need_next_flow=False), overlay_path=target)
        assert _left_beside(out) == []


def test_an_overlay_keeps_odd_frames_whole_and_takes_a_variable_rate_videos_average_fps(tmp_path):
    """mp4v needs even sides: a 33x25 overlay came out 32x24, its last column and row dropped; a variable-rate
    video's average fps such as 108.303 made OpenCV refuse the overlay after the run's work."""
    import cv2

    path = str(tmp_path / "odd.mp4")
    overlay = OverlayWriter(path, (25, 33), davis_palette(), fps=108.303)
    frame = np.zeros((25, 33, 3), np.uint8)
    frame[:, -1] = 255  # a white last column, a white last row
    frame[-1, :] = 255
    for _ in range(3):
        overlay.write(frame, np.zeros((25, 33), np.uint8))
    overlay.close()
    capture = cv2.VideoCapture(path)
    read = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        read.append(image)
    assert abs(capture.get(cv2.CAP_PROP_FPS) - 108.3) < 0.01
    capture.release()
    assert len(read) == 3 and read[0].shape == (26, 34, 3)
    assert read[0][5:20, 32:].mean() > 200 and read[0][24:, 5:28].mean() > 200  # kept, and repeated past the edge
    assert read[0][5:20, 5:28].mean() < 40
