"""Folders replaced by renames: the old copy is never lost, not even when the process dies between the renames."""
import os

import pytest

from killed_runs import die_before_rename  # tests/killed_runs.py
from maskrnn_tf.io import tmp_dirs
from maskrnn_tf.io.tmp_dirs import make_owned_tmp_dir, replace_dir, restore_interrupted_replace


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
