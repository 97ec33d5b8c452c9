"""Running external commands with their output streamed to a log file and to progress."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Callable, Sequence

from .errors import MirageEnvError


class CommandFailed(MirageEnvError, RuntimeError):
    def __init__(self, cmd: Sequence[str], code: int, log: Path | None, tail: str):
        self.cmd, self.code, self.log, self.tail = list(cmd), code, log, tail
        where = f" (log: {log})" if log else ""
        super().__init__(f"`{' '.join(map(str, cmd))}` exited with {code}{where}\n{tail}")


def run_logged(
    cmd: Sequence[str],
    log: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    env: dict | None = None,
    cwd: Path | None = None,
    input_text: str | None = None,
) -> str:
    """Run `cmd`, append its combined output to `log`, feed each line to `on_line`.

    Returns the whole output; raises CommandFailed with the last lines on a non-zero exit.
    """
    lines: list[str] = []
    logf = open(log, "a", encoding="utf-8") if log else None
    try:
        if logf:
            logf.write(f"$ {' '.join(map(str, cmd))}\n")
            logf.flush()
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=env,
            cwd=cwd,
            start_new_session=True,  # a group of its own: an interrupt ends all of it (see below)
        )
        try:
            with _signals_as_interrupts():
                if input_text is not None:
                    proc.stdin.write(input_text)
                    proc.stdin.close()
                for line in proc.stdout:
                    lines.append(line)
                    if logf:
                        logf.write(line)
                    if on_line:
                        on_line(line.rstrip())
                code = proc.wait()
        except BaseException:  # Ctrl-C, SIGTERM, SIGHUP: the command must not go on without us
            _end_group(proc)
            raise
    finally:
        if logf:
            logf.close()
    out = "".join(lines)
    if code != 0:
        raise CommandFailed(cmd, code, log, "".join(lines[-15:]))
    return out


def _end_group(proc: subprocess.Popen, grace_s: float = 10) -> None:
    """SIGTERM to the command's whole process group (debootstrap's dpkg, apt in a chroot), then
    SIGKILL to what is left after `grace_s` — also when a second Ctrl-C cuts the wait short."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the leader may be gone while its group lives on
        except ProcessLookupError:
            pass
        proc.wait()


@contextlib.contextmanager
def _signals_as_interrupts():
    """SIGTERM and SIGHUP raise KeyboardInterrupt, as SIGINT does, while a command runs: the
    command sits in a session of its own, so a signal that would have ended it with us (a closed
    terminal, a cancelled CI job) now reaches only us, and we must end it. Signal handlers can be
    set only in the main thread; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
