"""Folders replaced by renames: the old copy is never lost, not even when the process dies between the renames."""
import os

import pytest

from killed_runs import die_before_rename  # tests/killed_runs.py
from maskrnn_tf.io import tmp_dirs
from maskrnn_tf.io.tmp_dirs import clean_stale_tmp_dirs, make_owned_tmp_dir, replace_dir, restore_interrupted_replace


def _folder(path, text):
    os.makedirs(path)
    with open(os.path.join(path, "content.txt"), "w", encoding="utf-8") as f:
        f.write(text)


def _content(path):
    with open(os.path.join(path, "content.txt"), encoding="utf-8") as f:
        return f.read()


def test_replace_publishes_the_new_folder_and_drops_the_old_one(tmp_path):
    final = str(tmp_path / "out")
    first = make_owned_tmp_dir(tmp_path, ".out.tmp-")
    _folder(os.path.join(first, "x"), "one")
    assert replace_dir(os.path.join(first, "x"), final, ".out.old-") is False
    _folder(str(tmp_path / "new"), "two")
    assert replace_dir(str(tmp_path / "new"), final, ".out.old-") is True
    assert _content(final) == "two"
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(first), "out"]


def _killed_between_renames(tmp_path, final, kill_at_rename):
    """Runs replace_dir in a child process that dies (no cleanup) just before its `kill_at_rename`-th rename."""
    _folder(final, "old")
    _folder(str(tmp_path / "new"), "new")
    die_before_rename(lambda: replace_dir(str(tmp_path / "new"), final, ".out.old-"), kill_at_rename)


def test_a_run_killed_between_the_renames_gets_the_old_folder_back(tmp_path):
    final = str(tmp_path / "out")
    _killed_between_renames(tmp_path, final, kill_at_rename=2)
    assert not os.path.exists(final)  # the old folder is away, the new one not yet in place
    notes = restore_interrupted_replace(str(tmp_path), ".out.old-", final)
    assert _content(final) == "old"
    assert len(notes) == 1 and notes[0].startswith(f"restored {final}")
    assert sorted(os.listdir(tmp_path)) == ["new", "out"]  # the old copy's holder is gone


def test_a_run_killed_after_the_swap_leaves_the_new_folder_and_its_old_copy_is_removed(tmp_path):
    final = str(tmp_path / "out")
    _killed_between_renames(tmp_path, final, kill_at_rename=3)  # the new folder is in place
    assert _content(final) == "new"
    notes = restore_interrupted_replace(str(tmp_path), ".out.old-", final)
    assert _content(final) == "new" and os.listdir(tmp_path) == ["out"]
    assert len(notes) == 1 and notes[0].startswith("removed ")


def test_old_copies_of_live_processes_are_left_alone(tmp_path):
    final = str(tmp_path / "out")
    live = make_owned_tmp_dir(tmp_path, ".out.old-")  # this process: alive
    _folder(os.path.join(live, "previous"), "old")
    assert restore_interrupted_replace(str(tmp_path), ".out.old-", final) == []
    assert not os.path.exists(final) and _content(os.path.join(live, "previous")) == "old"


def test_a_failed_second_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    final = str(tmp_path / "out")
    _folder(final, "old")
    real_rename = os.rename

    def rename(a, b):
        if b == final and "new" in a:
            raise OSError("simulated")
        real_rename(a, b)

    _folder(str(tmp_path / "new"), "new")
    monkeypatch.setattr(tmp_dirs.os, "rename", rename)
    with pytest.raises(OSError, match="simulated"):
        replace_dir(str(tmp_path / "new"), final, ".out.old-")
    assert _content(final) == "old" and sorted(os.listdir(tmp_path)) == ["new", "out"]


# Owners: a temporary is removed only when its name says it was made in this pid namespace, this boot and on this
# host, by a process that no longer runs. Another container can share the hostname and the folder (k8s pods with
# hostNetwork, docker --hostname, a shared NFS run folder): there its live run's pid is simply absent from ours.


def _made_by_a_process_that_exited(work) -> int:
    """Runs `work()` (filesystem work only) in a forked child that then exits; returns the child's pid, dead now."""
    pid = os.fork()
    if pid == 0:
        try:
            work()
            os._exit(0)
        finally:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] == 0
    return pid


