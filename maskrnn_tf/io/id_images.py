"""Object-id images in the forms people save them: palette PNGs, grey id or binary PNGs, colour RGB masks.

Two readers with different contracts:
- `read_result_ids` reads a segmentation result for scoring, as davis2017-evaluation does
  (`np.array(Image.open(path))`): a palette PNG's indices and a grey PNG's values are object ids. Beyond it:
  a grey PNG holding only 0 and 255 is a DAVIS-2016 binary result (object 1; refused for a sequence of several
  objects), and an RGB PNG whose colours are all DAVIS palette colours maps each colour to its index (also when
  they are all the palette's greys, objects 7, 56 and 63; other all-grey RGB files read as grey files). Anything
  else is refused, naming the file, and so is a grey map resized with interpolation (a 0/255 mask with greys on
  its edges; ids with bands of the ids between them where two meet: `grey_edge_blends`).
- `read_label_image` reads a first-frame annotation: palette indices are ids; a grey mask with one non-zero
  value (0/1, 0/255, any dark grey) is binary; grey values all below 128 are ids; other grey masks
  (anti-aliased edges, SegTrack) are foreground where > 127; an RGB mask maps each distinct colour to an
  object (DAVIS palette colours to their index, other colours to 1..K in order of first appearance), black
  being the background; an RGB mask whose only colours are the palette's greys (64, 128, 192 in every
  channel) is a DAVIS-colour mask of objects 56, 7, 63; a grey mask of ids with 255 (void) is ids (`_grey_ids`:
  1..N, or several values below 128, gaps allowed, unless they lie on the edges between 0 and 255 as a 0/255
  mask's anti-aliased edges do: `_dark_edge_blends`), refused when a resize with interpolation has left bands of
  other ids where two meet (`grey_edge_blends`). An RGB mask with colours that lie only on the edges between
  other colours and mix two of them (the blends a resize with interpolation or anti-aliasing leaves) is refused:
  each blend would be an object; so is a palette PNG whose background (black) is not index 0 (a quantised colour
  mask, whose indices are not ids).
- `read_annotation_ids` reads a dataset's ground truth (DAVIS layouts): a palette PNG's indices (refused, as
  by `read_label_image`, when its background is not index 0), or a grey PNG's values when the sequence's first
  annotation is a grey map of ids as `read_label_image` reads them
  (255 = void; what `cv2.imwrite` of an id array writes, and DAVIS-2016 masks saved as 0/1); when it is a mask
  of one dark grey (0/64), foreground where non-zero, as `read_label_image` reads it; other grey masks
  (DAVIS-2016's 0/255, anti-aliased edges) are foreground where > 127.
Every reader reads a 16-bit grey PNG (ids saved as uint16 by `cv2.imwrite`; Pillow mode I;16) by its values, as
davis2017-evaluation does, under the 8-bit grey rules; a 0/65535 one as a 0/255 mask (binary); other values above
255 are refused (no object id). Every reader refuses 16-bit colour PNGs, naming the file: Pillow opens 16-bit
RGB(A) as 8-bit RGB(A) of each sample's top byte, so ids saved as uint16 would read as background.
"""
from __future__ import annotations

import os
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
from PIL import Image

from maskrnn_tf.io.masks import VOID_ID, ImageReadError, _open, davis_palette

# More distinct colours than this in an RGB mask means anti-aliased edges or a photo, not flat object colours.
MAX_COLOUR_OBJECTS = 32
# The grey DAVIS palette colours (objects 56, 7 and 63 are (64,)*3, (128,)*3 and (192,)*3).
_DAVIS_GREYS = frozenset({64, 128, 192})


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _unpack(key: int) -> Tuple[int, int, int]:
    """The (r, g, b) of a packed colour (`_pack`)."""
    key = int(key)
    return key >> 16, (key >> 8) & 255, key & 255


