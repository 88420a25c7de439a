"""The two CLIs end to end (subprocesses): export a run folder, then segment through the stand-in server.

Run as users run them (no TF_CPP_MIN_LOG_LEVEL set): neither prints TensorFlow's C++ start-up noise."""
import datetime
import ipaddress
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from maskrnn_tf.export.test_server import StandInModelServer
from maskrnn_tf.inference.flow_source import make_flow_fn
from maskrnn_tf.inference.segmenter import SegmentOptions, segment_video
from maskrnn_tf.io import read_mask
from maskrnn_tf.ops.flo_io import write_flo


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NOISE = ("absl::InitializeLog", "Could not find cuda drivers", "failed call to cuInit", "oneDNN custom operations",
         # TensorFlow's Python INFO lines and our own deliberate use of the TF1 loader (SavedModelBundle's path)
         "Assets written to", "Restoring parameters from", "Sharding callback duration", "is deprecated")


def _run(args):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MASKRNN_TF_VERBOSE")}
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=600, env=env)
    for text in NOISE:
        assert text not in result.stderr and text not in result.stdout, result.stderr
    return result


def _local_masks(model, frames_dir, mask_path, out_dir, flow_fn, options):
    """What `python -m maskrnn_tf.segment` writes with `model` in process: {name: id mask}."""
    def step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes):
        return model.step(frame, flow_to_prev, flow_to_next, prev_probs, prev_boxes)

    segment_video(step, frames_dir, mask_path, flow_fn, out_dir, options)
    return {name: read_mask(os.path.join(out_dir, name)) for name in sorted(os.listdir(out_dir))
            if name.endswith(".png")}


def test_export_run_folder_then_client_cli(tmp_path, tiny_model, synthetic_video):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tiny_model.save(str(run_dir / "model.keras"))
    base = str(tmp_path / "exports")
    args = ["maskrnn_tf.export.export_main", f"--model={run_dir}", f"--export_base={base}", "--version=7",
            "--warmup_shapes=24x32x1", "--precision=auto"]
    result = _run(args)
    assert result.returncode == 0, result.stderr
    # auto resolves as training and segment resolve it (float32 on an AVX2-only CPU, bfloat16 where measured faster).
    from maskrnn_tf.training.precision import resolve_precision

    expected = resolve_precision("auto")
    with open(os.path.join(base, "7", "assets.extra", "maskrnn_export.json"), encoding="utf-8") as f:
        assert json.load(f)["precision"] == expected
    assert f"precision auto -> {expected} (" in result.stdout
    assert "tensorflow_model_server" in result.stdout and f"--model_base_path={base}" in result.stdout
    assert os.listdir(base) == ["7"] and "not served" not in result.stderr

    frames_dir, mask_path, frames = synthetic_video
    out_dir = str(tmp_path / "masks")
    with StandInModelServer(base, "maskrnn") as server:
        result = _run(["maskrnn_tf.export.client_main", f"--server={server.address}", f"--video={frames_dir}",
                       f"--first_mask={mask_path}", f"--output_dir={out_dir}", "--noprogress"])
    assert result.returncode == 0, result.stderr
    written = sorted(os.listdir(out_dir))
    assert written == [f"{t:05d}.png" for t in range(len(frames))] + ["segment_run.json"]
    want = _local_masks(tiny_model, frames_dir, mask_path, str(tmp_path / "local"), make_flow_fn("dis"),
                        SegmentOptions(progress=False))
    for name in written[:-1]:  # frame 0 is the first mask; frames 1-4 are the exported model's answers
        got = read_mask(os.path.join(out_dir, name))
        if expected == "float32":
            np.testing.assert_array_equal(got, want[name], err_msg=name)
        else:  # a bfloat16 export against the float32 model: a pixel near the 0.5 boundary may flip, no more
            # (objects of 5-60 pixels here; an empty or shifted answer differs in far more than 0.5% of 2,240)
            assert want[name].any() and (got != want[name]).mean() <= 0.005, (name, (got != want[name]).sum())
    np.testing.assert_array_equal(want["00000.png"], read_mask(mask_path))


