"""The small interface every provider gives: hosts reachable over SSH, and a host side to probe from."""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod

from ..sshclient import SshTarget


class ProviderError(Exception):
    """A problem the user can fix; the message says how."""


class Provider(ABC):
    name: str

    @abstractmethod
    def up(self, report) -> None: ...

    @abstractmethod
    def down(self, report) -> None: ...

    @abstractmethod
    def status(self) -> dict: ...

    @abstractmethod
    def ssh_target(self) -> SshTarget: ...

    @abstractmethod
    def host_exec(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command on the host side of the host-only network (for probes)."""

    def host_vars(self) -> dict:
        """Role variables this provider's hosts need (e.g. where Xen's console goes)."""
        return {}
