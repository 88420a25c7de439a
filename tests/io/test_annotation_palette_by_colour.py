"""Ground truth saved as a quantised palette PNG (Image.convert("P", palette=ADAPTIVE), PNG optimisers): its indices
are colours, not object ids; index 0 is some object's colour and the background (black) another index. A user's
--first_mask of that form was refused, but the same file as a data set's annotation was read with the background as
an object (first_frame_objects, read_ids, read_first_annotation, evaluate's ground truth)."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.data.sequences import load_masks, read_davis_sequence_list
from maskrnn_tf.inference.first_mask import read_first_annotation
from maskrnn_tf.io import ImageReadError
from maskrnn_tf.io.id_images import read_annotation_ids, read_label_image


def _quantised(path: str) -> None:
    """A red and a green object on black, saved as an adaptive-palette PNG (the premise is asserted)."""
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[3:10, 4:14], rgb[12:20, 16:28] = (255, 0, 0), (0, 255, 0)
    image = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE)
    image.save(path)
    palette = np.asarray(image.getpalette(), np.uint8).reshape(-1, 3)
    background = int(np.asarray(image)[0, 0])
    assert palette[0].any() and background != 0 and not palette[background].any()


def test_a_quantised_palette_annotation_is_refused_as_the_first_mask_is(tmp_path):
    path = str(tmp_path / "00000.png")
    _quantised(path)
    with pytest.raises(ImageReadError, match="indices are colours"):
        read_label_image(path)  # a user's --first_mask: the annotation readers below must refuse it alike
    with pytest.raises(ImageReadError, match=r"00000.png: palette PNG whose background \(black\) is index"):
        read_annotation_ids(path)
    with pytest.raises(ImageReadError, match="indices are colours"):
        read_first_annotation(path)


def test_a_quantised_palette_annotation_in_a_davis_2017_tree_is_refused(shared_data, tmp_path):
    root = str(tmp_path / "DAVIS")
    shutil.copytree(os.path.join(shared_data, "DAVIS-2017-sample"), root)
    first = os.path.join(root, "Annotations", "480p", "tennis", "00000.png")
    rgb = np.zeros((480, 854, 3), np.uint8)
    rgb[100:200, 100:300], rgb[300:400, 400:600] = (255, 0, 0), (0, 255, 0)
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(first)
    assert np.asarray(Image.open(first))[0, 0] != 0  # the premise: background not index 0
    with pytest.raises(ImageReadError, match=r"tennis.00000.png: palette PNG whose background"):
        read_davis_sequence_list(root, 2017, "val")


def test_davis_2017_palette_annotations_read_as_before(shared_data):
    root = os.path.join(shared_data, "DAVIS-2017-sample")
    for name in ("bear", "tennis"):
        for t in range(2):
            path = os.path.join(root, "Annotations", "480p", name, f"{t:05d}.png")
            np.testing.assert_array_equal(read_annotation_ids(path), np.asarray(Image.open(path), np.uint8))
    by_name = {s.name: s for s in read_davis_sequence_list(root, 2017, "val")}
    assert by_name["tennis"].num_objects == 2
    assert set(np.unique(load_masks(by_name["tennis"]))) == {0, 1, 2, 255}
