"""Reading ids from the images people give: evaluate's result PNGs and segment's first masks (issue 16,
items 6, 7, 11, 18)."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.inference import (MaskError, SegmentOptions, flow_propagation_step, read_first_mask,
                                  segment_davis, segment_video)
from maskrnn_tf.io import ImageReadError, davis_palette, read_mask, read_palette, write_palette_png
from maskrnn_tf.io.id_images import grey_annotation_mode, read_annotation_ids, read_label_image, read_result_ids
from maskrnn_tf.metrics import EvaluationConfig, UnreadableResultError, evaluate_dataset

from .conftest import HEIGHT, WIDTH, square_ids

DAVIS17 = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                                       "DAVIS-2017-sample"))
needs_data = pytest.mark.usefixtures("shared_data")


def zero_flow(a, b):
    return np.zeros(a.shape[:2] + (2,), np.float32)


def davis17_gt(seq):
    folder = os.path.join(DAVIS17, "Annotations", "480p", seq)
    names = sorted(os.listdir(folder))
    return names, [read_mask(os.path.join(folder, n)) for n in names]


def write_tennis_results(out, save):
    """Ground truth of 'tennis' and 'bear' (void as background) saved with `save(path, ids)`."""
    for seq in ("bear", "tennis"):
        os.makedirs(os.path.join(out, seq))
        names, gts = davis17_gt(seq)
        for name, gt in zip(names, gts):
            save(os.path.join(out, seq, name), np.where(gt == 255, 0, gt).astype(np.uint8))


def save_grey(path, ids):
    Image.fromarray(ids, mode="L").save(path)


def save_davis_rgb(path, ids):
    Image.fromarray(davis_palette()[ids], mode="RGB").save(path)


@needs_data
@pytest.mark.parametrize("save", [save_grey, save_davis_rgb], ids=["grey_ids", "davis_rgb"])
def test_grey_id_and_davis_colour_results_score_as_their_ids(tmp_path, save):
    out = str(tmp_path / "res")
    write_tennis_results(out, save)
    results = evaluate_dataset(DAVIS17, out, EvaluationConfig(skip_first_last=False, processes=1))
    assert [o.name for o in results.objects] == ["bear_1", "tennis_1", "tennis_2"]
    assert all(np.all(o.j == 1.0) and np.all(o.f == 1.0) for o in results.objects)


def test_result_forms_map_to_ids_like_davis2017_evaluation(tmp_path):
    ids = square_ids(0)
    grey = str(tmp_path / "grey.png")
    Image.fromarray(ids, mode="L").save(grey)
    np.testing.assert_array_equal(read_result_ids(grey), np.asarray(Image.open(grey)))  # the official reading
    binary = str(tmp_path / "binary.png")
    Image.fromarray(np.where(ids > 0, 255, 0).astype(np.uint8), mode="L").save(binary)  # DAVIS-2016 results
    np.testing.assert_array_equal(read_result_ids(binary), (ids > 0).astype(np.uint8))


@pytest.mark.parametrize("kind", ["other_colours", "sixteen_bit", "corrupt", "transparent"])
def test_results_that_hold_no_ids_are_refused_naming_the_file(tmp_path, kind):
    path = str(tmp_path / "00001.png")
    ids = square_ids(1)
    if kind == "other_colours":
        rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        rgb[ids == 1] = (10, 200, 30)
        Image.fromarray(rgb, mode="RGB").save(path)
        match = r"00001.png: RGB result with 1 colour\(s\) that are not DAVIS palette colours \(\(10, 200, 30\)\)"
    elif kind == "sixteen_bit":
        Image.fromarray(ids.astype(np.uint16) * 300).save(path)
        match = "00001.png: a I;16 image cannot hold object ids"
    elif kind == "corrupt":
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
        match = "00001.png: unreadable image"
    else:
        Image.fromarray(np.zeros((HEIGHT, WIDTH, 4), np.uint8), mode="RGBA").save(path)
        match = "00001.png: the image has transparent pixels"
    with pytest.raises(ImageReadError, match=match):
        read_result_ids(path)


def save_16_bit(path, ids, channels=3):
    """`ids` in every colour channel of a 16-bit PNG as `cv2.imwrite` saves a uint16 array (48-bit RGB, or 64-bit
    RGBA with an opaque alpha)."""
    import cv2

    array = np.repeat(ids.astype(np.uint16)[..., None], channels, axis=2)
    if channels == 4:
        array[..., 3] = 65535
    assert cv2.imwrite(path, array)


@pytest.mark.parametrize("channels", [3, 4], ids=["rgb48", "rgba64"])
@pytest.mark.parametrize("reader", [read_result_ids, read_label_image, read_annotation_ids])
def test_16_bit_colour_pngs_are_refused_naming_the_file(tmp_path, reader, channels):
    """Pillow opens a 16-bit RGB(A) PNG as an 8-bit RGB(A) image of each sample's top byte: ids 1 and 2 read as
    0, a result scored as empty (J 0.5 with the empty frames) without a word. Results, first masks (segment) and
    ground truth go through the same readers."""
    path = str(tmp_path / "00001.png")
    save_16_bit(path, square_ids(1), channels)
    image = Image.open(path)
    assert image.mode in ("RGB", "RGBA") and not np.asarray(image)[..., :3].any()  # the premise: ids gone
    mode = "RGB" if channels == 3 else "RGBA"
    with pytest.raises(ImageReadError, match=rf"00001.png: a 16-bit {mode} PNG (cannot hold object ids|is not a)"):
        reader(path)


@needs_data
def test_evaluate_refuses_16_bit_colour_results(tmp_path):
    out = str(tmp_path / "res")
    write_tennis_results(out, save_16_bit)
    with pytest.raises(UnreadableResultError, match="bear/00000.png: a 16-bit RGB PNG cannot hold object ids"):
        evaluate_dataset(DAVIS17, out, EvaluationConfig(skip_first_last=False, processes=1))


@needs_data
def test_evaluate_cli_names_an_unreadable_result_and_exits_2(tmp_path):
    out = str(tmp_path / "res")
    write_tennis_results(out, save_grey)
    with open(os.path.join(out, "tennis", "00001.png"), "wb") as f:
        f.write(b"truncated")
    with pytest.raises(UnreadableResultError, match="tennis/00001.png: unreadable image"):
        evaluate_dataset(DAVIS17, out, EvaluationConfig(skip_first_last=False, processes=1))
    proc = subprocess.run(
        [sys.executable, "-m", "maskrnn_tf.evaluate", f"--davis_root={DAVIS17}", f"--results={out}", "--all_frames",
         "--processes=1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "tennis/00001.png: unreadable image" in proc.stderr and "Traceback" not in proc.stderr


@needs_data
def test_segment_davis2017_with_void_then_evaluate_all_frames_accepts_it(tmp_path):
    out = str(tmp_path / "out")
    segment_davis(DAVIS17, "val", zero_flow, out, step_fn=flow_propagation_step,
                  options=SegmentOptions(progress=False, max_size=214))
    _, gts = davis17_gt("tennis")
    assert (gts[0] == 255).any()  # the premise: void in the first annotation
    assert 255 not in np.unique(read_mask(os.path.join(out, "tennis", "00000.png")))
    results = evaluate_dataset(DAVIS17, out, EvaluationConfig(skip_first_last=False, year=2017, processes=1))
    assert [o.j[0] for o in results.objects] == [1.0, 1.0, 1.0]  # frame 0 is the annotation, void excluded


def _save_rgb(path, rgb):
    Image.fromarray(rgb.astype(np.uint8), mode="RGB").save(path)


def test_rgb_first_mask_in_davis_colours_keeps_every_object(tmp_path):
    path = str(tmp_path / "m.png")
    _save_rgb(path, davis_palette()[square_ids(0)])  # dark red and dark green: grey value < 128
    first = read_first_mask(path)
    assert first.object_ids == (1, 2)
    np.testing.assert_array_equal(first.labels, square_ids(0))
    np.testing.assert_array_equal(first.palette, davis_palette())


def test_rgb_first_mask_in_other_colours_maps_colours_to_objects_and_keeps_them(tmp_path):
    colours = np.array([(0, 0, 0), (10, 200, 30), (250, 5, 240)], np.uint8)
    mask = str(tmp_path / "m.png")
    _save_rgb(mask, colours[square_ids(0)])
    first = read_first_mask(mask)
    assert first.object_ids == (1, 2)  # in order of first appearance, top-left first
    np.testing.assert_array_equal(first.labels, square_ids(0))
    np.testing.assert_array_equal(first.palette[1:3], colours[1:])
    frames = str(tmp_path / "vid")
    from .conftest import make_frames

    make_frames(frames)
    out = str(tmp_path / "out")
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, SegmentOptions(progress=False))
    np.testing.assert_array_equal(read_palette(os.path.join(out, "00002.png"))[1:3], colours[1:])


@pytest.mark.parametrize("value", [1, 40, 255])
def test_grey_binary_first_masks_are_read_as_one_object(tmp_path, value):
    path = str(tmp_path / "m.png")
    Image.fromarray(((square_ids(0) > 0) * value).astype(np.uint8), mode="L").save(path)
    first = read_first_mask(path)
    assert first.object_ids == (1,)
    np.testing.assert_array_equal(first.labels, (square_ids(0) > 0).astype(np.uint8))


@pytest.mark.parametrize("value", [2, 64, 100])
def test_a_mask_of_one_dark_grey_is_one_object_for_ground_truth_as_for_first_masks(tmp_path, value):
    """A 0/64 mask was object 1 for segment (read_label_image) and all background for evaluate and training
    (read_annotation_ids thresholded it at 127): segment's object 1 was then 'not in the ground truth'."""
    path = str(tmp_path / "m.png")
    Image.fromarray(((square_ids(0) == 1) * value).astype(np.uint8), mode="L").save(path)
    np.testing.assert_array_equal(read_annotation_ids(path), read_label_image(path)[0])
    np.testing.assert_array_equal(read_annotation_ids(path), (square_ids(0) == 1).astype(np.uint8))


