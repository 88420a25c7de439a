"""Export -> load -> call: the SavedModel signatures against the in-memory model, atomic versions, CLI tools."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.export import saved_model_export, serving_module, warmup
from maskrnn_tf.export.saved_model_export import ExportConfig, ExportError, export_saved_model
from maskrnn_tf.export.serving_module import MIN_FRAME_SIZE
from maskrnn_tf.export.session_model import SessionModel
from maskrnn_tf.export.warmup import WARMUP_FILENAME, WarmupConfig, read_warmup_file, request_to_numpy
from maskrnn_tf.io import tmp_dirs

from killed_runs import gone_pid  # tests/killed_runs.py

H, W = 40, 56


def _inputs(seed: int = 0, n: int = 2):
    rng = np.random.default_rng(seed)
    ids = np.zeros((H, W), np.uint8)
    ids[5:20, 5:25] = 1
    ids[22:35, 30:50] = 2
    probs = np.stack([(ids == k + 1) for k in range(n)]).astype(np.float32)
    return {
        "frame": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        "flow_to_prev": rng.normal(0, 2, (H, W, 2)).astype(np.float32),
        "flow_to_next": rng.normal(0, 2, (H, W, 2)).astype(np.float32),
        "prev_probs": probs,
        "prev_boxes": np.array([[5, 5, 20, 25], [22, 30, 35, 50]], np.float32)[:n],
    }, ids


@pytest.fixture(scope="module")
def loaded(export_base):
    return tf.saved_model.load(os.path.join(export_base, "1"))


def test_layout(export_base):
    version = os.path.join(export_base, "1")
    assert os.path.isfile(os.path.join(version, "saved_model.pb"))
    assert os.path.isdir(os.path.join(version, "variables"))
    assert os.path.isfile(os.path.join(version, "assets.extra", WARMUP_FILENAME))
    assert sorted(os.listdir(export_base)) == ["1"]  # no temporary folder left behind
    meta = json.load(open(os.path.join(version, "assets.extra", "maskrnn_export.json")))
    assert meta["precision"] == "float32" and meta["model_config"]["fc_units"] == 32


def test_serving_default_matches_in_memory_step(loaded, tiny_model):
    inputs, _ = _inputs()
    sig = loaded.signatures["serving_default"]
    out = sig(**{k: tf.constant(v) for k, v in inputs.items()})
    ref = tiny_model.step(inputs["frame"], inputs["flow_to_prev"], inputs["flow_to_next"],
                          inputs["prev_probs"], inputs["prev_boxes"])
    np.testing.assert_allclose(out["probs"].numpy(), ref["probs"].numpy(), atol=1e-5)
    np.testing.assert_allclose(out["boxes"].numpy(), ref["boxes"].numpy(), atol=1e-3)
    assert out["labels"].dtype == tf.int32
    np.testing.assert_array_equal(out["labels"].numpy(), tiny_model.fuse(ref["probs"]).numpy())
    # Dynamic H, W and N: another size and one object go through the same signature.
    small = {"frame": np.zeros((24, 20, 3), np.uint8), "flow_to_prev": np.zeros((24, 20, 2), np.float32),
             "flow_to_next": np.zeros((24, 20, 2), np.float32), "prev_probs": np.ones((1, 24, 20), np.float32),
             "prev_boxes": np.array([[0, 0, 24, 20]], np.float32)}
    out = sig(**{k: tf.constant(v) for k, v in small.items()})
    assert out["probs"].shape == (1, 24, 20) and out["labels"].shape == (24, 20)


def test_first_frame_and_batched_signatures(loaded, tiny_model):
    inputs, ids = _inputs()
    first = loaded.signatures["first_frame"](mask=tf.constant(ids), object_ids=tf.constant([1, 2], tf.int32))
    np.testing.assert_array_equal(first["prev_probs"].numpy(), inputs["prev_probs"])
    np.testing.assert_array_equal(first["prev_boxes"].numpy(), inputs["prev_boxes"])  # hand-computed tight boxes
    # Two rows with their own frames and flows (a bug that used row 0 everywhere would fail).
    other, _ = _inputs(seed=7)
    rows = [(inputs, 0), (other, 1)]
    batched = {k: np.stack([r[k] for r, _ in rows]) for k in ("frame", "flow_to_prev", "flow_to_next")}
    batched.update(prev_probs=np.stack([r["prev_probs"][i] for r, i in rows]),
                   prev_boxes=np.stack([r["prev_boxes"][i] for r, i in rows]))
    out = loaded.signatures["step_batched"](**{k: tf.constant(v) for k, v in batched.items()})
    for row, (source, i) in enumerate(rows):
        ref = tiny_model.step(source["frame"], source["flow_to_prev"], source["flow_to_next"],
                              source["prev_probs"][i:i + 1], source["prev_boxes"][i:i + 1])
        np.testing.assert_allclose(out["probs"].numpy()[row], ref["probs"].numpy()[0], atol=1e-5)
        np.testing.assert_allclose(out["boxes"].numpy()[row], ref["boxes"].numpy()[0], atol=1e-3)


def test_mismatched_sizes_raise_naming_the_input(loaded):
    inputs, _ = _inputs()
    inputs["flow_to_next"] = np.zeros((H, W - 1, 2), np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="flow_to_next"):
        loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})


def test_warmup_records_replay_like_the_model(export_base, tiny_model):
    """The warmup file through the model server's loader gives the model's own answers; it warms every signature
    of the version (step_batched too: its graph is its own, and its first real request would pay for it)."""
    version = os.path.join(export_base, "1")
    records = read_warmup_file(os.path.join(version, "assets.extra", WARMUP_FILENAME))
    assert [r.predict_log.request.model_spec.signature_name for r in records] == [
        "serving_default", "step_batched", "serving_default", "step_batched", "first_frame"]
    with SessionModel(version) as served:
        for record in records:
            request = record.predict_log.request
            inputs = request_to_numpy(request)
            out = served.run(request.model_spec.signature_name, inputs)
            if request.model_spec.signature_name == "first_frame":
                want = np.stack([inputs["mask"] == k for k in inputs["object_ids"]]).astype(np.float32)
                np.testing.assert_array_equal(out["prev_probs"], want)
                continue
            if request.model_spec.signature_name == "step_batched":
                assert out["input_error"].tolist() == [b""] * len(inputs["prev_probs"])
                for row in range(len(inputs["prev_probs"])):
                    ref = tiny_model.step(inputs["frame"][row], inputs["flow_to_prev"][row],
                                          inputs["flow_to_next"][row], inputs["prev_probs"][row:row + 1],
                                          inputs["prev_boxes"][row:row + 1])
                    np.testing.assert_allclose(out["probs"][row], ref["probs"].numpy()[0], atol=1e-5)
                continue
            ref = tiny_model.step(inputs["frame"], inputs["flow_to_prev"], inputs["flow_to_next"],
                                  inputs["prev_probs"], inputs["prev_boxes"])
            np.testing.assert_allclose(out["probs"], ref["probs"].numpy(), atol=1e-5)
            np.testing.assert_array_equal(out["labels"], tiny_model.fuse(ref["probs"]).numpy())


@pytest.mark.parametrize("shape", [(8, 8, 1), (15, 64, 1), (32, 32, 0)])
def test_warmup_shapes_below_the_network_minimum_are_refused(shape):
    with pytest.raises(ValueError, match=f"{MIN_FRAME_SIZE}x{MIN_FRAME_SIZE}.*at least one object"):
        WarmupConfig(shapes=(shape,))
    WarmupConfig(shapes=((MIN_FRAME_SIZE, MIN_FRAME_SIZE, 1),))  # the minimum itself is fine


@pytest.mark.parametrize("batching, color_prior", [(False, False), (True, False), (False, True), (True, True)])
def test_the_warmup_record_count_is_that_of_the_requests_written(batching, color_prior):
    config = WarmupConfig(shapes=((16, 16, 1), (16, 20, 2), (20, 16, 1)))
    assert warmup.warmup_record_count(3, batching, color_prior) == len(
        warmup.warmup_requests("m", config, batching, color_prior))


def test_more_warmup_records_than_the_model_server_reads_are_refused_before_anything_is_written(tmp_path, tiny_model):
    """TF-Serving reads at most 1,000 warmup records and refuses a version with more; the export replayed them all
    and succeeded (500 shapes: 1,001 records)."""
    shapes = tuple((16 + k % 40, 16 + k // 40, 1) for k in range(500))
    base = tmp_path / "exports"
    with pytest.raises(saved_model_export.ExportUsageError,
                       match=r"--warmup_shapes: 500 warmup shapes make 1001 warmup records .*more than 1000: give at "
                             r"most 499 shapes"):
        export_saved_model(tiny_model, str(base), 1, ExportConfig(warmup=WarmupConfig(shapes=shapes)))
    assert not base.exists()
    warmup.check_warmup_record_count(499)  # 999 records
    warmup.check_warmup_record_count(1000, batching=True)


@pytest.mark.parametrize("batching", [False, True])
def test_each_signature_is_traced_once_per_export(tmp_path, tiny_model, monkeypatch, batching):
    """Tracing is most of an export's time: each serving function is traced once, not once to find the variables
    it reads and again inside the save (TensorFlow keys a save's traces apart from others)."""
    traced = []

    def counting(name):
        function = getattr(serving_module.MaskRNNServingFunctions, name)

        def counted(self, inputs):  # the endpoints' own signature: a tf.function traces what it is given
            traced.append(name)
            return function(self, inputs)
        return counted

    for name in ("_step", "_step_batched", "_first_frame"):
        monkeypatch.setattr(serving_module.MaskRNNServingFunctions, name, counting(name))
    export_saved_model(tiny_model, str(tmp_path), 1, ExportConfig(warmup=None, audit_ops=False, batching=batching))
    assert sorted(traced) == (["_step_batched"] if batching else ["_first_frame", "_step", "_step_batched"])


def test_the_version_is_on_disk_before_it_is_renamed_into_place(tmp_path, tiny_model, monkeypatch):
    """Every file of the version is fsynced before the rename publishes it (after a power loss a polling server
    finds a whole version or none, not a truncated saved_model.pb)."""
    module = saved_model_export
    synced, renamed = [], []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    def rename(src, dst):
        renamed.append((src, dst, len(synced)))
        return real_rename(src, dst)

    monkeypatch.setattr(module.os, "fsync", fsync)
    monkeypatch.setattr(module.os, "rename", rename)
    final = export_saved_model(tiny_model, str(tmp_path), 3, ExportConfig(warmup=None, audit_ops=False))
    (tmp, dst, synced_before), = renamed
    assert dst == final
    on_disk = {os.path.relpath(p, tmp) for p in synced[:synced_before]}
    written = {os.path.relpath(os.path.join(r, n), final) for r, _, names in os.walk(final) for n in names}
    assert written <= on_disk and "saved_model.pb" in written and "." in on_disk
    assert os.path.realpath(str(tmp_path)) in synced[synced_before:]  # the rename itself


def test_a_failing_warmup_replay_fails_the_export_and_leaves_nothing(tmp_path, tiny_model, monkeypatch):
    real_requests = warmup.warmup_requests

    def with_nan_boxes(model_name, config, batching=False, color_prior=False):
        requests = real_requests(model_name, config, batching, color_prior)
        boxes = request_to_numpy(requests[0])["prev_boxes"]
        requests[0].inputs["prev_boxes"].CopyFrom(tf.make_tensor_proto(np.full_like(boxes, np.nan)))
        return requests

    monkeypatch.setattr(warmup, "warmup_requests", with_nan_boxes)
    with pytest.raises(ExportError, match=r"Warmup request 0 \(serving_default.*refuse this version.*prev_boxes must be finite"):
        export_saved_model(tiny_model, str(tmp_path), 4, ExportConfig(warmup=WarmupConfig(shapes=((24, 32, 1),))))
    assert os.listdir(tmp_path) == []  # no version and no temporary folder


def test_a_warmup_record_answered_with_an_input_error_fails_the_export(tmp_path, tiny_model, monkeypatch):
    """A step_batched record with a bad row replays without an error status (the row signatures answer it in
    input_error) but warms nothing of that row: the export refuses it as it refuses a failing record."""
    real_requests = warmup.warmup_requests

    def with_a_nan_row(model_name, config, batching=False, color_prior=False):
        requests = real_requests(model_name, config, batching, color_prior)
        batched = next(r for r in requests if r.model_spec.signature_name == "step_batched")
        flows = request_to_numpy(batched)["flow_to_next"]
        flows[0, 0, 0, 0] = np.nan
        batched.inputs["flow_to_next"].CopyFrom(tf.make_tensor_proto(flows))
        return requests

    monkeypatch.setattr(warmup, "warmup_requests", with_a_nan_row)
    with pytest.raises(ExportError, match=r"Warmup request 1 \(step_batched\) has 1 row\(s\).*input flow_to_next "
                                          r"must be finite"):
        export_saved_model(tiny_model, str(tmp_path), 4, ExportConfig(warmup=WarmupConfig(shapes=((24, 32, 1),))))
    assert os.listdir(tmp_path) == []


def test_running_out_of_memory_replaying_warmup_is_named_as_such(tmp_path, tiny_model, monkeypatch):
    """Out of memory while replaying a record at export was reported as the model server refusing the version:
    the server's machine may have the memory; the error says what happened here (TensorFlow's words too) and what
    to change. The replay runs on the one load of the version that checks it loads."""
    loaded = []

    class OutOfMemory(SessionModel):
        def __init__(self, export_dir, *args, **kwargs):
            loaded.append(export_dir)
            super().__init__(export_dir, *args, **kwargs)

        def run(self, signature, inputs, outputs=None):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[1,64,24,32]")

    monkeypatch.setattr(saved_model_export, "SessionModel", OutOfMemory)
    with pytest.raises(ExportError) as info:
        export_saved_model(tiny_model, str(tmp_path), 4, ExportConfig(warmup=WarmupConfig(shapes=((24, 32, 1),))))
    message = str(info.value)
    assert "Warmup request 0 (serving_default" in message and "ran out of memory on this machine" in message
    assert "OOM when allocating tensor with shape[1,64,24,32]" in message
    assert "Change --warmup_shapes" in message and "refuse this version:" not in message
    assert len(loaded) == 1 and os.listdir(tmp_path) == []


class _NoServable:
    """Servable's stand-in for the tests of what follows the SavedModel's writing (no tracing)."""

    def __init__(self, model, batching):
        pass

    def write_out(self, export_dir):
        os.makedirs(export_dir, exist_ok=True)


class _Loaded:
    """A SessionModel stand-in that loads nothing: `export_dir` only."""

    def __init__(self, export_dir):
        self.export_dir = export_dir

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


@pytest.mark.parametrize("failure", ["load out of memory", "warmup file unreadable"])
def test_export_failures_after_the_write_are_named_for_what_failed(tmp_path, tiny_model, monkeypatch, failure):
    """Out of memory while loading the version here is this machine's (not the server refusing it); a warmup file
    that does not read back is the disk's (an OpError of its reading escaped every handler)."""
    monkeypatch.setattr(saved_model_export, "Servable", _NoServable)
    if failure == "load out of memory":
        def loader(export_dir):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[512,512,3,3]")

        expected = r"ran out of memory on this machine \(OOM when allocating tensor with shape\[512,512,3,3\]\)"
    else:
        def unreadable(path):
            raise tf.errors.DataLossError(None, None, f"corrupted record at 12 in {path}")

        loader = _Loaded
        monkeypatch.setattr(warmup, "read_warmup_file", unreadable)
        expected = r"the warmup file just written does not read back \(corrupted record at 12"
    monkeypatch.setattr(saved_model_export, "SessionModel", loader)
    with pytest.raises(ExportError, match=expected) as info:
        export_saved_model(tiny_model, str(tmp_path), 4, ExportConfig(warmup=WarmupConfig(shapes=((24, 32, 1),))))
    assert "refuse this version" not in str(info.value) and "--warmup_shapes" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_load_model_accepts_a_run_folder_and_names_a_truncated_file(tmp_path, tiny_model):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tiny_model.save(str(run_dir / "model.keras"))
    loaded = saved_model_export.load_model(str(run_dir))
    for a, b in zip(loaded.get_weights(), tiny_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    data = (run_dir / "model.keras").read_bytes()
    (run_dir / "model.keras").write_bytes(data[: len(data) // 2])
    for path in (str(run_dir), str(run_dir / "model.keras")):
        with pytest.raises(ExportError, match="model.keras is truncated or corrupt"):
            saved_model_export.load_model(path)
    with pytest.raises(ExportError, match="no model found"):
        saved_model_export.load_model(str(tmp_path / "empty"))


def test_existing_version_refused_and_intact(export_base, tiny_model):
    pb = os.path.join(export_base, "1", "saved_model.pb")
    before = (os.path.getmtime(pb), open(pb, "rb").read())
    with pytest.raises(ExportError, match="already exists"):
        export_saved_model(tiny_model, export_base, 1)
    assert (os.path.getmtime(pb), open(pb, "rb").read()) == before
    assert sorted(os.listdir(export_base)) == ["1"]


def _earlier_export(folder):
    """A version folder as an earlier export left it (its metadata record), with one file more."""
    os.makedirs(os.path.join(folder, "assets.extra"))
    with open(os.path.join(folder, "assets.extra", saved_model_export.METADATA_FILENAME), "w") as f:
        json.dump({"format": "maskrnn_tf serving export 1"}, f)
    open(os.path.join(folder, "stale.txt"), "w").write("old")


def _tree(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, dirs, files in os.walk(folder) for name in dirs + files)


def test_overwrite_replaces_a_clean_version_and_refuses_one_with_a_user_file(tmp_path, tiny_model, caplog):
    base = str(tmp_path)
    _earlier_export(os.path.join(base, "2"))  # an export from before the manifest listed its files, + stale.txt
    before = _tree(base)
    with pytest.raises(ExportError, match=r"(?s)holds files the export did not write.*: stale\.txt\. .*move them out"):
        export_saved_model(tiny_model, base, 2, ExportConfig(overwrite=True, warmup=None))
    assert _tree(base) == before and (tmp_path / "2" / "stale.txt").read_text() == "old"
    os.remove(os.path.join(base, "2", "stale.txt"))  # the user moved it out
    with caplog.at_level("WARNING"):
        export_saved_model(tiny_model, base, 2, ExportConfig(overwrite=True, warmup=None))
    # TF-Serving finds versions by number: one already serving 2 is not told that 2 changed.
    assert any("replaced version 2 in place" in r.getMessage() and "export a new --version" in r.getMessage()
               for r in caplog.records)
    assert sorted(os.listdir(base)) == ["2"]
    assert os.path.isfile(os.path.join(base, "2", "saved_model.pb"))


def _contents(folder):
    """{relative path: bytes (files), link target (links), None (folders)} of everything under `folder`."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path):
                found[rel] = os.readlink(path)
            elif os.path.isdir(path):
                found[rel] = None
            else:
                found[rel] = open(path, "rb").read()
    return found


def _copied_export(export_base, tmp_path):
    """<tmp_path>/exports/1: a copy of the session's export (with warmup file) of the tiny model, byte for byte.

    What an export wrote, without one more export of its own (the signatures are traced anew for each).
    """
    base = str(tmp_path / "exports")
    shutil.copytree(os.path.join(export_base, "1"), os.path.join(base, "1"), symlinks=True)
    return base, os.path.join(base, "1")


def test_overwrite_refuses_a_version_holding_files_the_export_did_not_write(tmp_path, export_base, tiny_model):
    """The manifest lists what the export wrote, with sizes; --overwrite deletes nothing else (nor a changed file)."""
    base, version = _copied_export(export_base, tmp_path)
    record = json.load(open(os.path.join(version, "assets.extra", saved_model_export.METADATA_FILENAME)))
    on_disk = {os.path.relpath(os.path.join(r, n), version).replace(os.sep, "/"): os.path.getsize(os.path.join(r, n))
               for r, _, names in os.walk(version) for n in names}
    del on_disk["assets.extra/" + saved_model_export.METADATA_FILENAME]
    assert record["files"] == on_disk and "saved_model.pb" in on_disk and "assets.extra/" + WARMUP_FILENAME in on_disk
    overwrite = ExportConfig(overwrite=True, warmup=None)
    # The user's notes beside the model, a file added to assets.extra/, a folder and a link of theirs.
    (tmp_path / "exports" / "1" / "NOTES.md").write_text("version 1 = run 5; approved by QA\n")
    (tmp_path / "exports" / "1" / "assets.extra" / "my_requests.json").write_text("{}")
    (tmp_path / "exports" / "1" / "mine").mkdir()
    os.symlink(tmp_path, tmp_path / "exports" / "1" / "link")
    before = _contents(version)
    with pytest.raises(ExportError) as info:
        export_saved_model(tiny_model, base, 1, overwrite)
    message = str(info.value)
    for name in ("NOTES.md", "assets.extra/my_requests.json", "mine", "link"):
        assert name in message, message
    assert "saved_model.pb" not in message and "move them out" in message and version in message
    assert _contents(version) == before and sorted(os.listdir(base)) == ["1"]
    # A file the export wrote but that has changed since (another size) is no longer only the export's.
    for name in ("NOTES.md", "assets.extra/my_requests.json", "mine", "link"):
        path = os.path.join(version, name)
        os.rmdir(path) if name == "mine" else os.remove(path)
    with open(os.path.join(version, "assets.extra", WARMUP_FILENAME), "ab") as f:
        f.write(b"edited")
    before = _contents(version)
    with pytest.raises(ExportError, match=r"assets\.extra/tf_serving_warmup_requests \(changed since the export"):
        export_saved_model(tiny_model, base, 1, overwrite)
    assert _contents(version) == before
    # Only what the export wrote: replaced.
    with open(os.path.join(version, "assets.extra", WARMUP_FILENAME), "r+b") as f:
        f.truncate(on_disk["assets.extra/" + WARMUP_FILENAME])
    assert export_saved_model(tiny_model, base, 1, overwrite) == version
    assert sorted(os.listdir(base)) == ["1"] and os.path.isfile(os.path.join(version, "saved_model.pb"))


def test_overwrite_of_a_version_exported_before_the_manifest_listed_its_files(tmp_path, export_base, tiny_model):
    """Its manifest lists no files: then only what a SavedModel export writes may be replaced."""
    base, version = _copied_export(export_base, tmp_path)
    manifest = os.path.join(version, "assets.extra", saved_model_export.METADATA_FILENAME)
    record = json.load(open(manifest))
    for key in ("files", "folders"):
        record.pop(key, None)
    json.dump(record, open(manifest, "w"))
    (tmp_path / "exports" / "1" / "assets" / "vocab.txt").write_text("mine")  # the exporter writes no asset
    (tmp_path / "exports" / "1" / "variables" / "variables.mine").mkdir()
    (tmp_path / "exports" / "1" / "variables" / "variables.mine" / "notes").write_text("mine")
    before = _contents(version)
    overwrite = ExportConfig(overwrite=True, warmup=None)
    with pytest.raises(ExportError, match=r": assets/vocab\.txt, variables/variables\.mine/notes\. "):
        export_saved_model(tiny_model, base, 1, overwrite)
    assert _contents(version) == before
    os.remove(os.path.join(version, "assets", "vocab.txt"))
    shutil.rmtree(os.path.join(version, "variables", "variables.mine"))
    assert export_saved_model(tiny_model, base, 1, overwrite) == version
    assert not os.path.exists(os.path.join(version, "assets.extra", WARMUP_FILENAME))  # the new export's (no warmup)


def test_an_export_base_that_is_a_file_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    notes = tmp_path / "notes.txt"
    notes.write_text("user notes")

    def no_load(path):
        raise AssertionError("the model was loaded before the export base was checked")

    monkeypatch.setattr(saved_model_export, "load_model", no_load)
    for base in (notes, notes / "maskrnn"):
        with pytest.raises(ExportError, match=f"--export_base {base}: {notes} is a file, not a folder"):
            export_saved_model(str(tmp_path / "run"), str(base), 1)
    assert os.listdir(tmp_path) == ["notes.txt"] and notes.read_text() == "user notes"


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux' /proc, where no folder can be made")
def test_an_export_base_that_cannot_be_made_is_an_export_error(tiny_model):
    with pytest.raises(ExportError,
                       match="cannot create --export_base /proc/maskrnn-test/maskrnn or write in it: .*Choose a folder"):
        export_saved_model(tiny_model, "/proc/maskrnn-test/maskrnn", 1, ExportConfig(warmup=None))


def test_overwrite_never_replaces_a_folder_that_is_not_an_export(tmp_path, tiny_model):
    # `--export_base=runs --version=2 --overwrite` where runs/2 is a training run: it must survive.
    run = tmp_path / "2"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "checkpoints" / "ckpt-1.index").write_bytes(b"weights")
    before = _tree(str(tmp_path))
    with pytest.raises(ExportError, match="not an export of maskrnn-tf.*left as it is"):
        export_saved_model(tiny_model, str(tmp_path), 2, ExportConfig(overwrite=True, warmup=None))
    assert _tree(str(tmp_path)) == before and (run / "config.json").read_text() == "{}"
    # Nor a link to an export, nor an export holding the model being exported.
    _earlier_export(str(tmp_path / "real"))
    os.symlink(tmp_path / "real", tmp_path / "3")
    with pytest.raises(ExportError, match="symbolic link"):
        export_saved_model(tiny_model, str(tmp_path), 3, ExportConfig(overwrite=True, warmup=None))
    _earlier_export(str(tmp_path / "5"))
    tiny_model.save(str(tmp_path / "5" / "model.keras"))
    with pytest.raises(ExportError, match="--model"):
        export_saved_model(str(tmp_path / "5" / "model.keras"), str(tmp_path), 5,
                           ExportConfig(overwrite=True, warmup=None))
    assert os.path.isfile(tmp_path / "real" / "stale.txt") and os.path.islink(tmp_path / "3")
    assert sorted(os.listdir(tmp_path / "5")) == ["assets.extra", "model.keras", "stale.txt"]
    # An export base inside the model's run folder (runs/x/export/1 from runs/x) is a layout users keep.
    saved_model_export._check_target(str(tmp_path / "run" / "export" / "1"), True, str(tmp_path / "run"))


def test_a_version_moved_away_by_a_killed_export_comes_back(tmp_path, tiny_model, caplog):
    # An export killed between moving the old version 2 away and moving the new one in left version 2 missing.
    child = gone_pid()
    holder = tmp_path / f".old-2-{tmp_dirs.owner_tag(child)}-abc"
    _earlier_export(str(holder / "previous"))
    with caplog.at_level("WARNING"), pytest.raises(ExportError, match="already exists"):
        export_saved_model(tiny_model, str(tmp_path), 2, ExportConfig(warmup=None))
    assert f"restored {tmp_path / '2'}" in caplog.text
    assert os.listdir(tmp_path) == ["2"] and (tmp_path / "2" / "stale.txt").read_text() == "old"


def test_any_version_a_killed_export_moved_away_comes_back_with_the_next_export(tmp_path, tiny_model, caplog):
    """Only the version being exported was repaired: a version 2 moved away by a killed --overwrite export stayed
    hidden (and a server pinned to it served nothing) while the user went on with other versions."""
    child = gone_pid()
    holder = tmp_path / f".old-2-{tmp_dirs.owner_tag(child)}-abc"
    _earlier_export(str(holder / "previous"))
    stale = tmp_path / f".tmp-7-{tmp_dirs.owner_tag(child)}-def"
    stale.mkdir()
    _earlier_export(str(tmp_path / "5"))
    with caplog.at_level("WARNING"), pytest.raises(ExportError, match="already exists"):
        export_saved_model(tiny_model, str(tmp_path), 5, ExportConfig(warmup=None))
    assert f"restored {tmp_path / '2'}" in caplog.text
    assert sorted(os.listdir(tmp_path)) == ["2", "5"] and (tmp_path / "2" / "stale.txt").read_text() == "old"


def test_failure_mid_export_leaves_nothing(tmp_path, tiny_model, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(saved_model_export, "write_warmup_file", broken)
    with pytest.raises(OSError, match="simulated"):
        export_saved_model(tiny_model, str(tmp_path), 5)
    assert os.listdir(tmp_path) == []


def test_an_export_base_in_a_version_folder_is_refused_and_nothing_is_written(tmp_path, export_base, tiny_model):
    """`--export_base=exports/1 --version=2` wrote exports/1/2 inside a live version: a SavedModel the server never
    looks at, and files in version 1 that its record does not list. A base that is or lies inside a folder holding
    saved_model.pb is refused, naming that folder."""
    base, version = _copied_export(export_base, tmp_path)
    before = _contents(base)
    for inside in (version, os.path.join(version, "variables", "more")):
        refusal = re.escape(f"--export_base {inside}: {version} is a SavedModel version folder")
        with pytest.raises(ExportError, match=refusal):
            export_saved_model(tiny_model, inside, 2, ExportConfig(warmup=None))
    assert _contents(base) == before
    # A saved_model.pb higher up in a folder that is no version (a home folder, a project's) does not block a base.
    outer = tmp_path / "home"
    outer.mkdir()
    (outer / "saved_model.pb").write_bytes(b"someone's")
    saved_model_export._check_not_in_a_version(str(outer / "exports" / "maskrnn"), str(outer))


@pytest.mark.parametrize("version", [0, -1, "1"])
def test_bad_version(tmp_path, tiny_model, version):
    with pytest.raises(ExportError, match="positive integer"):
        export_saved_model(tiny_model, str(tmp_path), version)


def test_a_version_below_the_highest_is_named_as_not_served(tmp_path):
    """Under the model server's default policy (the latest version) a version below an existing one is never
    loaded: exporting version 2 into a base holding 10 succeeded without a word."""
    base = tmp_path / "exports"
    for name in ("2", "10", "007", ".tmp-12-x", "notes", "\u00b2"):
        (base / name).mkdir(parents=True)
    notice = saved_model_export.unserved_notice(str(base), 2)
    assert notice.startswith(f"warning: {base} also holds version(s) 7, 10 above 2:") and "highest, 10," in notice
    assert "versions: 2" in notice and "is a file" not in notice
    assert saved_model_export.unserved_notice(str(base), 10) is None
    assert saved_model_export.unserved_notice(str(tmp_path / "missing"), 1) is None


def test_a_numeric_file_in_the_base_is_named_as_the_version_the_server_would_try(tmp_path):
    """TF-Serving's file-system source lists every child of the base path and takes each name that parses as an
    int64 for a version, files too (file_system_storage_path_source.cc: GetChildren, safe_strto64, which also skips
    spaces around the digits and refuses numbers past int64): `echo notes > exports/5` made "version 5" the highest,
    which the server fails to load, so the version exported beside it is not served. It went without a word."""
    base = tmp_path / "exports"
    (base / "1").mkdir(parents=True)
    (base / "5").write_text("notes")
    notice = saved_model_export.unserved_notice(str(base), 2)
    assert notice is not None and "highest, 5," in notice, notice
    assert f"{base / '5'} is a file" in notice and "move it out" in notice, notice
    # Names the server reads as a number (spaces around it) or skips (past int64), folders or files alike.
    (base / "7 ").mkdir()
    (base / "99999999999999999999").write_text("not a version to the server")
    notice = saved_model_export.unserved_notice(str(base), 6)
    assert notice is not None and "version(s) 7 above 6" in notice and "is a file" not in notice, notice
    assert saved_model_export.unserved_notice(str(base), 7) is None


def test_saved_model_cli_show_all(export_base):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run([cli, "show", "--all", "--dir", os.path.join(export_base, "1")],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr
    for text in ("signature_def['serving_default']", "signature_def['first_frame']", "tensorflow/serving/predict",
                 "prev_probs", "labels"):
        assert text in result.stdout


def test_temporary_folder_of_a_killed_export_is_removed_by_the_next(tmp_path, monkeypatch, caplog):
    def die(*args, **kwargs):  # the export process is killed while writing (SIGKILL: no cleanup runs)
        os._exit(9)

    pid = os.fork()
    if pid == 0:  # the child only touches the filesystem before dying
        try:
            monkeypatch.setattr(saved_model_export, "_write_saved_model", die)
            export_saved_model(object(), str(tmp_path), 3)
        finally:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] >> 8 == 9
    (leftover,) = os.listdir(tmp_path)
    assert leftover.startswith(f".tmp-3-{tmp_dirs.owner_tag(pid)}-")

    def write_stub(export_dir, *args):
        open(os.path.join(export_dir, "saved_model.pb"), "w").close()

    monkeypatch.setattr(saved_model_export, "_write_saved_model", write_stub)
    with caplog.at_level("WARNING"):
        export_saved_model(object(), str(tmp_path), 3)
    assert os.listdir(tmp_path) == ["3"]
    assert f"removed {tmp_path / leftover}" in caplog.text


def test_a_version_without_a_file_list_gives_up_only_the_savedmodel_s_own_variable_files(tmp_path):
    # A SavedModel's variables are variables.index and variables.data-NNNNN-of-NNNNN; a user's variables.bak beside
    # them is not what an earlier export wrote, whatever its prefix.
    version = tmp_path / "1"
    for name in ("saved_model.pb", "variables/variables.index", "variables/variables.data-00000-of-00001",
                 "variables/variables.bak", "variables/variables.data-notes.txt",
                 f"assets.extra/{saved_model_export.METADATA_FILENAME}"):
        os.makedirs((version / name).parent, exist_ok=True)
        (version / name).write_text("{}")
    assert saved_model_export.foreign_files(str(version)) == ["variables/variables.bak",
                                                              "variables/variables.data-notes.txt"]
