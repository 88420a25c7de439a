"""Tiny inputs for the reliability tests: a 4-frame 40x56 video of two squares on disk, and its masks."""
import os

import numpy as np
import pytest
from absl import flags
from PIL import Image

from maskrnn_tf import segment

segment.define_flags()  # segment's flags, which these tests parse

HEIGHT, WIDTH, FRAMES = 40, 56, 4


def square_ids(t: int) -> np.ndarray:
    """Object ids of frame t: object 1 and object 2, two squares moving right by 2 px per frame."""
    ids = np.zeros((HEIGHT, WIDTH), np.uint8)
    ids[8:20, 6 + 2 * t:18 + 2 * t] = 1
    ids[22:34, 30 + 2 * t:42 + 2 * t] = 2
    return ids


def frame_image(t: int) -> np.ndarray:
    """A textured RGB frame with the two squares drawn in."""
    rng = np.random.default_rng(t)
    frame = rng.integers(60, 120, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    ids = square_ids(t)
    frame[ids == 1] = (220, 40, 40)
    frame[ids == 2] = (40, 220, 40)
    return frame


def write_palette_png(path, ids: np.ndarray) -> None:
    from maskrnn_tf.io import davis_palette

    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    image.putpalette(davis_palette().reshape(-1).tolist())
    image.save(path)


def make_frames(folder, ext: str = "png", names=None) -> str:
    """Writes the 4 frames into `folder` as 00000.<ext>... (or the given stems); returns the folder."""
    os.makedirs(folder, exist_ok=True)
    for t in range(FRAMES):
        stem = names[t] if names else f"{t:05d}"
        Image.fromarray(frame_image(t)).save(os.path.join(folder, f"{stem}.{ext}"), quality=95)
    return str(folder)


@pytest.fixture
def video(tmp_path):
    """(frames folder, first-mask palette PNG) in a fresh tmp_path."""
    frames = make_frames(tmp_path / "vid")
    mask = str(tmp_path / "first.png")
    write_palette_png(mask, square_ids(0))
    return frames, mask


def run_cli(*args: str) -> int:
    """segment.main in-process with fresh flag values (exceptions propagate)."""
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["segment", "--noprogress", "--method=flow_propagation", *args])
    return segment.main([])
