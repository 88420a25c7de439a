"""Id PNGs as people save them. Results: 16-bit grey ids (cv2.imwrite of a uint16 array, Pillow mode I;16) were
refused as 'a I;16 image cannot hold object ids', though Pillow reads their values right and davis2017-evaluation
(np.array(Image.open(path))) scores them. First masks and ground truth: the same 16-bit ids were refused in Pillow's
jargon, and grey ids with a gap beside void (1, 3, 255) as 'several objects in grey'."""
import cv2
import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.io import ImageReadError
from maskrnn_tf.io.id_images import (GREY_IDS, GREY_THRESHOLD, grey_annotation_mode, read_annotation_ids,
                                     read_label_image, read_result_ids, read_result_ids_and_0_255)


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


def test_the_result_reader_tells_a_grey_0_255_mask_read_as_object_1(tmp_path):
    """What the evaluation's 0/255 note needs (davis2017-evaluation reads 255 as object 255), from the reading
    itself: grey 0/255 (8-bit, 16-bit, 0/65535, all 255) yes; ids 0/1 in grey or palette, and an RGB file of
    0/255 (noted as RGB instead), no. The ids are `read_result_ids`'s."""
    ids = (two_objects() == 1).astype(np.uint8)
    _save_grey(str(tmp_path / "grey255.png"), ids * 255)
    _save_grey(str(tmp_path / "white.png"), np.full_like(ids, 255))
    _save_grey(str(tmp_path / "grey01.png"), ids)
    for high in (255, 65535):
        _save_uint16(str(tmp_path / f"wide{high}.png"), ids.astype(np.int64) * high)
    Image.fromarray(np.repeat(ids[..., None] * 255, 3, axis=2), mode="RGB").save(str(tmp_path / "rgb255.png"))
    palette = Image.fromarray(ids, mode="P")
    palette.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
    palette.save(str(tmp_path / "palette.png"))
    want = {"grey255.png": True, "white.png": True, "wide255.png": True, "wide65535.png": True,
            "grey01.png": False, "rgb255.png": False, "palette.png": False}
    for name, read_as_0_255 in want.items():
        path = str(tmp_path / name)
        got, read_0_255 = read_result_ids_and_0_255(path, objects=1)
        assert read_0_255 is read_as_0_255, name
        np.testing.assert_array_equal(got, read_result_ids(path, objects=1))


# First masks (read_label_image) and ground truth (read_annotation_ids, grey_annotation_mode) read the same file alike.


def _save_grey(path: str, values: np.ndarray) -> None:
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)


def _gap_ids_with_void(thin: bool) -> np.ndarray:
    """Ids 1 and 3 (object 2 enters later) with a void band (255): as squares, or as 2-px poles."""
    ids = two_objects()
    if thin:  # no object pixel has 8 neighbours of its own id
        ids = np.zeros_like(ids)
        ids[2:22, 6:8], ids[2:22, 20:22] = 1, 2
    ids[ids == 2] = 3
    ids[22:24, :] = 255
    return ids


@pytest.mark.parametrize("thin", [False, True], ids=["squares", "poles"])
def test_grey_ids_with_a_gap_and_void_read_as_ids_in_both_readers(tmp_path, thin):
    """Values {0, 1, 3, 255} were refused as 'several objects in grey? Save object ids 1, 2, ... (grey values below
    128)', which is what the user did: only gap-free ids 1..N were ids beside void."""
    path = str(tmp_path / "gap.png")
    ids = _gap_ids_with_void(thin)
    _save_grey(path, ids)
    assert grey_annotation_mode(path) == GREY_IDS
    np.testing.assert_array_equal(read_label_image(path)[0], ids)
    np.testing.assert_array_equal(read_annotation_ids(path), ids)


