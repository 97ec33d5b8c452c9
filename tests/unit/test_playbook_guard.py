"""run_playbook for real — ansible-playbook dies with mirage-env: real ansible-runner, real ansible-playbook on a local
connection, and a real SIGKILL of the calling process group (the bug this guard fixes: pexpect's
session kept the playbook running after mirage-env was killed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from mirage_env.provisioning import run_playbook
from mirage_env.state import StateDir

ROOT = Path(__file__).resolve().parents[2]


class Steps:
    """Collects what run_playbook reports (the terminal UI is not under test here)."""

    def __init__(self):
        self.steps, self.infos = [], []

    def step(self, text):
        self.steps.append(text)

    def info(self, text):
        self.infos.append(text)


def local_inventory(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(f"all:\n  hosts:\n    here:\n      ansible_connection: local\n"
                         f"      ansible_python_interpreter: {sys.executable}\n")
    return inventory


def playbook(tmp_path: Path, tasks: str) -> Path:
    path = tmp_path / "play.yml"
    path.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n" + textwrap.indent(tasks, "    "))
    return path


def processes_with(marker: str) -> list[str]:
    """Command lines (from /proc) that contain the marker, other than this test's own."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found


# -- a caller (standing in for mirage-env) running a playbook whose task sleeps ------------------
CALLER = """
import signal, sys
from pathlib import Path
from mirage_env.provisioning import run_playbook
from mirage_env.state import StateDir
class Steps:
    def step(self, text): print(text, flush=True)
    def info(self, text): pass
state = StateDir.for_env("guard", Path({state!r}))
state.logs.mkdir(parents=True, exist_ok=True)
try:
    run_playbook(state, Path({inventory!r}), {play!r}, {{}}, Steps())
except KeyboardInterrupt as exc:
    print("interrupted:", exc, flush=True)
    # the handlers from before the run are back
    print("handlers restored:", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
    sys.exit(130)
print("not interrupted", flush=True)
"""


