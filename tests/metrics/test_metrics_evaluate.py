"""End-to-end DAVIS evaluation on the shared real data (and a tiny synthetic DAVIS-2016 root)."""
import csv
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from davis_files import gt_stack, write_results  # tests/davis_files.py
from shape_context_reference import brute_force_pair_cost  # tests/metrics/shape_context_reference.py
from maskrnn_tf.io import read_mask, write_palette_png
from maskrnn_tf.metrics import (
    DatasetLayoutError,
    EvaluationConfig,
    EvaluationInputError,
    ExtraFramesError,
    MissingResultsError,
    ResultNameError,
    SizeMismatchError,
    UnknownObjectError,
    UnreadableResultError,
    evaluate_dataset,
    seg2bmap,
    write_reports,
)

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
DAVIS16 = os.path.abspath(os.path.join(DATA, "DAVIS-2016"))
DAVIS17 = os.path.abspath(os.path.join(DATA, "DAVIS-2017-sample"))
# CI always has ../shared beside the clone: the `shared_data` fixture fails (not skips) when it is missing.
needs_data = pytest.mark.usefixtures("shared_data")


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def ref_j(gt, pred):
    union = np.sum(gt | pred)
    return 1.0 if union == 0 else np.sum(gt & pred) / union


def ref_f(gt, pred, radius=8):
    bg, bp = seg2bmap(gt), seg2bmap(pred)
    p = np.sum(bp & (ndimage.distance_transform_edt(~bg) <= radius)) / bp.sum()
    r = np.sum(bg & (ndimage.distance_transform_edt(~bp) <= radius)) / bg.sum()
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def ref_stats(values):
    n = len(values)
    ids = [int(round(1 + k * (n - 1) / 4 + 1e-10)) - 1 for k in range(5)]
    return values.mean(), np.mean(values > 0.5), values[: ids[1] + 1].mean() - values[ids[3] :].mean()


