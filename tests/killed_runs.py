"""Filesystem work in a child process killed at a chosen point, as SIGKILL or a power loss would stop it."""
import os
from typing import Callable


def die_before_rename(work: Callable[[], object], rename_number: int) -> None:
    """Runs `work()` in a forked child that exits at once (no cleanup, no `finally` of its own) just before its
    `rename_number`-th `os.rename`; asserts that it got there. Only for work without threads (a fork)."""
    pid = os.fork()
    if pid == 0:
        try:
            real_rename, calls = os.rename, []

            def rename(a, b):
                calls.append(a)
                if len(calls) == rename_number:
                    os._exit(9)
                real_rename(a, b)

            os.rename = rename
            work()
        finally:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] >> 8 == 9, f"the child finished before its rename number {rename_number}"


def gone_pid() -> int:
    """A process id that no longer runs: a forked child that exited at once and was reaped (what a killed run's
    leftovers are named after)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid
