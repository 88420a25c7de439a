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
