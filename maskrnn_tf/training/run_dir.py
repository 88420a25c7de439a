"""The run directory: its resolved config (config.json), its lock and what may be replaced in it."""
from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from typing import Callable, Iterator, List, Optional

from maskrnn_tf.io.atomic_file import atomic_write
from maskrnn_tf.training.config import TrainConfig, drop_retired

CONFIG_NAME = "config.json"


LOCK_NAME = ".lock"

# A finished run trained further keeps its earlier model.keras as model_step<N>.keras (N: the finish's step; a
# _2, _3 ... suffix beside an older one) or model_earlier.keras when no checkpoint gives N (training.loop).
EARLIER_FINISH = re.compile(r"model_step(\d+)(?:_\d+)?\.keras")


def earlier_finish_stem(step: int) -> str:
    """The file stem an earlier finish at `step` is kept under (0: unknown); see EARLIER_FINISH."""
    return f"model_step{step}" if step else "model_earlier"


# What a run writes into its folder besides config.json and its lock, or reads there as its own: the final model
# (loop.MODEL_NAME), best_model.BEST_DIR, loop.STAGE_A_DIR and checkpoints/ (their checkpoint managers delete the
# checkpoints they do not keep), logs/ (TensorBoard), loop.VALIDATED_NAME and checkpointing.PRECISION_FILE (those
# modules import this one; a test keeps the names alike). config.json is written before any of them (loop._train),
# so in a folder without it they are someone else's: training would replace them or take them for the run's.
RUN_NAMES = ("best", "checkpoints", "last_validation.json", "logs", "model.keras", "precision.json", "stage_a")
# Also named by pattern: a finished run's earlier model.keras kept aside (EARLIER_FINISH, earlier_finish_stem) and
# the temporary folders of best_model's replace, which the next training repairs or removes (its _OLD_PREFIX and
# _NEW_PREFIX).
RUN_NAME_PATTERN = re.compile(rf"{EARLIER_FINISH.pattern}|{earlier_finish_stem(0)}\.keras|\.best\.(?:old|new)-.+")
# What run_dir_lock writes into its lock: a pid (nothing yet while it is being taken).
_OWN_LOCK = re.compile(rb"(?:\d+\n)?")
# best_model.RECORD_NAME (that module imports this one): a folder holding it is a run's best model, whose
# config.json would pass for a run's.
BEST_RECORD_NAME = "best.json"


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
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # minus the umask: a group may share the run
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(run_dir, fd) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_run_dir_free(run_dir: str) -> None:
    """Raises RunDirBusyError when another live process holds `run_dir_lock(run_dir)`; takes nothing, writes
    nothing (a missing run dir or lock file is free).

    For the workers of a multi-worker run, which all refuse a run dir in use before the cluster is built; the
    chief takes the lock itself only once it is. The probe is a shared `flock`, held only for the call: probes
    never conflict with each other, and one in progress would refuse a `run_dir_lock` taken at that moment (the
    chief's is taken after the cluster is up, which every worker enters after its probe).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: run_dir_lock locks nothing either
        return
    try:
        # Read-only: a shared lock needs no more (also where NFS emulates flock with POSIX locks).
        fd = os.open(os.path.join(run_dir, LOCK_NAME), os.O_RDONLY)
    except FileNotFoundError:  # no training has locked it yet
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(run_dir, fd) from None
    finally:
        os.close(fd)  # releases the probe


def _busy(run_dir: str, fd: int) -> RunDirBusyError:
    """The error for a run dir whose lock (open as `fd`) another process holds; names the pid it recorded."""
    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
    return RunDirBusyError(f"{run_dir} is in use by another training (pid {holder}); wait for it to finish or stop "
                           "it, or use another --run_dir.")


def foreign_entries(run_dir: str) -> List[str]:
    """The names (sorted) in `run_dir` that a run writes or reads as its own, when `run_dir` holds no config.json
    and so is not a run: they are someone else's. Empty for a run, a new folder or one without such names.

    A run writes only its lock before config.json (loop._train writes config.json once the checkpoint fits): a
    `.lock` holding what run_dir_lock writes is a run stopped before, whose folder it still is; any other `.lock`
    (other text, a folder, a link) is another program's, which taking the lock would truncate or follow.
    """
    if os.path.exists(os.path.join(run_dir, CONFIG_NAME)):
        return []
    try:
        names = os.listdir(run_dir)
    except OSError:  # missing (a new run), or not listable: what writes there next reports it
        return []
    theirs = [name for name in names if name in RUN_NAMES or RUN_NAME_PATTERN.fullmatch(name)]
    if LOCK_NAME in names and not _is_run_lock(os.path.join(run_dir, LOCK_NAME)):
        theirs.append(LOCK_NAME)
    return sorted(theirs)


def _is_run_lock(path: str) -> bool:
    """Whether `path` is a lock file as run_dir_lock leaves it: a regular file holding a pid, or empty."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:  # a link (O_NOFOLLOW), unreadable or gone: not one we may take
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and bool(_OWN_LOCK.fullmatch(os.read(fd, 64)))
    finally:
        os.close(fd)


