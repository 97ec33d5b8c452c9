"""The one validated model of an environment, read from an optional `mirage-env.yml`.

Every other part reads these values; nothing re-declares the defaults. Bad input is refused here,
before anything is touched, with a message that names the field, the value and the fix.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator,
                      model_validator)

from . import registry
from .errors import MirageEnvError

SETTINGS_FILE = "mirage-env.yml"
# Patterns are matched with fullmatch and ASCII digits only: `$` would let a trailing newline
# through (into config files), `\d` would take "５１２" (which dnsmasq and the roles cannot read).
IFNAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,15}")  # Linux: at most IFNAMSIZ-1 = 15 characters
LEASE_RE = re.compile(r"(infinite|([0-9]+)([smhdw]?))")
SIZE_RE = re.compile(r"\s*([0-9]+)\s*([KMGT]?)(i?B)?\s*", re.IGNORECASE)
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")
NETNS_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MIRROR_RE = re.compile(r"http://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?")
MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
BOX_RE = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?")
UNIT_MIB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}
LEASE_MAX_SECONDS = 2**31 - 1  # dnsmasq keeps lease times in a signed 32-bit time; beyond: `infinite`
SHOWN_MAX = 60  # a value longer than this is shortened in messages (one line stays one line)


def shown(value: Any) -> str:
    """VALUE as a message shows it: repr (so whitespace and control characters are visible), shortened."""
    text = repr(value)
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX - 1] + "…"


class SettingsError(MirageEnvError):
    """Bad settings: each problem names the field, the value and the fix."""

    exit_code = 2  # bad input: nothing was changed

    def __init__(self, source: str, problems: list[str]):
        self.source, self.problems = source, problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def render(self) -> str:
        lines = [f"{self.source} is not valid; nothing was changed."]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


DNSMASQ_LEASE_MAX = 1000  # dnsmasq's default dhcp-lease-max: it refuses leases beyond this many


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML
    keeps the last one silently, so a typo'd second `memory:` would win unnoticed)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: PyYAML reports it itself below
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first on line {first.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


def read_yaml(path: Path, source: str, what: str = "the file") -> Any:
    """Parse a YAML file, refusing duplicate keys; errors are one line with file:line:column."""
    try:
        text = Path(path).expanduser().read_text()
    except OSError as exc:
        raise SettingsError(source, [f"cannot read {what} ({exc.strerror}). Fix: check the path"]) from None
    except UnicodeDecodeError as exc:
        raise SettingsError(source, [f"{what} is not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x}). "
                                     "Fix: give a YAML text file"]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = " ".join(str(exc.problem or exc.context or "").split())
        began = exc.context_mark
        if exc.context and began and (not mark or began.line != mark.line):
            # an unclosed quote or bracket is found at the end of the file; say where it began
            at += f", {' '.join(exc.context.split())} that began on line {began.line + 1}, column {began.column + 1}"
        raise SettingsError(source, [f"{where}: malformed YAML: {problem}{at}. "
                                     "Fix: correct the YAML at that line"]) from None
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise SettingsError(source, [f"malformed YAML ({problem}). Fix: correct the YAML"]) from None


def parse_mib(value: Any) -> int:
    """'512M', '2G', '2048' (MiB), 512 → MiB as an int."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{shown(value)} is not a size. Fix: write it like 512M or 2G")
    if isinstance(value, int):
        return value
    match = SIZE_RE.fullmatch(value)
    if not match:
        raise ValueError(f"{shown(value)} is not a size. Fix: write it like 512M or 2G")
    number, unit = int(match.group(1)), match.group(2).upper()
    mib = number * UNIT_MIB[unit]
    if mib != int(mib):
        raise ValueError(f"{shown(value)} is not a whole number of MiB. Fix: write it like 512M")
    return int(mib)


def mib_within(value: Any, low: int, high: int, fix: str) -> int:
    mib = parse_mib(value)
    if not low <= mib <= high:
        raise ValueError(f"{shown(value)} is outside {low}M–{high}M. Fix: {fix}")
    return mib