def test_warmup_shapes_below_the_minimum_are_a_usage_error(tmp_path, tiny_model):
    base = tmp_path / "exports"
    result = _run(["maskrnn_tf.export.export_main", f"--model={tmp_path / 'missing.keras'}", f"--export_base={base}",
                   "--version=1", "--warmup_shapes=8x8x1"])
    assert result.returncode == 2, result.stderr
    assert "--warmup_shapes" in result.stderr and "8x8x1" in result.stderr and "16x16" in result.stderr
    assert not base.exists()


@pytest.mark.parametrize("empty", ["model", "export_base"])
def test_an_empty_model_or_export_base_is_a_usage_error(tmp_path, empty):
    """An unset shell variable (--export_base=$BASE) gave "cannot create --export_base  or write in it", exit 1."""
    values = {"model": str(tmp_path / "m.keras"), "export_base": str(tmp_path / "exports")}
    values[empty] = ""
    result = _run(["maskrnn_tf.export.export_main", *(f"--{k}={v}" for k, v in values.items()), "--version=1"])
    assert result.returncode == 2 and f"--{empty} is empty" in result.stderr, result.stderr
    assert not (tmp_path / "exports").exists()


def test_an_export_base_that_is_a_file_is_an_export_error(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("user notes")
    result = _run(["maskrnn_tf.export.export_main", f"--model={tmp_path / 'missing.keras'}", f"--export_base={notes}",
                   "--version=1", "--warmup_shapes=24x32x1"])
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    # Checked before the model is loaded (the model path is missing too): the message is about the export base.
    assert f"export failed: --export_base {notes}: {notes} is a file, not a folder" in result.stderr, result.stderr
    assert os.listdir(tmp_path) == ["notes.txt"] and notes.read_text() == "user notes"


@pytest.mark.parametrize("version", ["0", "-3", str(2**63)])
def test_a_version_the_model_server_cannot_serve_is_a_usage_error(tmp_path, version):
    """A bad --version was found after TensorFlow had loaded and exited 1 ("export failed"), unlike every other bad
    flag value (2): it is refused while the flags are parsed, naming the flag."""
    base = tmp_path / "exports"
    result = _run(["maskrnn_tf.export.export_main", f"--model={tmp_path / 'missing.keras'}", f"--export_base={base}",
                   f"--version={version}"])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: flag --version={version}: must be 1 to 9223372036854775807:"), \
        result.stderr
    assert "Traceback" not in result.stderr
    assert not base.exists()


def test_an_export_base_in_a_version_folder_is_a_usage_error(tmp_path, export_base):
    """`--export_base=exp/1 --version=2` wrote exp/1/2 inside the live version 1. Refused before the model is loaded
    (it is missing here), naming the version folder; exit 2 and nothing written."""
    version = tmp_path / "exp" / "1"
    shutil.copytree(os.path.join(export_base, "1"), version, symlinks=True)
    before = sorted(os.walk(version))
    result = _run(["maskrnn_tf.export.export_main", f"--model={tmp_path / 'missing.keras'}", f"--export_base={version}",
                   "--version=2", "--warmup_shapes=24x32x1"])
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, result.stderr
    assert line.startswith(f"--export_base {version}: {version} is a SavedModel version folder"), line
    assert f"--export_base={version.parent}" in line, line  # what to give instead: the model base path
    assert sorted(os.walk(version)) == before


def test_batching_warmup_shapes_over_max_batch_size_are_a_usage_error(tmp_path):
    base = tmp_path / "exports"
    result = _run(["maskrnn_tf.export.export_main", f"--model={tmp_path / 'missing.keras'}", f"--export_base={base}",
                   "--version=1", "--batching", "--warmup_shapes=24x32x2,24x32x9"])
    assert result.returncode == 2, result.stderr
    assert "--warmup_shapes: Warmup shape 24x32x9 has 9 objects" in result.stderr, result.stderr
    assert "max_batch_size 8" in result.stderr and "batching_parameters.txt" in result.stderr
    assert not base.exists()
    # A server with its own parameters file: its max_batch_size is given, and checked instead of the shipped one's.
    result = _run(["maskrnn_tf.export.export_main", f"--model={tmp_path / 'missing.keras'}", f"--export_base={base}",
                   "--version=1", "--batching", "--warmup_shapes=24x32x1,24x32x2", "--max_batch_size=1"])
    assert result.returncode == 2, result.stderr
    assert "Warmup shape 24x32x2 has 2 objects" in result.stderr and "over max_batch_size 1:" in result.stderr
    assert not base.exists()


def _self_signed_certificate(folder):
    """(key PEM, certificate PEM, certificate path) for 127.0.0.1 and localhost, made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    path = os.path.join(folder, "ca.pem")
    with open(path, "wb") as f:
        f.write(cert_pem)
    return key_pem, cert_pem, path


def test_client_cli_flags_over_tls(tmp_path, export_base, tiny_model, synthetic_video):
    """--root_cert (TLS), --model_version, --max_size, --overlay, --flow=flo, --overwrite, each with its effect.

    The server only speaks TLS, so the successful run shows --root_cert is used."""
    frames_dir, mask_path, frames = synthetic_video
    flo_dir = tmp_path / "flo"
    (flo_dir / "frames").mkdir(parents=True)
    rng = np.random.default_rng(5)
    for t in range(len(frames) - 1):
        for a, b in ((t, t + 1), (t + 1, t)):
            write_flo(flo_dir / "frames" / f"{a:05d}_{b:05d}.flo",
                      rng.normal(0, 1.5, frames[0].shape[:2] + (2,)).astype(np.float32))
    out_dir = tmp_path / "masks"
    out_dir.mkdir()
    (out_dir / "stale.png").write_bytes(b"old")  # an earlier result folder (segment's marker file in it)
    (out_dir / "segment_run.json").write_text('{"files": ["stale.png"]}')
    overlay = tmp_path / "overlay.mp4"
    key_pem, cert_pem, cert_path = _self_signed_certificate(str(tmp_path))
    common = ["maskrnn_tf.export.client_main", f"--video={frames_dir}", f"--first_mask={mask_path}",
              f"--output_dir={out_dir}", "--noprogress", f"--root_cert={cert_path}", "--retries=1"]
    with StandInModelServer(export_base, "maskrnn", tls=(key_pem, cert_pem)) as server:
        address = f"localhost:{server.port}"
        wrong = _run(common + [f"--server={address}", "--model_version=2", "--overwrite"])
        assert (out_dir / "stale.png").read_bytes() == b"old"  # a failed run leaves the old folder alone
        result = _run(common + [f"--server={address}", "--model_version=1", "--max_size=32", f"--overlay={overlay}",
                                "--flow=flo", f"--flo_dir={flo_dir}", "--overwrite"])
    assert wrong.returncode == 1 and "NOT_FOUND" in wrong.stderr and "maskrnn, 2" in wrong.stderr, wrong.stderr
    assert result.returncode == 0, result.stderr
    written = sorted(os.listdir(out_dir))
    assert written == [f"{t:05d}.png" for t in range(len(frames))] + ["segment_run.json"]  # replaced
    want = _local_masks(tiny_model, frames_dir, mask_path, str(tmp_path / "local"), make_flow_fn("flo", str(flo_dir)),
                        SegmentOptions(max_size=32, progress=False))
    dis = _local_masks(tiny_model, frames_dir, mask_path, str(tmp_path / "local_dis"), make_flow_fn("dis"),
                       SegmentOptions(max_size=32, progress=False))
    assert any(not np.array_equal(want[n], dis[n]) for n in written[:-1])  # the .flo flows really are used
    for name in written[:-1]:
        mask = read_mask(os.path.join(out_dir, name))
        assert mask.shape == frames[0].shape[:2]  # --max_size works at 32 px but writes full-size masks
        np.testing.assert_array_equal(mask, want[name], err_msg=name)
    video = cv2.VideoCapture(str(overlay))
    count = 0
    while True:
        ok, image = video.read()
        if not ok:
            break
        assert image.shape[:2] == frames[0].shape[:2]
        count += 1
    assert count == len(frames)


def test_tilde_paths_are_expanded(tmp_path):
    """`--export_base=~/...` reaches the binary unexpanded (the shell expands ~ only at the start of a word): it must
    mean the home folder, not a folder named ~ in the working directory. Shown with a home whose path is a file."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    (home / "notes.txt").write_text("user notes")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MASKRNN_TF_VERBOSE")}
    env.update(HOME=str(home), PYTHONPATH=REPO)
    result = subprocess.run([sys.executable, "-m", "maskrnn_tf.export.export_main", "--model=~/missing.keras",
                             "--export_base=~/notes.txt", "--version=1"], capture_output=True, text=True,
                            timeout=600, env=env, cwd=cwd)
    assert result.returncode == 1, result.stderr
    assert f"{home / 'notes.txt'} is a file, not a folder" in result.stderr, result.stderr
    assert os.listdir(cwd) == []


