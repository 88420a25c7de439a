"""The demo's held-out videos: a DAVIS-2017 tree that the project's own readers accept, equal to the generator."""
import os

import numpy as np

from maskrnn_tf.data.sequences import load_masks, read_davis_sequence_list
from maskrnn_tf.data.synthetic import SyntheticConfig, generate_video
from maskrnn_tf.demo import write_heldout_davis
from maskrnn_tf.io import read_frame


def test_heldout_tree_round_trips(tmp_path):
    root = str(tmp_path / "heldout")
    names = write_heldout_davis(root, 2, seed_base=123)
    assert names == ["heldout00", "heldout01"]
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]  # written atomically
    sequences = read_davis_sequence_list(root, 2017, "val")
    assert [s.name for s in sequences] == names
    for i, seq in enumerate(sequences):
        video = generate_video(123 + i, SyntheticConfig())
        np.testing.assert_array_equal(load_masks(seq), video["masks"])
        np.testing.assert_array_equal(read_frame(seq.frame_paths[3]), video["frames"][3])  # PNG: lossless
        assert seq.num_objects == int(video["num_objects"])
    # A second call reuses the finished tree instead of rewriting it.
    assert write_heldout_davis(root, 5, seed_base=999) == names
