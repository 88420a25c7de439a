"""A run resumes in the precision its checkpoints were made in, wherever `--precision=auto` would resolve.

A float16 checkpoint holds a LossScaleOptimizer, the others a plain Adam: a run begun with auto on a GPU host
(float16) and resumed on a CPU host (auto -> float32) could not be restored. The run dir records the precision
(precision.json); auto resumes in it, another explicit precision is refused naming it.
"""
import json
import os
import shutil

import pytest

from conftest import built_once, run_cli, train_in_process
from maskrnn_tf.training import precision
from maskrnn_tf.training.checkpointing import (PrecisionMismatchError, read_run_precision, resume_precision,
                                               write_run_precision)

STEPS = ["--stage_a_steps=2", "--stage_b_steps=0", "--checkpoint_every=1"]
# The trainings below run in this process (what a run prints and writes is the subject; the refusal's exit code
# keeps a CLI process). The host is simulated: `auto` asks only training.precision._has_gpu whether TensorFlow
# lists a GPU; on a simulated GPU host float16 and loss scaling then run on the CPU.


def _here(value):
    def resolve():
        return value
    return resolve


def test_without_a_record_the_precision_is_resolved_as_asked():
    choice = resume_precision("auto", None, None, _here("bfloat16"))
    assert (choice.precision, choice.config_precision, choice.note) == ("bfloat16", "auto", None)
    choice = resume_precision("float16", None, "auto", _here("float32"))
    assert (choice.precision, choice.config_precision, choice.note) == ("float16", "float16", None)


def test_auto_resumes_in_the_recorded_precision_and_says_why():
    choice = resume_precision("auto", "float16", "auto", _here("float32"))
    assert (choice.precision, choice.config_precision) == ("float16", "auto")
    assert choice.note == ("precision float16: this run's checkpoints were made in float16 (auto gives float32 on "
                           "this host); --precision=auto resumes a run in the precision it began in")
    # Where auto agrees, the usual line (describe_precision) is printed.
    assert resume_precision("auto", "float32", "auto", _here("float32")).note is None
    # A run begun with an explicit precision keeps it in its config.json: auto is that setting, not another.
    assert resume_precision("auto", "float16", "float16", _here("float32")).config_precision == "float16"
    # ... and the precision auto resumed in may be asked for by name on a run begun with auto.
    choice = resume_precision("float16", "float16", "auto", _here("float32"))
    assert (choice.precision, choice.config_precision, choice.note) == ("float16", "auto", None)


@pytest.mark.parametrize("requested,recorded", [("float32", "float16"), ("bfloat16", "float16"),
                                                ("float16", "float32"), ("float32", "bfloat16")])
def test_another_explicit_precision_is_refused_saying_how_to_go_on(requested, recorded):
    with pytest.raises(PrecisionMismatchError) as err:
        resume_precision(requested, recorded, "auto", _here("float32"))
    message = str(err.value)
    assert f"made in {recorded}" in message and f"--precision={requested}" in message
    assert f"resume with --precision={recorded}" in message and "new --run_dir" in message
    # float32 and bfloat16 checkpoints hold the same variables: --overwrite_config may switch between them.
    same_variables = "float16" not in (requested, recorded)
    assert ("--overwrite_config" in message) == same_variables
    if same_variables:
        choice = resume_precision(requested, recorded, recorded, _here("float32"), overwrite_config=True)
        assert (choice.precision, choice.config_precision) == (requested, requested)
        assert f"continuing the run's {recorded} checkpoints in {requested}" in choice.note
    else:
        with pytest.raises(PrecisionMismatchError):
            resume_precision(requested, recorded, recorded, _here("float32"), overwrite_config=True)


def test_the_record_binds_only_a_run_with_checkpoints(tmp_path):
    run_dir = str(tmp_path)
    assert read_run_precision(run_dir) is None
    write_run_precision(run_dir, "float16")
    assert json.loads((tmp_path / "precision.json").read_text()) == {"precision": "float16"}
    assert read_run_precision(run_dir) is None  # stopped before its first checkpoint: nothing to fit
    os.makedirs(tmp_path / "checkpoints")
    (tmp_path / "checkpoints" / "ckpt-2.index").write_bytes(b"")
    assert read_run_precision(run_dir) == "float16"
    (tmp_path / "precision.json").write_text("{not json")
    with pytest.raises(PrecisionMismatchError, match="precision.json"):
        read_run_precision(run_dir)