def check_ifname(value: str) -> str:
    if not IFNAME_RE.fullmatch(value) or value in (".", ".."):
        raise ValueError(
            f"{shown(value)} is not a valid interface name. Fix: use 1–15 characters from "
            "letters, digits, '_', '-', '.' (e.g. eth1, br0)")
    if value == "lo":
        raise ValueError("'lo' is the loopback interface, which cannot be bridged nor carry a connection. "
                         "Fix: name a real NIC or bridge (e.g. eth1, br0)")
    return value


def whole_number(value: Any) -> Any:
    """An int setting from YAML (int) or -s (digits): not a bool (True would be 1), not 2.5."""
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{shown(value)} is not a whole number. Fix: write digits, e.g. 2")
    if isinstance(value, str) and not re.fullmatch(r"\s*-?[0-9]+\s*", value):
        raise ValueError(f"{shown(value)} is not a whole number. Fix: write digits, e.g. 2")
    if not isinstance(value, (int, float, str)):
        raise ValueError(f"{shown(value)} is not a whole number. Fix: write digits, e.g. 2")
    return int(value)


def int_within(low: int, high: int, fix: str, unit: str = ""):
    """An int setting that must lie in low..high; the error names the value, the range and the fix."""
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"{value!r}{' ' + unit if unit else ''} is outside {low}–{high}. Fix: {fix}")
        return value

    return Annotated[int, BeforeValidator(whole_number), AfterValidator(check)]


def ipv4_text(value: Any) -> Any:
    """An address setting is written as a dotted quad: YAML's 3232249857 or true is not one."""
    if isinstance(value, ipaddress.IPv4Address):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{shown(value)} is not an IPv4 address. Fix: write it like 192.168.56.5")
    try:
        return ipaddress.IPv4Address(value.strip())
    except ValueError:
        raise ValueError(f"{shown(value)} is not an IPv4 address. Fix: write it like 192.168.56.5") from None


def flag(value: Any) -> Any:
    """true/false (YAML), or the words -s gives: true/false, yes/no, on/off, 1/0."""
    if isinstance(value, bool):
        return value
    words = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise ValueError(f"{shown(value)} is not true or false. Fix: write true or false")


def mib_between(low: int, high: int, fix: str):
    """A size setting ('512M', '2G', 2048) in MiB that must lie in low..high MiB."""
    return Annotated[int, BeforeValidator(lambda value: mib_within(value, low, high, fix))]


IfName = Annotated[str, AfterValidator(check_ifname)]
Address = Annotated[ipaddress.IPv4Address, BeforeValidator(ipv4_text)]
Flag = Annotated[bool, BeforeValidator(flag)]


