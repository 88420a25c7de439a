"""A signal while the run's last checkpoint is written (a step count that is not a multiple of checkpoint_every):
the same stop as one in the loop, not a KeyboardInterrupt traceback (SIGINT) or a kill without a save (SIGTERM)."""
import os
import signal

import pytest

from maskrnn_tf.training import loop
from maskrnn_tf.training.checkpointing import RunCheckpoint
from maskrnn_tf.training.config import TrainConfig

from test_init_checkpoint import _TINY_RUN as _ONE_STEP_RUN  # tests/training/test_init_checkpoint.py

# One step, its checkpoint not on the checkpoint_every grid: saved as the run's last.
_TINY_RUN = {**_ONE_STEP_RUN, "checkpoint_every": 2}


class _Killed(Exception):
    """What this test's SIGTERM handler raises in place of the process's death (SIGTERM's default)."""


def _killed(signum, frame):
    raise _Killed


@pytest.mark.parametrize("signum, handler", [(signal.SIGINT, signal.default_int_handler),
                                             (signal.SIGTERM, _killed)])
def test_a_signal_during_the_final_checkpoint_stops_like_one_in_the_loop(tmp_path, monkeypatch, signum, handler):
    """Step 1 of 1 with checkpoint_every=2: its checkpoint was saved after the loop had put the process's own
    handlers back, so Ctrl-C there raised a bare KeyboardInterrupt and SIGTERM killed the run with no save. Now
    the save completes, then the run stops with TrainingInterrupted (exit 128+N in the CLI) naming it, and the
    rerun finishes the run from it."""
    config = TrainConfig().override(_TINY_RUN)
    run_dir = str(tmp_path / "run")
    save = RunCheckpoint.save

    def signalled(self, step):
        if step == config.total_steps:
            os.kill(os.getpid(), signum)  # arrives while the last checkpoint is being written
        return save(self, step)

    monkeypatch.setattr(RunCheckpoint, "save", signalled)
    # The process's handler outside the loop's: Python's own for SIGINT (a pytest-xdist worker ignores it), and
    # for SIGTERM one that raises rather than ending pytest.
    previous = signal.signal(signum, handler)
    try:
        with pytest.raises(loop.TrainingInterrupted) as stopped:
            loop.train(config, run_dir, printer=lambda line: None)
    except (KeyboardInterrupt, _Killed) as err:  # pytest would take a bare KeyboardInterrupt for its own
        pytest.fail(f"{signal.Signals(signum).name} during the final checkpoint gave {type(err).__name__}, not "
                    "TrainingInterrupted")
    finally:
        signal.signal(signum, previous)
    assert stopped.value.signum == signum
    assert stopped.value.checkpoint == os.path.join(run_dir, "checkpoints", "ckpt-1")
    assert os.path.isfile(stopped.value.checkpoint + ".index")
    if signum != signal.SIGINT:
        return  # the rerun is the same after either signal: once is enough
    monkeypatch.setattr(RunCheckpoint, "save", save)
    lines = []
    result = loop.train(config, run_dir, printer=lines.append)
    assert result.steps == 1 and os.path.isfile(result.model_path), lines
    assert f"resumed from {stopped.value.checkpoint} at step 1" in lines, lines


def test_a_ctrl_c_followed_by_a_drivers_sigterm_is_reported_as_the_ctrl_c(tmp_path, monkeypatch):
    """A terminal's Ctrl-C reaches `make demo`'s whole process group: the training gets SIGINT, then the demo's
    SIGTERM as it stops its command (experiments.commands.run_command). The run said "stopped by signal SIGTERM"
    and exited 143; the first signal is the cause kept."""
    config = TrainConfig().override(_TINY_RUN)
    save = RunCheckpoint.save

    def signalled(self, step):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        return save(self, step)

    monkeypatch.setattr(RunCheckpoint, "save", signalled)
    previous = {sig: signal.signal(sig, handler) for sig, handler in
                ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, _killed))}
    try:
        with pytest.raises(loop.TrainingInterrupted) as stopped:
            loop.train(config, str(tmp_path / "run"), printer=lambda line: None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert stopped.value.signum == signal.SIGINT and "stopped by signal SIGINT" in str(stopped.value)
