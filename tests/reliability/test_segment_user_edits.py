"""segment --overwrite keeps what the user changed: masks corrected by hand inside the results folder, the
overlay of the run that wrote the results; and a bad --overlay folder is refused before any work."""
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.inference import (OutputExistsError, SegmentOptions, check_overlay_path, flow_propagation_step,
                                  segment_davis, segment_video)
from maskrnn_tf.inference.output_dir import MARKER_FILE
from maskrnn_tf.io import read_mask, write_palette_png
from maskrnn_tf.metrics import EvaluationConfig, evaluate_dataset, write_reports

from .conftest import frame_image, run_cli, square_ids

OPTIONS = SegmentOptions(progress=False)


def zero_flow(a, b):
    return np.zeros(a.shape[:2] + (2,), np.float32)


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def correct_by_hand(path: str) -> bytes:
    """Repaints a result mask as all background, as a user fixing it in an editor would; returns its bytes."""
    write_palette_png(path, np.zeros(read_mask(path).shape, np.uint8))
    return read(path)


def make_davis(root: str) -> None:
    """A one-sequence DAVIS-2016 root ("swan", 4 frames of the two squares' first object)."""
    frames, masks = (os.path.join(root, kind, "480p", "swan") for kind in ("JPEGImages", "Annotations"))
    os.makedirs(frames)
    os.makedirs(masks)
    lines = []
    for t in range(4):
        Image.fromarray(frame_image(t)).save(os.path.join(frames, f"{t:05d}.jpg"), quality=95)
        Image.fromarray(((square_ids(t) == 1) * 255).astype(np.uint8), mode="L").save(
            os.path.join(masks, f"{t:05d}.png"))
        lines.append(f"/JPEGImages/480p/swan/{t:05d}.jpg /Annotations/480p/swan/{t:05d}.png")
    os.makedirs(os.path.join(root, "ImageSets", "480p"))
    with open(os.path.join(root, "ImageSets", "480p", "val.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def test_overwrite_refuses_a_results_folder_with_a_mask_corrected_in_place(tmp_path):
    root, out = str(tmp_path / "davis"), str(tmp_path / "res")
    make_davis(root)
    segment_davis(root, "val", zero_flow, out, step_fn=flow_propagation_step, options=OPTIONS)
    edited = correct_by_hand(os.path.join(out, "swan", "00003.png"))
    with pytest.raises(OutputExistsError, match=r"changed since segment wrote them \(swan/00003.png\).*Move them out"):
        segment_davis(root, "val", zero_flow, out, step_fn=flow_propagation_step, options=OPTIONS, overwrite=True)
    assert read(os.path.join(out, "swan", "00003.png")) == edited
    assert sorted(os.listdir(tmp_path)) == ["davis", "res"]  # no temporary folder left
    # Once the correction is moved out, --overwrite replaces the folder as before.
    os.replace(os.path.join(out, "swan", "00003.png"), str(tmp_path / "kept.png"))
    segment_davis(root, "val", zero_flow, out, step_fn=flow_propagation_step, options=OPTIONS, overwrite=True)
    assert read_mask(os.path.join(out, "swan", "00003.png")).any()


def test_a_touched_file_of_the_same_size_counts_as_changed(tmp_path, video):
    frames, mask = video
    out = str(tmp_path / "out")
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, OPTIONS)
    path = os.path.join(out, "00001.png")
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # rewritten with the same bytes
    with pytest.raises(OutputExistsError, match=r"\(00001.png\)"):
        segment_video(flow_propagation_step, frames, mask, zero_flow, out, OPTIONS, overwrite=True)
    assert os.stat(path).st_mtime_ns == stat.st_mtime_ns + 5_000_000_000


def test_overwrite_refuses_a_corrected_first_mask_from_box(tmp_path, video):
    frames, _ = video
    out = str(tmp_path / "out")
    box = "6,8,18,20;30,22,42,34"
    assert run_cli(f"--video={frames}", f"--first_box={box}", f"--output={out}") == 0
    with open(os.path.join(out, MARKER_FILE), encoding="utf-8") as f:
        record = json.load(f)
    assert "first_mask_from_box.png" in record["files"]
    edited = correct_by_hand(os.path.join(out, "first_mask_from_box.png"))
    with pytest.raises(OutputExistsError, match=r"first_mask_from_box.png"):
        run_cli(f"--video={frames}", f"--first_box={box}", f"--output={out}", "--overwrite")
    assert read(os.path.join(out, "first_mask_from_box.png")) == edited


def test_a_folder_recorded_without_file_stats_keeps_masks_corrected_after_its_record(tmp_path, video):
    frames, mask = video
    out = str(tmp_path / "out")
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, OPTIONS)
    with open(os.path.join(out, MARKER_FILE), encoding="utf-8") as f:
        record = json.load(f)
    record.pop("file_stats", None)  # as an earlier version wrote it
    marker = os.path.join(out, MARKER_FILE)
    with open(marker, "w", encoding="utf-8") as f:
        json.dump(record, f)
    # A mask corrected by hand was deleted by --overwrite (listed: segment's by name); it is newer than the record,
    # which that version wrote last.
    edited = correct_by_hand(os.path.join(out, "00002.png"))
    later = os.stat(marker).st_mtime_ns + 2_000_000_000
    os.utime(os.path.join(out, "00002.png"), ns=(later, later))
    with pytest.raises(OutputExistsError, match=r"newer than its segment_run.json \(00002.png\).*touch"):
        segment_video(flow_propagation_step, frames, mask, zero_flow, out, OPTIONS, overwrite=True)
    assert read(os.path.join(out, "00002.png")) == edited
    # A copy that did not keep file times looks the same: the message's `touch` of the record says they are
    # segment's.
    os.utime(marker, ns=(later + 1, later + 1))
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, OPTIONS, overwrite=True)
    assert read_mask(os.path.join(out, "00002.png")).any()