def _made_as_another(helper, value, folder):
    """`work` for the child: its temporary folder made as a process whose `helper` reports `value` (the child's
    own copy of the module is changed, as if it ran in another pid namespace or boot)."""
    def work():
        setattr(tmp_dirs, helper, lambda: value)
        make_owned_tmp_dir(folder, ".out.tmp-")
    return work


def test_a_dead_owner_of_this_namespace_is_removed(tmp_path):
    pid = _made_by_a_process_that_exited(lambda: make_owned_tmp_dir(tmp_path, ".out.tmp-"))
    (name,) = os.listdir(tmp_path)
    assert name.startswith(f".out.tmp-{tmp_dirs.owner_tag(pid)}-")
    assert clean_stale_tmp_dirs(tmp_path, ".out.tmp-") == [str(tmp_path / name)]
    assert os.listdir(tmp_path) == []


def test_a_temp_of_another_pid_namespace_survives_though_its_pid_is_dead_here(tmp_path):
    # Another container's run: its pid is not one of ours, alive or not.
    _made_by_a_process_that_exited(_made_as_another("_pid_namespace", "f0001234", tmp_path))
    (name,) = os.listdir(tmp_path)
    assert clean_stale_tmp_dirs(tmp_path, ".out.tmp-") == [] and os.listdir(tmp_path) == [name]
    assert ".f0001234." in name


def test_a_temp_of_an_earlier_boot_of_this_host_is_removed_though_its_pid_runs_now(tmp_path):
    # A power loss or a reboot: nothing of that boot runs, whatever its pid now names (here: this very process).
    if tmp_dirs._owner_scope() is None:
        pytest.skip("no pid namespace / boot id readable here")
    earlier = tmp_path / f".out.tmp-{os.getppid()}.{tmp_dirs._pid_namespace()}.0123456789ab@{tmp_dirs._host()}-k3j2"
    earlier.mkdir()
    assert clean_stale_tmp_dirs(tmp_path, ".out.tmp-") == [str(earlier)] and os.listdir(tmp_path) == []


def _replace_killed_between_renames_as_another(tmp_path, helper, value) -> str:
    """`out` (holding "old") replaced by `new` in a child run as a process whose `helper` reports `value`, killed
    between the two renames: `out` is missing, its old copy in the child's holder. Returns `out`'s path."""
    final = str(tmp_path / "out")
    _folder(final, "old")
    _folder(str(tmp_path / "new"), "new")

    def work():
        setattr(tmp_dirs, helper, lambda: value)
        replace_dir(str(tmp_path / "new"), final, ".out.old-")

    die_before_rename(work, 2)
    return final


def test_the_old_copy_of_a_replace_cut_off_by_a_reboot_is_restored(tmp_path):
    if tmp_dirs._owner_scope() is None:
        pytest.skip("no pid namespace / boot id readable here")
    final = _replace_killed_between_renames_as_another(tmp_path, "_boot_id", "0123456789ab")
    (note,) = restore_interrupted_replace(str(tmp_path), ".out.old-", final)
    assert note.startswith("restored") and _content(final) == "old"
    assert sorted(os.listdir(tmp_path)) == ["new", "out"]


def test_the_old_copy_held_by_a_run_of_another_namespace_is_neither_restored_nor_removed(tmp_path):
    # The other container's replace_dir is between its renames: its `previous` folder must stay where it is.
    final = _replace_killed_between_renames_as_another(tmp_path, "_pid_namespace", "f0001234")
    (holder,) = [n for n in os.listdir(tmp_path) if n.startswith(".out.old-")]
    assert restore_interrupted_replace(str(tmp_path), ".out.old-", final) == []
    assert not os.path.exists(final) and _content(str(tmp_path / holder / "previous")) == "old"


def test_a_name_of_an_older_version_is_kept_where_pid_namespaces_exist(tmp_path):
    # `<prefix><pid>@<host>-<random>` does not say in which pid namespace its pid was: maybe a live run of an older
    # version in another container with this hostname.
    if tmp_dirs._owner_scope() is None:
        pytest.skip("no pid namespace / boot id readable here")
    dead = _made_by_a_process_that_exited(lambda: None)
    old = tmp_path / f".out.tmp-{dead}@{tmp_dirs._host()}-abc123"
    old.mkdir()
    assert clean_stale_tmp_dirs(tmp_path, ".out.tmp-") == [] and old.is_dir()