def test_grey_first_mask_of_small_ids_and_anti_aliased_masks(tmp_path):
    ids_path, soft_path = str(tmp_path / "ids.png"), str(tmp_path / "soft.png")
    Image.fromarray(square_ids(0), mode="L").save(ids_path)
    assert read_first_mask(ids_path).object_ids == (1, 2)
    soft = (square_ids(0) > 0).astype(np.uint8) * 255
    soft[8, 6:18] = 100  # an anti-aliased edge row: below half, background
    Image.fromarray(soft, mode="L").save(soft_path)
    labels = read_first_mask(soft_path).labels
    assert labels[8, 10] == 0 and labels[9, 10] == 1 and labels.max() == 1


@pytest.mark.parametrize("grey", [(128, 255), (100, 200)])
def test_grey_first_mask_of_large_values_in_solid_regions_is_refused(tmp_path, grey):
    """Two objects saved as grey 128/255 (or 100/200) are not an anti-aliased mask: read as 'foreground where >
    127' they became one object (or lost the darker one) without a word."""
    path = str(tmp_path / "two_greys.png")
    ids = square_ids(0)
    Image.fromarray(np.select([ids == 1, ids == 2], list(grey), 0).astype(np.uint8), mode="L").save(path)
    with pytest.raises(ImageReadError, match=rf"two_greys.png: grey values \[{grey[0]}, {grey[1]}\] fill regions"):
        read_first_mask(path)