def test_client_max_size_below_the_network_minimum_is_a_usage_error(tmp_path):
    """As segment's --max_size: 0 (full size) or at least the network's 32-pixel minimum, refused before any
    frame is read or the server asked (a smaller size failed in OpenCV's flow, or after a server round trip)."""
    for value in ("8", "-3"):
        result = _run(["maskrnn_tf.export.client_main", "--server=127.0.0.1:1", f"--video={tmp_path}",
                       f"--first_mask={tmp_path / 'm.png'}", f"--output_dir={tmp_path / 'out'}", f"--max_size={value}"])
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "--max_size" in result.stderr and "at least 32" in result.stderr, result.stderr
    assert os.listdir(tmp_path) == []


def test_client_carry_labels_segments_as_segment_does(tmp_path, tiny_model, export_base, synthetic_video):
    """--carry=labels through the server gives segment's masks with --carry=labels (the library loop on the same
    model), differs from carrying probabilities (the default), and is noted in segment_run.json. What the fused
    masks are, and the served threshold they are fused at: tests/inference/test_inference_propagation.py."""
    frames_dir, mask_path, frames = synthetic_video
    out = {}
    with StandInModelServer(export_base, "maskrnn") as server:
        for carry in ("labels", "probs"):
            out[carry] = str(tmp_path / carry)
            result = _run(["maskrnn_tf.export.client_main", f"--server={server.address}", f"--video={frames_dir}",
                           f"--first_mask={mask_path}", f"--output_dir={out[carry]}", "--noprogress",
                           f"--carry={carry}", "--save_probs=npy"])
            assert result.returncode == 0, result.stderr
    want = _local_masks(tiny_model, frames_dir, mask_path, str(tmp_path / "local"), make_flow_fn("dis"),
                        SegmentOptions(progress=False, carry="labels"))
    for name in want:
        np.testing.assert_array_equal(read_mask(os.path.join(out["labels"], name)), want[name], err_msg=name)
    for carry in ("labels", "probs"):
        with open(os.path.join(out[carry], "segment_run.json"), encoding="utf-8") as f:
            assert json.load(f)["carry"] == carry
    changed = max(float(np.abs(np.load(os.path.join(out["labels"], "probs", f"{t:05d}.npy")).astype(np.float32)
                               - np.load(os.path.join(out["probs"], "probs", f"{t:05d}.npy")).astype(np.float32)).max())
                  for t in range(2, len(frames)))
    assert changed > 0.01


