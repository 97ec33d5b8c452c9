"""Where a run's state lives: one directory per environment, never tracked files."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import MirageEnvError

STATE_DIR_ENV = "MIRAGE_ENV_STATE_DIR"


class Busy(MirageEnvError):
    """Another mirage-env command holds this environment."""


@dataclass(frozen=True)
class StateDir:
    root: Path  # .mirage-env/<environment name>

    @classmethod
    def for_env(cls, name: str, base: Path | None = None) -> "StateDir":
        base = base or Path(os.environ.get(STATE_DIR_ENV) or Path.cwd() / ".mirage-env")
        state = cls(base.resolve() / name)
        state.root.mkdir(parents=True, exist_ok=True)
        state.logs.mkdir(exist_ok=True)
        return state

    @property
    def short_id(self) -> str:
        """Six hex digits naming this environment's host-side devices (taps are ≤ 15 chars)."""
        return hashlib.sha256(str(self.root).encode()).hexdigest()[:6]

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def path(self, name: str) -> Path:
        return self.root / name

    def write_ssh_config(self, target) -> tuple[Path, str]:
        """An OpenSSH config for `target` (an sshclient.SshTarget) naming it `mirage-NAME` and
        pinning its key in this state's known_hosts, for `ssh -F` and testinfra: (path, alias)."""
        alias = f"mirage-{self.root.name}"
        config = self.path("ssh_config")
        config.write_text(target.ssh_config(alias, self.path("known_hosts")))
        return config, alias

    def for_host(self, host: str) -> "StateDir":
        """A lab host's own corner (its check logs, its ssh config) inside the environment's."""
        sub = StateDir(self.root / "hosts" / host)
        sub.logs.mkdir(parents=True, exist_ok=True)
        return sub

    def read_json(self, name: str) -> dict:
        try:
            return json.loads(self.path(name).read_text())
        except (OSError, ValueError):
            return {}

    def write_json(self, name: str, data: dict) -> None:
        tmp = self.path(name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(self.path(name))

    @contextlib.contextmanager
    def exclusive(self, command: str):
        """Hold the environment for one changing command: two at once would share one inventory,
        one ansible-runner directory and one report. The kernel drops the lock when the holder
        exits, however it exits (the descriptor is not inherited by ansible-playbook)."""
        handle = open(self.path(".lock"), "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another command"
                raise Busy(f"environment {self.root.name} is busy: `mirage-env {holder}` is running on it. "
                           f"Fix: wait for it to finish, or stop that process, then try again") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{command} (pid {os.getpid()})")
            handle.flush()
            yield
        finally:
            handle.close()
