"""run_command: a command's failure stops the driver; a command stopped by Ctrl-C stops it as a Ctrl-C does."""
import signal
import sys

import pytest

from maskrnn_tf.experiments.commands import run_command


@pytest.mark.parametrize("how", ["exits 130", "killed by SIGINT"])
def test_a_command_stopped_by_sigint_interrupts_the_driver(how):
    """A terminal's Ctrl-C reaches the driver's command too; when the command stopped before the driver's own
    KeyboardInterrupt came, the demo ended with 'the command above failed with exit code 130' and exit 1."""
    code = ("raise SystemExit(130)" if how == "exits 130" else
            f"import os; os.kill(os.getpid(), {int(signal.SIGINT)})")
    with pytest.raises(KeyboardInterrupt):
        run_command([sys.executable, "-c", f"import signal; signal.signal(signal.SIGINT, signal.SIG_DFL); {code}"])


def test_a_failing_command_stops_the_driver_with_its_exit_code():
    with pytest.raises(SystemExit, match="demo: the command above failed with exit code 3"):
        run_command([sys.executable, "-c", "raise SystemExit(3)"], driver="demo")
    assert run_command([sys.executable, "-c", "pass"]) >= 0.0
