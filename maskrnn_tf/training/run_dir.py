"""The run directory: its resolved config (config.json) and atomic file writes."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Callable, Iterator, List

from maskrnn_tf.training.config import TrainConfig

CONFIG_NAME = "config.json"


LOCK_NAME = ".lock"


class ConfigMismatchError(ValueError):
    """The run directory was created with another config."""


class RunDirBusyError(RuntimeError):
    """Another process is training in the run directory."""


@contextlib.contextmanager
def run_dir_lock(run_dir: str) -> Iterator[None]:
    """Holds an exclusive lock on `<run_dir>/.lock` (it records the holder's pid) for the duration.

    Two trainings in one run directory would overwrite each other's checkpoints. The lock is an advisory
    `flock`: the kernel drops it when the holder dies, even by SIGKILL, so there is never a stale lock to
    delete. Where `fcntl` does not exist (Windows) nothing is locked. Raises RunDirBusyError.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirBusyError(
                f"{run_dir} is in use by another training (pid {holder}); wait for it to finish or stop it, "
                "or use another --run_dir.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def atomic_write(path: str, write: Callable[[str], None], suffix: str = "") -> None:
    """Calls write(tmp_path) on a temporary file beside `path`, then renames it over `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp" + suffix, dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def prepare_run_dir(run_dir: str, config: TrainConfig, overwrite_config: bool = False) -> str:
    """Creates `run_dir` and writes config.json; refuses a run dir made with a different config.

    Returns the path of config.json. With `overwrite_config` the stored config is replaced (the run resumes
    from its checkpoints with the new settings).
    """
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, CONFIG_NAME)
    if os.path.exists(path) and not overwrite_config:
        try:
            with open(path, encoding="utf-8") as f:
                stored = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigMismatchError(f"{path}: unreadable ({err}); fix or delete it, or pass --overwrite_config.")
        if stored != json.loads(config.to_json()):
            diff = config_diff(stored, json.loads(config.to_json()))
            raise ConfigMismatchError(
                f"{run_dir} was created with another config ({'; '.join(diff[:8])}). Use a new --run_dir, or "
                "pass --overwrite_config to continue this run with the new settings.")
        return path

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(config.to_json() + "\n")

    atomic_write(path, write)
    return path


def config_diff(a: dict, b: dict, prefix: str = "") -> List[str]:
    """The dotted keys whose values differ between two nested dicts, as 'key: stored A, now B' lines."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, prefix + key + ".")
        elif va != vb:
            out.append(f"{prefix}{key}: stored {va!r}, now {vb!r}")
    return out