def test_noisy_rgb_first_mask_is_refused(tmp_path):
    path = str(tmp_path / "photo.png")
    _save_rgb(path, np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3)))
    with pytest.raises(ImageReadError, match="photo.png: RGB mask with .* distinct colours"):
        read_first_mask(path)
    empty = str(tmp_path / "empty.png")
    _save_rgb(empty, np.zeros((HEIGHT, WIDTH, 3)))
    with pytest.raises(MaskError, match="no object"):
        read_first_mask(empty)



def _colour_table(colours: str) -> np.ndarray:
    """Black and the colours of objects 1, 2 and 3: DAVIS's, or others (objects 1..K in order of appearance)."""
    if colours == "davis":
        return davis_palette()[:4]
    return np.array([(0, 0, 0), (10, 200, 30), (250, 5, 240), (240, 200, 10)], np.uint8)


def _white_background_palette() -> np.ndarray:
    """A palette of ids' own: white background (index 0), objects 1 and 2 in colours, every other entry black."""
    palette = np.zeros((256, 3), np.uint8)
    palette[:3] = [(255, 255, 255), (10, 200, 30), (250, 5, 240)]
    return palette


def _resized_rgb(rgb: np.ndarray, interpolation: int) -> np.ndarray:
    """`rgb` drawn at twice the size and brought back with `interpolation`, as a user fits a mask to the frames."""
    import cv2

    big = cv2.resize(rgb, (2 * WIDTH, 2 * HEIGHT), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(big[1:-1, 1:-1], (WIDTH, HEIGHT), interpolation=interpolation)


@pytest.mark.parametrize("colours", ["davis", "other"])
@pytest.mark.parametrize("interpolation", ["linear", "area"])
def test_rgb_first_mask_resized_with_interpolation_is_refused(tmp_path, colours, interpolation):
    """A colour mask resized with interpolation has blended colours on its edges, a few dozen at most: each was
    read as an object of its own (DAVIS colours: a half-dark red is palette colour 8) and segmented as one."""
    import cv2

    table = _colour_table(colours)
    path = str(tmp_path / "resized.png")
    flag = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}[interpolation]
    _save_rgb(path, _resized_rgb(table[square_ids(0)], flag))
    with pytest.raises(ImageReadError, match=r"resized.png: RGB mask colours .* lie only on the edges .* "
                                             r"nearest-neighbour"):
        read_first_mask(path)
    # The same mask resized with nearest-neighbour, and touching objects, keep their objects.
    _save_rgb(path, _resized_rgb(table[square_ids(0)], cv2.INTER_NEAREST))
    assert read_first_mask(path).object_ids == (1, 2)
    touching = square_ids(0)
    touching[8:20, 18:24] = 2
    _save_rgb(path, table[touching])
    np.testing.assert_array_equal(read_first_mask(path).labels, touching)



