"""argparse types shared by the benchmarks: a bad value stops the parse (exit 2, the flag named) before any
measurement runs."""
from __future__ import annotations

import argparse
from typing import Callable, List, Sequence, Tuple

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


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return value


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
        if min(height, width) < 32:
            raise argparse.ArgumentTypeError(f"{item}: sides must be >= 32 (VGG-16's minimum)")
        sizes.append((height, width))
    return text