def flag_or_auto(value: Any) -> Any:
    """A flag that may also be left to the provider: auto (or null) → None."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        return flag(value)
    except ValueError:
        raise ValueError(f"{shown(value)} is not true, false or auto. Fix: write true, false or auto") from None


AutoFlag = Annotated[bool | None, BeforeValidator(flag_or_auto)]


def lease_seconds(value: str) -> int | None:
    match = LEASE_RE.fullmatch(value)
    if not match:
        return None
    if match.group(1) == "infinite":
        return 2**31
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(3)]
    return int(match.group(2)) * scale


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _hosts(net: ipaddress.IPv4Network) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """The first and last host address of NET (between the network and broadcast addresses)."""
    return net.network_address + 1, net.broadcast_address - 1


def free_address(net, avoid, range_start=None, range_end=None) -> ipaddress.IPv4Address | None:
    """A host address of NET that is none of AVOID and outside range_start..range_end: what a
    fix may suggest (never the refused value, never another refused one)."""
    first, last = _hosts(net)
    addr = first
    while addr <= last:
        if range_start is not None and range_start <= addr <= range_end:
            addr = range_end + 1
            continue
        if addr not in avoid:
            return addr
        addr += 1
    return None


def free_range(net, avoid) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address] | None:
    """The longest run of NET's host addresses holding none of AVOID, cut to dnsmasq's lease
    count: a DHCP range a fix may suggest."""
    first, last = _hosts(net)
    best, start = None, first
    for cut in sorted(a for a in set(avoid) if first <= a <= last) + [last + 1]:
        if cut > start and (best is None or int(cut) - int(start) > int(best[1]) - int(best[0]) + 1):
            best = (start, cut - 1)
        start = cut + 1
    if best is None:
        return None
    return best[0], min(best[1], best[0] + DNSMASQ_LEASE_MAX - 1)


def free_name(candidates, taken) -> str:
    return next(name for name in candidates if name not in taken)


class NetworkSettings(Strict):
    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network("192.168.56.0/24")
    host_address: Address = ipaddress.IPv4Address("192.168.56.1")
    dom0_address: Address = ipaddress.IPv4Address("192.168.56.5")
    bridge: IfName = "br0"
    bridged_nic: IfName = "eth1"
    uplink_nic: IfName = "eth0"
    dhcp_start: Address = ipaddress.IPv4Address("192.168.56.150")
    dhcp_end: Address = ipaddress.IPv4Address("192.168.56.200")
    lease_time: str = "1h"
    nat: Flag = False
    # refuse to start dnsmasq when another DHCP server already answers on the bridged segment;
    # set true only when that server is yours and you accept two servers on one segment
    force_dhcp: Flag = False
    # the dom0 answers as HOSTNAME.local on the bridge only (avahi). auto: on for the built-in machine
    # and Vagrant VMs (their host-only network is this project's own), off for lab hosts (a LAN)
    mdns: AutoFlag = None
    # interface changes roll back by themselves when the host is not reachable again in time
    rollback_timeout: int_within(30, 3600, "use 120 (the default)", "seconds") = 120

    @field_validator("subnet", mode="before")
    @classmethod
    def _subnet(cls, value: Any) -> Any:
        if isinstance(value, ipaddress.IPv4Network):
            return value
        if not isinstance(value, str):
            raise ValueError(f"{shown(value)} is not an IPv4 network. Fix: write it like 192.168.56.0/24")
        text = value.strip()
        try:
            net = ipaddress.IPv4Network(text, strict=False)
        except ValueError as exc:
            raise ValueError(f"{shown(value)} is not an IPv4 network ({exc}). "
                             "Fix: write it like 192.168.56.0/24") from None
        if "/" not in text:
            raise ValueError(f"{shown(value)} has no prefix length. Fix: write it with one, e.g. {net.network_address}/24")
        if str(net.network_address) != text.split("/")[0]:
            raise ValueError(f"{shown(value)} has host bits set. Fix: write the network, {net}")
        if net.prefixlen > 29:
            raise ValueError(f"{shown(value)} is too small for a host, a dom0 and a DHCP range. "
                             "Fix: use a /29 or larger, e.g. 192.168.56.0/24")
        kind = ("loopback" if net.is_loopback else "multicast" if net.is_multicast else
                "reserved (240.0.0.0/4)" if net.is_reserved else
                "the 'this network' block 0.0.0.0/8" if net.subnet_of(ipaddress.IPv4Network("0.0.0.0/8")) else "")
        if kind:
            raise ValueError(f"{shown(value)} is {kind}, not a network hosts can be on. "
                             "Fix: use a private network, e.g. 192.168.56.0/24")
        return net

    @field_validator("lease_time", mode="before")
    @classmethod
    def _lease(cls, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"{shown(value)} is not a lease time. Fix: write it like 1h, 30m, 3600 or infinite")
        text = str(value).strip()
        seconds = lease_seconds(text)
        if seconds is None:
            raise ValueError(f"{shown(value)} is not a lease time. Fix: write it like 1h, 30m, 3600 or infinite")
        if seconds < 120:
            raise ValueError(f"{shown(value)} is shorter than dnsmasq's minimum lease of 2 minutes. "
                             "Fix: use 2m or more")
        if text != "infinite" and seconds > LEASE_MAX_SECONDS:
            raise ValueError(f"{shown(value)} is longer than dnsmasq can count ({LEASE_MAX_SECONDS} s). "
                             "Fix: use infinite, or 52w or less")
        return text

    @model_validator(mode="after")
    def _plan(self) -> "NetworkSettings":
        net, problems = self.subnet, []
        reserved = {net.network_address: "the network address", net.broadcast_address: "the broadcast address"}
        for name in ("host_address", "dom0_address", "dhcp_start", "dhcp_end"):
            addr = getattr(self, name)
            if addr not in net:
                problems.append(f"network.{name}: {addr} is outside the subnet {net}. "
                                f"Fix: pick an address inside {net}")
            elif addr in reserved:
                problems.append(f"network.{name}: {addr} is {reserved[addr]} of {net}. "
                                "Fix: pick a host address between them")
        if problems:
            raise ValueError("\n".join(problems))
        fixed = {self.host_address, self.dom0_address}
        if self.dhcp_start > self.dhcp_end:
            swapped = (self.dhcp_end, self.dhcp_start)
            fits = (int(swapped[1]) - int(swapped[0]) < DNSMASQ_LEASE_MAX
                    and not any(swapped[0] <= a <= swapped[1] for a in fixed))
            fix = swapped if fits else free_range(net, fixed)  # the swap only when it would be accepted
            raise ValueError(f"network.dhcp_start/dhcp_end: the range {self.dhcp_start}–{self.dhcp_end} "
                             "is reversed. Fix: " + (f"dhcp_start: {fix[0]}, dhcp_end: {fix[1]}" if fix else
                                                     "give dhcp_start an address below dhcp_end"))
        for name in ("host_address", "dom0_address"):
            addr = getattr(self, name)
            if self.dhcp_start <= addr <= self.dhcp_end:
                other = free_address(net, fixed, self.dhcp_start, self.dhcp_end)
                raise ValueError(f"network.{name}: {addr} is inside the DHCP range "
                                 f"{self.dhcp_start}–{self.dhcp_end} (dhcp_start–dhcp_end), so dnsmasq could hand it to a "
                                 "unikernel. Fix: " + (f"pick an address outside the range, e.g. {other}, "
                                                      if other else "") + "or move the range")
        if self.host_address == self.dom0_address:
            other = free_address(net, fixed, self.dhcp_start, self.dhcp_end)
            raise ValueError(f"network.dom0_address: {self.dom0_address} is also network.host_address. "
                             "Fix: give the dom0 bridge its own address" + (f", e.g. {other}" if other else
                                                                          ": move the DHCP range to make room"))
        nics = (self.bridged_nic, self.uplink_nic)
        if self.bridge == self.bridged_nic:
            raise ValueError(f"network.bridge: {self.bridge!r} is also network.bridged_nic. "
                             f"Fix: name the bridge differently, e.g. {free_name(('br0', 'xenbr0', 'br1'), nics)}")
        if self.bridge == self.uplink_nic:
            raise ValueError(f"network.bridge: {self.bridge!r} is also network.uplink_nic, the NIC that "
                             "carries the management connection. Fix: name the bridge differently, "
                             f"e.g. {free_name(('br0', 'xenbr0', 'br1'), nics)}")
        size = int(self.dhcp_end) - int(self.dhcp_start) + 1
        if size > DNSMASQ_LEASE_MAX:
            # dnsmasq hands out at most dhcp-lease-max (1000) leases: a larger range only looks larger
            raise ValueError(f"network.dhcp_start/dhcp_end: the range {self.dhcp_start}–{self.dhcp_end} "
                             f"holds {size} addresses, more than the {DNSMASQ_LEASE_MAX} leases dnsmasq "
                             f"serves. Fix: end the range at {self.dhcp_start + DNSMASQ_LEASE_MAX - 1} "
                             "or earlier")
        if self.bridged_nic == self.uplink_nic:
            other = free_name(("eth1", "eth2", "enp0s8"), (self.uplink_nic, self.bridge))
            raise ValueError(f"network.bridged_nic: {self.bridged_nic!r} is the uplink NIC that carries "
                             "the management connection; bridging it would cut that connection. "
                             f"Fix: bridge the host-only NIC (e.g. {other}), or set uplink_nic to the "
                             "NIC the management connection uses")
        return self

    @property
    def netmask(self) -> str:
        return str(self.subnet.netmask)

    @property
    def prefixlen(self) -> int:
        return self.subnet.prefixlen


def text_setting(value: Any, what: str, example: str) -> str:
    """A text setting: a string (not YAML's number, bool or list), without control characters."""
    if not isinstance(value, str):
        raise ValueError(f"{shown(value)} is not {what}. Fix: write text, e.g. {example}")
    if not value.isprintable() or not value.strip():
        raise ValueError(f"{shown(value)} is not {what}. Fix: e.g. {example}")
    return value


class MachineSettings(Strict):
    """The built-in QEMU machine (ignored by the other providers)."""

    memory: mib_between(1024, 16384, "give the machine between 1G and 16G "
                                     "(2G is enough for a dom0 and a few domUs)") = 2048  # MiB
    cpus: int_within(1, 16, "use 2", "CPUs") = 2
    accel: Literal["auto", "kvm", "tcg"] = "auto"
    # Debian 11, 12 and 13 (Xen 4.14, 4.17, 4.20); bookworm is the default the CI runs
    suite: Literal["bullseye", "bookworm", "trixie"] = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    security_mirror: str = "http://deb.debian.org/debian-security"
    # NIC 3 on a shared LAN: the name of an existing network namespace holding a bridge `lan0`
    # (several built-in machines on one "lab LAN", as the lab test builds); None: no NIC 3
    lan: str | None = None

    @field_validator("lan", mode="before")
    @classmethod
    def _lan(cls, value: Any) -> str | None:
        if value is not None and not (isinstance(value, str) and NETNS_RE.fullmatch(value)):
            raise ValueError(f"{shown(value)} is not a network namespace name. Fix: e.g. mev-lab")
        return value

    @field_validator("mirror", "security_mirror", mode="before")
    @classmethod
    def _mirror(cls, value: Any) -> str:
        match = MIRROR_RE.fullmatch(value) if isinstance(value, str) else None
        if not match or match.group(1) and not 1 <= int(match.group(1)[1:]) <= 65535:
            raise ValueError(f"{shown(value)} is not a plain http:// mirror URL. "
                             "Fix: use an http:// URL like http://deb.debian.org/debian")
        return value.rstrip("/")


class Dom0Settings(Strict):
    memory: int = 512  # MiB: dom0_mem=X,max:X
    autoballoon: Flag = False

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> int:
        mib = parse_mib(value)
        if mib < 256:
            raise ValueError(f"{shown(value)} is too little for a dom0. Fix: use 256M or more (512M is the default)")
        if mib > 1024 * 1024:
            raise ValueError(f"{shown(value)} is larger than any host. Fix: use something like 512M–4G")
        return mib


class ProbeSettings(Strict):
    """The Linux PV domU that proves the bridge + DHCP path (the baseline for the unikernel)."""

    enabled: Flag = True
    memory: int = 128  # MiB; 84 is the measured minimum for Debian's kernel
    lease_timeout: int_within(10, 3600, "use 180 (the default)", "seconds") = 180  # to wait for its DHCP lease

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> int:
        mib = parse_mib(value)
        if mib < 84:
            raise ValueError(f"{shown(value)} is below the 84M a Debian kernel needs as a PV domU. Fix: use 128M")
        if mib > 65536:
            raise ValueError(f"{shown(value)} is more than a probe domU needs. Fix: use 128M")
        return mib


class UnikernelSettings(Strict):
    """The bundled unikernel that `verify` boots on the dom0 as the proof of the setup."""

    enabled: Flag = True
    app: Literal[registry.runnable_app_names()] = "auth"  # type: ignore[valid-type]
    # MiB: 4 is the measured minimum of a PV guest on Xen 4.17
    memory: mib_between(4, 1024, "use 8M (the bundled apps boot in 4M)") = 4
    mac: str = "00:16:3e:6d:65:10"

    @field_validator("mac", mode="before")
    @classmethod
    def _mac(cls, value: Any) -> str:
        if not isinstance(value, str):  # YAML 1.1 reads 00:16:30:10:20:30 as a base-60 number
            raise ValueError(f"{shown(value)} is not a MAC address (YAML read it as a number). "
                             "Fix: quote it, e.g. mac: '00:16:3e:6d:65:10'")
        if not MAC_RE.fullmatch(value) or int(value[:2], 16) & 1 or not int(value.replace(":", ""), 16):
            raise ValueError(f"{shown(value)} is not a unicast MAC address. Fix: use one like 00:16:3e:6d:65:10")
        return value.lower()

    @property
    def domain_name(self) -> str:
        return f"mirage-{self.app}"


class VagrantSettings(Strict):
    """The `virtualbox` and `libvirt` providers: a Vagrant box brought up by the top-level Vagrantfile."""

    box: str = "debian/bookworm64"
    box_url: str | None = None  # a local .box file or URL; None: the box from Vagrant Cloud
    memory: mib_between(1024, 65536, "give the VM between 1G and 64G (2G is enough)") = 2048  # MiB
    cpus: int_within(1, 64, "use 2", "CPUs") = 2

    @field_validator("box", mode="before")
    @classmethod
    def _box(cls, value: Any) -> str:
        if not isinstance(value, str) or not BOX_RE.fullmatch(value):
            raise ValueError(f"{shown(value)} is not a Vagrant box name. Fix: ORG/NAME or a local box's "
                             "name, e.g. debian/bookworm64")
        return value

    @field_validator("box_url", mode="before")
    @classmethod
    def _box_url(cls, value: Any) -> str | None:
        if value is None:
            return None
        text = text_setting(value, "a .box file or URL", "https://example.org/x.box or /srv/boxes/x.box")
        if "://" not in text and not Path(text).expanduser().is_file():
            raise ValueError(f"{shown(value)} is not a .box file here (no such file) nor a URL. "
                             "Fix: give the path of an existing .box file, or an https:// URL")
        return text


class LabSettings(Strict):
    """The `ssh` provider: existing hosts (bare metal or VMs) listed in an inventory file."""

    inventory: Path | None = None  # see inventory/lab.example.yml
    parallel: int_within(1, 256, "use 8") = 8  # hosts provisioned at once (Ansible forks)

    @field_validator("inventory", mode="before")
    @classmethod
    def _inventory(cls, value: Any) -> Any:
        if value is None or isinstance(value, Path):
            return value
        return Path(text_setting(value, "a file name", "lab.yml"))


class Settings(Strict):
    provider: Literal[registry.PROVIDERS] = "auto"  # type: ignore[valid-type]
    name: str = "default"
    network: NetworkSettings = NetworkSettings()
    dom0: Dom0Settings = Dom0Settings()
    machine: MachineSettings = MachineSettings()
    probe: ProbeSettings = ProbeSettings()
    unikernel: UnikernelSettings = UnikernelSettings()
    vagrant: VagrantSettings = VagrantSettings()
    lab: LabSettings = LabSettings()

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        if not isinstance(value, str) or not NAME_RE.fullmatch(value):
            raise ValueError(f"{shown(value)} is not a valid environment name. Fix: use up to 31 lowercase "
                             "letters, digits and '-', e.g. default")
        return value

    @model_validator(mode="after")
    def _memory_fits(self) -> "Settings":
        vm = {"auto": ("machine", self.machine.memory), "qemu": ("machine", self.machine.memory),
              "virtualbox": ("vagrant", self.vagrant.memory), "libvirt": ("vagrant", self.vagrant.memory)}
        if self.provider in vm:
            section, total = vm[self.provider]
            what = "the built-in machine's" if section == "machine" else "the Vagrant VM's"
            if self.dom0.memory > total - 512:
                raise ValueError(
                    f"dom0.memory: {self.dom0.memory}M leaves less than 512M of {what} "
                    f"{total}M for Xen and the domUs. Fix: dom0.memory at most "
                    f"{total - 512}M, or raise {section}.memory")
            room = total - self.dom0.memory  # ≥ 512: every domU must fit in it, whatever else runs
            for domu in ("probe", "unikernel"):
                part = getattr(self, domu)
                if part.enabled and part.memory > room:
                    raise ValueError(
                        f"{domu}.memory: {part.memory}M does not fit in the {room}M that {what} "
                        f"{total}M leaves beside dom0.memory {self.dom0.memory}M. Fix: {domu}.memory "
                        f"{room}M or less, or raise {section}.memory")
        if self.provider == "ssh" and self.lab.inventory is None:
            raise ValueError("lab.inventory: the ssh provider needs an inventory of hosts. "
                             "Fix: set lab.inventory (see inventory/lab.example.yml), or "
                             "`mirage-env --inventory FILE COMMAND`")
        return self

    @property
    def owns_bridged_segment(self) -> bool:
        """The bridged segment holds nothing but this project's domUs: a VM's host-only network
        (built-in machine, Vagrant), not a lab host's LAN."""
        return self.provider != "ssh"

    @property
    def mdns_enabled(self) -> bool:
        """network.mdns, with auto on only where the bridged segment is the project's own."""
        return self.network.mdns if self.network.mdns is not None else self.owns_bridged_segment

    def role_vars(self) -> dict[str, Any]:
        """The roles' variables, role-prefixed, exactly as the roles' defaults name them."""
        net = self.network
        return {
            "xen_dom0_mem_mb": self.dom0.memory,
            "xen_dom0_autoballoon": self.dom0.autoballoon,
            "xen_bridge_name": net.bridge,
            "xen_bridge_nic": net.bridged_nic,
            "xen_bridge_address": str(net.dom0_address),
            "xen_bridge_prefix": net.prefixlen,
            "xen_bridge_nat": net.nat,
            "xen_bridge_uplink": net.uplink_nic,
            "xen_bridge_subnet": str(net.subnet),
            "xen_bridge_rollback_timeout": net.rollback_timeout,
            "dnsmasq_interface": net.bridge,
            "dnsmasq_dhcp_start": str(net.dhcp_start),
            "dnsmasq_dhcp_end": str(net.dhcp_end),
            "dnsmasq_netmask": net.netmask,
            "dnsmasq_lease_time": net.lease_time,
            # a router only with NAT: otherwise domUs get no route past the dom0
            "dnsmasq_router": str(net.dom0_address) if net.nat else "",
            "dnsmasq_force_dhcp": net.force_dhcp,
            # the ping before a first offer (3 s per new lease) guards statically addressed hosts
            # on a segment that is not only the domUs'
            "dnsmasq_ping_check": not self.owns_bridged_segment,
            "avahi_enabled": self.mdns_enabled,
            "avahi_interfaces": [net.bridge],
            "domu_probe_memory_mb": self.probe.memory,
            "domu_probe_bridge": net.bridge,
            "domu_probe_lease_timeout": self.probe.lease_timeout,
            "unikernel_app": self.unikernel.app,
            "unikernel_name": self.unikernel.domain_name,
            "unikernel_memory_mb": self.unikernel.memory,
            "unikernel_bridge": net.bridge,
            "unikernel_mac": self.unikernel.mac,
        }


def _suggest(key: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return list(model.model_fields)


def explain(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = err["loc"]
        where = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            known = _known_keys(Settings, loc)
            problems.append(f"{where}: unknown key{_suggest(key, known)}. "
                            f"Fix: remove it or use one of: {', '.join(known)}")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input", "")
        if err["type"] == "value_error":
            # our own messages already name the value and the fix
            for line in msg.split("\n"):
                named = line.split(":", 1)[0].split(".", 1)[0] in Settings.model_fields and ": " in line
                problems.append(line if named or not where else f"{where}: {line}")
        else:
            problems.append(f"{where}: {shown(value)} {_generic_problem(err, where)}")
    return problems


def _generic_problem(err: dict, where: str) -> str:
    """Pydantic's own checks (choices, sections, text), worded as ours: what is wrong and the fix."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "literal_error":
        return f"is not one of the choices. Fix: use one of {ctx.get('expected', '')}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"is not a section of keys. Fix: write it as keys under `{where}:`, e.g. `{where}: {{}}` for the defaults"
    if kind == "string_type":
        return "is not text. Fix: write text (in quotes if it looks like a number or true/false)"
    return f"is not valid ({err['msg']}). Fix: see the settings table in README.md"


def load_settings(path: Path | None = None, overrides: dict | None = None) -> Settings:
    """Read `path` (or ./mirage-env.yml when it exists), validate, return the model."""
    source = "the settings (no file: defaults and --set)"
    data: dict = {}
    if path is None and Path(SETTINGS_FILE).exists():
        path = Path(SETTINGS_FILE)
    if path is not None:
        source = str(path)
        loaded = read_yaml(path, source)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise SettingsError(source, [f"the top level is a {type(loaded).__name__}, not a mapping. "
                                         "Fix: write `key: value` lines, e.g. `dom0: {memory: 512M}`"])
        data = loaded
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for depth, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # e.g. `name: foo` in the file and -s name.x=1
                prefix = ".".join(parents[:depth + 1])
                raise SettingsError(source, [f"--set {dotted}={value}: {prefix} is a single value "
                                             f"({node!r}), not a section with keys. "
                                             f"Fix: --set {prefix}=VALUE"])
        node[leaf] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(source, explain(exc)) from None