def start_sleeping_playbook(tmp_path: Path) -> tuple[subprocess.Popen, str, str]:
    """(the caller, the task's marker, the playbook's path), once the task runs. The task's process
    is a worker's child: it must go too, not only ansible-playbook."""
    marker = f"mev-guard-{uuid.uuid4().hex[:10]}"
    play = playbook(tmp_path, f"- name: Sleep\n  ansible.builtin.shell: sleep 600; echo {marker}\n")
    caller = CALLER.format(state=str(tmp_path / "state"), inventory=str(local_inventory(tmp_path)), play=str(play))
    proc = subprocess.Popen([sys.executable, "-c", caller], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    return proc, marker, str(play)


def wait_until_gone(marker: str, play: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (processes_with(marker) or processes_with(play)) and time.monotonic() < deadline:
        time.sleep(0.2)


def end_leftovers(proc: subprocess.Popen, marker: str, play: str) -> None:
    """By PID, whatever the test left running (if the guard failed)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    for line in processes_with(marker) + processes_with(play):
        try:
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass



def test_a_guarded_run_reports_events_and_its_result(tmp_path):
    state = StateDir.for_env("guard", tmp_path / "state")
    state.logs.mkdir(parents=True, exist_ok=True)
    steps = Steps()
    play = playbook(tmp_path, "- name: Say hello\n  ansible.builtin.debug:\n    msg: hello from the guard\n"
                              "- name: Change something\n  ansible.builtin.command: 'true'\n")
    result = run_playbook(state, local_inventory(tmp_path), str(play), {}, steps)
    assert result.ok and result.rc == 0 and result.changed == 1, result
    assert steps.steps == ["[play] Say hello", "[play] Change something"]
    assert "hello from the guard" in steps.infos


def test_a_failing_playbook_keeps_its_exit_code(tmp_path):
    state = StateDir.for_env("guard", tmp_path / "state")
    state.logs.mkdir(parents=True, exist_ok=True)
    play = playbook(tmp_path, "- name: Fail\n  ansible.builtin.command: 'false'\n")
    result = run_playbook(state, local_inventory(tmp_path), str(play), {}, Steps())
    assert not result.ok and result.rc == 2 and result.failed == 1
    assert any("Fail" in f for f in result.failures)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_the_callers_process_group_ends_the_playbook_and_its_workers(tmp_path):
    proc, marker, play = start_sleeping_playbook(tmp_path)
    try:
        assert processes_with(marker), "the playbook's task never started"
        assert processes_with(play), "no ansible-playbook process found"
        os.killpg(proc.pid, signal.SIGKILL)  # what a killed terminal or CI job does
        proc.wait(timeout=30)
        wait_until_gone(marker, play, 30)
        assert not processes_with(play), "ansible-playbook outlived its caller"
        assert not processes_with(marker), "the task's process outlived its caller"
    finally:
        end_leftovers(proc, marker, play)


# -- unreachable accounting (same runner, same event handler) ------------------------------------
def run_in_empty_network_namespace(tmp_path: Path, play: Path) -> dict:
    """run_playbook against a host whose SSH cannot connect: inside `unshare -n` nothing is up, so
    real ssh fails at once and Ansible calls the host unreachable; nothing leaves this machine."""
    inventory = tmp_path / "gone.yml"
    inventory.write_text("all:\n  hosts:\n    gone:\n      ansible_host: 127.0.0.1\n      ansible_port: 9\n"
                         "      ansible_user: nobody\n")
    caller = textwrap.dedent(f"""
        import json
        from dataclasses import asdict
        from pathlib import Path
        from mirage_env.provisioning import run_playbook
        from mirage_env.state import StateDir
        class Steps:
            def step(self, text): pass
            def info(self, text): pass
        state = StateDir.for_env("gone", Path({str(tmp_path / 'state')!r}))
        state.logs.mkdir(parents=True, exist_ok=True)
        result = run_playbook(state, Path({str(inventory)!r}), {str(play)!r}, {{}}, Steps())
        print(json.dumps(asdict(result), default=str))
    """)
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", caller], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_an_ignored_unreachable_task_is_not_reported_as_a_failure(tmp_path):
    from tests.support import require_root_and_tools

    require_root_and_tools("unshare", "ssh")
    ignored = run_in_empty_network_namespace(tmp_path, playbook(
        tmp_path, "- name: Reconnect\n  ansible.builtin.ping:\n  ignore_unreachable: true\n"))
    assert ignored["ok"] and ignored["unreachable"] == 0 and ignored["failures"] == [], ignored
    (tmp_path / "state").rename(tmp_path / "state-1")
    real = run_in_empty_network_namespace(tmp_path, playbook(tmp_path, "- name: Reach\n  ansible.builtin.ping:\n"))
    assert not real["ok"] and real["unreachable"] == 1, real
    assert len(real["failures"]) == 1 and real["failures"][0].startswith("gone unreachable: "), real


# -- Ctrl-C / SIGTERM while a playbook runs -----------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the guard's group handling is Linux's")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_stops_the_playbook_and_its_tasks_and_says_so(tmp_path, signum):
    proc, marker, play = start_sleeping_playbook(tmp_path)
    try:
        assert processes_with(marker), "the playbook's task never started"
        os.kill(proc.pid, signum)  # to mirage-env only, as a terminal's Ctrl-C reaches it (or CI's SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 130, out
        assert "interrupted: stopped during play: Sleep" in out and "handlers restored: True" in out, out
        wait_until_gone(marker, play, 30)
        assert not processes_with(play), "ansible-playbook outlived the interrupt"
        assert not processes_with(marker), "the task's process outlived the interrupt"
    finally:
        end_leftovers(proc, marker, play)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="subreaper and /proc are Linux's")
def test_workers_do_not_outlive_an_ansible_playbook_that_died_without_telling_them(tmp_path):
    """The race behind the flaky interrupt test, made certain: ansible-playbook ends (here SIGKILL;
    under load, a second SIGTERM inside its handler did it) before it passes SIGTERM on to its
    workers, which sit in sessions of their own. The guard, their subreaper, ends them itself."""
    from mirage_env.playbook_guard import guards_of

    proc, marker, play = start_sleeping_playbook(tmp_path)
    try:
        assert processes_with(marker), "the playbook's task never started"
        [guard] = guards_of(proc.pid)
        [playbook_main] = children_of(guard)
        os.kill(playbook_main, signal.SIGKILL)
        wait_until_gone(marker, play, 30)
        assert not processes_with(play), "an Ansible worker outlived its ansible-playbook"
        assert not processes_with(marker), "the task's process outlived its ansible-playbook"
        out, _ = proc.communicate(timeout=60)
        assert "not interrupted" in out, out  # the caller saw a failed run, not a hang
    finally:
        end_leftovers(proc, marker, play)