def _box_downscaled_with_area(size: int) -> np.ndarray:
    """A 0/255 square of `size` px 3 px off the 4-px grid, downscaled 4x with cv2.INTER_AREA: its top and left edges
    come out a quarter covered (64), their corner 1/16 (16), the other edges on the grid (0/255)."""
    canvas = (19 + size + 16) // 4 * 4
    mask = np.zeros((canvas, canvas), np.uint8)
    mask[19:19 + size, 19:19 + size] = 255
    return cv2.resize(mask, (canvas // 4, canvas // 4), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("size", [13, 197])
def test_a_0_255_mask_whose_anti_aliased_edges_are_all_below_128_stays_one_object(tmp_path, size):
    """Greys below 128 beside 255 read as ids (for 1, 3, 255 above) misread such a mask: the 13-px box as ids
    {16, 64, 255} (the object void, its edges two objects), the 197-px one refused as ids blended by a resize. Both
    were object 1, as the thresholded mask is."""
    values = _box_downscaled_with_area(size)
    assert set(np.unique(values).tolist()) == {0, 16, 64, 255}  # the premise: every edge grey below 128
    path = str(tmp_path / "box.png")
    _save_grey(path, values)
    want = (values > 127).astype(np.uint8)
    labels, palette = read_label_image(path)
    assert palette is None
    np.testing.assert_array_equal(labels, want)
    assert grey_annotation_mode(path) == GREY_THRESHOLD
    np.testing.assert_array_equal(read_annotation_ids(path), want)


def test_one_dark_grey_beside_255_is_still_an_anti_aliased_edge_or_refused(tmp_path):
    """One grey below 128 besides 0 and 255 (not id 1) stays what it was: an anti-aliased edge row of a 0/255 mask
    is thresholded, and a region of it is refused as ambiguous (object 100 and void, or two objects in greys)."""
    mask = np.where(two_objects() == 1, 255, 0).astype(np.uint8)
    mask[3, 4:14] = 100  # the object's top row, anti-aliased
    path = str(tmp_path / "soft.png")
    _save_grey(path, mask)
    np.testing.assert_array_equal(read_label_image(path)[0], mask > 127)
    np.testing.assert_array_equal(read_annotation_ids(path), mask > 127)
    path = str(tmp_path / "two_greys.png")
    _save_grey(path, np.select([two_objects() == 1, two_objects() == 2], [255, 100], 0))
    for read in (read_label_image, read_annotation_ids, grey_annotation_mode):
        with pytest.raises(ImageReadError, match=r"two_greys.png: grey values \[100, 255\] fill regions"):
            read(path)


def _save_uint16(path: str, values: np.ndarray) -> None:
    assert cv2.imwrite(path, values.astype(np.uint16))
    assert Image.open(path).mode == "I;16"  # the premise: 16-bit grey


def test_16_bit_grey_ids_read_as_ids_for_first_masks_and_ground_truth(tmp_path):
    """cv2.imwrite of uint16 ids: read_result_ids read them, while read_label_image said 'a I;16 image is not a
    mask' and read_annotation_ids 'not an annotation DAVIS tools read' (np.array(Image.open(p)) reads it)."""
    path = str(tmp_path / "00000.png")
    for ids in (two_objects(), _gap_ids_with_void(thin=False)):
        _save_uint16(path, ids)
        labels, palette = read_label_image(path)
        assert labels.dtype == np.uint8 and palette is None
        np.testing.assert_array_equal(labels, ids)
        assert grey_annotation_mode(path) == GREY_IDS
        np.testing.assert_array_equal(read_annotation_ids(path), ids)
        np.testing.assert_array_equal(read_annotation_ids(path), np.array(Image.open(path)))  # DAVIS tools' reading


@pytest.mark.parametrize("high", [255, 65535])
def test_16_bit_grey_binary_masks_read_as_one_object(tmp_path, high):
    """A 0/65535 mask (a binary mask saved 16-bit) was told to 'save ... as grey PNGs (8- or 16-bit)'."""
    path = str(tmp_path / "00000.png")
    _save_uint16(path, np.where(two_objects() == 1, high, 0))
    want = (two_objects() == 1).astype(np.uint8)
    np.testing.assert_array_equal(read_label_image(path)[0], want)
    np.testing.assert_array_equal(read_annotation_ids(path), want)
    np.testing.assert_array_equal(read_result_ids(path, objects=1), want)


def test_16_bit_grey_above_255_is_refused_as_16_bit_without_pillow_modes(tmp_path):
    path = str(tmp_path / "wide.png")
    _save_uint16(path, two_objects().astype(np.uint16) * 300)
    for read in (read_label_image, read_annotation_ids, grey_annotation_mode):
        with pytest.raises(ImageReadError, match=r"wide.png: 16-bit grey PNG with values above 255 \(300, 600\)") as e:
            read(path)
        assert "I;16" not in str(e.value)