def _resized_grey(ids: np.ndarray, interpolation: int) -> np.ndarray:
    """Grey id map `ids` resized to 1.25 times its size with `interpolation` (70x50; at this scale a bilinear
    resize puts a band of blends on every edge of the squares)."""
    import cv2

    return cv2.resize(ids, (70, 50), interpolation=interpolation)


@pytest.mark.parametrize("interpolation", ["linear", "area", "cubic"])
def test_grey_id_first_mask_resized_with_interpolation_is_refused(tmp_path, interpolation):
    """A grey id map of objects 1 and 2 resized with interpolation has a band of 1 wherever object 2 meets the
    background: it was read as object 1 (a ring round object 2) and segmented as such, without a word."""
    import cv2

    flag = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC}[interpolation]
    resized = _resized_grey(square_ids(0), flag)
    ring = (resized == 1) & (_resized_grey(square_ids(0), cv2.INTER_NEAREST) != 1)
    assert ring.sum() > 30  # the premise: object 2's edge became object 1
    path = str(tmp_path / "ids.png")
    Image.fromarray(resized, mode="L").save(path)
    with pytest.raises(ImageReadError, match=r"ids.png: grey value\(s\) 1 lie in bands between 0 and 2 on their edges "
                                             r".* resized with interpolation.* nearest-neighbour"):
        read_first_mask(path)


@pytest.mark.parametrize("width", [2, 3])
def test_a_diagonal_strip_of_an_object_between_two_others_keeps_its_ids(tmp_path, width):
    """Object 1 as a diagonal strip two or three pixels wide between the background and object 2 (a thin part of an
    object along another) was refused as the blend of a resize: along the diagonal axes each of its pixels has 0 on
    one side and 2 on the other. davis2017-evaluation reads such a result as it is."""
    rows, cols = np.mgrid[0:60, 0:80]
    ids = np.where(cols - rows > 20 + width, 2, np.where(cols - rows > 20, 1, 0)).astype(np.uint8)
    path = str(tmp_path / "00001.png")
    Image.fromarray(ids, mode="L").save(path)
    np.testing.assert_array_equal(read_result_ids(path, objects=2), ids)


@pytest.mark.parametrize("case", ["nearest", "touching", "stick beside an object", "ball on an object",
                                  "beside void", "void between"])
def test_grey_id_first_masks_without_blends_keep_their_ids(tmp_path, case):
    """Id maps resized with nearest-neighbour, objects that touch, and thin objects beside others or void are no
    blends of a resize: each keeps its ids."""
    import cv2

    if case == "nearest":
        ids = _resized_grey(square_ids(0), cv2.INTER_NEAREST)
    elif case == "touching":
        ids = square_ids(0)
        ids[8:20, 18:24] = 2
    else:
        ids = _thin_objects(case)
    path = str(tmp_path / "ids.png")
    Image.fromarray(ids, mode="L").save(path)
    np.testing.assert_array_equal(read_label_image(path)[0], ids)


def _blend_counts_by_loops(ids: np.ndarray):
    """blend_shares written as loops over the pixels: {pair: band pixels}, {pair: touching pixels}."""
    height, width = ids.shape
    bands, touching = {}, {}
    for y in range(height):
        for x in range(width):
            own, band, touch = int(ids[y, x]), set(), set()
            for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
                ends = [(y - dy, x - dx), (y + dy, x + dx)]
                ends = [int(ids[v, u]) for v, u in ends if 0 <= v < height and 0 <= u < width]
                if len(ends) == 2 and min(ends) < own < max(ends) and (dy, dx) in ((0, 1), (1, 0)):
                    band.add(min(ends) * 256 + max(ends))
                touch.update(own * 256 + e for e in ends if e > own)
            for pair in band:
                bands[pair] = bands.get(pair, 0) + 1
            for pair in touch:
                touching[pair] = touching.get(pair, 0) + 1
    return bands, touching


def test_blend_counts_match_loops_over_the_pixels():
    import cv2

    from maskrnn_tf.io.id_images import blend_shares

    rng = np.random.default_rng(0)
    for _ in range(4):
        ids = cv2.resize(rng.integers(0, 5, (6, 8)).astype(np.uint8), (23, 17), interpolation=cv2.INTER_LINEAR)
        bands, touching = blend_shares(ids)
        want_bands, want_touching = _blend_counts_by_loops(ids)
        assert {k: int(bands[k]) for k in np.flatnonzero(bands)} == want_bands
        assert {k: int(touching[k]) for k in np.flatnonzero(touching)} == want_touching


