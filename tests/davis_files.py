"""Test helpers shared by the metrics and CLI tests: DAVIS ground truth read back, results written as DAVIS does."""
import os

import numpy as np

from maskrnn_tf.io import read_mask, write_palette_png


def gt_stack(root, sequence):
    """(file names, uint8 [T, H, W] ids) of a sequence's 480p annotations under a DAVIS root."""
    folder = os.path.join(root, "Annotations", "480p", sequence)
    names = sorted(os.listdir(folder))
    return names, np.stack([read_mask(os.path.join(folder, n)) for n in names])


def write_results(out_dir, sequence, names, labels):
    """Writes `<out_dir>/<sequence>/<name>` palette PNGs of the id maps `labels` (the layout evaluate reads)."""
    os.makedirs(os.path.join(out_dir, sequence), exist_ok=True)
    for name, label in zip(names, labels):
        write_palette_png(os.path.join(out_dir, sequence, name), label)