def test_a_run_that_fails_at_the_end_keeps_the_old_overlay(tmp_path, video):
    frames, mask = video
    out, overlay = str(tmp_path / "out"), str(tmp_path / "over.mp4")
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, OPTIONS, overlay_path=overlay)
    old_overlay = read(overlay), os.stat(overlay).st_mtime_ns
    old_results = {n: read(os.path.join(out, n)) for n in os.listdir(out)}
    calls = []

    def step_while_the_user_adds_a_note(*args):
        calls.append(1)
        if len(calls) == 3:  # the last frame: a note lands in the old results folder while this run writes
            with open(os.path.join(out, "notes.txt"), "w") as f:
                f.write("mine")
        return flow_propagation_step(*args)

    with pytest.raises(OutputExistsError, match=r"notes.txt"):
        segment_video(step_while_the_user_adds_a_note, frames, mask, zero_flow, out, OPTIONS,
                      overlay_path=overlay, overwrite=True)
    assert len(calls) == 3
    # Old results and their overlay together, still the pair the record names; nothing half-written left.
    assert (read(overlay), os.stat(overlay).st_mtime_ns) == old_overlay
    os.remove(os.path.join(out, "notes.txt"))
    assert {n: read(os.path.join(out, n)) for n in os.listdir(out)} == old_results
    assert sorted(os.listdir(tmp_path)) == ["first.png", "out", "over.mp4", "vid"]
    # So the retry the message asks for replaces both.
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, OPTIONS, overlay_path=overlay, overwrite=True)
    with open(os.path.join(out, MARKER_FILE), encoding="utf-8") as f:
        recorded = json.load(f)["overlay"]
    assert recorded["size"] == os.path.getsize(overlay) and recorded["mtime_ns"] == os.stat(overlay).st_mtime_ns


def test_an_overlay_the_user_saved_while_the_run_went_on_is_kept(tmp_path, video):
    frames, mask = video
    out, overlay = str(tmp_path / "out"), tmp_path / "over.mp4"
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, OPTIONS, overlay_path=str(overlay))
    calls = []

    def step_while_the_user_saves_over_the_overlay(*args):
        calls.append(1)
        if len(calls) == 3:
            overlay.write_bytes(b"the user's edit of the overlay")
        return flow_propagation_step(*args)

    with pytest.raises(OutputExistsError, match="over.mp4: segment did not write this file"):
        segment_video(step_while_the_user_saves_over_the_overlay, frames, mask, zero_flow, out, OPTIONS,
                      overlay_path=str(overlay), overwrite=True)
    assert overlay.read_bytes() == b"the user's edit of the overlay"
    assert sorted(os.listdir(tmp_path)) == ["first.png", "out", "over.mp4", "vid"]


def test_a_run_that_fails_while_segmenting_keeps_the_old_overlay(tmp_path, video):
    frames, mask = video
    out, overlay = str(tmp_path / "out"), str(tmp_path / "over.mp4")
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, OPTIONS, overlay_path=overlay)
    old_overlay = read(overlay), os.stat(overlay).st_mtime_ns

    def crashing_step(*args):
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        segment_video(crashing_step, frames, mask, zero_flow, out, OPTIONS, overlay_path=overlay, overwrite=True)
    assert (read(overlay), os.stat(overlay).st_mtime_ns) == old_overlay
    assert sorted(os.listdir(tmp_path)) == ["first.png", "out", "over.mp4", "vid"]