def test_a_few_pixels_between_two_ids_along_their_contact_are_no_resize(tmp_path):
    """Object 2 touching the background along 30 rows with 6 pixels of object 1 between them (a hand-drawn map): the
    share of band pixels is below BLEND_SHARE and the map keeps its ids; a strip of object 1 one pixel wide along the
    whole contact is a band, refused naming the palette PNG as the way to save such an object."""
    from maskrnn_tf.io.id_images import grey_edge_blends

    ids = np.zeros((40, 56), np.uint8)
    ids[5:35, 20:40] = 2
    ids[10:16, 19] = 1
    ids[20:30, 5:12] = 1
    path = str(tmp_path / "ids.png")
    Image.fromarray(ids, mode="L").save(path)
    np.testing.assert_array_equal(read_label_image(path)[0], ids)
    ids[5:35, 19] = 1
    assert grey_edge_blends(ids)[:3] == (0, 2, [1])
    Image.fromarray(ids, mode="L").save(path)
    with pytest.raises(ImageReadError, match=r"ids.png: grey value\(s\) 1 lie in bands between 0 and 2 .* one pixel "
                                             r"wide between two others is saved as a palette PNG"):
        read_label_image(path)
    write_palette_png(path, ids)
    np.testing.assert_array_equal(read_label_image(path)[0], ids)

@needs_data
def test_davis2017_annotations_as_grey_ids_keep_their_ids_and_refuse_once_resized(tmp_path):
    """DAVIS-2017's tennis (two objects, void bands along them) saved as a grey id map is no blend, nor resized with
    nearest-neighbour; resized to 427x240 with bilinear interpolation it is refused as a first mask and as a
    result."""
    import cv2

    names, gts = davis17_gt("tennis")
    path = str(tmp_path / "tennis.png")
    Image.fromarray(gts[0], mode="L").save(path)
    np.testing.assert_array_equal(read_label_image(path)[0], gts[0])
    np.testing.assert_array_equal(read_result_ids(path, objects=2), gts[0])
    for size in ((427, 240), (1110, 624), (2135, 1200)):  # 0.5, 1.3 and 2.5 times, nearest-neighbour: ids
        nearest = cv2.resize(gts[0], size, interpolation=cv2.INTER_NEAREST)
        Image.fromarray(nearest, mode="L").save(path)
        np.testing.assert_array_equal(read_label_image(path)[0], nearest)
    Image.fromarray(cv2.resize(gts[0], (427, 240), interpolation=cv2.INTER_LINEAR), mode="L").save(path)
    for read in (read_label_image, lambda p: read_result_ids(p, objects=2)):
        with pytest.raises(ImageReadError, match=r"tennis.png: grey value\(s\) .* resized with interpolation"):
            read(path)


@pytest.mark.parametrize("colours", ["davis", "other"])
def test_quantised_palette_first_mask_is_refused(tmp_path, colours):
    """Pillow's convert("P", palette=ADAPTIVE) (and quantize()) of a colour mask gives palette indices by colour,
    black last: read as ids, the background was segmented as an object and an object as background."""
    table = _colour_table(colours)
    path = str(tmp_path / "quantised.png")
    image = Image.fromarray(table[square_ids(0)], mode="RGB").convert("P", palette=Image.ADAPTIVE, colors=3)
    image.save(path)
    assert read_palette(path)[0].tolist() != [0, 0, 0]  # as Pillow makes it: index 0 is an object's colour
    with pytest.raises(ImageReadError, match=r"quantised.png: palette PNG whose background \(black\) is index 2, "
                                             r"not 0.*not object ids"):
        read_first_mask(path)
    # A palette PNG of ids with a palette of its own (index 0 black or not, no black object) keeps its ids.
    write_palette_png(path, square_ids(0), _white_background_palette())
    np.testing.assert_array_equal(read_first_mask(path).labels, square_ids(0))

def _thin_objects(case: str) -> np.ndarray:
    """Id maps (255 = void) whose objects have no pixel with 8 like neighbours and touch another object or void."""
    ids = square_ids(0)  # object 1 at rows 8-19, columns 6-17; object 2 at rows 22-33, columns 30-41
    if case == "stick beside an object":
        ids[8:20, 18:20] = 3
    elif case == "ball on an object":
        ids[12:14, 10:12] = 3
    elif case == "beside void":
        ids[8:20, 18] = 255
        ids[8:20, 19:21] = 3
    else:  # a one-pixel void column between two solid objects
        ids[8:20, 18] = 255
        ids[8:20, 19:27] = 3
    return ids