def check_run_dir_is_ours(run_dir: str) -> None:
    """Raises ConfigMismatchError, writing nothing, when `run_dir` is a folder of someone else's that training would
    write into (see `foreign_entries`); names what it holds and what to do."""
    theirs = foreign_entries(run_dir)
    if theirs:
        raise ConfigMismatchError(
            f"{run_dir} is not a training run (it has no {CONFIG_NAME}) but holds {', '.join(theirs)}, which "
            "training writes (replacing what is there) or reads as its own. Use a new --run_dir, or move them out "
            "of it first.")


def check_init_checkpoint(run_dir: str, init_checkpoint: Optional[str], stored_init: Optional[str],
                          own: List[str]) -> None:
    """Raises ConfigMismatchError when a run with checkpoints of its own (`own`, newest first) is given another
    `init_checkpoint` than the one it began from (`stored_init`, its config.json's).

    init_checkpoint only starts a run without checkpoints: taken with them it would be ignored while config.json
    claimed the run began from it.
    """
    if own and (init_checkpoint or None) != (stored_init or None):
        raise ConfigMismatchError(
            f"{run_dir} resumes from its own checkpoints (newest {own[0]}); init_checkpoint "
            f"{init_checkpoint!r} would be ignored (the run began "
            + (f"from {stored_init!r}" if stored_init else "at step 0") + "). To start from "
            "another checkpoint use a new --run_dir; to resume this run, "
            + (f"pass --init_checkpoint={stored_init}." if stored_init else "drop --init_checkpoint."))


STEP_KEYS = ("stage_a_steps", "stage_b_steps")


def _checkpoint_steps(folder: str) -> List[int]:
    """The steps of the checkpoints the state file of `folder` names (checkpoints are numbered by step)."""
    from maskrnn_tf.training.checkpoint_files import checkpoint_paths

    paths = checkpoint_paths(folder) if os.path.isdir(folder) else []
    return [int(p.rsplit("-", 1)[1]) for p in paths if p.rsplit("-", 1)[-1].isdigit()]


def newest_checkpoint_step(run_dir: str) -> int:
    """The step of the newest checkpoint the run's state file names (0 when there is none)."""
    return max(_checkpoint_steps(os.path.join(run_dir, "checkpoints")), default=0)


def kept_stage_a_step(run_dir: str) -> Optional[int]:
    """The step of the checkpoint the run kept at the end of its stage A (`<run_dir>/stage_a`), None without one."""
    return max(_checkpoint_steps(os.path.join(run_dir, "stage_a")), default=None)


def step_change_problem(stored: dict, new: dict, step: int) -> Optional[str]:
    """Why a run at `step` cannot continue with the step counts of `new` instead of `stored` (None: it can).

    More steps in either stage just train longer. A total below the steps already done is refused, and so
    is a new stage A length once the run has gone past either length: the steps done would change stage
    after the fact (stage B's clip position is counted from the end of stage A).
    """
    old_a, new_a = stored["stage_a_steps"], new["stage_a_steps"]
    total = new_a + new["stage_b_steps"]
    if total < step:
        return (f"the run is at step {step} but stage_a_steps + stage_b_steps = {new_a} + "
                f"{new['stage_b_steps']} = {total}; step counts can grow on resume, not drop below the steps done")
    if new_a != old_a and step > min(old_a, new_a):
        return (f"the run is at step {step}, past the end of stage A ({old_a} steps stored, {new_a} now): "
                "stage_a_steps can change only while the run is still in stage A")
    return None


