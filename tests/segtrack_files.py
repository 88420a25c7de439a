"""Test helper: a SegTrack v2 folder made on the fly (frames, one grey RGB mask layer per object, image sets)."""
import os

import numpy as np
from PIL import Image


def make_segtrack(root, name, frames, layers, layered=None):
    """Writes sequence `name` into the SegTrack v2 folder `root` (appending to ImageSets/all.txt).

    frames: [T, H, W, 3] uint8; layers: [K, T, H, W] uint8 grey masks of the K objects (values above 127 are
    foreground, as SegTrack's anti-aliased masks), saved as RGB PNGs like the originals; `layered` (default: K > 1)
    uses GroundTruth/<name>/<k>/ folders, else GroundTruth/<name>/. Returns the frame stems.
    """
    frames, layers = np.asarray(frames, np.uint8), np.asarray(layers, np.uint8)
    layered = len(layers) > 1 if layered is None else layered
    stems = [f"{name}_{t:05d}" for t in range(len(frames))]
    os.makedirs(os.path.join(root, "ImageSets"), exist_ok=True)
    with open(os.path.join(root, "ImageSets", "all.txt"), "a", encoding="utf-8") as f:
        f.write(f"*{name}\n")
    with open(os.path.join(root, "ImageSets", f"{name}.txt"), "w", encoding="utf-8") as f:
        f.write(f"/JPEGImages/{name}/\n" + "".join(s + "\n" for s in stems))
    os.makedirs(os.path.join(root, "JPEGImages", name), exist_ok=True)
    for stem, frame in zip(stems, frames):
        Image.fromarray(frame).save(os.path.join(root, "JPEGImages", name, stem + ".png"))
    for k, layer in enumerate(layers, 1):
        folder = os.path.join(root, "GroundTruth", name, *([str(k)] if layered else []))
        os.makedirs(folder, exist_ok=True)
        for stem, mask in zip(stems, layer):
            Image.fromarray(np.repeat(mask[..., None], 3, -1)).save(os.path.join(folder, stem + ".png"))
    return stems