def _copy(run_dir, tmp_path):
    target = str(tmp_path / "run")
    shutil.copytree(run_dir, target)
    return target


@pytest.fixture(scope="module")
def auto_gpu_run(tmp_path_factory):
    """A 2-step run begun with --precision=auto on a (simulated) GPU host: float16, loss scaling."""

    def build(folder):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(precision, "_has_gpu", lambda: True)
            out, _ = train_in_process(os.path.join(folder, "run"), *STEPS, "--precision=auto")
        assert "precision auto -> float16 (a GPU" in out, out[-3000:]

    return os.path.join(built_once(tmp_path_factory, "auto_gpu_run", build), "run")


def test_an_auto_run_from_a_gpu_host_resumes_with_auto_on_a_cpu_host(auto_gpu_run, tmp_path, monkeypatch):
    run_dir = _copy(auto_gpu_run, tmp_path)
    assert json.loads(open(os.path.join(run_dir, "config.json")).read())["precision"] == "auto"
    monkeypatch.setattr(precision, "_has_gpu", lambda: False)
    # A CPU host without bfloat16 units, whatever this machine is (with them auto may give bfloat16).
    monkeypatch.setattr(precision, "cpu_bfloat16_flag", lambda cpuinfo_path=None: None)
    out, result = train_in_process(run_dir, *STEPS[1:], "--stage_a_steps=3", "--precision=auto")
    assert "precision float16: this run's checkpoints were made in float16 (auto gives float32 on this host)" in out
    assert "resumed from" in out and "ckpt-2 at step 2" in out and result.steps == 3  # the CLI's "done: 3 steps"
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "ckpt-3.index"))
    assert read_run_precision(run_dir) == "float16"
    assert json.loads(open(os.path.join(run_dir, "config.json")).read())["precision"] == "auto"


def test_another_explicit_precision_stops_before_the_run_dir_is_touched(auto_gpu_run, tmp_path):
    run_dir = _copy(auto_gpu_run, tmp_path)
    before = {name: open(os.path.join(run_dir, name), "rb").read() for name in ("config.json", "precision.json")}
    checkpoints = sorted(os.listdir(os.path.join(run_dir, "checkpoints")))
    proc = run_cli(run_dir, *STEPS, "--precision=float32", "--overwrite_config")
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "made in float16" in proc.stdout and "resume with --precision=float16" in proc.stdout
    assert "new --run_dir" in proc.stdout and "Traceback" not in proc.stdout
    # No failed restore: TensorFlow's page of unrestored-object warnings. (TensorFlow's own start-up lines, such as
    # absl's "WARNING: All log messages before absl::InitializeLog()", may show and are not what this is about.)
    assert "Value in checkpoint could not be found" not in proc.stdout
    assert "Unresolved object in checkpoint" not in proc.stdout
    assert before == {name: open(os.path.join(run_dir, name), "rb").read() for name in before}
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == checkpoints


def test_an_explicit_float16_run_resumes_with_auto_on_a_cpu(tmp_path, monkeypatch):
    run_dir = str(tmp_path / "run")
    monkeypatch.setattr(precision, "_has_gpu", lambda: False)
    out, _ = train_in_process(run_dir, *STEPS, "--precision=float16")
    assert "precision float16" in out, out[-3000:]
    out, result = train_in_process(run_dir, *STEPS[1:], "--stage_a_steps=3", "--precision=auto")
    assert "this run's checkpoints were made in float16" in out and result.steps == 3, out[-3000:]
    assert json.loads(open(os.path.join(run_dir, "config.json")).read())["precision"] == "float16"


def test_the_refusal_offers_auto_only_where_auto_may_be_given():
    # A multi-worker run refuses --precision=auto (check_strategy_settings): its mismatch error must not offer it.
    with pytest.raises(PrecisionMismatchError) as err:
        resume_precision("bfloat16", "float16", "float16", _here("float32"), auto_allowed=False)
    message = str(err.value)
    assert "--precision=auto" not in message and "resume with --precision=float16, or start a new" in message
    with pytest.raises(PrecisionMismatchError) as err:
        resume_precision("bfloat16", "float16", "float16", _here("float32"))
    assert "--precision=auto" in str(err.value)
