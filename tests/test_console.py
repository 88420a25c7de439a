"""The CLIs' quiet console: TensorFlow's C++ start-up noise is dropped, everything else kept; --verbosity keeps all."""
import os
import subprocess
import sys

from maskrnn_tf import _console

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# What TensorFlow 2.21 prints at start-up (CPU machine, CUDA build), as the issue lists it.
NOISE_STRINGS = ("absl::InitializeLog", "Could not find cuda drivers", "failed call to cuInit",
                 "oneDNN custom operations", "cpu_feature_guard")
NOISE_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1796025266.243463   10053 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.\n",
    "E0000 00:00:1796025279.104868   10053 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed "
    "call to cuInit: UNKNOWN ERROR (303)\n",
    "2024-06-28 00:03:52.491725: I tensorflow/core/util/port.cc:110] oneDNN custom operations are on. You may see "
    "slightly different numerical results due to floating-point round-off errors from different computation "
    "orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n",
    "I0000 00:00:1796025266.590017   10053 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.\n",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate "
    "compiler flags.\n",
]
KEPT_LINES = [
    "Error: --first_box: box 1 (0,0,900,100) is not inside the first frame (854x480)\n",
    "W0000 00:00:1796025279.1 op_kernel.cc:1840] OP_REQUIRES failed at conv_ops.cc:1068 : RESOURCE_EXHAUSTED: OOM\n",
    "Traceback (most recent call last):\n",
]


def test_noise_lines_are_recognised_and_others_kept():
    assert all(_console.is_noise(line) for line in NOISE_LINES)
    assert not any(_console.is_noise(line) for line in KEPT_LINES)


def test_filtered_stderr_drops_the_noise_and_keeps_the_rest_in_order(capfd):
    lines = [NOISE_LINES[0], KEPT_LINES[0], NOISE_LINES[1], KEPT_LINES[1], NOISE_LINES[5]]
    with _console.filtered_stderr():
        for line in lines:
            os.write(2, line.encode())  # as C++ writes: to the file descriptor, not sys.stderr
    assert capfd.readouterr().err == KEPT_LINES[0] + KEPT_LINES[1]


def test_quiet_by_default_verbose_on_request_and_the_users_level_kept(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv(_console.VERBOSE_ENV, raising=False)
    assert _console.quiet_startup(["prog", "--model=m.keras"]) is True
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    assert _console.quiet_startup(["prog"]) is True and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    for argv in (["prog", "--verbosity=1"], ["prog", "-v", "0"], ["prog", "--verbosity", "-1"]):
        monkeypatch.delenv(_console.VERBOSE_ENV, raising=False)
        assert _console.quiet_startup(argv) is False, argv
        assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
        assert os.environ[_console.VERBOSE_ENV] == "1"  # the CLIs it starts are verbose too
    monkeypatch.setenv(_console.VERBOSE_ENV, "1")
    assert _console.quiet_startup(["prog"]) is False
    assert _console.verbose_requested(["prog", "--", "--verbosity=1"]) is True  # the environment variable
    monkeypatch.delenv(_console.VERBOSE_ENV)
    assert _console.verbose_requested(["prog", "--", "--verbosity=1"]) is False  # after --: not a flag
    assert _console.verbose_requested(["prog", "--verbose_name=1"]) is False


def test_a_cli_that_loads_tensorflow_prints_none_of_the_noise(tmp_path):
    """A training of 0 steps starts TensorFlow, builds the network and saves a checkpoint and model.keras (whose
    saver logs INFO lines through absl): none of it reaches the console."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", _console.VERBOSE_ENV)}
    proc = subprocess.run([sys.executable, "-m", "maskrnn_tf.train", f"--flagfile={REPO}/synthetic.flags",
                           "--run_dir=run", "--stage_a_steps=0", "--stage_b_steps=0", "--model_width=0.125",
                           "--fc_units=16", "--val_videos=0", "--synthetic_train_videos=2"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run" / "model.keras").is_file() and "TensorBoard" in proc.stdout
    for text in NOISE_STRINGS + ("Sharding callback duration",):
        assert text not in proc.stderr and text not in proc.stdout, proc.stderr
    absl_info = [line for line in proc.stderr.splitlines() if line[:1] == "I" and line[1:5].isdigit()]
    assert not absl_info, absl_info


def test_the_tensorboard_command_names_the_script_beside_this_python(tmp_path, monkeypatch):
    """`make demo` runs in .venv without activating it: the printed `tensorboard --logdir ...` was not found on the
    PATH. The script beside the running Python is named when there is one, and paths are quoted for a shell."""
    import shlex

    (tmp_path / "bin").mkdir()
    python = tmp_path / "bin" / "python"
    monkeypatch.setattr(sys, "executable", str(python))
    logdir = str(tmp_path / "my runs" / "logs")
    assert _console.tensorboard_command(logdir) == f"tensorboard --logdir {shlex.quote(logdir)}"
    script = tmp_path / "bin" / "tensorboard"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert shlex.split(_console.tensorboard_command(logdir)) == [str(script), "--logdir", logdir]