def test_a_colour_prior_network_exports_with_its_color_tables_signature(tmp_path):
    """The export CLI of a network with model.color_prior_input: the version holds color_tables and steps taking
    color_model (the metadata says so), and its warmup, color_tables requests included, replayed at export."""
    from maskrnn_tf.model import MaskRNN, MaskRNNConfig

    MaskRNN(MaskRNNConfig(width=0.125, fc_units=16, color_prior_input=True)).save(tmp_path / "model.keras")
    (tmp_path / "export" / "5").mkdir(parents=True)  # a higher version: the export says 1 is not served
    result = _run(["maskrnn_tf.export.export_main", f"--model={tmp_path / 'model.keras'}",
                   f"--export_base={tmp_path / 'export'}", "--version=1", "--warmup_shapes=24x32x2"])
    assert result.returncode == 0, result.stderr
    assert "also holds version(s) 5 above 1" in result.stderr and "version 1 is not served" in result.stderr
    with open(tmp_path / "export" / "1" / "assets.extra" / "maskrnn_export.json", encoding="utf-8") as f:
        signatures = json.load(f)["signatures"]
    assert set(signatures) == {"serving_default", "first_frame", "step_batched", "color_tables"}
    assert "color_model" in signatures["serving_default"]["inputs"]
    assert "color_model" in signatures["step_batched"]["inputs"]
    assert "color_model" in signatures["color_tables"]["outputs"]


