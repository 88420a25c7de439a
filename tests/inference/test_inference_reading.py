"""Video and first-mask reading: frame folders, mp4 via OpenCV, palettes, bad inputs; the background helpers."""
import threading
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.inference.background import BackgroundWorker, prefetch
from maskrnn_tf.inference.finetune import first_ids_at_size
from maskrnn_tf.inference.first_mask import FirstMask, MaskError, labels_at_size, read_first_mask, resize_nearest
from maskrnn_tf.inference.video_reader import VideoReadError, VideoSource, working_size
from maskrnn_tf.io import ImageReadError

from .conftest import custom_palette, write_palette


def test_frame_folder_streams_frames_in_name_order(video_on_disk, synthetic_video):
    folder, _ = video_on_disk
    source = VideoSource(folder)
    assert source.num_frames == 6 and source.size == (40, 56)
    assert source.frame_names == [f"{t:05d}" for t in range(6)]
    frames = source.frames()
    assert not isinstance(frames, (list, tuple))  # a generator: frames are decoded one at a time
    got = list(frames)
    assert len(got) == 6
    for frame, want in zip(got, synthetic_video["frames"]):
        np.testing.assert_array_equal(frame, want)


def test_mp4_is_read_with_opencv(tmp_path, synthetic_video):
    path = str(tmp_path / "clip.mp4")
    frames = synthetic_video["frames"]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (frames.shape[2], frames.shape[1]))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    source = VideoSource(path)
    assert source.num_frames == len(frames) and source.size == frames.shape[1:3]
    assert source.frame_names[:2] == ["00000", "00001"]
    decoded = list(source.frames())
    assert len(decoded) == len(frames)
    for got, want in zip(decoded, frames):
        # mp4v is lossy, but RGB order and content must survive: a channel swap would be far off.
        assert np.abs(got.astype(float) - want).mean() < 12
        assert np.abs(got[..., ::-1].astype(float) - want).mean() > np.abs(got.astype(float) - want).mean()


def test_bad_videos_are_reported(tmp_path):
    with pytest.raises(VideoReadError, match="not found"):
        VideoSource(str(tmp_path / "nope"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoReadError, match="no frames"):
        VideoSource(str(empty))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(VideoReadError, match="unreadable video"):
        VideoSource(str(broken))
    bad_frames = tmp_path / "bad"
    bad_frames.mkdir()
    (bad_frames / "00000.jpg").write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="00000.jpg"):
        VideoSource(str(bad_frames))


def test_first_mask_palette_ids_and_binary(tmp_path):
    ids = np.zeros((8, 10), np.uint8)
    ids[1:3, 1:4] = 2
    ids[5:7, 5:9] = 5
    ids[0, 0] = 255
    path = str(tmp_path / "ids.png")
    write_palette(path, ids, custom_palette())
    first = read_first_mask(path, (8, 10))
    assert first.object_ids == (2, 5)
    np.testing.assert_array_equal(first.palette, custom_palette())
    one_hot = first.one_hot()
    np.testing.assert_array_equal(one_hot[0], ids == 2)
    np.testing.assert_array_equal(one_hot[1], ids == 5)
    np.testing.assert_array_equal(first.index_to_id(), [0, 2, 5])

    grey = np.zeros((8, 10), np.uint8)
    grey[2:6, 3:7] = 255
    binary = str(tmp_path / "binary.png")
    Image.fromarray(grey).save(binary)
    first = read_first_mask(binary)
    assert first.object_ids == (1,) and first.labels.max() == 1
    assert tuple(first.palette[1]) == (128, 0, 0)  # no input palette: DAVIS colours


def test_first_mask_downscale_samples_pixel_centres_for_the_seed_and_the_finetuning_alike():
    """At --max_size the first mask is downscaled once for the segmentation's seed and once for online
    finetuning's targets: both must be the same pixels (a thin object was in one and not the other)."""
    labels = np.zeros((4, 6), np.uint8)
    labels[:, 1] = 1  # a one-pixel-wide object in an odd column
    labels[2:, 4:] = 2
    labels[1, 5] = 255
    # Hand-computed: halving samples the centre of each 2x2 block, rows 1, 3 and columns 1, 3, 5.
    np.testing.assert_array_equal(resize_nearest(labels, (2, 3)), [[1, 0, 255], [1, 0, 2]])
    first = FirstMask(labels=labels, object_ids=(1, 2), palette=np.zeros((256, 3), np.uint8))
    ids, present = first_ids_at_size(first, (2, 3))
    assert present == [1, 2]  # nearest at the top-left corners (columns 0, 2, 4) lost object 1
    seed = first.one_hot((2, 3))
    for k, object_id in enumerate(first.object_ids):
        np.testing.assert_array_equal(seed[k], ids == object_id)
    assert resize_nearest(labels, (4, 6)) is labels


