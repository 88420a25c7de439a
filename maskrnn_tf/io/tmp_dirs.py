"""Hidden temporary folders that name their owner, so the leftovers of killed runs can be found and removed.

A folder made by `make_owned_tmp_dir(parent, prefix)` is called `<prefix><owner>-<random>`, where the owner tag
is `<pid>.<pidns>.<boot>@<host>`: the process id, the inode of its pid namespace (hex), the first 12 hex digits of
the kernel's boot id, and the hostname. A run that is killed (SIGKILL, power loss) cannot delete its own temporary
folder; the next run calls `clean_stale_tmp_dirs(parent, prefix)`, which removes only those whose owner tag says
they were made on this host either in an earlier boot or in *this* pid namespace of this boot by a process that
no longer runs.

A pid means something only inside its pid namespace, and a namespace id only within one boot of one kernel (the
root namespace has the same inode on every Linux machine). Two containers may share a hostname and a folder (k8s
pods with hostNetwork, docker --hostname, a run folder on NFS): the other one's live pid is simply absent from our
namespace, so its temporaries are never judged here. A temporary of another boot id on this host is stale
whatever its pid: the run was cut off by a reboot or a power loss (the hostname names the machine, as it did
before namespaces were recorded).
Names of older versions, `<prefix><pid>@<host>-<random>`, are still recognised and left alone on Linux (see
`_is_stale`). Where /proc gives no namespace or boot id, the owner tag is the old `<pid>@<host>`.

`replace_dir` publishes a complete folder in place of an existing one by renames, moving the old one into
such an owned folder first; `restore_interrupted_replace` puts it back when its run died between the renames.
"""
from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import re
import shutil
import socket
import sys
import tempfile
from typing import Callable, Iterator, List, NamedTuple, Optional

from maskrnn_tf.io.file_modes import apply_umask

_BOOT_ID = "/proc/sys/kernel/random/boot_id"  # one random UUID per boot of the kernel, the same in every container
_PID_NAMESPACE = "/proc/self/ns/pid"  # its inode identifies our pid namespace (within this boot)
# tempfile's random names use lower-case letters, digits and '_': never '-', so the last '-' ends the host.
_RANDOM = r"[a-z0-9_]+"
_NAME_MAX = 255  # bytes in one file name (ext4, xfs, btrfs, tmpfs, NFS; APFS and NTFS count 255 characters)
_HASH_DIGITS = 12


def path_matches(name: str, pattern: str) -> bool:
    """fnmatch by '/'-separated part of a relative path: a `*` stays within one folder level (fnmatch's alone also
    matches `/`, so `*.png` would take `analysis/figs/plot.png` for a file of the folder's writer)."""
    parts, wanted = name.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, wanted))


def _host() -> str:
    # '/' cannot appear in a file name; '-' separates the random suffix, which never contains one.
    return socket.gethostname().replace(os.sep, "_") or "localhost"


def _boot_id() -> Optional[str]:
    """The first 12 hex digits of this boot's id (48 bits: no two boots meet by chance), None when unreadable."""
    try:
        with open(_BOOT_ID, "r", encoding="ascii") as f:
            digits = f.read().strip().replace("-", "").lower()
    except (OSError, ValueError):
        return None
    return digits[:12] if re.fullmatch(r"[0-9a-f]{32}", digits) else None


def _pid_namespace() -> Optional[str]:
    """The inode of this process's pid namespace in hex, None where there is none to read (not Linux, no /proc)."""
    try:
        return format(os.stat(_PID_NAMESPACE).st_ino, "x")
    except OSError:
        return None


def _owner_scope() -> Optional[str]:
    """`<pidns>.<boot>`: what a pid of this process is a pid in; None when either part is unknown."""
    namespace, boot = _pid_namespace(), _boot_id()
    return None if namespace is None or boot is None else f"{namespace}.{boot}"


def _pids_are_host_wide() -> bool:
    """True on systems without pid namespaces, where a pid and the hostname name a process (containers of other
    systems run Linux in a VM, which writes the scoped tag)."""
    return not sys.platform.startswith("linux")


def owner_tag(pid: Optional[int] = None) -> str:
    """`<pid>.<pidns>.<boot>@<host>` for `pid` (default: this process) as a process of our namespace and boot, or
    `<pid>@<host>` where those ids are unknown; what owned temporaries are named after."""
    pid = os.getpid() if pid is None else pid
    scope = _owner_scope()
    return f"{pid}@{_host()}" if scope is None else f"{pid}.{scope}@{_host()}"


def _tail_room() -> int:
    """Bytes an owned name may add after its prefix: '-', the longest owner tag of this host (a pid of 10 digits, a
    namespace inode of 16 hex digits), '-', tempfile's 8 random characters, and a suffix of up to 16."""
    return 1 + len(os.fsencode(f"{2 ** 32}.{'f' * 16}.{'0' * 12}@{_host()}")) + 1 + 8 + 16


