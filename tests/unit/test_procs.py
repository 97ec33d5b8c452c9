"""run_logged: an interrupted command does not go on without us, down to its children, whether
the interrupt is Ctrl-C, a SIGTERM (a cancelled job) or a SIGHUP (a closed terminal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from mirage_env.paths import project_root

# A command whose child outlives it unless its whole process group is ended: the shell prints the
# PID of a background sleep and waits; the test interrupts the Python process running it.
# SIGINT gets Python's own handler back: a shell starts background jobs (a CI runner's `cmd &`) with
# SIGINT ignored, which the child would inherit, while the test plays a foreground Ctrl-C.
SCRIPT = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from mirage_env.procs import run_logged
try:
    run_logged(["sh", "-c", "sleep 300 & echo child $!; wait"], on_line=lambda line: print(line, flush=True))
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_an_interrupt_ends_the_command_and_its_children(signum):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True,
                            cwd=project_root())
    child = None
    try:
        line = proc.stdout.readline()
        assert line.startswith("child "), line
        child = int(line.split()[1])
        assert alive(child)
        proc.send_signal(signum)  # to the Python process only, as `kill -INT PID` does
        assert proc.stdout.readline().strip() == "interrupted"
        assert proc.wait(timeout=30) == 130
        for _ in range(100):  # the group is ended before KeyboardInterrupt reaches the caller
            if not alive(child):
                break
            time.sleep(0.1)
        assert not alive(child), "the command's child kept running after the interrupt"
    finally:
        if proc.poll() is None:
            proc.kill()
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)