@pytest.mark.parametrize("colours, case", [
    ("davis", "stick beside an object"), ("davis", "ball on an object"), ("davis", "beside void"),
    ("davis", "void between"), ("other", "stick beside an object"), ("other", "ball on an object")])
def test_thin_and_small_objects_in_rgb_masks_are_not_edge_blends(tmp_path, colours, case):
    """A colour with no pixel inside a region of its own is an edge blend only if it is a mix of two colours it
    touches: a 2-px stick beside a person, a 2x2 ball on one, a thin object beside void and the DAVIS void colour
    itself were refused as blends of a resize."""
    ids = _thin_objects(case)
    if colours == "davis":
        rgb, want = davis_palette()[ids], ids
    else:  # void is a DAVIS colour: its cases are DAVIS's
        # Other colours become objects 1..K in order of first appearance (row by row): the stick's or the
        # ball's first pixel comes before object 2's.
        rgb, want = _colour_table(colours)[ids], np.array([0, 1, 3, 2], np.uint8)[ids]
    path = str(tmp_path / "thin.png")
    _save_rgb(path, rgb)
    np.testing.assert_array_equal(read_first_mask(path).labels, want)


def test_palette_first_mask_of_ids_with_a_black_void_entry_keeps_its_ids(tmp_path):
    """A palette PNG of ids 0, 1, 2 and 255 (void) with a palette of its own (white background, the unused
    entries black, void's too) was refused as a quantised colour mask: void's black entry is not a background."""
    ids = square_ids(0)
    ids[20:22, :] = 255
    path = str(tmp_path / "ids.png")
    write_palette_png(path, ids, _white_background_palette())
    np.testing.assert_array_equal(read_first_mask(path).labels, ids)


@needs_data
def test_davis_rgb_first_mask_with_thin_void_keeps_its_objects(tmp_path):
    """DAVIS-2017 void (255) lies in thin bands along the objects: in a DAVIS-colour RGB mask it is no edge blend."""
    _, gts = davis17_gt("tennis")
    path = str(tmp_path / "tennis.png")
    _save_rgb(path, davis_palette()[gts[0]])
    first = read_first_mask(path)
    assert first.object_ids == (1, 2)
    np.testing.assert_array_equal(first.labels, gts[0])

# (2, 7): a palette grey beside a palette colour (an RGB file that is not all grey: the plain palette path).
@pytest.mark.parametrize("grey_ids", [(7,), (56,), (63,), (7, 63), (2, 7)])
def test_davis_rgb_results_and_masks_in_the_palette_greys_keep_their_ids(tmp_path, grey_ids):
    """DAVIS palette colours 7, 56 and 63 are greys (128, 64, 192 in every channel): an RGB file holding only
    them must still map through the palette, not be read as a grey file of ids 128, 64, 192."""
    ids = np.zeros((HEIGHT, WIDTH), np.uint8)
    square = square_ids(0)
    for k, object_id in enumerate(grey_ids, start=1):
        ids[square == k] = object_id
    path = str(tmp_path / "00001.png")
    save_davis_rgb(path, ids)
    np.testing.assert_array_equal(read_result_ids(path), ids)
    first = read_first_mask(path)
    assert first.object_ids == tuple(sorted(grey_ids))
    np.testing.assert_array_equal(first.labels, ids)


def test_grey_values_saved_as_rgb_stay_grey_ids(tmp_path):
    """An RGB file of grey values outside the palette's greys is a grey file: small values are ids and 0/255 a
    DAVIS-2016 binary result, as in an L file."""
    ids_path, binary_path = str(tmp_path / "ids.png"), str(tmp_path / "binary.png")
    _save_rgb(ids_path, np.repeat(square_ids(0)[..., None], 3, axis=2))
    np.testing.assert_array_equal(read_result_ids(ids_path), square_ids(0))
    binary = np.where(square_ids(0) > 0, 255, 0)
    _save_rgb(binary_path, np.repeat(binary[..., None], 3, axis=2))
    np.testing.assert_array_equal(read_result_ids(binary_path), (square_ids(0) > 0).astype(np.uint8))


def test_rgb_annotation_in_other_colours_is_refused_naming_the_file(tmp_path):
    """Ground truth in colours outside the DAVIS palette used to be turned grey and thresholded at 127: a pure red
    object (grey 76) became background without a word, a yellow one foreground."""
    colours = np.array([[0, 0, 0], [255, 0, 0], [255, 255, 0]], np.uint8)
    path = str(tmp_path / "00000.png")
    _save_rgb(path, colours[square_ids(0)])
    with pytest.raises(ImageReadError, match=r"00000\.png: RGB annotation with 2 colour\(s\) that are not DAVIS "
                                             r"palette colours \(\(255, 0, 0\), \(255, 255, 0\)\)"):
        read_annotation_ids(path)
    # DAVIS palette colours in RGB keep their ids (the refusal is for other colours only).
    save_davis_rgb(path, square_ids(0))
    np.testing.assert_array_equal(read_annotation_ids(path), square_ids(0))