@needs_data
def test_cli_ground_truth_as_results_scores_one(tmp_path):
    names, gt = gt_stack(DAVIS16, "blackswan")
    write_results(str(tmp_path), "blackswan", names, gt)
    proc = subprocess.run(
        [sys.executable, "-m", "maskrnn_tf.evaluate", f"--davis_root={DAVIS16}", f"--results={tmp_path}",
         "--sequences=blackswan", "--processes=1"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "blackswan_1" in proc.stdout
    rows = read_csv(tmp_path / "global_results-val.csv")
    assert rows[0] == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay", "T-Mean"]
    assert [float(v) for v in rows[1][:7]] == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    assert float(rows[1][7]) > 0  # blackswan has eval_t: true; its real shape changes between frames
    per_seq = read_csv(tmp_path / "per-sequence_results-val.csv")
    assert per_seq[0] == ["Sequence", "J-Mean", "F-Mean", "T"]
    assert per_seq[1][:3] == ["blackswan_1", "1.000", "1.000"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


@needs_data
def test_cli_reports_bad_input(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "maskrnn_tf.evaluate", f"--davis_root={DAVIS16}",
         f"--results={tmp_path / 'nope'}", "--sequences=blackswan"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "results folder not found" in proc.stderr and "nope" in proc.stderr


@needs_data
def test_shifted_results_match_numpy_reference(tmp_path):
    names, gt = gt_stack(DAVIS16, "libby")
    shifted = np.zeros_like(gt)
    shifted[:, :, 12:] = gt[:, :, :-12]  # 12 px right: beyond the 8 px boundary tolerance
    write_results(str(tmp_path), "libby", names, shifted)
    results = evaluate_dataset(DAVIS16, str(tmp_path), EvaluationConfig(sequences=("libby",)))
    (obj,) = results.objects
    assert obj.name == "libby_1" and obj.t is None  # libby has eval_t: false
    gt_b, pred_b = gt[1:-1].astype(bool), shifted[1:-1].astype(bool)
    j_ref = np.array([ref_j(g, p) for g, p in zip(gt_b, pred_b)])
    f_ref = np.array([ref_f(g, p) for g, p in zip(gt_b, pred_b)])
    np.testing.assert_allclose(obj.j, j_ref, atol=1e-12)
    np.testing.assert_allclose(obj.f, f_ref, atol=1e-12)
    np.testing.assert_allclose(obj.j_stats, ref_stats(j_ref), atol=1e-12)
    np.testing.assert_allclose(obj.f_stats, ref_stats(f_ref), atol=1e-12)
    assert 0.3 < j_ref.mean() < 0.99 and 0.0 < f_ref.mean() < 0.99
    g = results.global_metrics()
    # Every global column against the references: J and F differ in each statistic here (J-Recall 0.55 vs
    # F-Recall 1.0, J-Decay 0.25 vs F-Decay 0.13), so a column reading the other measure is caught.
    (jm, jr, jd), (fm, fr, fd) = ref_stats(j_ref), ref_stats(f_ref)
    assert min(abs(jm - fm), abs(jr - fr), abs(jd - fd)) > 0.05
    want = {"J&F-Mean": (jm + fm) / 2, "J-Mean": jm, "J-Recall": jr, "J-Decay": jd,
            "F-Mean": fm, "F-Recall": fr, "F-Decay": fd}
    assert list(g) == list(want)
    for key, value in want.items():
        assert g[key] == pytest.approx(value, abs=1e-12), key
    assert "T-Mean" not in g
    write_reports(results, str(tmp_path))
    rows = read_csv(tmp_path / "global_results-val.csv")
    assert len(rows[0]) == 7 and float(rows[1][1]) == pytest.approx(j_ref.mean(), abs=5e-4)
    # The per-sequence row: J-Mean and F-Mean to 3 decimals, each from its own measure (they differ here).
    per_seq = read_csv(tmp_path / "per-sequence_results-val.csv")
    assert per_seq[0] == ["Sequence", "J-Mean", "F-Mean"]
    assert per_seq[1] == ["libby_1", f"{j_ref.mean():.3f}", f"{f_ref.mean():.3f}"]
    assert f"{j_ref.mean():.3f}" != f"{f_ref.mean():.3f}"


@needs_data
def test_eval_t_flags_come_from_db_info():
    import yaml

    with open(os.path.join(DAVIS16, "Annotations", "db_info.yml"), encoding="utf-8") as f:
        info = {s["name"]: s.get("eval_t") for s in yaml.safe_load(f)["sequences"]}
    assert info["libby"] is False and info["blackswan"] is True  # the premise of the two tests above


def davis17_results(tmp_path, modify=None):
    out = str(tmp_path / "res")
    for seq in ("bear", "tennis"):
        names, gt = gt_stack(DAVIS17, seq)
        labels = np.where(gt == 255, 0, gt).astype(np.uint8)
        if modify is not None:
            labels = modify(seq, labels, gt)
        write_results(out, seq, names, labels)
    return out


@needs_data
def test_a_davis_2017_root_whose_path_holds_glob_characters_is_read(tmp_path):
    """The annotation PNGs were globbed under the root's path unescaped: a root like `DAVIS[2017]` matched none."""
    import shutil

    root = tmp_path / "DAVIS[2017]*"
    shutil.copytree(DAVIS17, root)
    results = evaluate_dataset(str(root), davis17_results(tmp_path), EvaluationConfig(skip_first_last=False))
    assert [o.name for o in results.objects] == ["bear_1", "tennis_1", "tennis_2"]


@needs_data
def test_a_split_list_saved_with_a_byte_order_mark_or_in_utf_16(tmp_path):
    """Windows editors write a BOM (it stayed in the first name: "no annotation PNGs for '\ufeffbear'"); UTF-16
    is refused naming the list."""
    import shutil

    root = tmp_path / "davis"
    shutil.copytree(DAVIS17, root)
    lists = root / "ImageSets" / "2017" / "val.txt"
    names = lists.read_text(encoding="utf-8")
    lists.write_text("\ufeff" + names, encoding="utf-8")
    results = evaluate_dataset(str(root), davis17_results(tmp_path), EvaluationConfig(skip_first_last=False))
    assert [o.name for o in results.objects] == ["bear_1", "tennis_1", "tennis_2"]
    for encoding, says in (("utf-16", "not UTF-8 text"), ("utf-16-le", "holds NUL characters")):  # BOM, none
        lists.write_text(names, encoding=encoding)
        with pytest.raises(DatasetLayoutError, match=rf"val.txt: (the file )?{says}.*save (it|the file) as UTF-8"):
            evaluate_dataset(str(root), davis17_results(tmp_path / encoding), EvaluationConfig(skip_first_last=False))


@needs_data
def test_a_merged_davis_2016_and_2017_tree_is_refused_before_scoring(tmp_path):
    """Both official zips extracted into one folder: DAVIS-2016's grey 0/255 mask over a DAVIS-2017 sequence's
    palette one would be scored as one object (tennis' two results against a single-object truth)."""
    import shutil

    root = tmp_path / "DAVIS"
    shutil.copytree(DAVIS17, root)
    (root / "ImageSets" / "480p").mkdir()
    (root / "ImageSets" / "480p" / "val.txt").write_text("")
    first = root / "Annotations" / "480p" / "tennis" / "00000.png"
    grey = np.where(np.asarray(Image.open(first)) > 0, 255, 0).astype(np.uint8)
    Image.fromarray(grey, mode="L").save(first)
    with pytest.raises(DatasetLayoutError, match=r"00000.png: a grey annotation .* extracted into one folder"):
        evaluate_dataset(str(root), davis17_results(tmp_path), EvaluationConfig(skip_first_last=False))


@needs_data
def test_davis2017_layout_with_void(tmp_path):
    config = EvaluationConfig(skip_first_last=False)
    out = davis17_results(tmp_path)
    results = evaluate_dataset(DAVIS17, out, config)
    assert results.year == 2017 and not results.has_t
    assert [o.name for o in results.objects] == ["bear_1", "tennis_1", "tennis_2"]
    assert all(np.all(o.j == 1) and np.all(o.f == 1) for o in results.objects)

    # Void pixels labelled as object 1: background by default, as davis2017-evaluation scores them (it passes
    # no void mask for the semi-supervised task); left out of J and F with exclude_void.
    def void_as_one(seq, labels, gt):
        return np.where(gt == 255, 1, labels).astype(np.uint8)

    out = davis17_results(tmp_path / "void", void_as_one)
    tennis1 = evaluate_dataset(DAVIS17, out, EvaluationConfig(skip_first_last=False, exclude_void=True)).objects[1]
    np.testing.assert_array_equal(tennis1.j, [1.0, 1.0])
    np.testing.assert_array_equal(tennis1.f, [1.0, 1.0])
    kept = evaluate_dataset(DAVIS17, out, config)
    _, gt = gt_stack(DAVIS17, "tennis")
    expected = [ref_j(g == 1, (g == 1) | (g == 255)) for g in gt]
    np.testing.assert_allclose(kept.objects[1].j, expected)
    assert max(expected) < 1.0


@needs_data
def test_a_folder_holding_the_davis_folder_is_read_as_segment_reads_it(tmp_path):
    """segment takes --davis_root=<a folder holding DAVIS/> (`find_davis_root`); evaluate took the path as given
    and refused it ("neither .../ImageSets/2017/val.txt nor ... exists")."""
    from maskrnn_tf.metrics import evaluate_sequence

    out = davis17_results(tmp_path)
    parent = tmp_path / "data"
    parent.mkdir()
    os.symlink(DAVIS17, parent / "DAVIS")
    config = EvaluationConfig(skip_first_last=False)
    results = evaluate_dataset(str(parent), out, config)
    assert results.year == 2017 and [o.name for o in results.objects] == ["bear_1", "tennis_1", "tennis_2"]
    assert all(np.all(o.j == 1) and np.all(o.f == 1) for o in results.objects)
    assert [o.name for o in evaluate_sequence(str(parent), out, "tennis", config).objects] == ["tennis_1", "tennis_2"]
    # DAVIS-2016 and DAVIS-2017 side by side: the year asked for picks the folder (segment's --davis_year);
    # without one, the folder segment reads, DAVIS-2016 (whose val sequences these results lack).
    both = tmp_path / "both"
    both.mkdir()
    os.symlink(DAVIS16, both / "DAVIS-2016")
    os.symlink(DAVIS17, both / "DAVIS-2017")
    year_2017 = EvaluationConfig(skip_first_last=False, year=2017)
    assert [o.name for o in evaluate_dataset(str(both), out, year_2017).objects] == ["bear_1", "tennis_1", "tennis_2"]
    with pytest.raises(MissingResultsError, match="no results for sequence 'blackswan'"):
        evaluate_dataset(str(both), out, EvaluationConfig(sequences=("blackswan",)))


@needs_data
def test_two_frame_sequences_need_all_frames(tmp_path):
    out = davis17_results(tmp_path)
    with pytest.raises(EvaluationInputError, match="bear.*all_frames"):
        evaluate_dataset(DAVIS17, out, EvaluationConfig())


@needs_data
@pytest.mark.parametrize("case", ["no_folder", "no_sequence", "missing_frame", "extra_frame", "unknown_id", "size",
                                  "unknown_sequence"])
def test_bad_results_raise_clear_errors(tmp_path, case):
    out = davis17_results(tmp_path)
    config = EvaluationConfig(skip_first_last=False)
    tennis = os.path.join(out, "tennis")
    if case == "no_folder":
        out, error, match = str(tmp_path / "missing"), MissingResultsError, "results folder not found"
    elif case == "no_sequence":
        for n in os.listdir(tennis):
            os.unlink(os.path.join(tennis, n))
        os.rmdir(tennis)
        error, match = MissingResultsError, "no results for sequence 'tennis'"
    elif case == "missing_frame":
        os.unlink(os.path.join(tennis, "00001.png"))
        error, match = MissingResultsError, "00001.png"
    elif case == "extra_frame":
        write_palette_png(os.path.join(tennis, "00007.png"), np.zeros((480, 854), np.uint8))
        error, match = ExtraFramesError, "00007.png"
    elif case == "unknown_id":
        lab = read_mask(os.path.join(tennis, "00000.png"))
        lab[0, 0] = 3
        write_palette_png(os.path.join(tennis, "00000.png"), lab)
        error, match = UnknownObjectError, r"tennis/00000.png: object id\(s\) \[3\]"
    elif case == "size":
        write_palette_png(os.path.join(tennis, "00001.png"), np.zeros((240, 427), np.uint8))
        error, match = SizeMismatchError, "00001.png: result is 427x240 but the annotation is 854x480"
    else:
        config = EvaluationConfig(skip_first_last=False, sequences=("nosuch",))
        error, match = DatasetLayoutError, "nosuch"
    with pytest.raises(error, match=match):
        evaluate_dataset(DAVIS17, out, config)


def make_synthetic_2016(root, n_frames=6, eval_t=None):
    """A tiny DAVIS-2016 root: two sequences of moving squares (0/255 grey masks)."""
    lines = []
    for s, seq in enumerate(("alpha", "beta")):
        folder = os.path.join(root, "Annotations", "480p", seq)
        os.makedirs(folder)
        for t in range(n_frames):
            mask = np.zeros((40, 60), np.uint8)
            mask[10 + s : 20 + s + t, 10 + 2 * t : 25 + 2 * t] = 255
            Image.fromarray(mask, mode="L").save(os.path.join(folder, f"{t:05d}.png"))
            lines.append(f"/JPEGImages/480p/{seq}/{t:05d}.jpg /Annotations/480p/{seq}/{t:05d}.png")
    os.makedirs(os.path.join(root, "ImageSets", "480p"))
    with open(os.path.join(root, "ImageSets", "480p", "val.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    if eval_t is not None:
        with open(os.path.join(root, "Annotations", "db_info.yml"), "w") as f:
            f.write("sequences:\n" + "".join(f"- name: {k}\n  eval_t: {str(v).lower()}\n" for k, v in eval_t.items()))


def _synthetic_root_with_its_truth_as_results(tmp_path):
    """A synthetic DAVIS-2016 root (alpha, beta; no T) and a results folder holding its ground truth."""
    root = str(tmp_path / "davis")
    make_synthetic_2016(root, eval_t={"alpha": False, "beta": False})
    out = str(tmp_path / "res")
    for seq in ("alpha", "beta"):
        names, gt = gt_stack(root, seq)
        write_results(out, seq, names, gt)
    return root, out


def test_results_named_with_an_upper_case_extension_are_refused(tmp_path):
    """davis2017-evaluation reads exactly `<results>/<seq>/<frame>.png`: on Linux it finds no result in a folder
    of `<frame>.PNG` files, yet evaluate scored them. They are refused naming the folder and a file, with the
    rename to do; macOS's hidden `._<frame>.png` files are still no results (ignored)."""
    root, out = _synthetic_root_with_its_truth_as_results(tmp_path)
    beta = os.path.join(out, "beta")
    with open(os.path.join(beta, "._00002.png"), "wb") as f:  # an AppleDouble file: no PNG at all
        f.write(b"\x00\x05\x16\x07")
    config = EvaluationConfig(compute_t=False)
    assert evaluate_dataset(root, out, config).global_metrics()["J-Mean"] == 1.0
    for ext in (".PNG", ".Png"):
        os.rename(os.path.join(beta, "00002.png"), os.path.join(beta, "00002" + ext))
        with pytest.raises(ResultNameError) as raised:
            evaluate_dataset(root, out, config)
        message = str(raised.value)
        assert message.startswith(f"{beta}: ") and f"00002{ext}" in message
        assert "rename" in message and "00002.png" in message and "davis2017-evaluation" in message
        os.rename(os.path.join(beta, "00002" + ext), os.path.join(beta, "00002.png"))
    # A frame not scored (the first) is refused too: the folder is not one the benchmark reads as written.
    os.rename(os.path.join(beta, "00000.png"), os.path.join(beta, "00000.PNG"))
    with pytest.raises(ResultNameError, match="00000.PNG"):
        evaluate_dataset(root, out, config)
    # Beside the lower-case file of the same frame: the benchmark reads the .png one; the other goes.
    write_palette_png(os.path.join(beta, "00000.png"), np.zeros((40, 60), np.uint8))
    with pytest.raises(ResultNameError, match=r"00000.png and 00000.PNG.*remove 00000.PNG"):
        evaluate_dataset(root, out, config)
    os.unlink(os.path.join(beta, "00000.PNG"))
    assert evaluate_dataset(root, out, config).global_metrics()["J-Mean"] == 1.0


def _one_frame(tmp_path, result):
    """(results folder, spec) of a one-frame sequence 'seq' whose result PNG holds the grey values `result`."""
    from maskrnn_tf.metrics.davis_dataset import SequenceSpec

    out = tmp_path / "res"
    (out / "seq").mkdir(parents=True)
    Image.fromarray(result, mode="L").save(out / "seq" / "00000.png")
    return str(out), SequenceSpec("seq", ("00000",), ())


@pytest.mark.parametrize("kind", ["binary", "ids"])
def test_a_result_resized_with_interpolation_is_named_as_such(tmp_path, kind):
    """A 0/255 result resized bilinearly holds greys between 0 and 255 on its edges: it was refused as 'object
    id(s) [2, 5, 9, ... 253] not in the ground truth ... label objects with their first-frame ids', the whole
    list of greys and a wrong remedy. A grey id map of objects 1 and 2 resized so holds a band of 1 round object
    2: it was scored as object 1, without a word."""
    import cv2

    from maskrnn_tf.metrics.davis_dataset import load_results

    small = np.zeros((16, 22), np.uint8)
    if kind == "binary":
        cv2.circle(small, (11, 8), 5, 255, -1)
    else:
        small[2:7, 2:8], small[8:14, 10:18] = 1, 2
    resized = cv2.resize(small, (56, 40), interpolation=cv2.INTER_LINEAR)
    greys = sorted(set(np.unique(resized).tolist()) - {0, small.max()})
    assert len(greys) > 10 if kind == "binary" else greys == [1]  # the premise: greys on the edges
    out, spec = _one_frame(tmp_path, resized)
    with pytest.raises(UnreadableResultError) as raised:
        load_results(out, spec, [0], (1,) if kind == "binary" else (1, 2), (40, 56))
    message = str(raised.value)
    path = os.path.join(out, "seq", "00000.png")
    if kind == "binary":
        shown = ", ".join(str(v) for v in greys[:3])
        assert message.startswith(f"{path}: {len(greys)} grey values between 0 and 255 ({shown}, ...) on the edges")
    else:
        assert message.startswith(f"{path}: grey value(s) 1 lie in bands between 0 and 2 on their edges")
    assert "resized with interpolation" in message and "cv2.INTER_NEAREST" in message
    assert len(message) < len(out) + 500 and "\n" not in message  # three of the greys, one line


def test_a_grey_id_result_of_an_unknown_object_names_the_first_frame_ids(tmp_path):
    from maskrnn_tf.metrics.davis_dataset import load_results

    # Unknown ids that are ids (a grey id map of objects 1 and 3 where the ground truth has 1 and 2).
    ids = np.zeros((40, 56), np.uint8)
    ids[5:15, 5:15], ids[20:30, 20:40] = 1, 3
    out, spec = _one_frame(tmp_path / "ids", ids)
    with pytest.raises(UnknownObjectError, match=r"object id\(s\) \[3\] not in the ground truth .* first-frame ids"):
        load_results(out, spec, [0], (1, 2), (40, 56))


def test_synthetic_2016_t_rules_and_parallel(tmp_path):
    root = str(tmp_path / "davis")
    make_synthetic_2016(root)
    out = str(tmp_path / "res")
    for seq in ("alpha", "beta"):
        names, gt = gt_stack(root, seq)
        write_results(out, seq, names, gt)
    serial = evaluate_dataset(root, out, EvaluationConfig())
    assert serial.year == 2016 and len(serial.notes) == 1 and "db_info.yml not found" in serial.notes[0]
    assert all(o.t is not None and o.t > 0 for o in serial.objects)  # growing rectangles deform
    parallel = evaluate_dataset(root, out, EvaluationConfig(processes=2))
    for a, b in zip(serial.objects, parallel.objects):
        assert a.name == b.name and a.t == b.t
        np.testing.assert_array_equal(a.j, b.j)
        np.testing.assert_array_equal(a.f, b.f)

    root2 = str(tmp_path / "davis2")
    make_synthetic_2016(root2, eval_t={"alpha": False, "beta": True})
    flagged = evaluate_dataset(root2, out, EvaluationConfig())
    assert [o.t is None for o in flagged.objects] == [True, False] and not flagged.notes
    assert flagged.objects[1].t == serial.objects[1].t
    write_reports(flagged, out)
    rows = read_csv(os.path.join(out, "per-sequence_results-val.csv"))
    assert rows[1][3] == "" and float(rows[2][3]) == pytest.approx(serial.objects[1].t, abs=5e-4)
    off = evaluate_dataset(root2, out, EvaluationConfig(compute_t=False))
    assert not off.has_t and "T-Mean" not in off.global_metrics()
    assert math.isclose(off.global_metrics()["J-Mean"], 1.0)


def test_evaluate_sequence_by_name(tmp_path):
    from maskrnn_tf.metrics import evaluate_sequence

    root = str(tmp_path / "davis")
    make_synthetic_2016(root, eval_t={"alpha": True, "beta": False})
    out = str(tmp_path / "res")
    names, gt = gt_stack(root, "alpha")
    pred = gt.copy()
    pred[2] = 0  # frame 2 lost: J = F = 0 there
    write_results(out, "alpha", names, pred)
    seq = evaluate_sequence(root, out, "alpha")
    assert seq.frames == ("00001", "00002", "00003", "00004")
    (obj,) = seq.objects
    np.testing.assert_array_equal(obj.j, [1, 0, 1, 1])
    np.testing.assert_array_equal(obj.f, [1, 0, 1, 1])
    assert obj.j_stats == pytest.approx((0.75, 0.75, (1 + 0) / 2 - (1 + 1) / 2))
    assert obj.t is not None and not math.isnan(obj.t)  # eval_t: true; the empty frame's pairs are skipped
    assert evaluate_sequence(root, out, "alpha", with_t=False).objects[0].t is None
    with pytest.raises(DatasetLayoutError, match="'gamma' is not in"):
        evaluate_sequence(root, out, "gamma")


def test_write_reports_creates_missing_output_dir(tmp_path):
    from maskrnn_tf.metrics import write_reports

    root, out = _synthetic_root_with_its_truth_as_results(tmp_path)
    results = evaluate_dataset(root, out, EvaluationConfig(compute_t=False))
    old_umask = os.umask(0o022)
    try:
        global_path, per_seq_path = write_reports(results, str(tmp_path / "new" / "reports"))
    finally:
        os.umask(old_umask)
    assert float(read_csv(global_path)[1][1]) == 1.0 and os.path.isfile(per_seq_path)
    # Readable by the group and others, as a plain open() under umask 022 makes them (mkstemp makes 0600).
    assert {oct(os.stat(p).st_mode & 0o777) for p in (global_path, per_seq_path)} == {oct(0o644)}


def test_t_reference_values_on_hand_made_shapes(tmp_path):
    """T through evaluate_dataset: a disc translated by whole pixels keeps its contour (T = 0); a disc that
    turns into a square and back scores, on every step, the shape-context cost of that pair, here from the
    brute-force reference over all matchings (8 contour points, so 8! of them)."""
    from maskrnn_tf.metrics import ShapeContextConfig

    root = str(tmp_path / "davis")
    make_synthetic_2016(root, n_frames=6)
    yy, xx = np.mgrid[0:40, 0:60]

    def disc(cx):
        return ((yy - 20) ** 2 + (xx - cx) ** 2 <= 9 ** 2).astype(np.uint8)

    square = np.zeros((40, 60), np.uint8)
    square[12:29, 22:39] = 1
    names = [f"{t:05d}.png" for t in range(6)]
    out = str(tmp_path / "res")
    write_results(out, "alpha", names, [disc(15 + 4 * t) for t in range(6)])
    write_results(out, "beta", names, [disc(30) if t % 2 else square for t in range(6)])
    shape = ShapeContextConfig(n_points=8)
    results = evaluate_dataset(root, out, EvaluationConfig(compute_t=True, shape_context=shape))
    alpha, beta = results.objects
    assert alpha.t == pytest.approx(0.0, abs=1e-9)
    # Scored frames 1..4: pairs (1,2), (2,3), (3,4) all disc <-> square, each scaled by 5 as DAVIS-2016 does.
    want = 5.0 * np.mean([brute_force_pair_cost(disc(30), square, shape),
                          brute_force_pair_cost(square, disc(30), shape), brute_force_pair_cost(disc(30), square, shape)])
    assert beta.t == pytest.approx(want, rel=1e-9) and want > 0.25


def test_t_mean_leaves_out_an_object_with_no_t(tmp_path):
    """An object predicted empty in every frame has no contour pair to score (T is NaN); T-Mean averages the
    objects that have a T, so it is the other sequence's T rather than NaN."""
    root = str(tmp_path / "davis")
    make_synthetic_2016(root, eval_t={"alpha": True, "beta": True})
    out = str(tmp_path / "res")
    names, gt = gt_stack(root, "alpha")
    write_results(out, "alpha", names, np.zeros_like(gt))
    names, gt = gt_stack(root, "beta")
    write_results(out, "beta", names, gt)
    results = evaluate_dataset(root, out, EvaluationConfig())
    alpha, beta = results.objects
    assert math.isnan(alpha.t) and beta.t > 0  # beta's rectangles grow: a finite, non-zero T
    assert results.global_metrics()["T-Mean"] == beta.t


def test_a_0_255_mask_is_object_1_only_where_the_ground_truth_has_one_object(tmp_path):
    """A 0/255 grey result (every object's foreground merged) of a two-object sequence was read as object 1 and
    scored (J 0.5 and 0.0 where davis2017-evaluation refuses the file: 255 is above the sequence's object count).
    It is refused by name, saying how to write the objects apart; with one object it is still that object."""
    from maskrnn_tf.metrics.davis_dataset import UnreadableResultError, load_results

    merged = np.zeros((40, 56), np.uint8)
    merged[5:15, 5:15], merged[20:30, 20:40] = 255, 255
    out, spec = _one_frame(tmp_path, merged)
    path = os.path.join(out, "seq", "00000.png")
    with pytest.raises(UnreadableResultError) as raised:
        load_results(out, spec, [0], (1, 2), (40, 56))
    message = str(raised.value)
    assert message.startswith(f"{path}: a 0/255 mask (one foreground) but the sequence has 2 objects")
    assert "palette PNG" in message
    np.testing.assert_array_equal(load_results(out, spec, [0], (1,), (40, 56))[0], merged // 255)


def make_synthetic_2017(root, n_frames=5):
    """A tiny DAVIS-2017 root: sequence 'alpha', two moving squares in palette PNGs."""
    folder = os.path.join(root, "Annotations", "480p", "alpha")
    os.makedirs(folder)
    for t in range(n_frames):
        ids = np.zeros((40, 60), np.uint8)
        ids[5:15, 5 + 2 * t : 18 + 2 * t] = 1
        ids[22:34, 30:44] = 2
        write_palette_png(os.path.join(folder, f"{t:05d}.png"), ids)
    os.makedirs(os.path.join(root, "ImageSets", "2017"))
    with open(os.path.join(root, "ImageSets", "2017", "val.txt"), "w") as f:
        f.write("alpha\n")
    return folder


def test_ground_truth_of_another_size_is_named(tmp_path):
    """An annotation of another size than the sequence's first was stacked with np.stack: a bare ValueError
    ('all input arrays must have the same shape'), no file named, and the CLI's traceback instead of exit 2."""
    root = str(tmp_path / "davis")
    folder = make_synthetic_2017(root)
    out = str(tmp_path / "res")
    names, gt = gt_stack(root, "alpha")
    write_results(out, "alpha", names, gt)
    assert evaluate_dataset(root, out, EvaluationConfig()).global_metrics()["J-Mean"] == 1.0
    taller = np.zeros((42, 60), np.uint8)
    taller[5:15, 5:18] = 1
    write_palette_png(os.path.join(folder, "00002.png"), taller)
    with pytest.raises(DatasetLayoutError, match=r"alpha/00002.png: annotation is 60x42 but the first annotation"):
        evaluate_dataset(root, out, EvaluationConfig())
    proc = subprocess.run([sys.executable, "-m", "maskrnn_tf.evaluate", f"--davis_root={root}", f"--results={out}",
                           "--processes=1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "00002.png" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_a_gap_in_the_ground_truth_frames_is_named_not_blamed_on_the_results(tmp_path):
    """DAVIS-2017 frames are the annotation PNGs found: with 00002.png gone, complete results were refused as
    'not in the ground truth' (remove your result), and results missing it too were scored without a word."""
    root = str(tmp_path / "davis")
    folder = make_synthetic_2017(root)
    out = str(tmp_path / "res")
    names, gt = gt_stack(root, "alpha")
    write_results(out, "alpha", names, gt)
    os.unlink(os.path.join(folder, "00002.png"))
    with pytest.raises(DatasetLayoutError, match=r"alpha/00003.png: non-contiguous frame numbering .* restore"):
        evaluate_dataset(root, out, EvaluationConfig())
    os.unlink(os.path.join(out, "alpha", "00002.png"))
    with pytest.raises(DatasetLayoutError, match="non-contiguous"):
        evaluate_dataset(root, out, EvaluationConfig())


def test_results_or_reports_inside_the_dataset_folders_are_refused(tmp_path):
    """--results=<root>/Annotations/480p scored the ground truth against itself (J = 1, no word), and
    --output_dir=<root>/Annotations wrote the CSVs in among the annotations."""
    root, out = _synthetic_root_with_its_truth_as_results(tmp_path)
    annotations = os.path.join(root, "Annotations", "480p")
    with pytest.raises(EvaluationInputError, match=r"lies inside the dataset's Annotations .* against itself gives J = 1"):
        evaluate_dataset(root, annotations, EvaluationConfig())
    before = sorted(os.listdir(os.path.join(root, "Annotations")))
    # Refused before the scoring (here it would fail on the missing results folder after it).
    proc = subprocess.run([sys.executable, "-m", "maskrnn_tf.evaluate", f"--davis_root={root}",
                           f"--results={out}-missing", f"--output_dir={os.path.join(root, 'Annotations')}",
                           "--processes=1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--output_dir" in proc.stderr and "dataset's Annotations" in proc.stderr, (
        proc.stderr)
    assert sorted(os.listdir(os.path.join(root, "Annotations"))) == before


def test_an_unreadable_first_frame_result_does_not_stop_the_scoring(tmp_path):
    """The notes on davis2017-evaluation opened each sequence's first result file, frame 0, which neither evaluate
    nor davis2017-evaluation scores: an empty 00000.png raised UnidentifiedImageError after the whole split was
    scored (a traceback, no CSVs). They read a scored frame now."""
    root = str(tmp_path / "davis")
    make_synthetic_2017(root, n_frames=4)
    out = str(tmp_path / "res")
    names, gt = gt_stack(root, "alpha")
    pred = gt.copy()
    pred[2][pred[2] == 2] = 0  # object 2 lost in frame 2
    write_results(out, "alpha", names, pred)
    open(os.path.join(out, "alpha", "00000.png"), "wb").close()  # zero bytes: no PNG at all
    results = evaluate_dataset(root, out, EvaluationConfig())
    # Frames 1 and 2 scored: object 1 J = 1, 1; object 2 J = 1, 0 -> J-Mean (1 + 0.5) / 2.
    assert results.sequences[0].frames == ("00001", "00002")
    np.testing.assert_array_equal(results.objects[1].j, [1.0, 0.0])
    assert results.global_metrics()["J-Mean"] == 0.75
    assert results.notes == []


def test_grey_and_alpha_results_are_noted_as_unreadable_by_davis2017_evaluation(tmp_path):
    """An opaque LA (grey + alpha) result is scored here by its grey ids, but davis2017-evaluation's
    np.array(Image.open(path)) is [H, W, 2] and fails: the scores came without a word, as RGB ones did before."""
    root = str(tmp_path / "davis")
    make_synthetic_2017(root, n_frames=4)
    out = str(tmp_path / "res")
    names, gt = gt_stack(root, "alpha")
    os.makedirs(os.path.join(out, "alpha"))
    for name, ids in zip(names, gt):
        Image.fromarray(np.stack([ids, np.full_like(ids, 255)], axis=-1), mode="LA").save(
            os.path.join(out, "alpha", name))
    assert Image.open(os.path.join(out, "alpha", names[1])).mode == "LA"  # the premise
    results = evaluate_dataset(root, out, EvaluationConfig())
    assert results.global_metrics()["J-Mean"] == 1.0
    (note,) = results.notes
    assert note.startswith("Grey and alpha (LA) result PNGs (alpha)") and "davis2017-evaluation" in note
    assert "write_palette_png" in note


def _evaluate_cli(*flags):
    return subprocess.run([sys.executable, "-m", "maskrnn_tf.evaluate", "--processes=1", *flags],
                          capture_output=True, text=True, timeout=120)


def test_cli_refuses_an_unwritable_report_location_before_scoring(tmp_path):
    """--output_dir=<a file> (or a folder under one) failed after the scoring with a bare errno ('[Errno 17] File
    exists'), exit 1, the scores lost. It is refused by name before the scoring, exit 2."""
    root, out = _synthetic_root_with_its_truth_as_results(tmp_path)
    a_file = tmp_path / "afile.txt"
    a_file.write_text("file\n")
    for output_dir in (a_file, a_file / "sub"):
        proc = _evaluate_cli(f"--davis_root={root}", f"--results={out}", f"--output_dir={output_dir}", "--t=off")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith(f"error: --output_dir {output_dir}") and "Errno" not in proc.stderr
        assert f"{a_file} is a file" in proc.stderr and "another --output_dir" in proc.stderr
        assert "Global results" not in proc.stdout  # nothing scored
    assert a_file.read_text() == "file\n"


def test_cli_prints_the_scores_when_the_reports_cannot_be_written(tmp_path):
    """A write failing after the scoring (here a folder in the way of the global CSV) printed only the errno:
    the scores are printed, then one line naming the flag and the folder, exit 2."""
    root, out = _synthetic_root_with_its_truth_as_results(tmp_path)
    reports = tmp_path / "reports"
    (reports / "global_results-val.csv").mkdir(parents=True)
    proc = _evaluate_cli(f"--davis_root={root}", f"--results={out}", f"--output_dir={reports}", "--t=off")
    assert proc.returncode == 2, proc.stderr
    assert "Global results for val" in proc.stdout and "alpha_1" in proc.stdout
    assert proc.stderr.startswith(f"error: --output_dir {reports}: ") and proc.stderr.count("\n") == 1
    assert "writable --output_dir" in proc.stderr and "Errno" not in proc.stderr


def test_an_unwritable_results_folder_asks_for_an_output_dir(tmp_path, monkeypatch):
    """--results=<a read-only folder> without --output_dir: the CSVs go there; refused before the scoring,
    asking for a writable --output_dir (os.access answers as on a read-only file system: tests may run as root)."""
    from maskrnn_tf.metrics.report import check_report_location

    out = tmp_path / "res"
    out.mkdir()
    check_report_location(None, str(out), "val")
    check_report_location(str(tmp_path / "new" / "reports"), str(out), "val")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(out) else real_access(path, mode))
    with pytest.raises(EvaluationInputError) as raised:
        check_report_location(None, str(out), "val")
    message = str(raised.value)
    assert message.startswith(f"--results {out}: ") and "writable --output_dir" in message
    check_report_location(str(tmp_path / "reports"), str(out), "val")  # the results are only read
    check_report_location(None, str(tmp_path / "missing"), "val")  # named by the scoring: results not found


def _first_frame_annotated_root(tmp_path, split="test-dev", n_frames=3):
    """A DAVIS-2017 root whose split has its frames in JPEGImages/ but only 00000.png annotated (test-dev)."""
    root = str(tmp_path / "td")
    folder = make_synthetic_2017(root, n_frames=n_frames)
    frames = os.path.join(root, "JPEGImages", "480p", "alpha")
    os.makedirs(frames)
    for t in range(n_frames):
        Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(os.path.join(frames, f"{t:05d}.jpg"))
        if t:
            os.unlink(os.path.join(folder, f"{t:05d}.png"))
    lists = os.path.join(root, "ImageSets", "2017")
    os.rename(os.path.join(lists, "val.txt"), os.path.join(lists, split + ".txt"))
    return root


@pytest.mark.parametrize("skip_first_last", [True, False])
def test_a_split_annotated_on_its_first_frames_only_is_named_as_such(tmp_path, skip_first_last):
    """test-dev ships the first frame's mask only: evaluate said "sequence 'alpha' has 1 frame(s) ... Use
    skip_first_last=False (--all_frames)" (it has 3), then with --all_frames "2 result frame(s) not in the ground
    truth ... remove them", of valid results. It says the split cannot be scored here (the DAVIS server does)."""
    root = _first_frame_annotated_root(tmp_path)
    out = str(tmp_path / "res")
    write_results(out, "alpha", [f"{t:05d}.png" for t in range(3)], np.zeros((3, 40, 60), np.uint8))
    with pytest.raises(DatasetLayoutError) as raised:
        evaluate_dataset(root, out, EvaluationConfig(split="test-dev", skip_first_last=skip_first_last))
    message = str(raised.value)
    assert "first-frame annotations only" in message and "cannot be scored locally" in message
    assert "DAVIS evaluation server" in message and "'test-dev'" in message and "alpha" in message
    assert "remove them" not in message and "skip_first_last" not in message


def test_a_too_short_sequence_names_the_flag_not_the_library_parameter(tmp_path):
    root = str(tmp_path / "davis")
    make_synthetic_2017(root, n_frames=2)
    out = str(tmp_path / "res")
    names, gt = gt_stack(root, "alpha")
    write_results(out, "alpha", names, gt)
    with pytest.raises(EvaluationInputError) as raised:
        evaluate_dataset(root, out, EvaluationConfig())
    message = str(raised.value)
    assert "'alpha' has 2 annotated frames" in message and "--all_frames" in message
    assert "skip_first_last" not in message


def test_sequences_keeps_a_broken_sequence_not_asked_for_out(tmp_path):
    """The whole split was read before the --sequences filter: a sequence without annotations stopped the
    scoring of another ("noann: no annotation PNGs"). Only the chosen ones are read; unknown names still refused."""
    root = str(tmp_path / "davis")
    make_synthetic_2017(root)
    with open(os.path.join(root, "ImageSets", "2017", "val.txt"), "a") as f:
        f.write("noann\n")
    out = str(tmp_path / "res")
    names, gt = gt_stack(root, "alpha")
    write_results(out, "alpha", names, gt)
    results = evaluate_dataset(root, out, EvaluationConfig(sequences=("alpha",)))
    assert [o.name for o in results.objects] == ["alpha_1", "alpha_2"]
    with pytest.raises(DatasetLayoutError, match="noann: no annotation PNGs"):
        evaluate_dataset(root, out, EvaluationConfig())
    with pytest.raises(DatasetLayoutError, match=r"'nosuch'.* not in the DAVIS-2017 'val' split.*alpha.*noann"):
        evaluate_dataset(root, out, EvaluationConfig(sequences=("alpha", "nosuch")))


def test_results_of_one_video_in_the_flat_layout_are_named(tmp_path):
    """segment --video writes <results>/<frame>.png; evaluate said only "no results for sequence 'alpha'"."""
    root = str(tmp_path / "davis")
    make_synthetic_2017(root)
    out = str(tmp_path / "res")
    names, gt = gt_stack(root, "alpha")
    write_results(out, "alpha", names, gt)
    for name in names:
        os.rename(os.path.join(out, "alpha", name), os.path.join(out, name))
    os.rmdir(os.path.join(out, "alpha"))
    with pytest.raises(MissingResultsError) as raised:
        evaluate_dataset(root, out, EvaluationConfig())
    message = str(raised.value)
    assert message.startswith(f"{out}: ") and "PNG frames" in message and "directly in --results" in message
    assert "<results>/<sequence>/<frame>.png" in message and "00000.png" in message


@pytest.mark.parametrize("case", ["extra", "missing", "jpeg"])
def test_result_file_lists_name_each_file_whole(tmp_path, case):
    """"e.g. 00002, extra.png" put .png on the last name only; JPEG results were only "frames missing"."""
    root = str(tmp_path / "davis")
    make_synthetic_2017(root)
    out = str(tmp_path / "res")
    names, gt = gt_stack(root, "alpha")
    write_results(out, "alpha", names, gt)
    folder = os.path.join(out, "alpha")
    if case == "extra":
        for name in ("00005.png", "extra.png"):
            write_palette_png(os.path.join(folder, name), gt[0])
        error, wanted = ExtraFramesError, "(e.g. 00005.png, extra.png;"
    elif case == "missing":
        for name in ("00001.png", "00002.png"):
            os.unlink(os.path.join(folder, name))
        error, wanted = MissingResultsError, "(e.g. 00001.png, 00002.png)"
    else:
        for name in names:
            Image.open(os.path.join(folder, name)).convert("RGB").save(
                os.path.join(folder, name.replace(".png", ".jpg")))
            os.unlink(os.path.join(folder, name))
        error, wanted = MissingResultsError, "JPEG"
    with pytest.raises(error) as raised:
        evaluate_dataset(root, out, EvaluationConfig())
    message = str(raised.value)
    assert wanted in message, message
    if case == "jpeg":
        assert "00001.jpg" in message and "PNG" in message and "lossless" in message


@needs_data
def test_a_split_file_listing_a_sequence_twice_is_refused_as_segment_refuses_it(tmp_path):
    """evaluate scored a DAVIS-2017 split file listing bear twice with bear counted twice in the means, where segment
    and flow refuse the same file."""
    import shutil

    from maskrnn_tf.metrics.davis_dataset import list_sequences

    root = tmp_path / "davis"
    shutil.copytree(DAVIS17, root)
    lists = root / "ImageSets" / "2017" / "val.txt"
    names = lists.read_text(encoding="utf-8").split()
    lists.write_text("\n".join(names + names[:1]) + "\n", encoding="utf-8")
    with pytest.raises(DatasetLayoutError, match=re.escape(f"{lists}: lists {names[:1]} more than once")):
        list_sequences(str(root), "val", 2017)
