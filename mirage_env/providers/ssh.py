"""The `ssh` provider: existing hosts (a lab's bare metal, or VMs) listed in an inventory file.

Nothing is started or powered off here: `up` proves every selected host answers SSH with its key
and has passwordless sudo, in parallel, before any playbook runs; the roles do the rest. Probes of
a host's "host side" run on that dom0 itself (it sits on its own bridge), since the controller is
usually not on a lab host's private segment.
"""

from __future__ import annotations

import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ..lab import LabHost, load_lab, select
from ..settings import Settings
from ..sshclient import HostKeyChanged, connect, run
from ..state import StateDir
from .base import Host, Provider, ProviderError


class SshProvider(Provider):
    name = "ssh"
    host_side = False  # `status` reads no separate host side (see the module's docstring)

    def __init__(self, settings: Settings, state: StateDir, limit: str | None = None):
        self.settings, self.state, self.limit = settings, state, limit
        self.inventory = settings.lab.inventory
        # read and validated now, so a bad inventory is refused before any command starts
        lab = select(load_lab(self.inventory, settings), limit, str(self.inventory))
        # lab hosts sit on real networks: their host keys are pinned on first contact
        pinned = state.path("known_hosts")
        self._lab: list[LabHost] = [replace(h, target=replace(h.target, known_hosts=pinned)) for h in lab]

    # -- the hosts ---------------------------------------------------------------------------
    def lab(self) -> list[LabHost]:
        return self._lab

    def hosts(self) -> list[Host]:
        return [Host(h.name, h.target, h.settings, {}, self._remote_exec(h)) for h in self.lab()]

    def _only(self) -> LabHost:
        lab = self.lab()
        if len(lab) != 1:
            raise ProviderError(f"this command works on one host and {len(lab)} are selected "
                                f"({', '.join(h.name for h in lab)}). Fix: pick one with the global option, "
                                "`mirage-env --limit NAME COMMAND`")
        return lab[0]

    def ssh_target(self):
        return self._only().target

    def host_exec(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self._remote_exec(self._only())(*cmd, timeout=timeout)

    @staticmethod
    def _remote_exec(host: LabHost):
        def remote(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
            client = connect(host.target, timeout=20)
            try:
                code, out = run(client, shlex.join(cmd), timeout=timeout)
            finally:
                client.close()
            return subprocess.CompletedProcess(list(cmd), code, out, "")

        return remote

    # -- lifecycle ---------------------------------------------------------------------------
    def _reach(self, host: LabHost) -> tuple[str, str | None]:
        try:
            client = connect(host.target, timeout=20)
        except HostKeyChanged as exc:
            return host.name, f"{host.name}: {exc}"
        except Exception as exc:  # paramiko raises many kinds; all mean "not reachable as configured"
            return host.name, (f"cannot log in to {host.target.user}@{host.target.host}:{host.target.port} "
                               f"with {host.target.key} ({exc}). Fix: check address/user/key in "
                               f"{self.inventory}")
        try:
            code, out = run(client, "sudo -n true", timeout=30)
        finally:
            client.close()
        if code != 0:
            return host.name, (f"{host.target.user} has no passwordless sudo on {host.name} ({out.strip()}). "
                               f"Fix: add `{host.target.user} ALL=(ALL) NOPASSWD:ALL` in /etc/sudoers.d/")
        return host.name, None

    def up(self, report) -> None:
        lab = self.lab()
        report.step(f"checking SSH and sudo on {len(lab)} host(s): {', '.join(h.name for h in lab)}")
        with ThreadPoolExecutor(max_workers=self.settings.lab.parallel) as pool:
            results = list(pool.map(self._reach, lab))
        problems = [why for _, why in results if why]
        for name, why in results:
            report.check(f"{name}: SSH and passwordless sudo", why is None, why or "")
        if problems:
            raise ProviderError("; ".join(problems))

    def down(self, report) -> None:
        report.step("the ssh provider leaves lab hosts running (nothing to power off)")

    def destroy(self, report) -> None:
        self.down(report)

    def status(self) -> dict:
        return {
            "provider": self.name,
            "inventory": str(self.inventory),
            "running": None,
            "host_only_namespace": None,
            "hosts": [{"name": h.name, "ssh": f"{h.target.user}@{h.target.host}:{h.target.port}",
                       "bridged_nic": h.settings.network.bridged_nic,
                       "subnet": str(h.settings.network.subnet),
                       "dom0_memory_mb": h.settings.dom0.memory} for h in self.lab()],
        }
