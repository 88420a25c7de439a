"""Fixtures for the export tests: a tiny MaskRNN, its float32 export, and a tiny synthetic video on disk."""

import keras
import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.export.saved_model_export import ExportConfig, export_saved_model
from maskrnn_tf.export.warmup import WarmupConfig
from maskrnn_tf.io import write_palette_png
from maskrnn_tf.model import MaskRNN, MaskRNNConfig

HEIGHT, WIDTH, FRAMES = 40, 56, 5


@pytest.fixture(scope="session")
def tiny_model() -> MaskRNN:
    # Seeded: an untrained network's masks depend on its random weights, and some draws give masks that do not
    # change with the flow, which test_client_cli_flags_over_tls needs to see that the .flo flows are used.
    keras.utils.set_random_seed(0)
    return MaskRNN(MaskRNNConfig(width=0.125, fc_units=32))


@pytest.fixture(scope="session")
def export_base(tmp_path_factory, tiny_model) -> str:
    """<base>/1: the float32 export of the tiny model (small warmup shapes to keep the test fast)."""
    base = str(tmp_path_factory.mktemp("exports") / "maskrnn")
    export_saved_model(tiny_model, base, 1, ExportConfig(warmup=WarmupConfig(shapes=((24, 32, 1), (24, 32, 2)))))
    return base


def _frame(t: int, rng_texture: np.ndarray) -> np.ndarray:
    """Textured background shifted by t, two textured squares moving in opposite directions."""
    frame = np.roll(rng_texture, t, axis=1).copy()
    frame[8:20, 6 + 3 * t:18 + 3 * t] = (230, 40, 40)
    frame[22:34, 40 - 2 * t:52 - 2 * t] = (40, 40, 230)
    return frame


@pytest.fixture(scope="session")
def synthetic_video(tmp_path_factory):
    """(frames folder, first-mask path, frames list): 5 PNG frames 56x40 and a 2-object palette mask."""
    root = tmp_path_factory.mktemp("video")
    frames_dir = root / "frames"
    frames_dir.mkdir()
    rng = np.random.default_rng(3)
    texture = rng.integers(60, 200, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames = [_frame(t, texture) for t in range(FRAMES)]
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(frames_dir / f"{t:05d}.png")
    ids = np.zeros((HEIGHT, WIDTH), np.uint8)
    ids[8:20, 6:18] = 1
    ids[22:34, 40:52] = 2
    mask_path = str(root / "00000.png")
    write_palette_png(mask_path, ids)
    return str(frames_dir), mask_path, frames
