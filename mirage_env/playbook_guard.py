"""Runs ansible-playbook so that it dies with mirage-env.

ansible-runner starts its command in a session of its own (pexpect, with SIGHUP ignored), so a
mirage-env killed by SIGKILL — or by a kill of its whole process group — left ansible-playbook and
its workers changing the host on their own, racing the next run. This guard sits between the two:
the kernel signals it when mirage-env dies (PR_SET_PDEATHSIG), and it then sends SIGTERM to its
own process group. ansible-playbook passes SIGTERM on to its workers (each in a session of its own,
so a group kill would miss them), and they end their tasks' processes; whatever still runs in our
group after a grace period gets SIGKILL.

Usage (built by provisioning.py): python -m mirage_env.playbook_guard PARENT_PID ansible-playbook ARGS…
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
GRACE_SECONDS = 5  # SIGTERM first; what still runs after this gets SIGKILL


def ask_kernel_to_signal_us_when_parent_dies(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0


def end_process_group(signum, frame) -> None:
    """The parent is gone: stop ansible-playbook (it stops its workers), then exit."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # our own killpg must not stop us half-way
    os.killpg(0, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                time.sleep(0.2)
        except ChildProcessError:
            break  # every child has exited
    os.killpg(0, signal.SIGKILL)  # anything left in our group, and us


def guards_of(parent: int) -> list[int]:
    """PIDs of the guards `parent` started (read from /proc; empty where there is no /proc)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in (…) may hold spaces
        if ppid == parent and Path(__file__).name.encode() in cmdline:
            found.append(int(entry.name))
    return found


def main(argv: list[str]) -> int:
    parent, command = int(argv[0]), argv[1:]
    if os.getpgrp() != os.getpid():
        os.setpgid(0, 0)  # a group of our own, so that killpg(0) reaches only what we start
    if ask_kernel_to_signal_us_when_parent_dies(signal.SIGTERM):
        signal.signal(signal.SIGTERM, end_process_group)
        if os.getppid() != parent:  # it died before the request took effect
            return 143
    child = os.fork()
    if child == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            os.execvp(command[0], command)
        except OSError as exc:  # say why, or the user sees only "exited with 127"
            print(f"mirage-env: cannot start {command[0]}: {exc}", file=sys.stderr, flush=True)
        os._exit(127)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