def hidden_prefix(name: str, tag: str) -> str:
    """`.<name>.<tag>-`: the prefix of the owned temporaries beside the file or folder `name` (tag "tmp" for the
    one being written, "old" for the copy a replace holds). Where an owned name could pass the 255 bytes of one
    file name (with the longest owner tag and suffix this host can write), `name` is cut (on a character) to a
    head followed by '~' and 12 hex digits of the SHA-1 of the whole name: two long names that start alike keep
    apart, and every process finds the same prefix again. Sweeps use `hidden_prefixes`."""
    room = _NAME_MAX - _tail_room() - len(os.fsencode(f"..{tag}-"))
    if len(os.fsencode(name)) <= room:
        return f".{name}.{tag}-"
    digest = hashlib.sha1(os.fsencode(name)).hexdigest()[:_HASH_DIGITS]
    head = name[:room]
    while len(os.fsencode(head)) > room - 1 - _HASH_DIGITS:
        head = head[:-1]
    return f".{head}~{digest}.{tag}-"


def hidden_prefixes(name: str, tag: str) -> List[str]:
    """The prefixes the sweeps look under beside `name`: `hidden_prefix`, then `.<name>.<tag>-` where that differs
    (what versions before hidden_prefix wrote for a name that fit with their own owner tag; it is that name's
    alone, so an old copy found there goes back to it)."""
    prefix, exact = hidden_prefix(name, tag), f".{name}.{tag}-"
    return [prefix] if prefix == exact else [prefix, exact]


def make_owned_tmp_dir(parent: str | os.PathLike, prefix: str) -> str:
    """Creates `<parent>/<prefix><owner>-<random>` (mode from the umask) and returns its path."""
    path = tempfile.mkdtemp(dir=os.fspath(parent), prefix=f"{prefix}{owner_tag()}-")
    apply_umask(path)
    return path


def make_owned_tmp_file(parent: str | os.PathLike, prefix: str, suffix: str = "") -> str:
    """Creates the empty file `<parent>/<prefix><owner>-<random><suffix>` (mode 0600) and returns its path."""
    fd, path = tempfile.mkstemp(dir=os.fspath(parent), prefix=f"{prefix}{owner_tag()}-", suffix=suffix)
    os.close(fd)
    return path


class _Owner(NamedTuple):
    pid: int
    scope: Optional[str]  # None: a name of an older version, or of a process that could not read its ids
    host: str


def _owner_pattern(prefix_regex: str, rest_regex: str) -> re.Pattern:
    # The pid and the scope are digits, hex digits and '.', so the first '@' after them starts the host; the host
    # (which may hold '-', '.', '@') runs to the last '-', as the random part (and a suffix) has none.
    return re.compile(prefix_regex + r"([0-9]+)(?:\.([0-9a-f]+\.[0-9a-f]{12}))?@(.+)-" + rest_regex, re.DOTALL)


def _parse_owner(pattern: re.Pattern, name: str) -> Optional[_Owner]:
    match = pattern.fullmatch(name)
    return None if match is None else _Owner(int(match.group(1)), match.group(2), match.group(3))


def _is_stale(owner: _Owner, host: str, scope: Optional[str]) -> bool:
    """Whether `owner` is surely a process of ours (namespace, boot, host) that no longer runs."""
    if owner.host != host:
        return False
    if owner.scope is None:
        # An old-style name (or one written where /proc gave no ids) does not say which pid namespace its pid is
        # in: on Linux it may be a live run (of an older version) in another container with this hostname, so it
        # is left alone, at the cost of keeping the leftovers of runs killed before the upgrade. Only where pids
        # are host-wide does the host say it all.
        if scope is not None or not _pids_are_host_wide():
            return False
    elif scope is None:
        return False  # we cannot read our own ids, so cannot tell whether the owner's are ours
    elif owner.scope.split(".")[1] != scope.split(".")[1]:
        # Another boot of this host: nothing of an earlier boot still runs (a power loss, a reboot: the leftovers
        # the sweep exists for). The hostname names the machine, as it always did here; two machines sharing a
        # hostname and a folder are a misconfiguration this cannot see.
        return True
    elif owner.scope != scope:
        return False  # another pid namespace of this boot: another container, whose pids are not ours to test
    return owner.pid != os.getpid() and not pid_alive(owner.pid)


def pid_alive(pid: int) -> bool:
    """True when a process with this id runs in our pid namespace (or may: we lack the right to signal it)."""
    if not 0 < pid < 2 ** 31:
        return True  # not a pid we wrote (os.kill would also fail on a huge one): never treat as dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_tmp_dirs(parent: str | os.PathLike, prefix: str, suffix: Optional[str] = None) -> List[str]:
    """The `<prefix><owner>-*` entries of `parent` whose owner was a process of this pid namespace, boot and host
    that no longer runs, or one of an earlier boot of this host (see the module docstring). With `suffix`, only
    names `<prefix><owner>-<random><suffix>` (exactly as `make_owned_tmp_file` makes them with that suffix)."""
    rest = r"[^-]+" if suffix is None else _RANDOM + re.escape(suffix)
    return _stale_entries(parent, _owner_pattern(re.escape(prefix), rest), lambda name: name.startswith(prefix))