@pytest.mark.parametrize("host_wide", [True, False])
def test_without_namespace_ids_names_are_judged_only_where_pids_are_host_wide(tmp_path, monkeypatch, host_wide):
    # Where /proc gives no ids the old name is written; it is judged by host and pid only on systems without pid
    # namespaces (not Linux): on Linux it might be another container's.
    monkeypatch.setattr(tmp_dirs, "_pid_namespace", lambda: None)
    monkeypatch.setattr(tmp_dirs, "_pids_are_host_wide", lambda: host_wide)
    pid = _made_by_a_process_that_exited(lambda: make_owned_tmp_dir(tmp_path, ".out.tmp-"))
    (name,) = os.listdir(tmp_path)
    assert name.startswith(f".out.tmp-{pid}@{tmp_dirs._host()}-")
    assert len(clean_stale_tmp_dirs(tmp_path, ".out.tmp-")) == (1 if host_wide else 0)


@pytest.mark.parametrize("host", ["gpu-node-1.lab", "a@b-c", "x-"])
def test_hosts_with_dashes_dots_and_ats_parse(tmp_path, monkeypatch, host):
    monkeypatch.setattr(tmp_dirs, "_host", lambda: host)
    _made_by_a_process_that_exited(lambda: make_owned_tmp_dir(tmp_path, ".out.tmp-"))
    (name,) = os.listdir(tmp_path)
    for other in (host[:-1], host + "-1", "1-" + host):  # hosts that differ from it by a part
        monkeypatch.setattr(tmp_dirs, "_host", lambda: other)
        assert clean_stale_tmp_dirs(tmp_path, ".out.tmp-") == []
    monkeypatch.setattr(tmp_dirs, "_host", lambda: host)
    assert clean_stale_tmp_dirs(tmp_path, ".out.tmp-") == [str(tmp_path / name)]


def test_a_number_that_cannot_be_a_pid_is_never_judged(tmp_path):
    odd = tmp_path / f".out.tmp-{tmp_dirs.owner_tag(2 ** 40)}-abc123"  # os.kill would raise OverflowError
    odd.mkdir()
    assert clean_stale_tmp_dirs(tmp_path, ".out.tmp-") == [] and odd.is_dir()


# A target's name may take the 255 bytes of one file name; the owned names beside it add the owner tag, so a long
# name is shortened to a head and a hash of the whole name.
_TAIL = len(os.fsencode(f"-{tmp_dirs.owner_tag(2 ** 31 - 1)}-abcdefgh.keras"))  # a long pid, the longest suffix


@pytest.mark.parametrize("name", ["out", "a" * 255, "é" * 127, "b" * 100 + "€" * 50])
def test_owned_names_beside_any_name_fit_one_file_name(name):
    for tag in ("tmp", "old"):
        prefix = tmp_dirs.hidden_prefix(name, tag)
        assert prefix.endswith(f".{tag}-") and len(os.fsencode(prefix)) + _TAIL <= 255
        if len(os.fsencode(f".{name}.{tag}-")) + _TAIL <= 255:
            assert prefix == f".{name}.{tag}-"  # short names keep today's temporaries' names
        else:  # cut on a character, not inside one
            head = prefix[1:-len(f".{tag}-")]
            assert head.split("~")[0] == name[:len(head.split("~")[0])] and len(head) < len(name)


def test_long_names_sharing_a_head_keep_their_old_copies_apart(tmp_path):
    # The old copy of a replace killed between its renames goes back to its own folder, not to a sibling whose
    # name starts alike.
    names = ["r" * 240 + "-first", "r" * 240 + "-second"]
    prefixes = [tmp_dirs.hidden_prefix(n, "old") for n in names]
    assert prefixes[0] != prefixes[1]
    final = str(tmp_path / names[0])
    _folder(final, "old")
    _folder(str(tmp_path / "new"), "new")
    die_before_rename(lambda: replace_dir(str(tmp_path / "new"), final, prefixes[0]), 2)
    assert not os.path.exists(final)
    assert restore_interrupted_replace(str(tmp_path), prefixes[1], str(tmp_path / names[1])) == []
    assert not os.path.exists(tmp_path / names[1])
    assert restore_interrupted_replace(str(tmp_path), prefixes[0], final)[0].startswith(f"restored {final}")
    assert _content(final) == "old" and sorted(os.listdir(tmp_path)) == sorted(["new", names[0]])
