"""Runs the playbooks through ansible-runner; every task event drives progress and the report."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import playbook_guard
from .sshclient import SshTarget
from .paths import ANSIBLE_CFG, PLAYBOOKS_DIR, ROLES_DIR
from .state import StateDir

PLAYBOOKS = PLAYBOOKS_DIR
ROLES = ROLES_DIR


@dataclass
class ProvisionResult:
    ok: bool
    rc: int
    changed: int
    failed: int
    unreachable: int
    role_seconds: dict[str, float] = field(default_factory=dict)
    task_seconds: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # "HOST: TASK: MESSAGE", for the user
    host_failures: dict[str, list[str]] = field(default_factory=dict)  # host → "TASK: MESSAGE"
    log: Path | None = None
    per_host: dict[str, dict] = field(default_factory=dict)  # name → ok/changed/failed/unreachable
    # one record per task and host, in run order: task, role, host, seconds, changed, status
    tasks: list[dict] = field(default_factory=list)


# the events that end one task on one host (a loop's items are inside its task's event)
_TASK_RESULTS = {"runner_on_ok": "ok", "runner_on_failed": "failed", "runner_on_skipped": "skipped",
                 "runner_on_unreachable": "unreachable"}


def task_record(kind: str, data: dict) -> dict:
    """A task's timing on one host, as ansible-runner's event measured it (from the task's start on
    that host to its result, so SSH and the remote Python are included)."""
    result = data.get("res") if isinstance(data.get("res"), dict) else {}
    try:
        seconds = round(float(data.get("duration") or 0), 2)
    except (TypeError, ValueError):
        seconds = 0.0
    return {"task": data.get("task") or "?", "role": data.get("role") or "play",
            "host": data.get("host"), "seconds": seconds,
            "changed": bool(result.get("changed")) if kind == "runner_on_ok" else False,
            "status": "changed" if kind == "runner_on_ok" and result.get("changed") else _TASK_RESULTS[kind]}


def write_inventory(state: StateDir, hosts: list) -> Path:
    """One inventory for all the hosts, each with its own role variables (a lab's hosts differ)."""
    known_hosts = state.path("known_hosts")
    entries = {}
    for host in hosts:
        target: SshTarget = host.target
        entries[host.name] = {
            "ansible_host": target.host,
            "ansible_port": target.port,
            "ansible_user": target.user,
            "ansible_ssh_private_key_file": str(target.key),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={known_hosts} "
                                       "-o StrictHostKeyChecking=accept-new -o IdentitiesOnly=yes",
            **host.settings.role_vars(),
            "mirage_env_probe": host.settings.probe.enabled,
            "mirage_env_unikernel": host.settings.unikernel.enabled,
            **host.vars,
        }
    path = state.path("inventory.yml")
    path.write_text(yaml.safe_dump({"all": {"hosts": entries}}, sort_keys=False))
    return path


def pin_host_keys(state: StateDir, hosts: list) -> None:
    """Record each host's SSH key in the inventory's known_hosts if it is not there yet (OpenSSH's
    accept-new, done ahead of Ansible): Mitogen's ssh puts `StrictHostKeyChecking yes` before the
    inventory's accept-new, so a host it has never seen would be refused. A key other than the
    recorded one is refused here with the fix; a host that does not answer is left to Ansible,
    which reports it unreachable."""
    import dataclasses

    import paramiko

    from .sshclient import connect

    known_hosts = state.path("known_hosts")
    for host in hosts:
        try:
            connect(dataclasses.replace(host.target, known_hosts=known_hosts)).close()
        except (OSError, EOFError, paramiko.SSHException):
            pass


def run_on_hosts(state: StateDir, hosts: list, playbook: str, extravars: dict, report,
                 forks: int = 8) -> ProvisionResult:
    """PLAYBOOK on HOSTS: their inventory written, their SSH keys pinned when Mitogen connects."""
    inventory = write_inventory(state, hosts)
    if strategy_env():
        pin_host_keys(state, hosts)
    return run_playbook(state, inventory, playbook, extravars, report, forks=forks)


def run_playbook(state: StateDir, inventory: Path, playbook: str, extravars: dict, report,
                 forks: int = 8) -> ProvisionResult:
    import ansible_runner  # imported here: `mirage-env --help` must stay fast

    private = state.path("ansible")
    private.mkdir(exist_ok=True)
    log = state.logs / "ansible.log"
    role_seconds: dict[str, float] = {}
    task_seconds: dict[str, float] = {}
    failures: list[str] = []
    tasks: list[dict] = []
    host_failures: dict[str, list[str]] = {}
    unreachable: list[tuple[str, str]] = []  # (host, message): kept only if the host ends up unreachable
    current = {"task": None, "role": None, "start": time.monotonic()}

    def close_task() -> None:
        if current["task"] is not None:
            spent = time.monotonic() - current["start"]
            task_seconds[current["task"]] = round(task_seconds.get(current["task"], 0) + spent, 1)
            role = current["role"] or "play"
            role_seconds[role] = round(role_seconds.get(role, 0) + spent, 1)

    def on_event(event: dict) -> bool:
        data = event.get("event_data", {})
        kind = event.get("event")
        if kind in _TASK_RESULTS:
            tasks.append(task_record(kind, data))
        if kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            close_task()
            role = data.get("role") or "play"
            name = data.get("task") or "?"
            current.update(task=f"{role}: {name}", role=role, start=time.monotonic())
            report.step(f"[{role}] {name}")
        elif kind == "playbook_on_stats":
            close_task()
            current["task"] = None
        elif kind == "runner_on_ok" and data.get("task_action") in ("debug", "ansible.builtin.debug"):
            # a role's one-line explanation (e.g. why opam was skipped) is for the user, not the log only
            message = data.get("res", {}).get("msg")
            if message:
                report.info(str(message))
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            result = data.get("res", {})
            said = f"{data.get('task')}: {result.get('msg') or result.get('stderr') or result}"
            failures.append(f"{data.get('host')}: {said}")
            host_failures.setdefault(data.get("host"), []).append(said)
        elif kind == "runner_on_unreachable":
            unreachable.append((data.get("host"), f"{data.get('host')} unreachable: {data.get('res', {}).get('msg')}"))
        with open(log, "a") as f:
            if event.get("stdout"):
                f.write(event["stdout"] + "\n")
        return True

    # ansible-playbook lives beside this interpreter (a virtualenv's bin/ is often not on PATH)
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    # ansible-playbook runs under a guard that ends it (and its workers) if mirage-env is killed
    # (-I: the guard is run as a file, and only the standard library may be on its path)
    guard = Path(__file__).with_name("playbook_guard.py")
    playbook_command = [shutil.which("ansible-playbook") or "ansible-playbook", str(PLAYBOOKS / playbook)]
    with _orderly_interrupts() as interrupted:
        runner = _run(ansible_runner, private, guard, playbook_command, inventory, extravars, forks, on_event)
    if interrupted():
        close_task()
        raise KeyboardInterrupt(f"stopped during {current['task'] or 'the playbook'}")
    stats = runner.stats or {}

    def total(key: str) -> int:
        return sum((stats.get(key) or {}).values())

    # a task with ignore_unreachable (the bridge's reconnect) also sends this event; Ansible then
    # counts the host as skipped, not dark, and so do we
    dark = stats.get("dark") or {}
    failures += [message for host, message in unreachable if dark.get(host)]
    if runner.status != "successful" and not failures:  # it died before any task: its own words say why
        try:
            said = runner.stdout.read().strip().splitlines()
        except (OSError, AttributeError):
            said = []
        if said:
            failures.append(" / ".join(said[-3:]))
    names = set()
    for key in ("ok", "changed", "failures", "dark", "skipped"):
        names |= set((stats.get(key) or {}))
    per_host = {}
    for name in sorted(names):
        counts = {key: (stats.get(key) or {}).get(name, 0) for key in ("changed", "failures", "dark")}
        per_host[name] = {"ok": counts["failures"] == 0 and counts["dark"] == 0,
                          "changed": counts["changed"], "failed": counts["failures"],
                          "unreachable": counts["dark"]}

    return ProvisionResult(
        ok=runner.status == "successful",
        rc=runner.rc,
        changed=total("changed"),
        failed=total("failures"),
        unreachable=total("dark"),
        role_seconds=role_seconds,
        task_seconds=task_seconds,
        failures=failures,
        host_failures=host_failures,
        log=log,
        per_host=per_host,
        tasks=tasks,
    )


def strategy_env() -> dict[str, str]:
    """Mitogen's strategy when it is installed (pip install mitogen): one Python stays up in the
    guest for the whole run instead of a fresh one per task (3-15 s each under emulation).
    MIRAGE_ENV_MITOGEN=off keeps Ansible's own linear strategy."""
    if os.environ.get("MIRAGE_ENV_MITOGEN", "auto").lower() in ("off", "0", "false", "no"):
        return {}
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or spec.origin is None:
        return {}
    plugins = Path(spec.origin).parent / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": "mitogen_linear"}


def strategy_name() -> str:
    """The Ansible strategy provisioning uses here (for reports and benchmarks)."""
    return strategy_env().get("ANSIBLE_STRATEGY", "linear")


def _run(ansible_runner, private: Path, guard: Path, playbook_command: list[str], inventory: Path,
         extravars: dict, forks: int, on_event):
    return ansible_runner.run(
        private_data_dir=str(private),
        binary=sys.executable,
        cmdline=shlex.join(["-I", str(guard), str(os.getpid()), *playbook_command]),
        inventory=str(inventory),
        extravars=extravars,
        envvars={
            "ANSIBLE_CONFIG": str(ANSIBLE_CFG),
            "ANSIBLE_ROLES_PATH": str(ROLES),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORKS": str(forks),  # a lab's hosts are provisioned in parallel
            # on: otherwise Ansible puts StrictHostKeyChecking=no before the inventory's accept-new, and
            # ssh takes the first value: a host whose key changed must be refused, not trusted
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            **strategy_env(),
        },
        event_handler=on_event,
        quiet=True,
        suppress_env_files=True,
        # never cancel through ansible-runner (nor let it take SIGINT/SIGTERM): its cancel kills the
        # guard's group with SIGKILL, which misses ansible's workers; see _orderly_interrupts
        cancel_callback=lambda: False,
    )


@contextlib.contextmanager
def _orderly_interrupts():
    """Ctrl-C or SIGTERM while a playbook runs: SIGTERM to the playbook guard's group, so that
    ansible-playbook stops its workers and their tasks, then let the run end and report it as
    interrupted. The previous handlers are back afterwards. (Only the main thread may set
    handlers; elsewhere the guard's parent-death signal still covers a killed mirage-env.)"""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def stop_playbook(signum, frame) -> None:
        received.append(signum)
        for pid in playbook_guard.guards_of(os.getpid()):
            try:
                # the guard alone: it signals its group once. A group kill from here as well gave
                # ansible-playbook a second SIGTERM inside its handler, after it had restored the
                # default action and before it told its workers — they then ran on, orphaned
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, stop_playbook) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(received)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
