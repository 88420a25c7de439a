"""Running the project's CLIs from an experiment driver: echoed, timed, stopped with the driver."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Callable, List, Optional


def run_command(args: List[str], clock: Optional[str] = None, driver: str = "experiment") -> float:
    """Runs one project CLI, echoing it; returns its wall time. A failure stops the driver (SystemExit).

    clock: a file that accumulates the wall time across interrupted calls (rewritten every 30 s): training
      resumes from its checkpoints, so its time is that of every call that worked on it. It is wall time:
      other jobs on the machine inflate it.
    If the driver is stopped (Ctrl-C, or SIGTERM with `on_sigterm` installed), the command gets SIGTERM too
    (training then saves a checkpoint) and the driver waits for it: no orphan keeps writing into its folder. A
    command stopped by SIGINT (a Ctrl-C at the terminal reaches it too) stops the driver as its own Ctrl-C does.
    """
    print("\n$ " + " ".join(shlex.quote(a) for a in args), flush=True)
    before = float(open(clock, encoding="utf-8").read()) if clock and os.path.isfile(clock) else 0.0
    started = time.time()
    process = subprocess.Popen(args)
    try:
        while True:
            try:
                code = process.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                if clock:
                    write_text(clock, f"{before + time.time() - started:.1f}\n")
    finally:
        if process.poll() is None:
            process.terminate()
            _wait_through_stops(process)
        total = before + time.time() - started  # one reading: what the clock file says is what is returned
        if clock:
            write_text(clock, f"{total:.1f}\n")
    if code in (128 + signal.SIGINT, -signal.SIGINT):
        # The terminal's Ctrl-C reached the command's process group, and the command stopped first: the driver's
        # own KeyboardInterrupt may come only after this wait returned (or not at all), so it is raised here.
        raise KeyboardInterrupt
    if code != 0:
        raise SystemExit(f"{driver}: the command above failed with exit code {code}.")
    return total


def exit_quietly_when_interrupted(main: Callable[[List[str]], int], driver: str) -> Callable[[List[str]], int]:
    """`main` of a driver for `app.run`: a Ctrl-C (KeyboardInterrupt), which `run_command` passes on once its
    command has stopped and saved, ends the driver with one line and exit code 130, not a traceback."""

    def run(argv: List[str]) -> int:
        try:
            return main(argv)
        except KeyboardInterrupt:
            print(f"{driver}: interrupted; the command it was running stopped first (a training saves a checkpoint). "
                  "Rerun the same command to resume: what is finished is reused.", file=sys.stderr, flush=True)
            return 130
    return run


def record_if_finished(folder: str, record_path: str, record: dict) -> None:
    """Writes a driver's `record` of how `folder` was made when segment finished it (its segment_run.json is there:
    segment renames the folder in only when whole). For a driver stopped while its segment shut down after that: the
    rerun, which the stop's message promises resumes, would find a finished folder with no record and refuse it."""
    if os.path.isfile(os.path.join(folder, "segment_run.json")) and not os.path.isfile(record_path):
        write_text(record_path, json.dumps(record, indent=1) + "\n")


def _wait_through_stops(process: subprocess.Popen) -> None:
    """Waits for `process`, which was told to stop: a second Ctrl-C or SIGTERM meanwhile does not end the wait (the
    driver would exit while its command still saves into its folder); the first stop goes on once it is done."""
    told = False
    while True:
        try:
            process.wait()
            return
        except (KeyboardInterrupt, SystemExit):
            if not told:
                print("waiting for the command to finish saving (kill it yourself to stop it at once)", flush=True)
                told = True


def on_sigterm(signum, frame) -> None:
    """A SIGTERM handler for drivers: exits through `finally` blocks, so `run_command` stops its command."""
    del frame
    raise SystemExit(128 + signum)


def write_text(path: str, text: str) -> None:
    """Writes `path` atomically (a reader never sees half of it)."""
    from maskrnn_tf.io.atomic_file import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)


def read_json(path: str) -> Optional[dict]:
    """The JSON object in `path`, None when there is no such file."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)