def test_client_flags_that_client_config_refuses_are_usage_errors(tmp_path):
    """--retries, --timeout, --max_message_mb and --ready_timeout out of range stop the client while its flags are
    parsed (exit 2, naming the flag), not with ClientConfig's traceback; a --max_message_mb over gRPC's 2 GB
    int32 limit too (gRPC's OverflowError otherwise)."""
    common = ["maskrnn_tf.export.client_main", "--server=127.0.0.1:1", f"--video={tmp_path}",
              f"--first_mask={tmp_path / 'm.png'}", f"--output_dir={tmp_path / 'out'}"]
    for flag in ("--retries=0", "--timeout=0", "--timeout=nan", "--max_message_mb=0", "--max_message_mb=2048",
                 "--ready_timeout=-1"):
        result = _run(common + [flag])
        assert result.returncode == 2 and "Traceback" not in result.stderr, (flag, result.stderr)
        assert flag.split("=")[0] in result.stderr, (flag, result.stderr)
    assert os.listdir(tmp_path) == []


def _client_without_the_shipped_batching_file(tmp_path, *flags):
    """client_main with the shipped batching_parameters.txt missing (as in a broken install), against no server."""
    code = ("import runpy, maskrnn_tf.export.serving_commands as s; "
            f"s.batching_parameters_path = lambda: {str(tmp_path / 'missing.txt')!r}; "
            "runpy.run_module('maskrnn_tf.export.client_main', run_name='__main__')")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MASKRNN_TF_VERBOSE")}
    args = ["--server=127.0.0.1:1", "--retries=1", "--ready_timeout=0", f"--video={tmp_path}",
            f"--first_mask={tmp_path / 'm.png'}", f"--output_dir={tmp_path / 'out'}", *flags]
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600, env=env)


def test_the_batching_parameters_file_is_read_only_for_batched_and_its_failure_is_a_usage_error(tmp_path):
    """Without --batched the client never reads export/batching_parameters.txt (it failed with a traceback when
    that file could not be read); with --batched and no --max_batch_size it is a usage error naming the file and
    the flag to give; with --max_batch_size the file is not needed."""
    for flags in ((), ("--batched", "--max_batch_size=2")):
        result = _client_without_the_shipped_batching_file(tmp_path, *flags)
        # Past the configuration: the run fails at the (absent) server, as a run of a good install does.
        assert result.returncode == 1 and "Traceback" not in result.stderr, (flags, result.stderr)
        assert "UNAVAILABLE" in result.stderr and "missing.txt" not in result.stderr, (flags, result.stderr)
    result = _client_without_the_shipped_batching_file(tmp_path, "--batched")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "missing.txt" in result.stderr and "--max_batch_size" in result.stderr, result.stderr
    assert os.listdir(tmp_path) == []