def test_an_overlay_folder_that_does_not_exist_is_refused_before_any_work(tmp_path, video):
    frames, mask = video
    out, overlay = str(tmp_path / "out"), str(tmp_path / "no_such_folder" / "overlay.mp4")
    message = r"overlay.mp4: the overlay's folder .*no_such_folder does not exist; create it first"
    with pytest.raises(FileNotFoundError, match=message):
        check_overlay_path(overlay, out, False, [("--video", frames)])
    prepared = []

    def prepare(source, first):  # stands for loading and finetuning the model: minutes
        prepared.append(1)
        return flow_propagation_step

    with pytest.raises(FileNotFoundError, match=message):
        segment_video(None, frames, mask, zero_flow, out, OPTIONS, overlay_path=overlay, prepare=prepare)
    assert prepared == [] and sorted(os.listdir(tmp_path)) == ["first.png", "vid"]
    # Inside --output, the overlay's folders are made with the results.
    check_overlay_path(os.path.join(out, "videos", "overlay.mp4"), out, False, [("--video", frames)])
    segment_video(flow_propagation_step, frames, mask, zero_flow, out, OPTIONS,
                  overlay_path=os.path.join(out, "videos", "overlay.mp4"))
    assert os.path.getsize(os.path.join(out, "videos", "overlay.mp4")) > 0


def test_overwrite_keeps_scores_of_other_results_that_evaluate_wrote_into_the_folder(tmp_path):
    root, mine, other = str(tmp_path / "davis"), str(tmp_path / "mine"), str(tmp_path / "other")
    make_davis(root)
    for out in (mine, other):
        segment_davis(root, "val", zero_flow, out, step_fn=flow_propagation_step, options=OPTIONS)
    config = EvaluationConfig(compute_t=False)
    # evaluate --results=other --output_dir=mine: the CSVs in `mine` score `other`, not the results they lie beside.
    write_reports(evaluate_dataset(root, other, config), mine, other)
    scores = read(os.path.join(mine, "global_results-val.csv"))
    with pytest.raises(OutputExistsError, match=r"did not write \(evaluate_run.json, global_results-val.csv, "
                                                 r"per-sequence_results-val.csv\)"):
        segment_davis(root, "val", zero_flow, mine, step_fn=flow_propagation_step, options=OPTIONS, overwrite=True)
    assert read(os.path.join(mine, "global_results-val.csv")) == scores
    # Scores of its own results go with them, as before.
    write_reports(evaluate_dataset(root, other, config), other, other)
    segment_davis(root, "val", zero_flow, other, step_fn=flow_propagation_step, options=OPTIONS, overwrite=True)
    assert not os.path.exists(os.path.join(other, "global_results-val.csv"))


@pytest.mark.parametrize("recorded_files", [True, False])
def test_files_nested_deeper_than_segment_writes_are_the_users(tmp_path, recorded_files):
    """The name patterns of segment's and evaluate's files were matched with fnmatch, whose `*` also matches `/`:
    `analysis/figs/plot.png` passed for a mask of an earlier version's folder and `global_results-2019/notes.csv`
    for a score table, and --overwrite deleted them with the results."""
    from maskrnn_tf.inference.output_dir import check_output_dir

    root, out = str(tmp_path / "davis"), str(tmp_path / "res")
    make_davis(root)
    segment_davis(root, "val", zero_flow, out, step_fn=flow_propagation_step, options=OPTIONS)
    if not recorded_files:  # a segment_run.json of an earlier version, which lists no files
        with open(os.path.join(out, MARKER_FILE)) as f:
            record = json.load(f)
        record.pop("files")
        record.pop("file_stats")
        with open(os.path.join(out, MARKER_FILE), "w") as f:
            json.dump(record, f)
    check_output_dir(out, overwrite=True)  # segment's own files (and a mask at the top, by name) pass
    for mine in ("analysis/figs/plot.png", "global_results-2019/notes.csv", "probs/swan/extra/p.npy"):
        path = os.path.join(out, mine)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"user's")
        with pytest.raises(OutputExistsError, match=re.escape(f"did not write ({mine})")):
            check_output_dir(out, overwrite=True)
        os.remove(path)
        os.removedirs(os.path.dirname(path))  # the folders made for it are the user's too (the test after this)
    check_output_dir(out, overwrite=True)



