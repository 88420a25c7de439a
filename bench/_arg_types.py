"""argparse types shared by the benchmarks: a bad value stops the parse (exit 2, the flag named) before any
measurement runs."""
from __future__ import annotations

import argparse
import os
from typing import Callable, List, Optional, Sequence, Tuple

# Flow choices: "flo" is not among them, it reads a folder of .flo files no benchmark takes.
from maskrnn_tf.data.flow_backends import FRAME_FLOWS  # noqa: F401  (the benchmarks import it from here)
from maskrnn_tf.flag_validation import MIN_FRAME_SIDE

PRECISIONS = ("float32", "bfloat16", "float16", "auto")


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def int_at_least(minimum: int, why: str = "") -> Callable[[str], int]:
    """An integer >= `minimum` (`why` says what the bound is for)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be >= {minimum}" + (f" ({why})" if why else ""))
        return value

    return parse


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return int_at_least(0)(text)


def frame_side(text: str) -> int:
    """A frame side in pixels, at least the network's MIN_FRAME_SIDE."""
    return int_at_least(MIN_FRAME_SIDE, "the network's smallest frame side")(text)


def even_count(text: str) -> int:
    """An even integer >= 2 (a count split into two equal halves)."""
    value = int_at_least(2, "two halves of at least one")(text)
    if value % 2:
        raise argparse.ArgumentTypeError(f"{value} must be even (two equal halves)")
    return value


def zero_or_frame_side(text: str) -> int:
    """0 (off) or a frame side in pixels, at least the network's MIN_FRAME_SIDE."""
    value = non_negative_int(text)
    if 0 < value < MIN_FRAME_SIDE:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or >= {MIN_FRAME_SIDE} (the network's smallest frame "
                                         "side)")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return value


def positive_float_list(text: str) -> str:
    """A comma list of finite numbers > 0 (kept as the text the benchmark splits)."""
    for item in text.split(","):
        positive_float(item)
    return text


def int_list(minimum: int, why: str = "") -> Callable[[str], str]:
    """A comma list of integers >= `minimum` (kept as the text the benchmark splits)."""
    item_type = int_at_least(minimum, why)

    def parse(text: str) -> str:
        for item in text.split(","):
            item_type(item)
        return text

    return parse


def existing_dir(text: str) -> str:
    """A folder that exists, as an absolute path (a leading ~ expanded)."""
    path = os.path.abspath(os.path.expanduser(text))
    if not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    return path


def _check_makeable(text: str, path: str) -> None:
    """Refuses `path` (typed as `text`) when what is missing of it could not be made: the nearest existing folder
    above it must be a writable folder. Nothing is made here."""
    existing = os.path.dirname(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: cannot be made ({existing} is not a writable folder)")


def output_file(text: str) -> str:
    """A file written after the work (a leading ~ expanded; its folders are made then): not a folder, and makeable."""
    path = os.path.abspath(os.path.expanduser(text))
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text} is a folder")
    if not os.path.exists(path):
        _check_makeable(text, path)
    return os.path.expanduser(text)


def output_dir(text: str) -> str:
    """A folder the benchmark fills, made if missing (a leading ~ expanded): a folder, or makeable."""
    path = os.path.abspath(os.path.expanduser(text))
    if os.path.exists(path) and not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    if not os.path.exists(path):
        _check_makeable(text, path)
    return os.path.expanduser(text)


def choice_list(choices: Sequence[str]) -> Callable[[str], str]:
    """A comma list of `choices` (kept as the text the benchmark splits)."""

    def parse(text: str) -> str:
        items = text.split(",")
        bad = [item for item in items if item not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad} not in {list(choices)} (a comma list without spaces)")
        return text

    return parse


def size_list(text: str) -> str:
    """A comma list of HxW sizes (e.g. 240x432,480x854), each side >= 32 (VGG-16's minimum)."""
    sizes: List[Tuple[int, int]] = []
    for item in text.split(","):
        parts = item.split("x")
        try:
            height, width = (int(p) for p in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not HxW (e.g. 240x432)")
        if min(height, width) < MIN_FRAME_SIDE:
            raise argparse.ArgumentTypeError(f"{item}: sides must be >= {MIN_FRAME_SIDE} (VGG-16's minimum)")
        sizes.append((height, width))
    return text


def davis_sequence_problem(davis_root: str, sequence: str, frames: int = 1) -> Optional[str]:
    """What keeps --sequence of --davis_root (DAVIS 480p) from giving its first mask and `frames` frames (None:
    nothing), so that a wrong name stops at the parse rather than after a model is built."""
    frame_dir = os.path.join(davis_root, "JPEGImages", "480p", sequence)
    mask = os.path.join(davis_root, "Annotations", "480p", sequence, "00000.png")
    if not sequence or not os.path.isdir(frame_dir) or not os.path.isfile(mask):
        return f"--sequence: {sequence!r} has no frames and first mask (00000.png) under {davis_root}"
    count = len(os.listdir(frame_dir))
    if count < frames:
        return f"--frames: {frames} asked for, {sequence} has {count}"
    return None
