"""ensemble_step and mean_boxes against hand-computed values."""
import numpy as np
import pytest

from maskrnn_tf.inference.ensemble import EnsemblePrepare, ensemble_step, mean_boxes


def test_mean_boxes_averages_the_non_empty_boxes_of_each_object():
    a = np.array([[0, 0, 10, 10], [5, 5, 5, 9], [1, 1, 1, 1]], np.float32)  # object 1: empty height; 2: empty
    b = np.array([[2, 4, 12, 14], [0, 0, 4, 4], [3, 3, 3, 8]], np.float32)  # object 2 empty again
    c = np.array([[4, 2, 14, 12], [2, 2, 8, 8], [7, 7, 2, 2]], np.float32)
    got = mean_boxes([a, b, c])
    np.testing.assert_allclose(got[0], [2, 2, 12, 12])  # (a + b + c) / 3
    np.testing.assert_allclose(got[1], [1, 1, 6, 6])  # (b + c) / 2: a's is empty
    np.testing.assert_array_equal(got[2], a[2])  # all empty: the first set's


def test_the_ensemble_step_gives_the_mean_and_every_member_the_same_inputs():
    seen = []

    def member(scale, box, threshold=None):
        def step(frame, to_prev, to_next, prev_probs, prev_boxes):
            seen.append((scale, np.array(prev_probs), np.array(prev_boxes)))
            out = {"probs": np.full_like(prev_probs, scale), "boxes": np.tile(np.float32(box), (len(prev_probs), 1))}
            if threshold is not None:
                out["mask_threshold"] = np.full((len(prev_probs),), threshold, np.float32)
            return out
        return step

    step = ensemble_step([member(0.2, [0, 0, 4, 4], threshold=0.3), member(0.7, [2, 2, 6, 10]),
                          member(0.9, [0, 0, 0, 0])])
    prev = np.random.default_rng(0).random((2, 5, 6)).astype(np.float32)
    prev_boxes = np.array([[0, 0, 5, 6], [1, 1, 3, 3]], np.float32)
    out = step(np.zeros((5, 6, 3)), np.zeros((5, 6, 2)), np.zeros((5, 6, 2)), prev, prev_boxes)
    np.testing.assert_allclose(out["probs"], np.full((2, 5, 6), 0.6), rtol=1e-6)
    np.testing.assert_allclose(out["boxes"], [[1, 1, 5, 7]] * 2)  # the third member's boxes are empty
    np.testing.assert_array_equal(out["mask_threshold"], np.float32([0.3, 0.3]))
    assert [s for s, _, _ in seen] == [0.2, 0.7, 0.9]
    for _, p, b in seen:
        np.testing.assert_array_equal(p, prev)
        np.testing.assert_array_equal(b, prev_boxes)


def test_an_empty_ensemble_is_refused():
    with pytest.raises(ValueError, match="at least one step"):
        ensemble_step([])


def test_ensemble_prepare_averages_each_networks_prepared_step_and_merges_their_logs():
    class Source:
        name = "bear"

    def constant(value):
        def step(frame, to_prev, to_next, prev_probs, prev_boxes):
            return {"probs": np.full_like(prev_probs, value), "boxes": np.asarray(prev_boxes, np.float32)}
        return step

    calls = []

    def finetuning(value, updates, seconds):
        def prepare(source, first):
            calls.append((value, source.name, first))
            prepare.log[source.name] = {"updates": updates, "seconds": seconds, "kept_finetuning": True}
            return constant(value)
        prepare.log = {}
        return prepare

    # Network 0 finetuned to answer 0.9, network 1 not finetuned (its plain step answers 0.1), network 2 to 0.5.
    prepare = EnsemblePrepare([finetuning(0.9, 50, 40.0), None, finetuning(0.5, 20, 60.0)],
                              [constant(0.0), constant(0.1), constant(0.0)])
    log = prepare.log  # read once, as segment_run.json's writer does: it must fill in place
    step = prepare(Source(), "first")
    assert calls == [(0.9, "bear", "first"), (0.5, "bear", "first")]
    out = step(None, None, None, np.zeros((1, 2, 2), np.float32), np.zeros((1, 4), np.float32))
    np.testing.assert_allclose(out["probs"], np.full((1, 2, 2), 0.5), rtol=1e-6)
    assert log == {"bear": {"updates": 70, "seconds": 100.0, "members": [
        {"updates": 50, "seconds": 40.0, "kept_finetuning": True}, None,
        {"updates": 20, "seconds": 60.0, "kept_finetuning": True}]}}
    with pytest.raises(ValueError, match="one prepare callback"):
        EnsemblePrepare([None], [constant(0.0), constant(0.1)])
