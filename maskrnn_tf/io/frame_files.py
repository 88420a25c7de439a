"""Which files of a folder are a video's frames, in which order.

A frames folder may hold other images: the first-frame mask saved beside the frames (`00000.png` next to
`00000.jpg`), a thumbnail. Frames are the files of ONE image type: the most common one among the folder's
images (ties go to JPEG, then PNG, then BMP), never the first mask itself; the rest are reported as skipped.
Names are sorted naturally (`2.png` before `10.png`), so frames numbered without zero padding keep their order.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Iterable, List, Tuple

# Image types by preference; .jpeg counts as .jpg.
FRAME_TYPES = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".bmp": "bmp"}
_PREFERENCE = ("jpg", "png", "bmp")


def natural_key(name: str) -> Tuple:
    """Sort key that orders the digit runs of a name by value: `frame2` < `frame10`; ties by the plain name."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p), name


@dataclasses.dataclass(frozen=True)
class FrameListing:
    """The frames of a folder (full paths, natural order), their image type, and the images left out."""

    paths: List[str]
    image_type: str
    skipped: List[str]

    def skipped_message(self) -> str:
        """One line saying what was left out and why ('' when nothing was)."""
        if not self.skipped:
            return ""
        shown = ", ".join(os.path.basename(p) for p in self.skipped[:5])
        more = f" and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
        return (f"{os.path.dirname(self.paths[0]) if self.paths else ''}: frames are the {len(self.paths)} "
                f".{self.image_type} images; skipped {len(self.skipped)} other file(s): {shown}{more}")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def list_frames(folder: str | os.PathLike, exclude: Iterable[str | os.PathLike] = ()) -> FrameListing:
    """The frames of `folder`: files of its most common image type (see the module doc), naturally sorted.

    `exclude` (e.g. the first mask) is never a frame, whatever its type. Hidden files are ignored.
    """
    folder = os.fspath(folder)
    excluded = [os.fspath(p) for p in exclude if p]
    by_type = {kind: [] for kind in _PREFERENCE}
    skipped = []
    for name in os.listdir(folder):
        if name.startswith("."):
            continue
        path = os.path.join(folder, name)
        kind = FRAME_TYPES.get(os.path.splitext(name)[1].lower())
        if kind is None or not os.path.isfile(path):
            continue
        if any(_same_file(path, other) for other in excluded):
            skipped.append(path)
            continue
        by_type[kind].append(path)
    counts = {kind: len(paths) for kind, paths in by_type.items()}
    chosen = max(_PREFERENCE, key=lambda kind: (counts[kind], -_PREFERENCE.index(kind)))
    for kind in _PREFERENCE:
        if kind != chosen:
            skipped.extend(by_type[kind])
    order = lambda p: natural_key(os.path.basename(p))  # noqa: E731
    return FrameListing(sorted(by_type[chosen], key=order), chosen, sorted(skipped, key=order))