def _davis16_mask_upscaled() -> np.ndarray:
    """blackswan's first DAVIS-2016 0/255 mask resized to 1920x1080 with bilinear interpolation (as to match
    full-HD frames): every grey 0..255 appears on its edges."""
    import cv2

    path = os.path.join(os.path.dirname(DAVIS17), "DAVIS-2016", "Annotations", "480p", "blackswan", "00000.png")
    mask = np.asarray(Image.open(path).convert("L"))
    return cv2.resize(mask, (1920, 1080), interpolation=cv2.INTER_LINEAR)


def _all_readers_refuse(path: str, match: str) -> None:
    """The first-mask reader, the ground-truth reader and the sequence's grey mode all refuse `path` alike."""
    for read in (read_label_image, read_annotation_ids, grey_annotation_mode):
        with pytest.raises(ImageReadError, match=match):
            read(path)


@needs_data
def test_ground_truth_resized_with_interpolation_is_refused_as_a_first_mask_is(tmp_path):
    """Ground truth was read by read_annotation_ids without read_label_image's checks: a 0/255 mask upscaled
    bilinearly holds every grey, so it read as ids 1..254 with the object's inside void (255), and a correct result
    scored J = 0 on 254 objects; a grey id map resized so read as a ring of object 1 round object 2."""
    import cv2

    upscaled = _davis16_mask_upscaled()
    assert np.array_equal(np.unique(upscaled), np.arange(256))  # the premise: read as ids 1..254 and void
    resized_ids = _resized_grey(square_ids(0), cv2.INTER_LINEAR)
    for name, values in (("upscaled.png", upscaled), ("ids.png", resized_ids)):
        path = str(tmp_path / name)
        Image.fromarray(values, mode="L").save(path)
        _all_readers_refuse(path, rf"{name}: grey value\(s\) .* resized with interpolation")


@needs_data
def test_evaluate_refuses_ground_truth_of_objects_in_several_greys_naming_the_file(tmp_path):
    """DAVIS-2017's tennis re-saved as grey luminance (0/38/75/220: the objects red and green, void): evaluate read
    the void as the one object and refused a correct result for an object 2 'not in the ground truth'."""
    import shutil

    root = str(tmp_path / "davis")
    shutil.copytree(DAVIS17, root)
    folder = os.path.join(root, "Annotations", "480p", "tennis")
    for name in os.listdir(folder):
        Image.open(os.path.join(folder, name)).convert("L").save(os.path.join(folder, name))
    assert np.unique(np.asarray(Image.open(os.path.join(folder, "00000.png")))).tolist() == [0, 38, 75, 220]
    out = str(tmp_path / "res")
    write_tennis_results(out, write_palette_png)
    with pytest.raises(ImageReadError, match=r"tennis/00000.png: grey values \[38, 75, 220\] fill regions"):
        evaluate_dataset(root, out, EvaluationConfig(skip_first_last=False, sequences=("tennis",), processes=1))


@pytest.mark.parametrize("greys", [(128, 255), (100, 200), (38, 75)])
def test_ground_truth_of_objects_in_several_greys_is_refused_as_a_first_mask_is(tmp_path, greys):
    """Objects saved as greys (a palette annotation re-saved as grey: tennis read 0/38/75/220) were thresholded at
    127 by read_annotation_ids: objects dropped or merged, and void read as object 1, without a word."""
    ids = square_ids(0)
    values = np.select([ids == 1, ids == 2], list(greys), 0).astype(np.uint8)
    values[0:4, :] = 220  # void's luminance, a band as DAVIS-2017's
    path = str(tmp_path / "two_greys.png")
    Image.fromarray(values, mode="L").save(path)
    _all_readers_refuse(path, r"two_greys.png: grey values \[.*\] fill regions")


def test_grey_ids_with_a_gap_read_as_ids_for_ground_truth_as_for_first_masks(tmp_path):
    """Ids 1 and 3 saved as grey (object 2 missing) were ids to the first-mask reader and 'several objects in grey'
    to the ground-truth readers, whose message told the user to save ids below 128, which they were."""
    ids = square_ids(0)
    values = np.where(ids == 2, 3, ids).astype(np.uint8)
    path = str(tmp_path / "gap.png")
    Image.fromarray(values, mode="L").save(path)
    assert grey_annotation_mode(path) == "ids"
    np.testing.assert_array_equal(read_annotation_ids(path), values)
    np.testing.assert_array_equal(read_annotation_ids(path), read_label_image(path)[0])


