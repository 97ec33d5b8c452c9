"""The host-only network of the built-in machine: a tap whose host end lives in a namespace.

The namespace plays VirtualBox's `vboxnet0`: it holds the host-only address (192.168.56.1), and
every probe of the host side (ping, curl) runs inside it, so no address outside the namespace and
the VM is ever used. Devices are created and removed by name.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@dataclass(frozen=True)
class HostOnlyNetwork:
    namespace: str  # e.g. mev-1a2b3c
    tap: str  # e.g. mevtap1a2b3c (≤ 15 characters)
    host_cidr: str  # e.g. 192.168.56.1/24

    def namespace_exists(self) -> bool:
        return self.namespace in ip("netns", "list").stdout.split()

    def create_tap(self) -> None:
        """Step 1, before QEMU starts: a tap in the root namespace for QEMU to open."""
        self.remove()
        ip("tuntap", "add", "dev", self.tap, "mode", "tap")
        ip("link", "set", self.tap, "up")

    def move_into_namespace(self) -> None:
        """Step 2, once QEMU holds the tap: move its host end into the namespace and address it."""
        ip("netns", "add", self.namespace)
        ip("-n", self.namespace, "link", "set", "lo", "up")
        ip("link", "set", self.tap, "netns", self.namespace)
        ip("-n", self.namespace, "addr", "add", self.host_cidr, "dev", self.tap)
        ip("-n", self.namespace, "link", "set", self.tap, "up")

    def exec_args(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *cmd]

    def run(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.exec_args(*cmd), capture_output=True, text=True, timeout=timeout)

    @property
    def resolv_conf(self) -> Path:
        """`ip netns exec` bind-mounts this over /etc/resolv.conf for commands in the namespace."""
        return Path("/etc/netns") / self.namespace / "resolv.conf"

    def use_dns(self, server: str, domain: str) -> None:
        """Resolve names inside the namespace with the dom0's dnsmasq (the domUs' names only)."""
        text = f"# mirage-env: the dom0's dnsmasq on its bridge\nnameserver {server}\nsearch {domain}\n"
        if not self.resolv_conf.is_file() or self.resolv_conf.read_text() != text:
            self.resolv_conf.parent.mkdir(parents=True, exist_ok=True)
            self.resolv_conf.write_text(text)

    def remove(self) -> None:
        """Remove our tap (wherever it is) and our namespace, by name; absent ones are fine."""
        if self.resolv_conf.is_file():
            self.resolv_conf.unlink()
            try:
                self.resolv_conf.parent.rmdir()
            except OSError:  # someone else's file in there: leave the directory
                pass
        if self.namespace_exists():
            ip("-n", self.namespace, "link", "del", self.tap, check=False)
            ip("netns", "del", self.namespace, check=False)
        ip("link", "del", self.tap, check=False)


@dataclass(frozen=True)
class LanPort:
    """NIC 3 of a built-in machine: a tap plugged into the bridge `lan0` of a shared namespace."""

    namespace: str  # made by whoever builds the LAN (e.g. the lab test), not by the machine
    tap: str
    bridge: str = "lan0"

    def create_tap(self) -> None:
        self.remove()
        ip("tuntap", "add", "dev", self.tap, "mode", "tap")
        ip("link", "set", self.tap, "up")

    def plug(self) -> None:
        """Once QEMU holds the tap: move it into the LAN's namespace and onto its bridge."""
        ip("link", "set", self.tap, "netns", self.namespace)
        ip("-n", self.namespace, "link", "set", self.tap, "master", self.bridge)
        ip("-n", self.namespace, "link", "set", self.tap, "up")

    def remove(self) -> None:
        if self.namespace in ip("netns", "list").stdout.split():
            ip("-n", self.namespace, "link", "del", self.tap, check=False)
        ip("link", "del", self.tap, check=False)