def _png_bit_depth(path: str) -> Optional[int]:
    """Bits per sample from a PNG's IHDR chunk; None for other files."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return None
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24]


def _sixteen_bit_colour(image: Image.Image, path: str) -> bool:
    """Whether `image` is a 16-bit PNG that Pillow opened in an 8-bit mode (RGB, RGBA, LA): it keeps each sample's
    top byte, so ids 1..255 saved as uint16 read as 0. (16-bit grey opens as I;16, a mode of its own.)"""
    return not image.mode.startswith("I") and _png_bit_depth(path) == 16


def _kind(image: Image.Image, path: str) -> str:
    """How a refusal names an image: its mode, with the bit depth where the mode hides it."""
    return f"a 16-bit {image.mode} PNG" if _sixteen_bit_colour(image, path) else f"a {image.mode} image"


def _opaque_channels(image: Image.Image, path: str) -> Optional[np.ndarray]:
    """[H, W] grey or [H, W, 3] RGB values of an 8-bit L/LA/RGB/RGBA image (alpha must be opaque), else None."""
    mode = image.mode
    if mode not in ("L", "LA", "RGB", "RGBA") or _sixteen_bit_colour(image, path):
        return None
    array = np.asarray(image)
    if mode in ("LA", "RGBA"):
        if not np.all(array[..., -1] == 255):
            raise ImageReadError(
                f"{path}: the image has transparent pixels ({mode}); save the mask without an alpha channel "
                "(palette PNG of object ids, or grey).")
        array = array[..., :-1]
        if mode == "LA":
            array = array[..., 0]
    if array.ndim == 3 and _all_grey(array):
        nonzero = set(np.unique(array[..., 0]).tolist()) - {0}
        if not nonzero or not nonzero <= _DAVIS_GREYS:
            # An RGB file of grey values is a grey mask, unless every grey is a DAVIS palette colour (objects 56,
            # 7, 63): then it is a DAVIS-colour mask and the palette gives its ids.
            array = array[..., 0]
    return np.ascontiguousarray(array)


def _all_grey(rgb: np.ndarray) -> bool:
    """Whether the three channels of an [H, W, 3] image are equal everywhere."""
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))


def _davis_ids(rgb: np.ndarray) -> Tuple[Optional[np.ndarray], List[Tuple[int, int, int]]]:
    """(ids of `rgb` through the DAVIS palette or None, the colours that are not palette colours)."""
    keys = _pack(davis_palette())
    lookup = {int(k): i for i, k in enumerate(keys)}
    colours, inverse = np.unique(_pack(rgb).reshape(-1), return_inverse=True)
    unknown = [_unpack(c) for c in colours if int(c) not in lookup]
    if unknown:
        return None, unknown
    ids = np.asarray([lookup[int(c)] for c in colours], np.uint8)[inverse]
    return ids.reshape(rgb.shape[:2]), []


def _sixteen_bit_grey(image: Image.Image, path: str) -> bool:
    """Whether `image` is a 16-bit grey PNG: Pillow opens it as I;16 (I;16B, I;16L), or as I in older versions,
    with each pixel's whole value."""
    return image.mode in ("I;16", "I;16B", "I;16L") or (image.mode == "I" and _png_bit_depth(path) == 16)


# How the first-mask and ground-truth readers refuse a 16-bit grey PNG with values above 255 (`_grey_16_values`).
_ABOVE_255 = ("16-bit grey PNG with values above 255 ({shown}): neither object ids (0..255, 255 = void) nor a 0/65535 "
              "binary mask; save object ids 0 (background) and 1..N as a grey PNG (8- or 16-bit) or a palette PNG, "
              "and a binary mask as 0/255 or 0/65535.")


def _grey_16_values(image: Image.Image, path: str, above_255: str = _ABOVE_255) -> np.ndarray:
    """[H, W] uint8 values of a 16-bit grey PNG (`_sixteen_bit_grey`) for the 8-bit grey rules: values all at most
    255 as they are (ids saved as uint16), 0/65535 as 0/255 (a binary mask saved 16-bit). Other values above 255
    raise ImageReadError: "<path>: " + `above_255` with {mode} and {shown} (the first such values) filled in."""
    wide = np.asarray(image).astype(np.int64)
    present = np.unique(wide)
    if set(present.tolist()) <= {0, 65535}:
        return np.where(wide > 0, 255, 0).astype(np.uint8)
    above = present[(present > 255) | (present < 0)]
    if above.size:
        shown = ", ".join(str(v) for v in above[:3]) + (" ..." if above.size > 3 else "")
        # Object ids are 0..255 (DAVIS palettes have 256 entries): larger values are a mask of another scale.
        raise ImageReadError(f"{path}: " + above_255.format(mode=image.mode, shown=shown))
    return wide.astype(np.uint8)


def _mask_values(image: Image.Image, path: str) -> Optional[np.ndarray]:
    """[H, W] grey or [H, W, 3] RGB values of a 16-bit grey PNG (`_grey_16_values`) or an opaque 8-bit L/LA/RGB/RGBA
    image (`_opaque_channels`), else None."""
    return _grey_16_values(image, path) if _sixteen_bit_grey(image, path) else _opaque_channels(image, path)


def _ids_or_values(path: str, refusal: str, above_255: str = _ABOVE_255, grey_palettes: bool = True
                   ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Image.Image]:
    """(ids, None, image) of a palette or 1-bit image, whose pixel values are the ids; (None, values, image) of an
    opaque 8-bit grey or RGB one (`_opaque_channels`) or a 16-bit grey PNG (`_grey_16_values`, refused with
    `above_255`). Other images (16-bit colour, float) raise ImageReadError: "<path>: a <mode> image " (or "a 16-bit
    <mode> PNG ") + `refusal`."""
    image = _open(path)
    if image.mode == "P":
        ids = np.asarray(image, np.uint8).copy()
        return (None, ids, image) if grey_palettes and _grey_palette(ids, _palette(image)) else (ids, None, image)
    if image.mode == "1":
        return np.asarray(image, np.uint8), None, image
    if _sixteen_bit_grey(image, path):
        return None, _grey_16_values(image, path, above_255), image
    values = _opaque_channels(image, path)
    if values is None:
        raise ImageReadError(f"{path}: {_kind(image, path)} {refusal}")
    return None, values, image