def prepare_run_dir(run_dir: str, config: TrainConfig, overwrite_config: bool = False,
                    report: Callable[[str], None] = print, write: bool = True) -> str:
    """Creates `run_dir` and writes config.json; refuses a run dir made with a different config, or a folder of
    someone else's (`check_run_dir_is_ours`).

    Returns the path of config.json. With `write=False` only the checks and reports run (the caller writes
    it with `write_run_config` once the run's checkpoint has been restored into the new settings). With
    `overwrite_config` the stored config is replaced (the run resumes from its checkpoints with the new
    settings), unless `step_change_problem` refuses its step counts. A config that differs only in the step
    counts continues the run and is stored (reported through `report`) unless `step_change_problem` refuses it.
    """
    if os.path.isfile(os.path.join(run_dir, BEST_RECORD_NAME)):
        parent = os.path.dirname(os.path.abspath(run_dir))
        raise ConfigMismatchError(
            f"{run_dir} is the best model kept by a run (it holds {BEST_RECORD_NAME}), not a run: training there "
            f"would replace that model. Resume the run with --run_dir={parent}, or start a new run from one of its "
            f"checkpoints with --init_checkpoint={os.path.join(parent, 'checkpoints')} and a new --run_dir.")
    check_run_dir_is_ours(run_dir)  # again under the lock: train() checked before taking it
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, CONFIG_NAME)
    if os.path.exists(path) and overwrite_config:
        _report_overwrite(path, config, report)
        stored, new = read_config_json(path), json.loads(config.to_json())
        # Other settings may change; step counts that would rewrite the steps already done may not. Without a
        # readable config, stage A ended where the run kept its end (stage_a/); without that either (a run still in
        # stage A, or without one) only the total is checked.
        kept = kept_stage_a_step(run_dir) if stored is None else None
        if stored is not None:
            stored = completed_config(drop_retired(stored))
        else:
            stored = {"stage_a_steps": new["stage_a_steps"] if kept is None else kept, "stage_b_steps": 0}
        problem = step_change_problem(stored, new, newest_checkpoint_step(run_dir))
        if problem is not None and kept is not None:
            problem = problem.replace(" steps stored, ", " steps, as its stage_a/ checkpoint says; ")
        if problem is not None:
            raise ConfigMismatchError(f"{run_dir}: {problem}; --overwrite_config changes the other settings only.")
    if os.path.exists(path) and not overwrite_config:
        try:
            with open(path, encoding="utf-8") as f:
                stored = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigMismatchError(f"{path}: unreadable ({err}); restore it, or pass --overwrite_config to store "
                                      "this command's settings in its place (step counts that would change the steps "
                                      "done are still refused).")
        new = json.loads(config.to_json())
        if stored == new:
            return path
        retired = drop_retired(stored)
        if retired != stored and retired == new:
            return _write_config(path, config) if write else path
        stored = retired
        # A config.json written before a setting existed lacks its key; at the setting's default it is the
        # same run (a user who upgrades can resume), at any other value it is another config.
        absent = missing_keys(stored, json.loads(TrainConfig().to_json()))
        stored_completed = completed_config(stored)
        differing = {line.split(":", 1)[0] for line in config_diff(stored_completed, new)}
        diff = [line for line in config_diff(stored, new) if line.split(":", 1)[0] in differing]
        if absent and not differing - set(STEP_KEYS):
            defaults = ", ".join(repr(_lookup(new, key)) for key in absent)
            report(f"{CONFIG_NAME} predates {', '.join(absent)}; continuing the run with their defaults ({defaults})")
        stored = stored_completed
        if stored == new:
            return _write_config(path, config) if write else path
        steps_only = {k: v for k, v in stored.items() if k not in STEP_KEYS} == {
            k: v for k, v in new.items() if k not in STEP_KEYS} and all(k in stored for k in STEP_KEYS)
        if not steps_only:
            raise ConfigMismatchError(
                f"{run_dir} was created with another config ({'; '.join(diff[:8])}). Use a new --run_dir, or "
                "pass --overwrite_config to continue this run with the new settings.")
        problem = step_change_problem(stored, new, newest_checkpoint_step(run_dir))
        if problem is not None:
            raise ConfigMismatchError(f"{run_dir}: {problem} ({'; '.join(diff)}).")
        report(f"step counts changed ({'; '.join(diff)}); continuing the run with them")
    return _write_config(path, config) if write else path


def read_config_json(path: str) -> Optional[dict]:
    """The JSON object in `path` (a run's config.json), None when it cannot be read as one."""
    try:
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) else None


def _report_overwrite(path: str, config: TrainConfig, report: Callable[[str], None]) -> None:
    """Says which settings of config.json at `path` the run continues with changed (nothing when none is)."""
    try:
        with open(path, encoding="utf-8") as f:
            stored = drop_retired(json.load(f))
    except (OSError, ValueError, AttributeError) as err:
        report(f"--overwrite_config: replacing the unreadable {path} ({err})")
        return
    diff = config_diff(stored, json.loads(config.to_json()))
    if diff:
        report(f"--overwrite_config: continuing the run with {'; '.join(diff)}")


def write_run_config(run_dir: str, config: TrainConfig) -> str:
    """Writes `<run_dir>/config.json` (atomically); returns its path."""
    return _write_config(os.path.join(run_dir, CONFIG_NAME), config)


def _write_config(path: str, config: TrainConfig) -> str:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(config.to_json() + "\n")

    atomic_write(path, write, durable=True)
    return path


def completed_config(stored: dict) -> dict:
    """A config.json's dict with the keys added since it was written filled in at their defaults (the same run, as
    a resumed training reads it); unchanged when none is missing, or when it holds keys this version does not know
    (a diff against it then names them)."""
    if not missing_keys(stored, json.loads(TrainConfig().to_json())):
        return stored
    try:
        return json.loads(TrainConfig.from_dict(stored).to_json())
    except (ValueError, TypeError):
        return stored


def missing_keys(stored: dict, full: dict, prefix: str = "") -> List[str]:
    """The dotted keys of `full` that `stored` lacks (sorted)."""
    out = []
    for key in sorted(full):
        if key not in stored:
            out.append(prefix + key)
        elif isinstance(full[key], dict) and isinstance(stored[key], dict):
            out += missing_keys(stored[key], full[key], prefix + key + ".")
    return out


def _lookup(values: dict, dotted: str):
    for part in dotted.split("."):
        values = values[part]
    return values


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