def test_an_earlier_versions_folder_keeps_pngs_added_or_corrected_after_its_record(tmp_path):
    """A segment_run.json of the versions that listed no files made segment's every `*.png` and `*/*.png`:
    --overwrite deleted the user's figures/jf_plot.png and masks corrected by hand. Those versions wrote the record
    last; a file named so but newer than it is the user's now."""
    root, out = str(tmp_path / "davis"), str(tmp_path / "res")
    make_davis(root)
    segment_davis(root, "val", zero_flow, out, step_fn=flow_propagation_step, options=OPTIONS)
    marker = os.path.join(out, MARKER_FILE)
    with open(marker) as f:
        record = {key: value for key, value in json.load(f).items() if key not in ("files", "file_stats")}
    with open(marker, "w") as f:
        json.dump(record, f)
    later = os.stat(marker).st_mtime_ns + 2_000_000_000
    os.makedirs(os.path.join(out, "figures"))
    plot = os.path.join(out, "figures", "jf_plot.png")
    Image.fromarray(np.full((4, 4), 200, np.uint8)).save(plot)
    edited = correct_by_hand(os.path.join(out, "swan", "00002.png"))
    for path in (plot, os.path.join(out, "swan", "00002.png")):
        os.utime(path, ns=(later, later))
    with pytest.raises(OutputExistsError, match=r"newer than its segment_run.json \(figures/jf_plot.png, "
                                                r"swan/00002.png\)"):
        segment_davis(root, "val", zero_flow, out, step_fn=flow_propagation_step, options=OPTIONS, overwrite=True)
    assert os.path.isfile(plot) and read(os.path.join(out, "swan", "00002.png")) == edited
    # Moved out, the rest is segment's by name and time: replaced.
    os.replace(plot, str(tmp_path / "jf_plot.png"))
    os.rmdir(os.path.join(out, "figures"))
    os.replace(os.path.join(out, "swan", "00002.png"), str(tmp_path / "kept.png"))
    segment_davis(root, "val", zero_flow, out, step_fn=flow_propagation_step, options=OPTIONS, overwrite=True)
    assert read_mask(os.path.join(out, "swan", "00002.png")).any()

def test_an_empty_folder_the_user_made_in_the_results_is_theirs(tmp_path):
    """--overwrite replaced a results folder holding an empty folder the user made there (for figures to come,
    say) and deleted it: only files counted as theirs. Segment never leaves a folder empty."""
    root, out = str(tmp_path / "davis"), str(tmp_path / "res")
    make_davis(root)
    segment_davis(root, "val", zero_flow, out, step_fn=flow_propagation_step, options=OPTIONS)
    for mine in ("figures", os.path.join("swan", "notes")):
        os.makedirs(os.path.join(out, mine))
        with pytest.raises(OutputExistsError, match=re.escape(f"did not write ({mine}/)")):
            segment_davis(root, "val", zero_flow, out, step_fn=flow_propagation_step, options=OPTIONS,
                          overwrite=True)
        assert os.path.isdir(os.path.join(out, mine))
        os.rmdir(os.path.join(out, mine))
    segment_davis(root, "val", zero_flow, out, step_fn=flow_propagation_step, options=OPTIONS, overwrite=True)


@pytest.mark.parametrize("grey", [64, 128, 192])
def test_a_davis_first_annotation_of_rgb_greys_seeds_the_object_the_ground_truth_holds(tmp_path, grey):
    """A binary annotation saved as RGB in one DAVIS palette grey (64/128/192: objects 56/7/63 in DAVIS colours)
    seeded object 56/7/63 (read as a first mask), while the ground-truth reader takes it for object 1: evaluate then
    refused the results ('object id(s) [7] not in the ground truth'). A DAVIS tree's first mask is its ground truth."""
    root, out = str(tmp_path / "davis"), str(tmp_path / "res")
    make_davis(root)
    masks = os.path.join(root, "Annotations", "480p", "swan")
    for t in range(4):
        binary = square_ids(t) == 1
        Image.fromarray(np.repeat((binary * grey).astype(np.uint8)[..., None], 3, axis=2), mode="RGB").save(
            os.path.join(masks, f"{t:05d}.png"))
    segment_davis(root, "val", zero_flow, out, step_fn=flow_propagation_step, options=OPTIONS)
    assert sorted(np.unique(read_mask(os.path.join(out, "swan", "00001.png"))).tolist()) == [0, 1]
    results = evaluate_dataset(root, out, EvaluationConfig(split="val"))
    (swan,) = results.objects  # scored as the ground truth's object 1
    assert swan.object_id == 1 and float(np.mean(swan.j)) > 0.5, swan.j
