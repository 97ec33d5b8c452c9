"""The small interface every provider gives: hosts reachable over SSH, and a host side to probe from."""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..errors import MirageEnvError

if TYPE_CHECKING:  # paramiko stays unloaded for what needs no SSH (e.g. the apt proxy)
    from ..sshclient import SshTarget


@dataclass
class Host:
    """One dom0 as the stages see it: how to reach it, its own settings, its host side."""

    name: str
    target: "SshTarget"
    settings: Any  # mirage_env.settings.Settings
    vars: dict  # provider-specific role variables (e.g. where Xen's console goes)
    host_exec: Callable[..., subprocess.CompletedProcess]  # runs on the host side, for probes


class ProviderError(MirageEnvError):
    """A problem the user can fix; the message says how."""


class Provider(ABC):
    name: str
    # whether the host-only network has a host side apart from the dom0 (the controller's end:
    # a namespace, vboxnetN, libvirt's bridge); a lab host has none, its probes run on the dom0
    host_side: bool = True

    @abstractmethod
    def up(self, report) -> None: ...

    @abstractmethod
    def down(self, report) -> None: ...

    @abstractmethod
    def destroy(self, report) -> None:
        """Stop the machine and delete what `up` created for it (disk, keys)."""

    @abstractmethod
    def status(self) -> dict: ...

    @abstractmethod
    def ssh_target(self) -> "SshTarget": ...

    @abstractmethod
    def host_exec(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command on the host side of the host-only network (for probes)."""

    def host_vars(self) -> dict:
        """Role variables this provider's hosts need (e.g. where Xen's console goes)."""
        return {}

    def hosts(self) -> list[Host]:
        """The dom0s this provider gives: one for a machine, several for a lab."""
        return [Host("dom0", self.ssh_target(), self.settings, self.host_vars(), self.host_exec)]