def test_a_batching_export_for_another_max_batch_size_prints_a_server_that_takes_its_warmup(tmp_path, tiny_model):
    """export_main --batching --max_batch_size=16 with 16-row warmup: the printed model server command must run with
    a parameters file whose max_batch_size takes those records (the shipped one, 8, made the server refuse the
    version: "Task size 16 is larger than maximum input batch size 8")."""
    import shlex

    from maskrnn_tf.export.batching_check import batching_problems
    from maskrnn_tf.export.serving_commands import read_max_batch_size

    tiny_model.save(str(tmp_path / "model.keras"))
    base = tmp_path / "exports" / "maskrnn"
    result = _run(["maskrnn_tf.export.export_main", f"--model={tmp_path / 'model.keras'}", f"--export_base={base}",
                   "--version=1", "--batching", "--max_batch_size=16", "--warmup_shapes=24x32x16"])
    assert result.returncode == 0, result.stderr
    text = result.stdout
    if "cat > " in text:  # the parameters file to write first, printed with the commands
        block = text[text.index("cat > "):text.index("\nEOF\n") + len("\nEOF\n")]
        subprocess.run(["bash", "-c", block], cwd=tmp_path, check=True, timeout=60)
    local = text.split("# or with the apt package tensorflow-model-server:\n")[1]
    (path,) = [arg.split("=", 1)[1] for arg in shlex.split(local) if arg.startswith("--batching_parameters_file=")]
    assert batching_problems(str(base / "1"), read_max_batch_size(path)) == []
    assert read_max_batch_size(path) == 16
    assert os.listdir(base) == ["1"]


_FAILING_EXPORT = """
import runpy, sys
import tensorflow as tf
from maskrnn_tf.export import saved_model_export

base = sys.argv[1]

def failing(*args, **kwargs):
    raise tf.errors.ResourceExhaustedError(None, None, base + "/.tmp-1-x/variables/variables_temp; No space left on "
                                           "device [Op:SaveV2]")

saved_model_export.export_saved_model = failing
sys.argv = ["export_main", "--model=m.keras", "--export_base=" + base, "--version=1"]
runpy.run_module("maskrnn_tf.export.export_main", run_name="__main__")
"""


def test_a_write_failure_of_the_export_is_one_line(tmp_path):
    """A full disk during export raised TensorFlow's ResourceExhaustedError (SaveV2) as a traceback naming a
    temporary folder already removed: one line naming the export base and the cure. Run as the CLI runs (its flags
    defined in a process of its own), the export's writing replaced by the failure."""
    base = str(tmp_path / "exports")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MASKRNN_TF_VERBOSE")}
    proc = subprocess.run([sys.executable, "-c", _FAILING_EXPORT, base], capture_output=True, text=True, timeout=600,
                          env=env)
    err = [line for line in proc.stderr.splitlines() if line.startswith("export failed:")]
    assert proc.returncode == 1 and len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert err[0] == (f"export failed: {base}: writing the version failed (No space left on device); the disk is "
                      "full: free some space or choose a location on another disk."), err[0]


def _tf_error(kind: str, message: str) -> BaseException:
    import tensorflow as tf

    return getattr(tf.errors, kind)(None, None, message)


@pytest.mark.parametrize("error, hint", [
    (lambda base: _tf_error("ResourceExhaustedError", f"{base}/.tmp-1-x/v; No space left on device [Op:SaveV2]"),
     "free some space"),
    (lambda base: OSError(28, "No space left on device", f"{base}/.tmp-1-x/saved_model.pb"), "free some space"),
    (lambda base: _tf_error("PermissionDeniedError", f"{base}/.tmp-1-x; Permission denied"), "may not write"),
    # A graph-mode message goes on with the node on further lines: the line stays one.
    (lambda base: _tf_error("ResourceExhaustedError", f"{base}/.tmp-1-x/v; Disk quota exceeded\n\t [[{{{{node "
                                                      "SaveV2}}}}]]"), "quota is used up"),
    (lambda base: _tf_error("FailedPreconditionError", f"{base}/.tmp-1-x; Read-only file system"), "read-only"),
], ids=["savev2", "rename", "permission", "quota", "readonly"])
def test_write_failures_name_the_base_the_reason_and_its_cure(tmp_path, error, hint):
    from maskrnn_tf.export.write_failure import write_failure_line

    base = str(tmp_path / "exports")
    line = write_failure_line(error(base), base)
    assert line.startswith(f"{base}: writing the version failed (") and hint in line and "\n" not in line, line
    assert ".tmp-" not in line, line  # the temporary folder is gone: the base is what the user chose