def test_an_object_smaller_than_a_cell_of_the_downscale_keeps_the_cells_its_pixels_lie_in():
    """Under --max_size an object no cell centre falls on was dropped (nearest-neighbour: no pixel at the processing
    size), and the video was segmented without it, without a word. It keeps the cells its pixels lie in now."""
    labels = np.zeros((8, 12), np.uint8)
    labels[:, 6:] = 1
    labels[1, 1] = 2  # quartering samples rows 2, 6 and columns 2, 6, 10 (the centres of 4x4 blocks)
    labels[4:6, 8] = 3  # inside object 1, between the sampled rows and columns
    np.testing.assert_array_equal(resize_nearest(labels, (2, 3)), [[0, 1, 1], [0, 1, 1]])  # both lost
    # Hand-computed: pixel (1, 1) lies in cell (0, 0); pixels (4, 8), (5, 8) in cell (1, 2), taken from object 1.
    np.testing.assert_array_equal(labels_at_size(labels, (2, 3)), [[2, 1, 1], [0, 1, 3]])
    first = FirstMask(labels=labels, object_ids=(1, 2, 3), palette=np.zeros((256, 3), np.uint8))
    ids, present = first_ids_at_size(first, (2, 3))
    assert present == [1, 2, 3]
    seed = first.one_hot((2, 3))  # the segmentation's seed: the same pixels as finetuning's targets
    for k, object_id in enumerate(first.object_ids):
        np.testing.assert_array_equal(seed[k], ids == object_id)
    np.testing.assert_array_equal(labels_at_size(labels, (8, 12)), labels)


def test_an_object_smaller_than_a_cell_takes_no_cell_another_object_needs(caplog):
    """A small object takes a cell only from background, void or an object that keeps another cell: a tracked
    object is never dropped for it. One left without a cell is named in a warning."""
    labels = np.zeros((8, 8), np.uint8)
    labels[1:4, 1:4] = 1  # 9 pixels, one sampled centre: (2, 2)
    labels[0, 0] = 2  # in the same cell, (0, 0), which object 1 needs
    labels[5, 1] = 3  # cell (1, 0): background, taken
    labels[5, 2] = 4  # the same cell, now object 3's only one
    with caplog.at_level("WARNING"):
        np.testing.assert_array_equal(labels_at_size(labels, (2, 2)), [[1, 0], [3, 0]])
    assert "object(s) [2, 4] of the first mask are smaller than a pixel at the processing size 2x2" in caplog.text
    # Objects of fewer cells choose first: in id order object 2 (cells (0, 0), (0, 1)) and object 3 ((0, 1),
    # (0, 2)) left object 4 nothing of its one cell, (0, 0).
    labels = np.zeros((8, 12), np.uint8)
    labels[0, 3:5], labels[0, 7:9], labels[1, 0] = 2, 3, 4
    np.testing.assert_array_equal(labels_at_size(labels, (2, 3)), [[4, 2, 3], [0, 0, 0]])


def test_first_mask_errors(tmp_path):
    ids = np.zeros((8, 10), np.uint8)
    ids[2, 2] = 1
    path = str(tmp_path / "m.png")
    write_palette(path, ids, custom_palette())
    with pytest.raises(MaskError, match=r"10x8 differs from the video's frames \(12x8\)"):
        read_first_mask(path, (8, 12))
    empty = str(tmp_path / "empty.png")
    write_palette(empty, np.where(ids > 0, 255, 0), custom_palette())  # void only
    with pytest.raises(MaskError, match="no object"):
        read_first_mask(empty)
    with pytest.raises(ImageReadError, match="not found"):
        read_first_mask(str(tmp_path / "missing.png"))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"xx")
    with pytest.raises(ImageReadError, match="unreadable"):
        read_first_mask(str(junk))


def test_working_size_caps_the_long_side():
    assert working_size((480, 854), 427) == (240, 427)
    assert working_size((480, 854), None) == (480, 854)
    assert working_size((100, 50), 200) == (100, 50)


def test_prefetch_keeps_order_bounds_read_ahead_and_forwards_errors():
    produced = []

    def items():
        for i in range(20):
            produced.append(i)
            yield i

    consumed = []
    for item in prefetch(items(), depth=2):
        time.sleep(0.002)
        # The producer is never more than depth (+1 in hand, +1 being put) items ahead.
        assert len(produced) - len(consumed) <= 4
        consumed.append(item)
    assert consumed == list(range(20))

    def failing():
        yield 1
        raise RuntimeError("decoder broke")

    with pytest.raises(RuntimeError, match="decoder broke"):
        list(prefetch(failing(), depth=2))


def test_background_worker_runs_in_order_and_reraises():
    seen = []
    worker = BackgroundWorker(depth=2)
    for i in range(10):
        worker.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
    worker.close()
    assert [i for i, _ in seen] == list(range(10)) and all(name == "worker" for _, name in seen)

    worker = BackgroundWorker(depth=2)
    worker.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        for _ in range(50):
            worker.submit(lambda: None)
        worker.close()