def read_result_ids(path: str | os.PathLike, objects: Optional[int] = None) -> np.ndarray:
    """Reads a result PNG as uint8 object ids [H, W] (see the module doc for the accepted forms).

    `objects`: the sequence's object count, when known. A 0/255 grey mask (a DAVIS-2016 binary result) is object
    1; for a sequence of several objects it says nothing about which is which and is refused.

    A 16-bit grey PNG reads by its values (davis2017-evaluation's `np.array(Image.open(path))`), as an 8-bit one;
    a 0/65535 one as a 0/255 one.

    Raises:
      ImageReadError: missing or unreadable file, or a form that does not say which pixel is which object.
    """
    return read_result_ids_and_0_255(path, objects)[0]


def read_result_ids_and_0_255(path: str | os.PathLike, objects: Optional[int] = None) -> Tuple[np.ndarray, bool]:
    """(ids, read_0_255): the ids as `read_result_ids` reads them (same arguments and errors), and whether the file
    was a grey PNG (8- or 16-bit) holding only 0 and 255 (or 0 and 65535), read as object 1: a DAVIS-2016 binary
    result, which davis2017-evaluation reads as object 255 and refuses. Told by the reading itself, so that a
    caller noting such results need not open the file again; RGB and grey + alpha files of 0/255 are not counted
    (davis2017-evaluation fails on their channels first)."""
    path = os.fspath(path)
    # The refusal of values above 255 keeps its wording (tests/reliability/test_id_images.py matches it).
    ids, values, image = _ids_or_values(path, "cannot hold object ids; save results as palette PNGs of object ids "
                                        "(0 background, 1..N objects), grey 8-bit PNGs of ids, or DAVIS-palette RGB "
                                        "PNGs.",
                                        "a {mode} image cannot hold object ids above 255 (it holds {shown}); save ids "
                                        "0 (background) and 1..N (objects) as grey PNGs (8- or 16-bit) or palette PNGs "
                                        "of object ids.")
    if image.format == "JPEG":  # lossy: its edges hold other values than the ids saved (named, not "resized")
        raise ImageReadError(
            f"{path}: JPEG data{' in a .png file' if path.lower().endswith('.png') else ''}: JPEG compression changes "
            "the values along every edge, so they are no object ids; save results as PNG (palette PNGs of object "
            "ids, maskrnn_tf.io.write_palette_png, or grey PNGs of ids).")
    if ids is not None:
        if image.mode == "P":  # davis2017-evaluation would score a quantised palette's colour indices as ids
            _refuse_palette_by_colour(path, ids, _palette(image), _RESULT_ADVICE)
        return ids, False
    if values.ndim == 2:
        present = set(np.unique(values).tolist())
        if present == {0, 255} or present == {255}:
            if objects is not None and objects != 1:
                raise ImageReadError(
                    f"{path}: a 0/255 mask (one foreground) but the sequence has {objects} objects, so it does not "
                    "say which pixel is which object; save each frame as a palette PNG of object ids (0 "
                    "background, 1..N, maskrnn_tf.io.write_palette_png) or a grey 8-bit PNG of ids.")
            grey_file = image.mode in ("L", "P") or _sixteen_bit_grey(image, path)  # P: a grey palette's
            return (values > 0).astype(np.uint8), grey_file  # a DAVIS-2016 binary result
        if _looks_interpolated(values):
            greys = [v for v in sorted(present) if 0 < v < 255]
            raise ImageReadError(
                f"{path}: {len(greys)} grey values between 0 and 255 ({', '.join(map(str, greys[:3]))}, ...) on the "
                "edges of a 0/255 mask, read as object ids: the mask was resized with interpolation (bilinear or "
                "area), which blends its edges; resize masks with nearest-neighbour (cv2.INTER_NEAREST, PIL's "
                "Image.NEAREST) so that every pixel keeps 0/255 or its object id.")
        _refuse_grey_edge_blends(path, values)
        return values.astype(np.uint8), False
    ids, unknown = _davis_ids(values)
    if ids is None:
        shown = ", ".join(str(c) for c in unknown[:3]) + (" ..." if len(unknown) > 3 else "")
        raise ImageReadError(
            f"{path}: RGB result with {len(unknown)} colour(s) that are not DAVIS palette colours ({shown}); "
            "save results as palette PNGs of object ids (maskrnn_tf.io.write_palette_png) or colour object k "
            "with DAVIS palette colour k.")
    return ids, False


_NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)


def _neighbours(values: np.ndarray) -> Iterator[np.ndarray]:
    """The 8 neighbour maps of `values` [H, W] (each pixel's neighbour in one direction; edges replicated)."""
    padded = np.pad(values, 1, mode="edge")
    height, width = values.shape
    for dy, dx in _NEIGHBOURS:
        yield padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width]


def _same_as_neighbours(values: np.ndarray) -> np.ndarray:
    """[H, W] bool: the pixels whose 8 neighbours (edges replicated) all hold their own value."""
    same = np.ones(values.shape, bool)
    for neighbour in _neighbours(values):
        same &= neighbour == values
    return same


def _is_mix(colour: int, others: List[int], tolerance: float = 2.0) -> bool:
    """Whether packed `colour` lies between two of the packed `others` (a + t (b - a), 0 < t < 1, each channel
    within `tolerance`): what interpolating between two colours makes."""
    c = np.asarray(_unpack(colour), np.float64)
    for i, a_key in enumerate(others):
        for b_key in others[i + 1:]:
            a = np.asarray(_unpack(a_key), np.float64)
            d = np.asarray(_unpack(b_key), np.float64) - a
            t = float(np.dot(c - a, d) / np.dot(d, d))
            if 0 < t < 1 and np.abs(a + t * d - c).max() <= tolerance:
                return True
    return False


