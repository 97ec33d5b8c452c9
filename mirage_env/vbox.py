"""Reading VBoxManage's output (VirtualBox 6.1 and 7.x), for `mirage-env doctor`.

The formats are VBoxManage's own (VBoxManageList.cpp, VBoxManageInfo.cpp):
- `list hostonlyifs` / `list dhcpservers` / `list hostonlynets`: blocks of `Key:   value` lines;
  `dhcpservers` nests indented lines under "Global Configuration:" that are not fields, and
  `hostonlynets` (7.x, macOS) puts a blank line *inside* each block (after GUID), so blocks are
  split at their first key, never at blank lines.
- `showvminfo --machinereadable`: `key="value"` lines (keys may be quoted too, values escape `"`
  and `\\`); 7.x adds a line that is not key=value (`Encryption:     disabled`).
  It does not print the NICs' promiscuous-mode policy: only the human-readable `showvminfo`
  line `NIC 2: MAC: …, Promisc Policy: allow-all, …` has it.
- `--version`: `7.0.20r163906`, distribution builds `6.1.38_Ubuntur153438`, possibly after a
  multi-line warning about the kernel module.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from typing import Callable

from .errors import MirageEnvError

VBOXMANAGE = "VBoxManage"
VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:_[A-Za-z]+)?(?:r(\d+))?\s*$")
KEY_LINE_RE = re.compile(r"^([A-Za-z][A-Za-z0-9 ./]*?):\s*(.*)$")
NIC_LINE_RE = re.compile(r"^NIC (\d+):\s+(.*)$")

Runner = Callable[..., str]  # runner("list", "hostonlyifs") -> stdout


class VBoxError(MirageEnvError):
    """VBoxManage is missing, failed, or printed something we cannot read."""


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    text: str

    def at_least(self, major: int, minor: int = 0) -> bool:
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class HostOnlyIf:
    name: str
    dhcp: bool  # the *host* interface configured by DHCP (not VirtualBox's DHCP server)
    ip: str
    netmask: str
    status: str
    network_name: str  # e.g. HostInterfaceNetworking-vboxnet0: the DHCP server's key


@dataclass(frozen=True)
class DhcpServer:
    network_name: str
    ip: str
    lower: str
    upper: str
    netmask: str
    enabled: bool


@dataclass(frozen=True)
class HostOnlyNet:
    """7.x host-only *networks* (macOS vmnet): no host interface to address, a DHCP range instead."""

    name: str
    enabled: bool
    netmask: str
    lower: str
    upper: str
    network_name: str  # hostonly-NAME


def parse_version(text: str) -> Version:
    """The last line that looks like a version: warnings about vboxdrv may come first."""
    for line in reversed(text.strip().splitlines()):
        match = VERSION_RE.match(line.strip())
        if match:
            major, minor, patch = (int(g) for g in match.groups()[:3])
            return Version(major, minor, patch, line.strip())
    raise VBoxError(f"cannot read a VirtualBox version from {text.strip()[-200:]!r}")


def _blocks(text: str, first_key: str) -> list[dict[str, str]]:
    """Top-level `Key: value` fields grouped into one dict per block, a block starting at
    `first_key`; indented lines (nested configuration) are not fields and are skipped."""
    blocks: list[dict[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line[0].isspace():
            continue
        match = KEY_LINE_RE.match(line.rstrip())
        if not match:
            continue
        key, value = match.group(1), match.group(2).strip()
        if key == first_key:
            blocks.append({})
        if blocks:
            blocks[-1].setdefault(key, value)
    return blocks


def parse_hostonlyifs(text: str) -> list[HostOnlyIf]:
    return [HostOnlyIf(name=b["Name"], dhcp=b.get("DHCP", "").lower() == "enabled",
                       ip=b.get("IPAddress", ""), netmask=b.get("NetworkMask", ""),
                       status=b.get("Status", ""), network_name=b.get("VBoxNetworkName", ""))
            for b in _blocks(text, "Name")]


def parse_dhcpservers(text: str) -> list[DhcpServer]:
    return [DhcpServer(network_name=b["NetworkName"], ip=b.get("Dhcpd IP", b.get("IP", "")),
                       lower=b.get("LowerIPAddress", ""), upper=b.get("UpperIPAddress", ""),
                       netmask=b.get("NetworkMask", ""), enabled=b.get("Enabled", "").lower() == "yes")
            for b in _blocks(text, "NetworkName")]


def parse_hostonlynets(text: str) -> list[HostOnlyNet]:
    return [HostOnlyNet(name=b["Name"], enabled=b.get("State", "").lower() == "enabled",
                        netmask=b.get("NetworkMask", ""), lower=b.get("LowerIP", ""),
                        upper=b.get("UpperIP", ""), network_name=b.get("VBoxNetworkName", ""))
            for b in _blocks(text, "Name")]


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def parse_machinereadable(text: str) -> dict[str, str]:
    """`showvminfo --machinereadable` → {key: value}; lines that are not key=value are skipped."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r'^("(?:[^"\\]|\\.)*"|[^=\s"]+)=(.*)$', line.rstrip())
        if match:
            info[_unquote(match.group(1))] = _unquote(match.group(2))
    return info


def parse_nic_promisc(text: str) -> dict[int, str]:
    """Human-readable `showvminfo` → {NIC number: promiscuous policy} for the enabled NICs."""
    policies: dict[int, str] = {}
    for line in text.splitlines():
        match = NIC_LINE_RE.match(line.strip())
        if match:
            policy = re.search(r"Promisc Policy: ([a-z-]+)", match.group(2))
            if policy:
                policies[int(match.group(1))] = policy.group(1)
    return policies


@dataclass(frozen=True)
class VmNic:
    index: int
    attachment: str  # nat, hostonly, hostonlynet, bridged, intnet, none, …
    adapter: str  # the host-only interface / network it is attached to
    mac: str
    promisc: str | None


def vm_nic(machinereadable: str, human: str, index: int) -> VmNic:
    info = parse_machinereadable(machinereadable)
    attachment = info.get(f"nic{index}", "none")
    adapter = info.get(f"hostonlyadapter{index}") or info.get(f"hostonly-network{index}", "")
    return VmNic(index, attachment, adapter, info.get(f"macaddress{index}", ""),
                 parse_nic_promisc(human).get(index))


def dhcp_disable_args(version: Version, network_name: str) -> list[str]:
    """VirtualBox 6.1 rewrote `dhcpserver` (--network=NAME); older ones take --netname NAME."""
    if version.at_least(6, 1):
        return ["dhcpserver", "modify", f"--network={network_name}", "--disable"]
    return ["dhcpserver", "modify", "--netname", network_name, "--disable"]


def dhcp_disable_command(version: Version, network_name: str) -> str:
    return shlex.join([VBOXMANAGE, *dhcp_disable_args(version, network_name)])


def run_vboxmanage(*args: str, timeout: float = 30) -> str:
    """The real VBoxManage; VBoxError (with its message) when it is missing or fails."""
    exe = shutil.which(VBOXMANAGE) or shutil.which(VBOXMANAGE.lower())
    if not exe:
        raise VBoxError("VBoxManage is not installed")
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise VBoxError(f"`VBoxManage {' '.join(args)}` did not answer in {timeout:.0f}s") from None
    if proc.returncode != 0:
        raise VBoxError(f"`VBoxManage {' '.join(args)}` failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return proc.stdout
