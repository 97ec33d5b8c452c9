"""Runs ansible-playbook so that it dies with mirage-env.

ansible-runner starts its command in a session of its own (pexpect, with SIGHUP ignored), so a
mirage-env killed by SIGKILL — or by a kill of its whole process group — left ansible-playbook and
its workers changing the host on their own, racing the next run. This guard sits between the two:
the kernel signals it when mirage-env dies (PR_SET_PDEATHSIG), and it then sends SIGTERM to its
own process group. ansible-playbook passes SIGTERM on to its workers (each in a session of its own,
so a group kill would miss them), and they end their tasks' processes; whatever still runs below
the guard after a grace period gets SIGKILL — by PID, so workers in their own sessions too: the guard
is a child subreaper, so they stay below it even when ansible-playbook died before passing SIGTERM on.

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
PR_SET_CHILD_SUBREAPER = 36  # orphaned descendants are re-parented to us, not to init
GRACE_SECONDS = 5  # SIGTERM first; what still runs after this gets SIGKILL


def _prctl(option: int, arg: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.prctl(option, arg, 0, 0, 0) == 0


def ask_kernel_to_signal_us_when_parent_dies(signum: int) -> bool:
    return _prctl(PR_SET_PDEATHSIG, signum)


def _children_by_parent() -> dict[int, list[int]]:
    """PPID → live (not zombie) PIDs, read from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()  # the name in (…) may hold spaces
        except OSError:
            continue
        if fields[0] != "Z":
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def descendants(root: int) -> list[int]:
    """Every live process below ROOT, whatever session or group it moved to (Ansible's workers
    call setsid, so a group kill misses them; as a subreaper we stay their ancestor even when
    ansible-playbook dies first)."""
    tree, found, todo = _children_by_parent(), [], [root]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def end_descendants(me: int) -> None:
    """Give what runs below us the grace period to end, then SIGKILL what is left, by PID."""
    deadline = time.monotonic() + GRACE_SECONDS
    while descendants(me) and time.monotonic() < deadline:
        _reap()
        time.sleep(0.1)
    for _ in range(10):  # a process may fork while we sweep: sweep until nothing is left
        left = descendants(me)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        _reap()


def end_process_group(signum, frame) -> None:
    """Stop ansible-playbook (it passes SIGTERM on to its workers), give everything below us the
    grace period, then SIGKILL what is left below us — also workers whose ansible-playbook died
    before passing the signal on — and exit."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # our own killpg must not stop us half-way
    os.killpg(0, signal.SIGTERM)  # once: a second SIGTERM in Ansible's handler kills it before it tells the workers
    end_descendants(os.getpid())
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
    # SIGTERM (from mirage-env's Ctrl-C handling, or the kernel when mirage-env dies) ends the run
    signal.signal(signal.SIGTERM, end_process_group)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if ask_kernel_to_signal_us_when_parent_dies(signal.SIGTERM) and os.getppid() != parent:
        return 143  # it died before the request took effect
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
    if os.WIFSIGNALED(status):
        # ansible-playbook was killed (OOM, a SIGKILL): its workers, in sessions of their own, were
        # not told and are now ours (subreaper). Their tasks must not run on unwatched.
        for pid in descendants(os.getpid()):
            try:
                os.kill(pid, signal.SIGTERM)  # an Ansible worker then ends its task's process group
            except ProcessLookupError:
                pass
        end_descendants(os.getpid())
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