def test_a_mask_stored_sideways_with_an_exif_orientation_is_read_upright_as_frames_are(tmp_path):
    """Frames apply their EXIF Orientation (read_frame); masks did not: a first mask shown upright by every viewer
    was tracked as a rotated object (square frames: J 0 on frame 0) or refused for its size."""
    from PIL import Image

    from maskrnn_tf.inference.first_mask import read_first_mask
    from maskrnn_tf.io import read_mask
    from maskrnn_tf.io.id_images import read_label_image
    from maskrnn_tf.io.masks import davis_palette

    ids = np.zeros((30, 40), np.uint8)
    ids[2:10, 3:12], ids[15:28, 25:38] = 1, 2
    stored = np.rot90(ids, 1)  # the pixels as a camera stores them; Orientation 6 turns them back clockwise
    image = Image.fromarray(np.ascontiguousarray(stored), "P")
    image.putpalette(davis_palette().reshape(-1).tolist())
    exif = Image.Exif()
    exif[0x0112] = 6
    path = str(tmp_path / "first.png")
    image.save(path, exif=exif)
    assert np.array_equal(read_label_image(path)[0], ids)
    assert np.array_equal(read_mask(path), ids)
    assert np.array_equal(read_first_mask(path, (30, 40)).labels, ids)


@pytest.mark.parametrize("first_value", [1, 64])
def test_later_frames_void_and_entering_objects_of_a_one_object_grey_sequence_read_as_davis_reads_them(
        tmp_path, first_value):
    """A grey ground-truth sequence whose first frame holds only 0 and 1 (one object; DAVIS-2017 ids written by
    cv2.imwrite) read every later frame as foreground where non-zero: void (255) became object 1 and an object
    entering later (id 2) was merged into it, so a perfect result scored below 1 without a word. davis2017-
    evaluation reads the ids as they are: void excluded, object 2 not one of the first frame's objects."""
    from maskrnn_tf.metrics.davis_dataset import SequenceSpec, load_ground_truth

    frames = []
    for t in range(3):
        ids = np.zeros((24, 32), np.uint8)
        ids[5:15, 5:15] = first_value
        if t >= 1:
            ids[4, 4:16] = 255  # void along the object's edge
        if t == 2:
            ids[18:22, 20:30] = 2 if first_value == 1 else first_value  # object 2 enters; a 0/64 mask grows
        path = str(tmp_path / f"{t:05d}.png")
        assert cv2.imwrite(path, ids)
        frames.append(ids)
    spec = SequenceSpec("seq", ("00000", "00001", "00002"), tuple(str(tmp_path / f"{t:05d}.png") for t in range(3)))
    labels, void, objects = load_ground_truth(spec, [1, 2])
    assert objects == (1,)
    np.testing.assert_array_equal(void, np.stack([f == 255 for f in frames[1:]]))
    if first_value == 1:  # the ids as they are, void set to 0
        np.testing.assert_array_equal(labels, np.stack([np.where(f == 255, 0, f) for f in frames[1:]]))
    else:  # one dark grey: the object where it is non-zero, void kept
        np.testing.assert_array_equal(labels, np.stack([(f == first_value).astype(np.uint8) for f in frames[1:]]))


def test_read_mask_reads_the_forms_davis_users_write_and_refuses_others_by_name(tmp_path):
    """maskrnn_tf.io.read_mask thresholded every non-palette mask's grey at 127: a 0/1 grey mask, an RGB mask of
    DAVIS palette colours (red is grey 38) and 16-bit grey ids all read as empty, without a word."""
    ids = np.zeros((12, 16), np.uint8)
    ids[2:6, 2:8], ids[7:11, 9:15] = 1, 2
    one = (ids == 1).astype(np.uint8)
    forms = {"grey01.png": (one, one), "grey0255.png": (one * 255, one), "ids.png": (ids, ids),
             "ids16.png": (ids.astype(np.uint16), ids), "rgb.png": (davis_palette()[ids][..., ::-1], ids)}
    for name, (pixels, expected) in forms.items():
        assert cv2.imwrite(str(tmp_path / name), pixels)
        np.testing.assert_array_equal(read_mask(str(tmp_path / name)), expected, err_msg=name)
    assert cv2.imwrite(str(tmp_path / "teal.png"), np.where(one[..., None] > 0, (150, 120, 20), 0).astype(np.uint8))
    with pytest.raises(ImageReadError, match="teal.png: RGB annotation with 1 colour"):
        read_mask(str(tmp_path / "teal.png"))