def stale_owned_files(parent: str | os.PathLike, prefix_regex: str, suffix_regex: str) -> List[str]:
    """`stale_tmp_dirs` for names `<prefix><owner>-<random><suffix>` whose prefix and suffix are regular
    expressions (e.g. every target's temporaries of `atomic_write` in a folder, from one listing)."""
    return _stale_entries(parent, _owner_pattern(prefix_regex, _RANDOM + suffix_regex), lambda name: True)


def _stale_entries(parent: str | os.PathLike, pattern: re.Pattern, candidate: Callable[[str], bool]) -> List[str]:
    parent = os.fspath(parent)
    try:
        names = os.listdir(parent)
    except (FileNotFoundError, NotADirectoryError):
        return []
    host, scope, stale = _host(), _owner_scope(), []
    for name in sorted(names):
        owner = _parse_owner(pattern, name) if candidate(name) else None
        if owner is not None and _is_stale(owner, host, scope):
            stale.append(os.path.join(parent, name))
    return stale


def clean_stale_tmp_dirs(parent: str | os.PathLike, prefix: str, suffix: Optional[str] = None) -> List[str]:
    """Removes the stale temporary folders (or files) of `stale_tmp_dirs`; returns the paths removed."""
    removed = []
    for path in stale_tmp_dirs(parent, prefix, suffix):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        if not os.path.lexists(path):
            removed.append(path)
    return removed


def clean_stale_tmp_beside(parent: str | os.PathLike, name: str) -> List[str]:
    """`clean_stale_tmp_dirs` for the temporaries of `name` in `parent`, under each of its `hidden_prefixes`."""
    return [path for prefix in hidden_prefixes(name, "tmp") for path in clean_stale_tmp_dirs(parent, prefix)]


_PREVIOUS = "previous"  # the replaced folder, inside its owned holder, until the new one is in place
_REPLACED = "replaced"  # ... and once it is: never restored, only removed


def replace_dir(new: str, final: str, old_prefix: str) -> bool:
    """Renames the complete folder `new` to `final`; returns whether an existing `final` was replaced.

    An existing `final` is first renamed into `<old_prefix><owner>-*/previous` beside it and removed only
    once `new` is in place, so no failure loses both. A run killed between the two renames leaves `final`
    missing and the old folder in its holder: `restore_interrupted_replace` (called by the next run) puts it back.
    """
    if not os.path.lexists(final):
        os.rename(new, final)
        return False
    holder = make_owned_tmp_dir(os.path.dirname(os.path.abspath(final)), old_prefix)
    previous = os.path.join(holder, _PREVIOUS)
    os.rename(final, previous)
    try:
        os.rename(new, final)
    except BaseException:
        os.rename(previous, final)
        os.rmdir(holder)
        raise
    os.rename(previous, os.path.join(holder, _REPLACED))  # from here a partial deletion is never restored
    shutil.rmtree(holder, ignore_errors=True)
    return True


def restore_interrupted_replace(parent: str | os.PathLike, old_prefix: str, final: str) -> List[str]:
    """Repairs what `replace_dir` runs of this host left in `parent` under `old_prefix` when they were killed (in
    our pid namespace) or cut off by a reboot: a replaced folder whose successor never arrived goes back to
    `final` (when nothing has taken that name since); every other leftover is removed. Returns one message per
    leftover ("restored ..." or "removed ...").
    The holders of other pid namespaces of this boot, of other hosts and of older versions are left alone: their
    runs may be live."""
    notes = []
    for holder in stale_tmp_dirs(parent, old_prefix):
        previous = os.path.join(holder, _PREVIOUS)
        if os.path.isdir(previous) and not os.path.lexists(final):
            os.rename(previous, final)
            notes.append(f"restored {final} from {holder}, where a run killed while replacing it had moved it")
        else:
            notes.append(f"removed {holder}, left by a run killed while replacing {final}")
        if os.path.isdir(holder) and not os.path.islink(holder):
            shutil.rmtree(holder, ignore_errors=True)
        else:
            os.unlink(holder)
    return notes


@contextlib.contextmanager
def building_dir(final: str) -> Iterator[str]:
    """Yields a hidden owned temporary folder beside `final` (`.<name>.tmp-<owner>-XXXX`, after removing
    those of killed processes), renamed to `final` when the block ends; removed on any exception, Ctrl-C
    included, so `final` is either whole or absent. `final` must not exist (the caller decides what to do then)."""
    parent, name = os.path.dirname(os.path.abspath(final)), os.path.basename(final)
    os.makedirs(parent, exist_ok=True)
    clean_stale_tmp_beside(parent, name)
    prefix = hidden_prefix(name, "tmp")
    tmp = make_owned_tmp_dir(parent, prefix)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