def _edge_blends(keys: np.ndarray, ignore: Tuple[int, ...] = ()) -> List[Tuple[int, int, int]]:
    """The colours of a packed-RGB mask [H, W] (`_pack`) that a resize with interpolation (bilinear, area, cubic) or
    anti-aliasing leaves between an object and its surroundings: no pixel of theirs inside a region of their own
    colour (all 8 neighbours alike), touching another colour than black, and a mix of two colours they touch
    (black counted). A small or thin object (on black, on another object, beside void) is not one unless its
    colour is such a mix; `ignore` (packed colours, e.g. the DAVIS void) is never one."""
    inside = _same_as_neighbours(keys)
    blends = []
    for colour in np.unique(keys[~inside]):
        colour = int(colour)
        own = keys == colour
        if colour == 0 or colour in ignore or np.any(own & inside):
            continue
        near = set()
        for neighbour in _neighbours(keys):
            near.update(int(v) for v in np.unique(neighbour[own]))
        near.discard(colour)
        if near - {0} and _is_mix(colour, sorted(near | {0})):
            blends.append(_unpack(colour))
    return blends


def _solid_intermediate(values: np.ndarray) -> bool:
    """Whether most pixels of values between 0 and the maximum sit inside a region of their own value (all 8
    neighbours equal), as objects saved in several greys do, rather than on a thin anti-aliased edge."""
    intermediate = (values > 0) & (values < values.max())
    if not intermediate.any():
        return False
    interior = intermediate & _same_as_neighbours(values)
    return interior.sum() > 0.5 * intermediate.sum()


def _looks_interpolated(values: np.ndarray) -> bool:
    """Whether a grey map looks like a 0/255 mask resized with interpolation (bilinear, area, cubic): 0 and 255 with
    at least 3 greys between them, which lie on edges rather than fill regions (as objects saved in several greys
    do). A resize to more than twice the size spreads each edge over several greys, too few of each for
    `grey_edge_blends`."""
    present = np.unique(values)
    between = present[(present > 0) & (present < 255)]
    return (present[0] == 0 and present[-1] == 255 and between.size >= 3 and not _solid_intermediate(values))


# A resize with interpolation (bilinear, area, cubic) turns the edge between grey ids lo and hi into bands of the
# values between them; in a map saved as ids such bands are rare beside the places where lo and hi touch. Refused
# when the band pixels are at least BLEND_SHARE of the band and touching pixels of one pair of ids (and at least
# BLEND_MIN_PIXELS): `python -m bench grey_blends` measures the share on maps drawn and resized.
BLEND_SHARE = 0.25
BLEND_MIN_PIXELS = 8
# Each axis through a pixel as (dy, dx): its two neighbours on that axis lie at -(dy, dx) and +(dy, dx).
_AXES = ((0, 1), (1, 0), (1, 1), (1, -1))
# A band pixel has lo and hi on either side of it across a row or a column: a resize blends every edge so, while an
# object's diagonal strip two pixels wide between two others has its sides across the diagonals only.
_BAND_AXES = ((0, 1), (1, 0))
_PAIRS = 256 * 256  # pair keys lo * 256 + hi


def _pixel_pairs(pixel_keys: List[np.ndarray]) -> np.ndarray:
    """[_PAIRS] counts of pixels per pair key, each pixel counted once per key over the [N] int maps of
    `pixel_keys` (one entry per pixel, -1 = none)."""
    keys = np.stack(pixel_keys)
    pixel = np.broadcast_to(np.arange(keys.shape[1], dtype=np.int64), keys.shape)
    hit = keys >= 0
    unique = np.unique(pixel[hit] * _PAIRS + keys[hit])
    return np.bincount(unique % _PAIRS, minlength=_PAIRS)


