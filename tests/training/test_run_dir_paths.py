"""--run_dir as users type it: `~/...` (the shell leaves ~ after `=` alone), a path that is a file, and the lock
file's mode under a group-writable umask."""
import os
import subprocess

from conftest import REPO, cli_env, train_cmd

from maskrnn_tf.training.run_dir import LOCK_NAME, run_dir_lock

STEPS = ["--stage_a_steps=1", "--stage_b_steps=1", "--checkpoint_every=1"]


def test_tilde_run_dir_goes_to_the_home_folder(tmp_path):
    """Checked on a run that stops at its data check (no DAVIS folder): the run dir it names is the home one."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = cli_env({"HOME": str(home), "PYTHONPATH": REPO})
    cmd = train_cmd("~/runs/tiny", *STEPS, "--dataset=davis17", f"--manual_dir={tmp_path / 'no_davis'}",
                    "--val_sequences=")
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=240)
    assert proc.returncode == 2 and "cannot read the DAVIS-2017" in proc.stdout, proc.stdout[-2000:]
    assert f"run dir {home / 'runs' / 'tiny'}\n" in proc.stdout, proc.stdout[-2000:]
    assert not os.path.exists(cwd / "~")


def test_a_run_dir_that_is_a_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    proc = subprocess.run(train_cmd(str(path), *STEPS), cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=240)
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert f"--run_dir={path} is a file" in proc.stdout and "Traceback" not in proc.stdout
    assert path.read_text() == "mine"


def test_lock_file_follows_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        with run_dir_lock(str(tmp_path / "run")):
            pass
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "run" / LOCK_NAME).st_mode & 0o777 == 0o664


def test_a_run_dir_that_cannot_be_created_is_refused_naming_it(tmp_path):
    """A --run_dir under a file (a typo in its path) stopped the run with a NotADirectoryError traceback."""
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    run_dir = path / "run"
    proc = subprocess.run(train_cmd(str(run_dir), *STEPS), cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=240)
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert f"--run_dir={run_dir} cannot be created (Not a directory" in proc.stdout, proc.stdout[-2000:]
    assert "Traceback" not in proc.stdout and path.read_text() == "mine"


def _files(folder):
    """Every file under `folder` with its bytes."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                out[os.path.relpath(os.path.join(root, name), folder)] = f.read()
    return out


def test_a_folder_of_the_users_is_refused_with_exit_2_and_left_as_it_was(tmp_path):
    """--run_dir at a folder without config.json holding a precision.json, a last_validation.json and TensorFlow
    checkpoints of another program: they were replaced or taken for the run's, and a .lock was left behind."""
    import tensorflow as tf

    run_dir = tmp_path / "theirs"
    run_dir.mkdir()
    (run_dir / "precision.json").write_text('{"bits": 16}\n')
    (run_dir / "last_validation.json").write_text('{"epoch": 3}\n')
    tf.train.CheckpointManager(tf.train.Checkpoint(w=tf.Variable([1.0])), str(run_dir / "checkpoints"), 1).save()
    before = _files(run_dir)
    proc = subprocess.run(train_cmd(str(run_dir), *STEPS), cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=240)
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert (f"error: {run_dir} is not a training run (it has no config.json) but holds checkpoints, "
            "last_validation.json, precision.json") in proc.stdout, proc.stdout[-2000:]
    assert "Traceback" not in proc.stdout
    assert _files(run_dir) == before  # no .lock either
    assert sorted(os.listdir(run_dir)) == ["checkpoints", "last_validation.json", "precision.json"]