def test_a_remote_export_base_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    """gs:// and s3:// bases were taken for local relative folders (./gs:/bucket/...) by the Python steps while
    TensorFlow wrote to the bucket: the two halves never met, leaving junk on both sides."""
    from maskrnn_tf.export.saved_model_export import ExportConfig, ExportError, export_saved_model

    monkeypatch.chdir(tmp_path)
    for base in ("gs://bucket/models/maskrnn", "s3://bucket/maskrnn", "hdfs://namenode/maskrnn"):
        with pytest.raises(ExportError, match=r"is not a local folder.*Export to a local folder, then copy"):
            export_saved_model(str(tmp_path / "missing.keras"), base, 1, ExportConfig(warmup=None))
        assert os.listdir(tmp_path) == []


def test_a_file_url_export_base_is_the_local_folder_it_names(tmp_path, tiny_model):
    """file:// is how TensorFlow spells a local path: refused as remote it would have been a wrong refusal."""
    from maskrnn_tf.export.saved_model_export import ExportConfig, export_saved_model

    path = export_saved_model(tiny_model, f"file://{tmp_path / 'exports'}", 1, ExportConfig(warmup=None))
    assert os.path.realpath(path) == os.path.realpath(tmp_path / "exports" / "1")
    assert os.path.isfile(tmp_path / "exports" / "1" / "saved_model.pb")


def test_an_export_without_warmup_is_still_loaded_as_the_model_server_loads_it(tmp_path, tiny_model, monkeypatch):
    """With --warmup_shapes= (no warmup) the export was never loaded through the session loader before it was
    published: a restore that misses a variable first failed at the model server. Loaded once now; a failure
    leaves no version."""
    import tensorflow as tf

    from maskrnn_tf.export import saved_model_export, session_model
    from maskrnn_tf.export.saved_model_export import ExportConfig, ExportError, export_saved_model

    loaded = []
    real = session_model.SessionModel

    class Recorded(real):
        def __init__(self, export_dir, *args, **kwargs):
            loaded.append(export_dir)
            super().__init__(export_dir, *args, **kwargs)

    monkeypatch.setattr(saved_model_export, "SessionModel", Recorded)
    assert os.path.isfile(os.path.join(export_saved_model(tiny_model, str(tmp_path / "e"), 1,
                                                          ExportConfig(warmup=None)), "saved_model.pb"))
    assert len(loaded) == 1 and os.path.basename(loaded[0]) != "1"  # the temporary folder, before the rename

    class Missing(real):
        def __init__(self, export_dir, *args, **kwargs):
            raise tf.errors.FailedPreconditionError(None, None, "Could not find variable conv1_1/kernel")

    monkeypatch.setattr(saved_model_export, "SessionModel", Missing)
    with pytest.raises(ExportError, match="model server's loader.*Could not find variable"):
        export_saved_model(tiny_model, str(tmp_path / "e"), 2, ExportConfig(warmup=None))
    assert sorted(os.listdir(tmp_path / "e")) == ["1"]
    # With warmup requests they are replayed on that one load: a load failure is named as such, not as a request's.
    with pytest.raises(ExportError, match="model server's loader.*Could not find variable") as refused:
        export_saved_model(tiny_model, str(tmp_path / "e"), 2, ExportConfig())
    assert "--warmup_shapes" not in str(refused.value) and sorted(os.listdir(tmp_path / "e")) == ["1"]


def test_a_model_name_the_server_cannot_take_is_a_usage_error(tmp_path):
    """--model_name went unquoted into the printed docker / model-server commands and into REST URLs: a space split
    it into two shell words. Names are the characters TF-Serving's URLs and a shell take as they are."""
    result = _run(["maskrnn_tf.export.export_main", f"--model={tmp_path / 'm.keras'}",
                   f"--export_base={tmp_path / 'e'}", "--version=1", "--model_name=mask rnn"])
    assert result.returncode == 2 and "--model_name" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "e").exists()
    client = _run(["maskrnn_tf.export.client_main", "--model_name=mask/rnn", f"--video={tmp_path}",
                   f"--first_mask={tmp_path / 'x.png'}", f"--output_dir={tmp_path / 'o'}"])
    assert client.returncode == 2 and "--model_name" in client.stderr and "Traceback" not in client.stderr