def blend_shares(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """([_PAIRS] band pixels, [_PAIRS] touching pixels) per pair of grey ids lo < hi (key lo * 256 + hi) of a grey
    map [H, W]. A band pixel has its two neighbours on one axis (horizontal or vertical) at lo and hi and its own
    value strictly between; a touching pixel holds lo and has a neighbour (of its 8) at hi."""
    grey = np.pad(values.astype(np.int64), 1, constant_values=-1)  # -1: outside the map
    edge = np.zeros(grey.shape, bool)  # the map's pixels beside another value: only they can be either
    for dy, dx in _NEIGHBOURS:
        edge[1:-1, 1:-1] |= grey[1:-1, 1:-1] != grey[1 + dy:grey.shape[0] - 1 + dy, 1 + dx:grey.shape[1] - 1 + dx]
    where = np.flatnonzero(edge)
    flat, width = grey.reshape(-1), grey.shape[1]
    centre, bands, touching = flat[where], [], []
    for dy, dx in _AXES:
        before, after = flat[where - dy * width - dx], flat[where + dy * width + dx]
        low, high = np.minimum(before, after), np.maximum(before, after)
        if (dy, dx) in _BAND_AXES:
            bands.append(np.where((low >= 0) & (low < centre) & (centre < high), low * 256 + high, -1))
        for neighbour in (before, after):
            touching.append(np.where(neighbour > centre, centre * 256 + neighbour, -1))
    return _pixel_pairs(bands), _pixel_pairs(touching)


def grey_edge_blends(values: np.ndarray) -> Optional[Tuple[int, int, List[int], int, int]]:
    """The bands a resize with interpolation leaves in a grey id map [H, W] (`blend_shares`): (lo, hi, the values
    in the bands, band pixels, touching pixels) for the pair of ids with the most band pixels among those whose
    share of band and touching pixels is at least BLEND_SHARE, with at least BLEND_MIN_PIXELS; None if no pair.

    A one-pixel-wide object whose id lies between those on either side of it is such a band too: an id map that
    holds one saves as a palette PNG, which is not checked."""
    bands, touching = blend_shares(values)
    share = bands / np.maximum(bands + touching, 1)
    over = (share >= BLEND_SHARE) & (bands >= BLEND_MIN_PIXELS)
    if not over.any():
        return None
    pair = int(np.argmax(np.where(over, bands, -1)))
    low, high = pair >> 8, pair & 255
    grey = values.astype(np.int64)
    between = np.unique(grey[(grey > low) & (grey < high) & _touches(grey, low) & _touches(grey, high)])
    return low, high, between.tolist(), int(bands[pair]), int(touching[pair])


def _touches(grey: np.ndarray, value: int) -> np.ndarray:
    """[H, W] bool: the pixels with a neighbour (of their 8) at `value`."""
    near = np.zeros(grey.shape, bool)
    for neighbour in _neighbours(grey):
        near |= neighbour == value
    return near


def _refuse_grey_edge_blends(path: str, values: np.ndarray) -> None:
    """Raises ImageReadError for a grey id map that a resize with interpolation has blended (`grey_edge_blends`)."""
    found = grey_edge_blends(values)
    if found is None:
        return
    low, high, greys, band, touching = found
    shown = ", ".join(str(v) for v in greys[:3]) + (" ..." if len(greys) > 3 else "")
    raise ImageReadError(
        f"{path}: grey value(s) {shown} lie in bands between {low} and {high} on their edges ({band} band pixels, "
        f"{touching} where they touch): the map was resized with interpolation (bilinear, area or cubic), which "
        "blends the edges between ids into other ids. Resize masks with nearest-neighbour (cv2.INTER_NEAREST, PIL's "
        "Image.NEAREST) so that every pixel keeps its object id; an object one pixel wide between two others is saved "
        "as a palette PNG of object ids.")


def _refuse_several_greys(path: str, values: np.ndarray) -> None:
    """Raises ImageReadError for a grey map (not ids: `_grey_ids`) whose values between 0 and its maximum fill
    regions, as objects saved in several greys do (`_solid_intermediate`): thresholded, they would merge or vanish."""
    if not _solid_intermediate(values):
        return
    _refuse_grey_edge_blends(path, values)  # ids and void blended by a resize: say so
    nonzero = np.unique(values[values > 0])
    raise ImageReadError(
        f"{path}: grey values {nonzero.tolist()[:8]} fill regions, not just the edges of one object (an "
        "anti-aliased binary mask): several objects in grey? Save object ids 1, 2, ... (grey values below "
        "128) or a palette PNG of object ids; a binary mask holds one non-zero value.")


def read_label_image(path: str | os.PathLike) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Reads an annotation as (uint8 ids [H, W], [256, 3] palette for writing results or None = DAVIS's).

    See the module doc for how each form maps to ids; 255 is void where the form has it (palette PNGs,
    the DAVIS void colour).

    Raises:
      ImageReadError: missing or unreadable file, transparency, an unsupported mode, a 16-bit grey PNG with values
        above 255 (`_grey_16_values`), or an RGB image with more than MAX_COLOUR_OBJECTS colours (not flat object
        colours).
    """
    path = os.fspath(path)
    image = _open(path)
    grey_palette = image.mode == "P" and _grey_palette(np.asarray(image, np.uint8), _palette(image))
    if image.mode == "P" and not grey_palette:
        palette = _palette(image)
        ids = np.asarray(image, np.uint8).copy()
        _refuse_palette_by_colour(path, ids, palette, _FIRST_MASK_ADVICE)
        _refuse_dithered(path, ids, _FIRST_MASK_ADVICE)
        return ids, palette
    if image.mode == "1":
        return np.asarray(image, np.uint8), None
    values = np.asarray(image, np.uint8).copy() if grey_palette else _mask_values(image, path)
    if values is None:
        raise ImageReadError(
            f"{path}: {_kind(image, path)} is not a mask; give a palette PNG of object ids, a grey/binary mask, "
            "or an RGB mask with one flat colour per object.")
    if values.ndim == 2:
        nonzero = np.unique(values[values > 0])
        if nonzero.size <= 1:
            return (values > 0).astype(np.uint8), None
        if _grey_ids(values, nonzero):
            _refuse_grey_edge_blends(path, values)
            return values.astype(np.uint8), None  # small grey values: object ids (255 = void)
        _refuse_several_greys(path, values)
        return (values > 127).astype(np.uint8), None  # anti-aliased binary mask
    ids, _ = _davis_ids(values)
    if ids is not None:
        _refuse_edge_blends(path, values)
        return ids, None
    keys = _pack(values).reshape(-1)
    colours, first_index, inverse = np.unique(keys, return_index=True, return_inverse=True)
    objects = [k for k in np.argsort(first_index, kind="stable") if colours[k] != 0]
    if len(objects) > MAX_COLOUR_OBJECTS:
        raise ImageReadError(
            f"{path}: RGB mask with {len(objects)} distinct colours (at most {MAX_COLOUR_OBJECTS} objects): it "
            "looks anti-aliased or photographic. Paint each object in one flat colour on black, or save a "
            "palette PNG of object ids.")
    _refuse_edge_blends(path, values)
    order = np.zeros(colours.size, np.uint8)
    palette = np.zeros((256, 3), np.uint8)
    for new_id, k in enumerate(objects, start=1):
        order[k] = new_id
        palette[new_id] = _unpack(colours[k])
    return order[inverse].reshape(values.shape[:2]), palette


def _grey_palette(ids: np.ndarray, palette: np.ndarray) -> bool:
    """Whether a palette image is a grey image stored with a palette: every index in use other than 0 is its own grey
    (entry i = (i, i, i)), as Pillow's convert("P") of a grey mask leaves it. A first mask or a result is then read
    as a grey image (a 0/255 mask is binary, not background and void); ground truth keeps its indices
    (`read_annotation_ids`)."""
    used = [int(i) for i in np.unique(ids) if i]
    return bool(used) and all((palette[i] == i).all() for i in used) and not palette[0].any()


# Below this many pixels an object without a pixel inside a region of its own is a speck, not a sign of dithering.
_MIN_DITHERED_PIXELS = 16


def _refuse_dithered(path: str, ids: np.ndarray, advice: str) -> None:
    """Raises ImageReadError for a dithered palette PNG (Pillow's convert("P") of an RGB mask, which dithers into the
    web palette by default): an object's pixels alternate between two or more indices, each taken for an object.
    Told by an id (not 0 or void, at least _MIN_DITHERED_PIXELS pixels) with no pixel inside a region of its own
    (all 8 neighbours alike) and most of its pixels with other such ids on 3 or 4 of their sides, as in a
    checkerboard: a thin object (a line) has itself on two sides, whether it lies on the background, along an
    object or between two, and a diagonal line across an object borders one with pixels inside it."""
    objects = [int(i) for i in np.unique(ids) if i not in (0, VOID_ID)]
    if len(objects) < 2:
        return
    with_inside = set(np.unique(ids[_same_as_neighbours(ids)]).tolist())
    suspects = [i for i in objects if i not in with_inside and np.count_nonzero(ids == i) >= _MIN_DITHERED_PIXELS]
    if not suspects:
        return
    padded = np.pad(ids, 1, mode="edge")
    height, width = ids.shape
    other_sides = np.zeros(ids.shape, np.int8)  # sides with another such id: dither indices alternate among themselves
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        neighbour = padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width]
        other_sides += (neighbour != ids) & np.isin(neighbour, suspects)
    dithered = [i for i in suspects if (other_sides[ids == i] >= 3).mean() > 0.5]
    if dithered:
        raise ImageReadError(
            f"{path}: palette PNG whose object id(s) {dithered[:8]} have no pixel inside a region of their own, most "
            "of them between each other's pixels: a dithered palette (Image.convert('P') of an RGB mask dithers by "
            "default), where each object's pixels alternate between indices. Convert with "
            f"dither=Image.Dither.NONE, or write ids with maskrnn_tf.io.write_palette_png. {advice}")


def _palette(image: Image.Image) -> np.ndarray:
    """[256, 3] uint8 colours of a palette image (entries it does not define are black)."""
    flat = np.asarray(image.getpalette() or [], np.uint8)
    palette = np.zeros((256, 3), np.uint8)
    palette.reshape(-1)[: min(flat.size, 768)] = flat[:768]
    return palette


# What `_refuse_palette_by_colour` tells to do: a first mask may be any RGB mask, ground truth only DAVIS colours.
_FIRST_MASK_ADVICE = ("Save the mask as an RGB PNG (one flat colour per object on black), or as a palette PNG whose "
                      "index is the object id (0 the background).")
_RESULT_ADVICE = ("Save results as palette PNGs whose index is the object id (0 the background; "
                  "maskrnn_tf.io.write_palette_png), grey PNGs of ids, or DAVIS-palette RGB PNGs.")
_ANNOTATION_ADVICE = ("Save ground truth as palette PNGs whose index is the object id (0 the background, 255 void; "
                      "maskrnn_tf.io.write_palette_png) or grey PNGs of ids.")


def _refuse_palette_by_colour(path: str, ids: np.ndarray, palette: np.ndarray, advice: str) -> None:
    """Raises ImageReadError for a palette PNG whose indices are colours, not object ids: index 0 is not black
    while black (the background) is another index in use, as quantising a colour mask (Pillow's
    convert("P", palette=ADAPTIVE), quantize(), PNG optimisers) orders the palette. `advice` ends the message."""
    if not palette[0].any():
        return
    used = np.unique(ids)
    black = [int(i) for i in used if i not in (0, VOID_ID) and not palette[i].any()]
    if black:
        raise ImageReadError(
            f"{path}: palette PNG whose background (black) is index {black[0]}, not 0, while index 0 is the colour "
            f"{tuple(int(c) for c in palette[0])}: its indices are colours, not object ids (a quantised palette, "
            f"e.g. Image.convert('P', palette=ADAPTIVE)). {advice}")


def _refuse_edge_blends(path: str, rgb: np.ndarray) -> None:
    """Raises ImageReadError naming the colours of the RGB mask `rgb` that are edge blends (`_edge_blends`; the
    DAVIS void colour is never one)."""
    blends = _edge_blends(_pack(rgb), ignore=(int(_pack(davis_palette()[VOID_ID])),))
    if blends:
        shown = ", ".join(str(c) for c in blends[:3]) + (" ..." if len(blends) > 3 else "")
        raise ImageReadError(
            f"{path}: RGB mask colours {shown} lie only on the edges between other colours ({len(blends)} such "
            "colour(s)), as a resize with interpolation or anti-aliasing leaves them; each would be segmented as an "
            "object. Resize masks with nearest-neighbour (cv2.INTER_NEAREST, Image.NEAREST), paint each object in "
            "one flat colour, or save a palette PNG of object ids.")


def _grey_ids(values: np.ndarray, nonzero: np.ndarray) -> bool:
    """Whether a grey mask `values` [H, W] with several non-zero values `nonzero` is object ids, with or without
    255 (void): ids 1..N; several values below 128 without 255; or several values below 128 beside 255 (gaps
    allowed: 1 and 3, object 2 entering later) unless they are the anti-aliased edges of a 0/255 mask
    (`_dark_edge_blends`), which then reads as such (foreground > 127), as it did before gaps beside void were ids."""
    ids = [int(v) for v in nonzero if v not in (0, VOID_ID)]
    if ids and ids == list(range(1, len(ids) + 1)):
        # Also above 127: a 0/255 mask upscaled with interpolation holds 1..254 and void, refused as blended ids.
        return True
    # One other grey beside 255 is as likely an anti-aliased edge of a 0/255 mask, or an object in grey beside one
    # in white (refused as such), as an object's id with void.
    if len(ids) < 2 or max(ids) >= 128:
        return False
    return VOID_ID not in nonzero or not _dark_edge_blends(values)


def _dark_edge_blends(values: np.ndarray) -> bool:
    """Whether the greys between 0 and 255 of a grey mask [H, W] lie on the edges between darker and brighter
    values, as a 0/255 mask resized with interpolation (area, bilinear) leaves them, rather than fill objects of
    their own: more than half of their pixels have both a darker and a brighter neighbour (of their 8).

    A resize can leave every edge grey below 128 (a box 3 px off a 4x downscale's grid: {0, 16, 64, 255}), which
    then looks like ids 16 and 64 beside void. An object's pixels do not lie so: inside it (a square) they have
    only neighbours of its own id, and along a thin one (a pole 2 px wide) they touch the background or void, not
    a darker and a brighter value both; each blend pixel does, from the outside (0) to the object (255)."""
    greys = (values > 0) & (values < 255)
    darker, brighter = np.zeros(values.shape, bool), np.zeros(values.shape, bool)
    for neighbour in _neighbours(values):  # edges replicated: the map's border adds no darker or brighter value
        darker |= neighbour < values
        brighter |= neighbour > values
    between = greys & darker & brighter
    return bool(between.sum() > 0.5 * greys.sum())


# How a sequence's grey annotations read, decided on its first (`grey_annotation_mode`); COLOUR: its first is a
# palette, 1-bit or colour file, so its RGB files are DAVIS palette colours even where they hold only greys.
GREY_IDS, GREY_DARK, GREY_THRESHOLD, COLOUR = "ids", "dark", "threshold", "colour"
_GREY_MODE_CACHE: Dict[Tuple[str, int, int], str] = {}


def _grey_mode(values: np.ndarray) -> str:
    """GREY_IDS for grey ids (`_grey_ids`: several greys below 128, or ids 1..N, with or without 255 = void; also
    id 1 alone); GREY_DARK for one other grey below 128 besides 0 (a binary mask saved 0/64: foreground where
    non-zero, 255 void); else GREY_THRESHOLD (0/255, anti-aliased edges, also when all below 128: foreground where
    > 127): as `read_label_image` reads a first mask."""
    unique = np.unique(values)
    nonzero = unique[unique > 0]
    # As `read_label_image` reads a first mask: several greys below 128 are ids, even with a gap (1 and 3: the
    # object count then names the missing id), with or without void, unless beside 255 they are a 0/255 mask's
    # anti-aliased edges. One object as id 1 alone (DAVIS-2017 ground truth saved grey) is ids too, so that later
    # frames' void (255) and objects entering later (2, ...) read as davis2017-evaluation reads them.
    if (nonzero.size > 1 or nonzero.tolist() == [1]) and _grey_ids(values, nonzero):
        return GREY_IDS
    return GREY_DARK if nonzero.size == 1 and nonzero[0] < 128 else GREY_THRESHOLD


def grey_annotation_mode(path: str | os.PathLike) -> str:
    """How the grey annotations of a sequence read (`_grey_mode`: ids, one dark grey, or foreground > 127), from
    its first annotation (where every object is present); palette, colour and 1-bit files: COLOUR. Read every
    frame of the sequence the same way: a later frame may hold only object 2 and void, or only the faint
    anti-aliased edge of an object leaving (in an RGB file, grey 64, 128 or 192, which alone would read as DAVIS
    palette colours). An RGB file of greys only is grey here: a first frame in DAVIS colours holds object 1, red.

    Raises:
      ImageReadError: as `read_label_image` for a first mask: grey ids blended by a resize with interpolation,
        several objects saved as greys that are not ids (`_grey_ids`), or a 16-bit grey PNG with values above 255.
    """
    path = os.fspath(path)
    try:
        stat = os.stat(path)
    except OSError:
        stat = None
    key = (path, stat.st_mtime_ns, stat.st_size) if stat is not None else None
    if key is not None and key in _GREY_MODE_CACHE:
        return _GREY_MODE_CACHE[key]
    image = _open(path)
    values = None if image.mode in ("P", "1") else _mask_values(image, path)
    if values is not None and values.ndim == 3 and _all_grey(values):
        values = values[..., 0]
    mode = _grey_mode(values) if values is not None and values.ndim == 2 else COLOUR
    # Checked here, once per sequence, as `read_label_image` checks a first mask: ids blended by a resize with
    # interpolation (a 0/255 mask upscaled so holds every grey, read as ids 1..254 with its inside void), and
    # objects saved in several greys (a palette annotation converted to grey: thresholded, objects vanish or merge).
    if mode == GREY_IDS:
        _refuse_grey_edge_blends(path, values)
    elif mode == GREY_THRESHOLD:
        _refuse_several_greys(path, values)
    if key is not None:
        _GREY_MODE_CACHE[key] = mode
    return mode


def read_annotation_ids(path: str | os.PathLike, grey_mode: Optional[str] = None) -> np.ndarray:
    """Reads a ground-truth annotation as uint8 object ids [H, W] (0 background, 255 void).

    Args:
      path: the annotation file.
      grey_mode: how grey values read (`grey_annotation_mode`, decided on the sequence's first annotation);
        None decides it on this file (as `grey_annotation_mode`).

    Palette PNGs give their indices and RGB masks in DAVIS palette colours their palette index; grey masks
    are ids or binary (see `grey_mode`), foreground (1) where grey > 127 (DAVIS-2016's 0/255), or where non-zero
    in a sequence of one grey below 128 other than id 1 (255 void there).

    Raises:
      ImageReadError: missing, unreadable or transparent file, a mode that cannot hold a mask (16-bit colour,
        float), a 16-bit grey PNG with values above 255, colours outside the DAVIS palette, a palette PNG whose
        indices are colours (black, the background, not index 0: `_refuse_palette_by_colour`), or (without
        `grey_mode`) greys `grey_annotation_mode` refuses.
    """
    path = os.fspath(path)
    # A grey palette's indices stay ids here: a sequence's frames are read alike (grey_annotation_mode decides on its
    # first), and a frame of background and void only ({0, 255}) is no 0/255 mask.
    ids, values, image = _ids_or_values(path, "is not an annotation DAVIS tools read; save ground truth as "
                                            "palette PNGs of object ids, grey PNGs of ids (255 = void) or 0/255 "
                                            "binary masks.", grey_palettes=False)
    if ids is not None:
        if image.mode == "P":  # as a user's first mask (`read_label_image`): else the background is an object
            _refuse_palette_by_colour(path, ids, _palette(image), _ANNOTATION_ADVICE)
            _refuse_dithered(path, ids, _ANNOTATION_ADVICE)
        return ids
    if grey_mode is None:
        grey_mode = grey_annotation_mode(path)
    if values.ndim == 3 and grey_mode in (GREY_IDS, GREY_DARK, GREY_THRESHOLD) and _all_grey(values):
        values = values[..., 0]  # a grey sequence's RGB file of DAVIS-palette greys only (see grey_annotation_mode)
    if values.ndim == 3:  # colour (an all-grey RGB file is read as grey)
        ids, unknown = _davis_ids(values)
        if ids is not None:
            return ids
        # Thresholding their grey would drop a pure red object (grey 76) and keep a yellow one.
        shown = ", ".join(str(c) for c in unknown[:3]) + (" ..." if len(unknown) > 3 else "")
        raise ImageReadError(
            f"{path}: RGB annotation with {len(unknown)} colour(s) that are not DAVIS palette colours ({shown}); "
            "save ground truth as palette PNGs of object ids, 8-bit grey PNGs of ids (255 = void) or 0/255 binary "
            "masks (or colour object k with DAVIS palette colour k).")
    if grey_mode == GREY_IDS:
        return values.astype(np.uint8)
    if grey_mode == GREY_DARK:  # one dark grey is the object (a 0/64 mask); 255 stays void
        return np.where(values == 255, 255, values > 0).astype(np.uint8)
    return (values > 127).astype(np.uint8)
