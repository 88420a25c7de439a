"""Frames as people save them, read as 8-bit RGB the way OpenCV reads them: 16-bit grey PNGs (Pillow mode I;16)
were clipped at 255, so every value above 255 of 65535 became white."""
import cv2
import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.io import read_frame


def ramp16(height=8, width=56):
    return (np.arange(width)[None, :] * (65535 // (width - 1))).astype(np.uint16).repeat(height, 0)


@pytest.mark.parametrize("writer", ["pillow", "opencv"])
def test_16_bit_grey_frames_read_like_opencv(tmp_path, writer):
    path = str(tmp_path / "frame.png")
    values = ramp16()
    if writer == "pillow":
        Image.fromarray(values).save(path)
    else:
        cv2.imwrite(path, values)
    assert Image.open(path).mode.startswith("I")
    frame = read_frame(path)
    assert frame.dtype == np.uint8 and frame.shape == values.shape + (3,)
    np.testing.assert_array_equal(frame, cv2.imread(path)[..., ::-1])  # 16-bit >> 8, in every channel
    assert len(np.unique(frame)) > 40  # a ramp, not black and white


def test_8_bit_frames_are_unchanged(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_frame(tmp_path / "rgb.png"), rgb)
    np.testing.assert_array_equal(read_frame(tmp_path / "grey.png"), np.repeat(rgb[..., :1], 3, axis=2))


@pytest.mark.parametrize("orientation, turn", [(6, -1), (3, 2), (8, 1)])
def test_exif_orientation_is_applied_as_opencv_and_viewers_do(tmp_path, orientation, turn):
    """A phone JPEG stored sideways with an EXIF Orientation tag was read as stored: its annotation (drawn on the
    upright picture) was refused for the swapped size, or laid on the rotated pixels of a square frame. It reads
    as cv2.imread (and every viewer) shows it."""
    rng = np.random.default_rng(orientation)
    stored = np.kron(rng.integers(0, 256, (6, 10, 3)), np.ones((8, 8, 1))).astype(np.uint8)  # 48x80 blocks
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = str(tmp_path / "frame.jpg")
    Image.fromarray(stored).save(path, quality=100, subsampling=0, exif=exif)  # 4:4:4: blocks keep their colour
    frame = read_frame(path)
    reference = cv2.imread(path, cv2.IMREAD_COLOR)[..., ::-1]
    assert frame.shape == reference.shape == np.rot90(stored, turn).shape
    assert np.abs(frame.astype(int) - reference.astype(int)).max() <= 2
    assert np.abs(frame.astype(int) - np.rot90(stored, turn).astype(int)).mean() < 3


def test_image_size_from_the_header_agrees_with_read_frame_under_exif_orientation(tmp_path):
    from maskrnn_tf.data.sequences import image_size

    for orientation in (1, 3, 5, 6, 7, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = str(tmp_path / f"o{orientation}.jpg")
        Image.fromarray(np.zeros((16, 40, 3), np.uint8)).save(path, exif=exif)
        assert image_size(path) == read_frame(path).shape[:2], orientation
