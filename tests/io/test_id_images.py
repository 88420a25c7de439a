"""Result PNGs of ids as people save them: 16-bit grey ids (cv2.imwrite of a uint16 array, Pillow mode I;16) were
refused as 'a I;16 image cannot hold object ids', though Pillow reads their values right and davis2017-evaluation
(np.array(Image.open(path))) scores them."""
import cv2
import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.io import ImageReadError
from maskrnn_tf.io.id_images import read_result_ids


def two_objects(height=24, width=32):
    ids = np.zeros((height, width), np.uint8)
    ids[3:10, 4:14], ids[12:20, 16:28] = 1, 2
    return ids


def test_16_bit_grey_ids_read_as_their_values(tmp_path):
    path = str(tmp_path / "00001.png")
    ids = two_objects()
    assert cv2.imwrite(path, ids.astype(np.uint16))
    assert Image.open(path).mode == "I;16"  # the premise: 16-bit grey
    got = read_result_ids(path, objects=2)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, ids)
    np.testing.assert_array_equal(got, np.array(Image.open(path)))  # davis2017-evaluation's reading


def test_16_bit_grey_reads_as_8_bit_grey_does(tmp_path):
    """The 8-bit grey rules hold: 0/255 is a DAVIS-2016 binary result (object 1, refused for several objects);
    values above 255 are no object ids and are refused naming the file; 16-bit RGB still is (Pillow keeps only
    each sample's top byte)."""
    ids = two_objects()
    binary = str(tmp_path / "binary.png")
    assert cv2.imwrite(binary, np.where(ids > 0, 255, 0).astype(np.uint16))
    np.testing.assert_array_equal(read_result_ids(binary, objects=1), (ids > 0).astype(np.uint8))
    with pytest.raises(ImageReadError, match=r"binary.png: a 0/255 mask \(one foreground\) but the sequence has 2"):
        read_result_ids(binary, objects=2)
    wide = str(tmp_path / "wide.png")
    assert cv2.imwrite(wide, ids.astype(np.uint16) * 300)
    with pytest.raises(ImageReadError, match=r"wide.png: a I;16 image cannot hold object ids above 255 \(it holds "
                                             r"300, 600\)"):
        read_result_ids(wide)
    colour = str(tmp_path / "colour.png")
    assert cv2.imwrite(colour, np.repeat(ids.astype(np.uint16)[..., None], 3, axis=2))
    with pytest.raises(ImageReadError, match="colour.png: a 16-bit RGB PNG cannot hold object ids"):
        read_result_ids(colour)
