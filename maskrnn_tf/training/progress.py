"""The console progress line of a training stage: step, loss, speed and ETA."""
from __future__ import annotations

import datetime
import time
from typing import Callable, Mapping


class Progress:
    """Prints `stage A  step 40/200  loss 0.4123 (seg 0.3100 loc 0.1023)  3.21 step/s  ETA 0:00:50`."""

    def __init__(self, stage: str, first: int, last: int, printer: Callable[[str], None] = print):
        self.stage = stage
        self.first = first  # global step the stage (or this resumed part of it) starts at
        self.last = last  # global step the stage ends at
        self.printer = printer
        self.start = time.perf_counter()

    def line(self, step: int, values: Mapping[str, float]) -> str:
        done = step - self.first
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        speed = done / elapsed
        eta = (self.last - step) / speed if speed > 0 else float("nan")
        eta_text = str(datetime.timedelta(seconds=int(eta))) if eta == eta else "?"
        parts = " ".join(f"{k} {v:.4f}" for k, v in values.items() if k != "loss")
        return (f"stage {self.stage}  step {step}/{self.last}  loss {values.get('loss', float('nan')):.4f} "
                f"({parts})  {speed:.2f} step/s  ETA {eta_text}")

    def report(self, step: int, values: Mapping[str, float]) -> None:
        self.printer(self.line(step, values))
