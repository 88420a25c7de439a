"""Ground truth and first masks saved as grey id PNGs (value = object id, 255 = void): what
davis2017-evaluation reads with `np.array(Image.open(path))` and what `cv2.imwrite` of an id array writes.
They were read as binary masks (foreground where grey > 127): ids 1..127 became background and void object 1."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from maskrnn_tf.data.sequences import load_masks, read_davis_sequence_list
from maskrnn_tf.inference import read_first_mask
from maskrnn_tf.io import read_mask
from maskrnn_tf.metrics import EvaluationConfig, EvaluationInputError, evaluate_dataset

from .conftest import HEIGHT, WIDTH, square_ids, write_palette_png

DAVIS17 = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                                       "DAVIS-2017-sample"))
needs_data = pytest.mark.usefixtures("shared_data")


def grey_copy(root):
    """The DAVIS-2017 sample with every annotation re-saved as a grey (mode L) PNG of the same ids."""
    shutil.copytree(DAVIS17, root)
    folder = os.path.join(root, "Annotations", "480p")
    for seq in os.listdir(folder):
        for name in os.listdir(os.path.join(folder, seq)):
            path = os.path.join(folder, seq, name)
            Image.fromarray(np.asarray(Image.open(path), np.uint8), mode="L").save(path)
    return root


def palette_ids(seq):
    folder = os.path.join(DAVIS17, "Annotations", "480p", seq)
    return [np.asarray(Image.open(os.path.join(folder, n)), np.uint8) for n in sorted(os.listdir(folder))]


def write_truth_as_results(out, seqs=("bear", "tennis")):
    for seq in seqs:
        os.makedirs(os.path.join(out, seq))
        for t, ids in enumerate(palette_ids(seq)):
            write_palette_png(os.path.join(out, seq, f"{t:05d}.png"), np.where(ids == 255, 0, ids))


@needs_data
def test_grey_id_ground_truth_scores_like_the_palette_one(tmp_path):
    root = grey_copy(str(tmp_path / "davis"))
    assert set(np.unique(palette_ids("tennis")[0]).tolist()) == {0, 1, 2, 255}  # the premise: ids and void
    out = str(tmp_path / "res")
    write_truth_as_results(out)
    results = evaluate_dataset(root, out, EvaluationConfig(skip_first_last=False, processes=1))
    assert [o.name for o in results.objects] == ["bear_1", "tennis_1", "tennis_2"]
    assert all(np.all(o.j == 1.0) and np.all(o.f == 1.0) for o in results.objects)


@needs_data
def test_grey_id_ground_truth_reads_as_ids_for_training_and_segmenting(tmp_path):
    root = grey_copy(str(tmp_path / "davis"))
    # Frame 1 of tennis keeps only object 2 and the void: still ids, not a 0/255 binary mask.
    last = os.path.join(root, "Annotations", "480p", "tennis", "00001.png")
    ids = np.asarray(Image.open(last), np.uint8).copy()
    ids[ids == 1] = 0
    Image.fromarray(ids, mode="L").save(last)
    sequences = {s.name: s for s in read_davis_sequence_list(root, 2017, "val")}
    assert sequences["tennis"].num_objects == 2 and sequences["bear"].num_objects == 1
    masks = load_masks(sequences["tennis"])
    np.testing.assert_array_equal(masks[0], palette_ids("tennis")[0])
    np.testing.assert_array_equal(masks[1], ids)
    np.testing.assert_array_equal(load_masks(sequences["bear"]), np.stack(palette_ids("bear")))


def make_2016(root, value):
    """A one-sequence DAVIS-2016 root whose masks hold 0 and `value` (0/255 as DAVIS ships them, or 0/1)."""
    folder = os.path.join(root, "Annotations", "480p", "alpha")
    frames = os.path.join(root, "JPEGImages", "480p", "alpha")
    os.makedirs(folder)
    os.makedirs(frames)
    lines = []
    for t in range(3):
        Image.fromarray(((square_ids(t) == 1) * value).astype(np.uint8), mode="L").save(
            os.path.join(folder, f"{t:05d}.png"))
        Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(os.path.join(frames, f"{t:05d}.jpg"))
        lines.append(f"/JPEGImages/480p/alpha/{t:05d}.jpg /Annotations/480p/alpha/{t:05d}.png")
    os.makedirs(os.path.join(root, "ImageSets", "480p"))
    with open(os.path.join(root, "ImageSets", "480p", "val.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def test_how_grey_masks_read_is_decided_on_the_first_annotation(tmp_path):
    """0/64 masks are the object in every frame; in a 0/255 sequence a later frame holding only a faint edge
    value (an object leaving, anti-aliased) stays background, as 'foreground where > 127' says for the sequence."""
    root = str(tmp_path / "dark")
    make_2016(root, 64)
    (sequence,) = read_davis_sequence_list(root, 2016, "val")
    np.testing.assert_array_equal(load_masks(sequence), np.stack([square_ids(t) == 1 for t in range(3)]))
    root = str(tmp_path / "leaving")
    make_2016(root, 255)
    faint = np.zeros((HEIGHT, WIDTH), np.uint8)
    faint[3, 4:9] = 40
    Image.fromarray(faint, mode="L").save(os.path.join(root, "Annotations", "480p", "alpha", "00002.png"))
    (sequence,) = read_davis_sequence_list(root, 2016, "val")
    assert not load_masks(sequence)[2].any()


@pytest.mark.parametrize("value", [255, 1, 64])
def test_davis2016_masks_of_0_255_and_of_0_1_are_the_object(tmp_path, value):
    root = str(tmp_path / "davis")
    make_2016(root, value)
    out = str(tmp_path / "res")
    os.makedirs(os.path.join(out, "alpha"))
    for t in range(3):
        write_palette_png(os.path.join(out, "alpha", f"{t:05d}.png"), (square_ids(t) == 1).astype(np.uint8))
    results = evaluate_dataset(root, out, EvaluationConfig(skip_first_last=False, processes=1, compute_t=False))
    assert [o.name for o in results.objects] == ["alpha_1"]
    np.testing.assert_array_equal(results.objects[0].j, [1.0, 1.0, 1.0])
    (sequence,) = read_davis_sequence_list(root, 2016, "val")
    np.testing.assert_array_equal(load_masks(sequence), np.stack([square_ids(t) == 1 for t in range(3)]))


def test_anti_aliased_grey_ground_truth_is_still_thresholded(tmp_path):
    """SegTrack-style masks (0/255 with soft edges) are not ids: foreground where > 127, as before."""
    root = str(tmp_path / "davis")
    make_2016(root, 255)
    path = os.path.join(root, "Annotations", "480p", "alpha", "00000.png")
    soft = (square_ids(0) == 1).astype(np.uint8) * 255
    soft[7, 6:18], soft[20, 6:18] = 40, 180
    Image.fromarray(soft, mode="L").save(path)
    (sequence,) = read_davis_sequence_list(root, 2016, "val")
    first = load_masks(sequence)[0]
    np.testing.assert_array_equal(first, soft > 127)


@pytest.mark.parametrize("thin", [False, True])
def test_grey_id_first_mask_with_void_keeps_its_objects(tmp_path, thin):
    ids = square_ids(0)
    if thin:  # two 2-px poles: no pixel of an object has all 8 neighbours of its own id
        ids = np.zeros((HEIGHT, WIDTH), np.uint8)
        ids[5:35, 10:12], ids[5:35, 30:32] = 1, 2
    labels = ids.copy()
    labels[(ids == 0) & (np.roll(ids, 2, axis=1) > 0)] = 255  # a void band beside each object, as DAVIS has
    path = str(tmp_path / "first.png")
    Image.fromarray(labels, mode="L").save(path)
    first = read_first_mask(path)
    assert first.object_ids == (1, 2)
    np.testing.assert_array_equal(first.labels, labels)


@needs_data
def test_a_sequence_named_twice_is_refused(tmp_path):
    out = str(tmp_path / "res")
    write_truth_as_results(out)
    config = EvaluationConfig(skip_first_last=False, processes=1, sequences=("bear", "tennis", "tennis"))
    with pytest.raises(EvaluationInputError, match="tennis.*more than once"):
        evaluate_dataset(DAVIS17, out, config)


@needs_data
def test_results_saved_with_an_upper_case_extension_are_refused_by_name(tmp_path):
    """davis2017-evaluation opens exactly `<frame>.png`: on Linux a folder of `.PNG` files gets no score there, so
    evaluate refuses it too (naming the folder and a file) instead of scoring what the benchmark cannot read."""
    out = str(tmp_path / "res")
    write_truth_as_results(out, ("bear", "tennis"))
    for seq in ("bear", "tennis"):
        for name in os.listdir(os.path.join(out, seq)):
            os.rename(os.path.join(out, seq, name), os.path.join(out, seq, name[:-4] + ".PNG"))
    with pytest.raises(EvaluationInputError, match=rf"{os.path.join(out, 'bear')}: 2 result file.*00000.PNG.*"
                                                   r"rename them to lower-case \.png"):
        evaluate_dataset(DAVIS17, out, EvaluationConfig(skip_first_last=False, processes=1))


def test_read_mask_still_thresholds_binary_masks(tmp_path):
    """read_mask keeps its contract for SegTrack's per-object layers (foreground where grey > 127)."""
    path = str(tmp_path / "layer.png")
    Image.fromarray(np.array([[0, 100, 128, 255]], np.uint8), mode="L").save(path)
    np.testing.assert_array_equal(read_mask(path), [[0, 0, 1, 1]])
