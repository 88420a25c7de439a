"""Fixtures for the inference tests: a tiny synthetic video on disk, a tiny saved model."""
import os

import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.data.synthetic import SyntheticConfig, generate_video

TINY_VIDEO = SyntheticConfig(height=40, width=56, num_frames=6, min_objects=2, max_objects=2)


def custom_palette() -> np.ndarray:
    """A palette unlike DAVIS's, to check that outputs keep the input's palette."""
    palette = np.zeros((256, 3), np.uint8)
    palette[1] = (10, 200, 30)
    palette[2] = (250, 5, 240)
    palette[255] = (1, 2, 3)
    return palette


def write_palette(path: str, ids: np.ndarray, palette: np.ndarray) -> None:
    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    image.putpalette(palette.reshape(-1).tolist())
    image.save(path)


@pytest.fixture(scope="session")
def synthetic_video():
    """The arrays of one tiny synthetic video (2 objects, 6 frames of 40x56, exact flows)."""
    return generate_video(3, TINY_VIDEO)


@pytest.fixture(scope="session")
def video_on_disk(tmp_path_factory, synthetic_video):
    """(frames folder, first-mask path with a custom palette) of the synthetic video."""
    root = tmp_path_factory.mktemp("video")
    frames = root / "frames"
    frames.mkdir()
    for t, frame in enumerate(synthetic_video["frames"]):
        Image.fromarray(frame).save(frames / f"{t:05d}.png")
    mask = str(root / "first.png")
    write_palette(mask, synthetic_video["masks"][0], custom_palette())
    return str(frames), mask


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A randomly initialised tiny MaskRNN (width 1/8, fc 32) saved as model.keras; seeded, so the tests that
    finetune it compare against the same start in every run (unseeded, one start in many learnt too little)."""
    import keras

    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    path = os.path.join(str(tmp_path_factory.mktemp("model")), "model.keras")
    keras.utils.set_random_seed(0)
    MaskRNN(MaskRNNConfig(width=0.125, fc_units=32)).save(path)
    return path
