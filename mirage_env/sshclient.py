"""The project's own SSH work (waiting for boot, key swap, probes) through paramiko."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import logging

import paramiko

# paramiko prints a traceback for every refused attempt while the machine boots: keep it quiet
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int
    user: str
    key: Path

    def ssh_config(self, alias: str, known_hosts: Path) -> str:
        return (f"Host {alias}\n  HostName {self.host}\n  Port {self.port}\n  User {self.user}\n"
                f"  IdentityFile {self.key}\n  IdentitiesOnly yes\n  StrictHostKeyChecking accept-new\n"
                f"  UserKnownHostsFile {known_hosts}\n  LogLevel ERROR\n")


def connect(target: SshTarget, timeout: float = 20) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    # The machine is ours and brand new: its host key was made on its first boot.
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(target.host, port=target.port, username=target.user,
                   key_filename=str(target.key), timeout=timeout, banner_timeout=timeout,
                   auth_timeout=timeout, allow_agent=False, look_for_keys=False)
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
