"""The note on grey 0/255 result masks (DAVIS-2017): davis2017-evaluation reads 255 as object 255 and exits, so any
scored frame read here as a 0/255 mask earns the note, whichever frame it is."""
import os

import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.io import write_palette_png
from maskrnn_tf.metrics import EvaluationConfig, evaluate_dataset

N_FRAMES = 5  # scored frames 00001..00003 under the DAVIS protocol


def one_object_2017(root):
    """A DAVIS-2017 root with one sequence 'alpha' of N_FRAMES palette annotations, one moving square (object 1);
    returns its id maps [N_FRAMES, H, W]."""
    folder = os.path.join(root, "Annotations", "480p", "alpha")
    os.makedirs(folder)
    truth = np.zeros((N_FRAMES, 40, 60), np.uint8)
    for t in range(N_FRAMES):
        truth[t, 10:22, 5 + 3 * t : 20 + 3 * t] = 1
        write_palette_png(os.path.join(folder, f"{t:05d}.png"), truth[t])
    os.makedirs(os.path.join(root, "ImageSets", "2017"))
    with open(os.path.join(root, "ImageSets", "2017", "val.txt"), "w") as f:
        f.write("alpha\n")
    return truth


def write_frame(out, t, ids, form):
    """Result frame t of 'alpha' from ids {0, 1}: 'grey255' a grey 0/255 PNG, 'grey01' a grey PNG of the ids,
    'palette' a palette PNG of the ids."""
    folder = os.path.join(out, "alpha")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{t:05d}.png")
    if form == "palette":
        write_palette_png(path, ids)
    else:
        Image.fromarray(ids * (255 if form == "grey255" else 1), mode="L").save(path)


def binary_notes(notes):
    return [n for n in notes if n.startswith("0/255 result masks")]


@pytest.mark.parametrize("case", ["first_scored_empty", "first_scored_all_255", "only_later_frames"])
def test_any_scored_0_255_frame_gives_the_note(tmp_path, case):
    """The note looked at the first scored frame (00001) only and wanted exactly {0, 255} there: an empty or an
    all-255 00001, or 0/255 masks in later frames only, gave `notes: []` although davis2017-evaluation exits on
    such a folder."""
    root, out = str(tmp_path / "davis"), str(tmp_path / "res")
    truth = one_object_2017(root)
    pred = truth.copy()
    forms = ["grey255"] * N_FRAMES
    if case == "first_scored_empty":
        pred[1] = 0  # read as grey values {0}: background, no 255 in this frame
    elif case == "first_scored_all_255":
        pred[1] = 1  # an all-255 grey frame: object 1 everywhere
    else:
        forms[:2] = ["palette", "palette"]  # frames 00000 and 00001 palette PNGs, 00002..00004 grey 0/255
    for t in range(N_FRAMES):
        write_frame(out, t, pred[t], forms[t])
    results = evaluate_dataset(root, out, EvaluationConfig())
    # The 0/255 frames are still scored as object 1: J is 1 where the prediction is the truth.
    want_j = [float(np.sum(pred[t] & truth[t]) / np.sum(pred[t] | truth[t])) for t in (1, 2, 3)]
    np.testing.assert_allclose(results.objects[0].j, want_j, rtol=1e-12)
    (note,) = binary_notes(results.notes)
    assert note.startswith("0/255 result masks (alpha) are scored here as object 1")
    assert "davis2017-evaluation reads 255 as object 255" in note


@pytest.mark.parametrize("forms", [["palette"] * N_FRAMES, ["grey01"] * N_FRAMES,
                                   ["grey255"] + ["palette"] * (N_FRAMES - 1)])
def test_results_without_a_scored_0_255_frame_give_no_note(tmp_path, forms):
    """Palette PNGs of ids and grey PNGs of ids (0/1) are what davis2017-evaluation reads: no note. Neither tool
    scores frame 00000, so a 0/255 mask there earns none either."""
    root, out = str(tmp_path / "davis"), str(tmp_path / "res")
    truth = one_object_2017(root)
    for t in range(N_FRAMES):
        write_frame(out, t, truth[t], forms[t])
    results = evaluate_dataset(root, out, EvaluationConfig())
    assert results.global_metrics()["J-Mean"] == 1.0
    assert results.notes == []


def one_object_2016(root):
    """A DAVIS-2016 root with one sequence 'alpha' of N_FRAMES grey 0/255 annotations, one moving square (object 1);
    returns its id maps [N_FRAMES, H, W]."""
    folder = os.path.join(root, "Annotations", "480p", "alpha")
    os.makedirs(folder)
    truth = np.zeros((N_FRAMES, 40, 60), np.uint8)
    lines = []
    for t in range(N_FRAMES):
        truth[t, 10:22, 5 + 3 * t : 20 + 3 * t] = 1
        Image.fromarray(truth[t] * 255, mode="L").save(os.path.join(folder, f"{t:05d}.png"))
        lines.append(f"/JPEGImages/480p/alpha/{t:05d}.jpg /Annotations/480p/alpha/{t:05d}.png")
    os.makedirs(os.path.join(root, "ImageSets", "480p"))
    with open(os.path.join(root, "ImageSets", "480p", "val.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return truth


def count_result_opens(monkeypatch, out):
    """{result file name: times Image.open opened it} for the files under `out`, filled as they are opened."""
    opened = {}
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        path = os.path.abspath(os.fspath(fp)) if isinstance(fp, (str, os.PathLike)) else ""
        if path.startswith(os.path.abspath(out) + os.sep):
            opened[os.path.basename(path)] = opened.get(os.path.basename(path), 0) + 1
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    return opened


@pytest.mark.parametrize("form", ["grey255", "palette"])
def test_a_davis_2016_evaluation_opens_each_scored_result_once(tmp_path, monkeypatch, form):
    """The 0/255 note (DAVIS-2017 only) reopened and decoded every scored result whose ids top out at 1, for
    DAVIS-2016 too (its results are 0/255 masks): its load took twice as long. The reader says what it read."""
    root, out = str(tmp_path / "davis"), str(tmp_path / "res")
    truth = one_object_2016(root)
    for t in range(N_FRAMES):
        write_frame(out, t, truth[t], form)
    opened = count_result_opens(monkeypatch, out)
    results = evaluate_dataset(root, out, EvaluationConfig(compute_t=False))
    assert results.year == 2016 and results.global_metrics()["J-Mean"] == 1.0
    assert opened == {"00001.png": 1, "00002.png": 1, "00003.png": 1}  # frames 00000 and 00004 are not scored


def test_a_davis_2017_evaluation_decodes_each_scored_result_once(tmp_path, monkeypatch):
    """The 0/255 note comes from the reading itself: only the first scored file is opened again, for its mode (the
    RGB and LA notes), and still every 0/255 sequence is noted."""
    root, out = str(tmp_path / "davis"), str(tmp_path / "res")
    truth = one_object_2017(root)
    for t in range(N_FRAMES):
        write_frame(out, t, truth[t], "grey255")
    opened = count_result_opens(monkeypatch, out)
    results = evaluate_dataset(root, out, EvaluationConfig())
    assert opened == {"00001.png": 2, "00002.png": 1, "00003.png": 1}
    (note,) = binary_notes(results.notes)
    assert note.startswith("0/255 result masks (alpha) are scored here as object 1")
