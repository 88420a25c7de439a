"""Training from the official DAVIS zip in --manual_dir, as the flag files and the layout message promise: the
zip is extracted once into the cache (never into the user's folder) and read like the extracted folder."""
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.data.sequences import DatasetLayoutError, load_masks, read_davis_sequence_list, resolve_davis_dir
from maskrnn_tf.data.synthetic import SyntheticConfig, generate_video
from maskrnn_tf.io import write_palette_png
from maskrnn_tf.training.config import DataConfig
from maskrnn_tf.training.inputs import check_data_available

TINY = SyntheticConfig(height=40, width=56, num_frames=3, min_objects=1, max_objects=2)


def make_tree(root):
    """A DAVIS-2017 tree under root/DAVIS (as the official zip holds it): train alpha, beta; val gamma."""
    top = root / "DAVIS"
    for seed, name in enumerate(("alpha", "beta", "gamma")):
        video = generate_video(seed + 1, TINY)
        (top / "JPEGImages" / "480p" / name).mkdir(parents=True)
        (top / "Annotations" / "480p" / name).mkdir(parents=True)
        for t, frame in enumerate(video["frames"]):
            Image.fromarray(frame).save(top / "JPEGImages" / "480p" / name / f"{t:05d}.jpg", quality=95)
            write_palette_png(top / "Annotations" / "480p" / name / f"{t:05d}.png", video["masks"][t])
    (top / "ImageSets" / "2017").mkdir(parents=True)
    (top / "ImageSets" / "2017" / "train.txt").write_text("alpha\nbeta\n")
    (top / "ImageSets" / "2017" / "val.txt").write_text("gamma\n")
    return str(root)


def zip_tree(tree, manual):
    manual.mkdir()
    path = manual / "DAVIS-2017-trainval-480p.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for folder, _, files in os.walk(tree):
            for name in sorted(files):
                full = os.path.join(folder, name)
                archive.write(full, os.path.relpath(full, tree))
    return str(manual)


def test_the_official_zip_trains_like_its_extracted_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tree = make_tree(tmp_path / "tree")
    manual = zip_tree(tree, tmp_path / "manual")
    check_data_available(DataConfig(dataset="davis17", manual_dir=manual, val_sequences=("beta",)))
    root = resolve_davis_dir(manual, 2017)
    assert os.listdir(manual) == ["DAVIS-2017-trainval-480p.zip"]  # nothing written into the user's folder
    assert root.startswith(str(tmp_path / "cache"))
    for split in ("train", "val"):
        got = read_davis_sequence_list(root, 2017, split)
        want = read_davis_sequence_list(tree, 2017, split)
        assert [s.name for s in got] == [s.name for s in want]
        for a, b in zip(got, want):
            np.testing.assert_array_equal(load_masks(a), load_masks(b))
    marker = os.path.join(root, "DAVIS", "ImageSets", "2017", "train.txt")
    mtime = os.stat(marker).st_mtime_ns
    assert resolve_davis_dir(manual, 2017) == root and os.stat(marker).st_mtime_ns == mtime  # extracted once
    # An extracted folder in --manual_dir is read where it is.
    assert resolve_davis_dir(tree, 2017) == tree


