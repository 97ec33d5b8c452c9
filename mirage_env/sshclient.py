"""The project's own SSH work (waiting for boot, key swap, probes) through paramiko."""

from __future__ import annotations

import fcntl
import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import paramiko

from .errors import MirageEnvError

# paramiko prints a traceback for every refused attempt while the machine boots: keep it quiet
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int
    user: str
    key: Path
    # Where this host's key is pinned (the file Ansible's ssh also uses). None: a machine we just
    # made ourselves behind a local port, whose key was made on its first boot; any key is taken.
    known_hosts: Path | None = None

    def ssh_config(self, alias: str, known_hosts: Path) -> str:
        return (f"Host {alias}\n  HostName {self.host}\n  Port {self.port}\n  User {self.user}\n"
                f"  IdentityFile {self.key}\n  IdentitiesOnly yes\n  StrictHostKeyChecking accept-new\n"
                f"  UserKnownHostsFile {known_hosts}\n  LogLevel ERROR\n")


class HostKeyChanged(MirageEnvError):
    """The host answered with a key other than the one recorded on first contact."""


class _RecordNewHostKey(paramiko.MissingHostKeyPolicy):
    """Accept a host seen for the first time and append its key to known_hosts. Appending under
    a lock, not rewriting the file, keeps the keys that parallel connections (lab hosts in
    threads) and Ansible's ssh record at the same time."""

    _lock = threading.Lock()

    def __init__(self, known_hosts: Path):
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key):
        with self._lock, self.known_hosts.open("a") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            file.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


def connect(target: SshTarget, timeout: float = 20) -> paramiko.SSHClient:
    """Log in with the target's key. With the target's known_hosts, a host seen before must show
    the same host key and a new one is recorded: OpenSSH's StrictHostKeyChecking=accept-new."""
    client = paramiko.SSHClient()
    known_hosts = target.known_hosts
    if known_hosts is None:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    else:
        known_hosts.touch(exist_ok=True)
        client.get_host_keys().load(str(known_hosts))
        client.set_missing_host_key_policy(_RecordNewHostKey(known_hosts))
    try:
        client.connect(target.host, port=target.port, username=target.user,
                       key_filename=str(target.key), timeout=timeout, banner_timeout=timeout,
                       auth_timeout=timeout, allow_agent=False, look_for_keys=False)
    except paramiko.BadHostKeyException as exc:
        entry = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
        raise HostKeyChanged(
            f"the host key of {target.host}:{target.port} is not the one recorded in {known_hosts} "
            f"(it shows {exc.key.get_name()} {exc.key.fingerprint}). Someone may be in the "
            f"middle, or the host was reinstalled. Fix: if it was reinstalled, forget the old key "
            f"with `ssh-keygen -f {known_hosts} -R '{entry}'` and run again") from None
    return client


def run(client: paramiko.SSHClient, command: str, timeout: float = 300) -> tuple[int, str]:
    _stdin, stdout, _stderr = client.exec_command(command, timeout=timeout, get_pty=False)
    out = stdout.read().decode(errors="replace") + _stderr.read().decode(errors="replace")
    return stdout.channel.recv_exit_status(), out


def wait_for_ssh(target: SshTarget, deadline_s: float, alive: Callable[[], bool],
                 tick: Callable[[float], None] | None = None) -> paramiko.SSHClient:
    """Poll until SSH answers with our key; give up when the VM dies or time runs out."""
    start = time.monotonic()
    last_error = "no answer yet"
    while time.monotonic() - start < deadline_s:
        if not alive():
            raise RuntimeError("the machine stopped while booting (see its console log)")
        try:
            return connect(target, timeout=10)
        except (OSError, socket.timeout, paramiko.SSHException, EOFError) as exc:
            last_error = str(exc) or type(exc).__name__
        if tick:
            tick(time.monotonic() - start)
        time.sleep(3)
    raise TimeoutError(f"SSH did not answer within {deadline_s:.0f}s ({last_error})")