def test_a_broken_zip_is_refused_naming_it_and_leaves_no_partial_extraction(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "DAVIS-2017-trainval-480p.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetLayoutError, match=r"DAVIS-2017-trainval-480p.zip: not a readable zip"):
        resolve_davis_dir(str(manual), 2017)
    extracted = tmp_path / "cache" / "maskrnn_tf" / "extracted"
    assert not extracted.exists() or not [n for n in os.listdir(extracted) if not n.startswith(".")]


def test_a_davis_2016_folder_beside_the_2017_data_does_not_hide_it(tmp_path, monkeypatch, shared_data):
    """davis16.flags and davis17.flags share one manual folder: an extracted DAVIS-2016 there (as DAVIS/ or
    DAVIS-2016/) must not be taken for the DAVIS-2017 data, whether that is extracted beside it or still zipped."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    davis16 = os.path.join(shared_data, "DAVIS-2016")
    tree = make_tree(tmp_path / "tree")
    # The DAVIS-2016 folder as DAVIS/, the DAVIS-2017 zip beside it.
    manual = tmp_path / "manual"
    zip_tree(tree, manual)
    os.symlink(davis16, manual / "DAVIS")
    root = resolve_davis_dir(str(manual), 2017)
    assert [s.name for s in read_davis_sequence_list(root, 2017, "val")] == ["gamma"]
    assert resolve_davis_dir(str(manual), 2016) == str(manual)  # 2016 reads DAVIS/ in place
    assert len(read_davis_sequence_list(str(manual), 2016, "val", validate=False)) == 4
    # Both extracted side by side.
    both = tmp_path / "both"
    both.mkdir()
    os.symlink(davis16, both / "DAVIS-2016")
    os.symlink(os.path.join(tree, "DAVIS"), both / "DAVIS-2017")
    assert resolve_davis_dir(str(both), 2017) == str(both)
    assert [s.name for s in read_davis_sequence_list(str(both), 2017, "train")] == ["alpha", "beta"]
    assert len(read_davis_sequence_list(str(both), 2016, "val", validate=False)) == 4
    # Each zip unzipped into its own folder (`unzip -d DAVIS-2016`): the DAVIS/ each unpacks into, one level deeper.
    nested = tmp_path / "nested"
    for year, tree_root in (("2016", davis16), ("2017", os.path.join(tree, "DAVIS"))):
        (nested / f"DAVIS-{year}").mkdir(parents=True)
        os.symlink(tree_root, nested / f"DAVIS-{year}" / "DAVIS")
    assert [s.name for s in read_davis_sequence_list(resolve_davis_dir(str(nested), 2017), 2017, "train")] == [
        "alpha", "beta"]
    assert len(read_davis_sequence_list(resolve_davis_dir(str(nested), 2016), 2016, "val", validate=False)) == 4


def test_a_zip_extracted_meanwhile_by_another_process_is_used_not_an_error(tmp_path, monkeypatch):
    # The flow CLI and a training started together on the zip both extract it; the one finishing second found
    # the folder in place and stopped with "OSError: [Errno 39] Directory not empty".
    import shutil

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    manual = zip_tree(make_tree(tmp_path / "tree"), tmp_path / "manual")
    extractall = zipfile.ZipFile.extractall

    def other_process_finishes_first(self, path=None, *args, **kwargs):
        extractall(self, path, *args, **kwargs)
        final = os.path.join(os.path.dirname(path), os.path.basename(path)[1:].split(".tmp-")[0])
        shutil.copytree(path, final)

    monkeypatch.setattr(zipfile.ZipFile, "extractall", other_process_finishes_first)
    root = resolve_davis_dir(manual, 2017)
    assert [s.name for s in read_davis_sequence_list(root, 2017, "val")] == ["gamma"]
    assert [n for n in os.listdir(os.path.dirname(root)) if n.startswith(".")] == []  # our copy is gone


def test_a_zip_that_cannot_be_extracted_for_want_of_room_is_not_called_damaged(tmp_path, monkeypatch):
    """A full disk (or a cache folder this user may not write) while extracting was reported as "not a readable zip
    ... download it again": a multi-GB download for nothing."""
    import errno

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    manual = zip_tree(make_tree(tmp_path / "tree"), tmp_path / "manual")

    def full(self, path=None, members=None, pwd=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "extractall", full)
    with pytest.raises(DatasetLayoutError) as err:
        resolve_davis_dir(manual, 2017)
    message = str(err.value)
    assert "not a readable zip" not in message and "download it again" not in message
    assert "cannot extract" in message and "No space left on device" in message and "XDG_CACHE_HOME" in message


def test_a_zip_this_user_may_not_read_is_named_so_and_an_unwritable_cache_gets_its_advice(tmp_path, monkeypatch):
    """A zip the user may not read was "fine" and its extraction folder blamed; a cache folder that cannot be made
    (not writable) gave a raw error, and "free space" was the advice for a permission error."""
    import errno

    from maskrnn_tf.io import tmp_dirs

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    manual = zip_tree(make_tree(tmp_path / "tree"), tmp_path / "manual")
    archive = os.path.join(manual, "DAVIS-2017-trainval-480p.zip")
    real_zip = zipfile.ZipFile

    def unreadable(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(zipfile, "ZipFile", unreadable)
    with pytest.raises(DatasetLayoutError, match=r"480p.zip: this user may not read it \(Permission denied\)"):
        resolve_davis_dir(manual, 2017)
    monkeypatch.setattr(zipfile, "ZipFile", real_zip)

    def unwritable(final):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.dirname(final))

    monkeypatch.setattr(tmp_dirs, "building_dir", unwritable)
    with pytest.raises(DatasetLayoutError) as err:
        resolve_davis_dir(manual, 2017)
    message = str(err.value)
    assert message.startswith(f"{archive}: cannot extract it into") and "choose a folder you may write in" in message
    assert "free space" not in message and "the zip itself is fine" in message


def test_a_forced_extraction_replaces_the_folder_whole_or_keeps_the_old_one(tmp_path, monkeypatch):
    """force_extraction (tfds' FORCE_REDOWNLOAD) extracts again: a file changed in the extraction comes back as the
    zip holds it; when the new extraction fails (no room), the old folder stays whole and nothing hidden is left."""
    import errno

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    manual = zip_tree(make_tree(tmp_path / "tree"), tmp_path / "manual")
    root = resolve_davis_dir(manual, 2017)
    listed = os.path.join(root, "DAVIS", "ImageSets", "2017", "train.txt")
    want = open(listed).read()
    with open(listed, "w") as f:
        f.write("alpha\n")  # changed in the extraction
    assert resolve_davis_dir(manual, 2017) == root and open(listed).read() == "alpha\n"  # reused as it is
    assert resolve_davis_dir(manual, 2017, force_extraction=True) == root and open(listed).read() == want
    with open(listed, "w") as f:
        f.write("alpha\n")

    def no_room(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "extractall", no_room)
    with pytest.raises(DatasetLayoutError, match="No space left on device.*free space there"):
        resolve_davis_dir(manual, 2017, force_extraction=True)
    assert open(listed).read() == "alpha\n" and sorted(os.listdir(os.path.dirname(root))) == [os.path.basename(root)]


def test_partial_extractions_of_killed_runs_beside_the_folder_are_removed_and_live_ones_kept(tmp_path, monkeypatch):
    """A forced extraction's temporary folder was made without removing those of killed runs, and while the
    extracted folder exists every call returned before building_dir's sweep: a killed run's partial extraction (GBs
    for a real DAVIS zip) stayed for good. Forced or not, a call finding the zip removes them; a live run's stays."""
    import subprocess

    from maskrnn_tf.io import tmp_dirs

    if tmp_dirs._owner_scope() is None:
        pytest.skip("no pid namespace / boot id readable here: a dead owner's name cannot be told from a live one's")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    manual = zip_tree(make_tree(tmp_path / "tree"), tmp_path / "manual")
    root = resolve_davis_dir(manual, 2017)
    parent, prefix = os.path.dirname(root), tmp_dirs.hidden_prefix(os.path.basename(root), "tmp")
    ended = subprocess.Popen(["true"])
    ended.wait()  # reaped: its pid names no process now
    dead_pid = ended.pid
    live = f"{prefix}{tmp_dirs.owner_tag()}-live1234"  # this process: a run extracting now
    os.makedirs(os.path.join(parent, live, "DAVIS"))
    for force in (False, True):
        dead = os.path.join(parent, f"{prefix}{tmp_dirs.owner_tag(dead_pid)}-dead{int(force)}")
        os.makedirs(os.path.join(dead, "DAVIS", "JPEGImages"))  # a killed run's partial extraction
        assert resolve_davis_dir(manual, 2017, force_extraction=force) == root
        assert sorted(os.listdir(parent)) == sorted([os.path.basename(root), live]), force
    assert [s.name for s in read_davis_sequence_list(root, 2017, "val")] == ["gamma"]
