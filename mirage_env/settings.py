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
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # Linux: at most IFNAMSIZ-1 = 15 characters
LEASE_RE = re.compile(r"^(infinite|(\d+)([smhdw]?))$")
SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
UNIT_MIB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


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


def parse_mib(value: Any) -> int:
    """'512M', '2G', '2048' (MiB), 512 → MiB as an int."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size. Fix: write it like 512M or 2G")
    if isinstance(value, int):
        return value
    match = SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size. Fix: write it like 512M or 2G")
    number, unit = int(match.group(1)), match.group(2).upper()
    mib = number * UNIT_MIB[unit]
    if mib != int(mib):
        raise ValueError(f"{value!r} is not a whole number of MiB. Fix: write it like 512M")
    return int(mib)


def mib_within(value: Any, low: int, high: int, fix: str) -> int:
    mib = parse_mib(value)
    if not low <= mib <= high:
        raise ValueError(f"{value!r} is outside {low}M–{high}M. Fix: {fix}")
    return mib


def check_ifname(value: str) -> str:
    if not IFNAME_RE.match(value) or value in (".", ".."):
        raise ValueError(
            f"{value!r} is not a valid interface name. Fix: use 1–15 characters from "
            "letters, digits, '_', '-', '.' (e.g. eth1, br0)")
    return value


def int_within(low: int, high: int, fix: str, unit: str = ""):
    """An int setting that must lie in low..high; the error names the value, the range and the fix."""
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"{value!r}{' ' + unit if unit else ''} is outside {low}–{high}. Fix: {fix}")
        return value

    return Annotated[int, AfterValidator(check)]


def mib_between(low: int, high: int, fix: str):
    """A size setting ('512M', '2G', 2048) in MiB that must lie in low..high MiB."""
    return Annotated[int, BeforeValidator(lambda value: mib_within(value, low, high, fix))]


IfName = Annotated[str, AfterValidator(check_ifname)]


def lease_seconds(value: str) -> int | None:
    match = LEASE_RE.match(value)
    if not match:
        return None
    if match.group(1) == "infinite":
        return 2**31
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(3)]
    return int(match.group(2)) * scale


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class NetworkSettings(Strict):
    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network("192.168.56.0/24")
    host_address: ipaddress.IPv4Address = ipaddress.IPv4Address("192.168.56.1")
    dom0_address: ipaddress.IPv4Address = ipaddress.IPv4Address("192.168.56.5")
    bridge: IfName = "br0"
    bridged_nic: IfName = "eth1"
    uplink_nic: IfName = "eth0"
    dhcp_start: ipaddress.IPv4Address = ipaddress.IPv4Address("192.168.56.150")
    dhcp_end: ipaddress.IPv4Address = ipaddress.IPv4Address("192.168.56.200")
    lease_time: str = "1h"
    nat: bool = False
    # refuse to start dnsmasq when another DHCP server already answers on the bridged segment;
    # set true only when that server is yours and you accept two servers on one segment
    force_dhcp: bool = False
    # interface changes roll back by themselves when the host is not reachable again in time
    rollback_timeout: int_within(30, 3600, "use 120 (the default)", "seconds") = 120

    @field_validator("subnet", mode="before")
    @classmethod
    def _subnet(cls, value: Any) -> Any:
        try:
            net = ipaddress.IPv4Network(str(value), strict=True)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IPv4 network ({exc}). "
                             "Fix: write it like 192.168.56.0/24") from None
        if net.prefixlen > 29:
            raise ValueError(f"{value!r} is too small for a host, a dom0 and a DHCP range. "
                             "Fix: use a /29 or larger, e.g. 192.168.56.0/24")
        return net

    @field_validator("lease_time", mode="before")
    @classmethod
    def _lease(cls, value: Any) -> str:
        text = str(value).strip()
        seconds = lease_seconds(text)
        if seconds is None:
            raise ValueError(f"{value!r} is not a lease time. Fix: write it like 1h, 30m, 3600 or infinite")
        if seconds < 120:
            raise ValueError(f"{value!r} is shorter than dnsmasq's minimum lease of 2 minutes. "
                             "Fix: use 2m or more")
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
        if self.dhcp_start > self.dhcp_end:
            raise ValueError(f"network.dhcp_start/dhcp_end: the range {self.dhcp_start}–{self.dhcp_end} "
                             f"is reversed. Fix: dhcp_start: {self.dhcp_end}, dhcp_end: {self.dhcp_start}")
        for name in ("host_address", "dom0_address"):
            addr = getattr(self, name)
            if self.dhcp_start <= addr <= self.dhcp_end:
                raise ValueError(f"network.{name}: {addr} is inside the DHCP range "
                                 f"{self.dhcp_start}–{self.dhcp_end}, so dnsmasq could hand it to a "
                                 "unikernel. Fix: pick an address outside the range or move the range")
        if self.host_address == self.dom0_address:
            raise ValueError(f"network.dom0_address: {self.dom0_address} is also the host address. "
                             "Fix: give the dom0 bridge its own address, e.g. .5")
        if self.bridge == self.bridged_nic:
            raise ValueError(f"network.bridge: {self.bridge!r} is also the bridged NIC. "
                             "Fix: name the bridge differently, e.g. br0")
        if self.bridged_nic == self.uplink_nic:
            raise ValueError(f"network.bridged_nic: {self.bridged_nic!r} is the uplink NIC that carries "
                             "the management connection; bridging it would cut that connection. "
                             "Fix: bridge the host-only NIC (eth1 on the built-in machine)")
        return self

    @property
    def netmask(self) -> str:
        return str(self.subnet.netmask)

    @property
    def prefixlen(self) -> int:
        return self.subnet.prefixlen


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

    @field_validator("lan")
    @classmethod
    def _lan(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z0-9_.-]{1,64}$", value):
            raise ValueError(f"{value!r} is not a network namespace name. Fix: e.g. mev-lab")
        return value

    @field_validator("mirror", "security_mirror")
    @classmethod
    def _mirror(cls, value: str) -> str:
        if not re.match(r"^http://[A-Za-z0-9.-]+(:\d+)?(/\S*)?$", value):
            raise ValueError(f"{value!r} is not a plain http:// mirror URL. "
                             "Fix: use an http:// URL like http://deb.debian.org/debian")
        return value.rstrip("/")


class Dom0Settings(Strict):
    memory: int = 512  # MiB: dom0_mem=X,max:X
    autoballoon: bool = False

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> int:
        mib = parse_mib(value)
        if mib < 256:
            raise ValueError(f"{value!r} is too little for a dom0. Fix: use 256M or more (512M is the default)")
        if mib > 1024 * 1024:
            raise ValueError(f"{value!r} is larger than any host. Fix: use something like 512M–4G")
        return mib


class ProbeSettings(Strict):
    """The Linux PV domU that proves the bridge + DHCP path (the baseline for the unikernel)."""

    enabled: bool = True
    memory: int = 128  # MiB; 84 is the measured minimum for Debian's kernel
    lease_timeout: int = 180  # seconds to wait for its DHCP lease

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> int:
        mib = parse_mib(value)
        if mib < 84:
            raise ValueError(f"{value!r} is below the 84M a Debian kernel needs as a PV domU. Fix: use 128M")
        return mib


class UnikernelSettings(Strict):
    """The bundled unikernel that `verify` boots on the dom0 as the proof of the setup."""

    enabled: bool = True
    app: Literal[registry.runnable_app_names()] = "auth"  # type: ignore[valid-type]
    # MiB: 4 is the measured minimum of a PV guest on Xen 4.17
    memory: mib_between(4, 1024, "use 8M (the bundled apps boot in 4M)") = 4
    mac: str = "00:16:3e:6d:65:10"

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str) -> str:
        if not re.match(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$", value) or int(value[:2], 16) & 1:
            raise ValueError(f"{value!r} is not a unicast MAC address. Fix: use one like 00:16:3e:6d:65:10")
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


class LabSettings(Strict):
    """The `ssh` provider: existing hosts (bare metal or VMs) listed in an inventory file."""

    inventory: Path | None = None  # see inventory/lab.example.yml
    parallel: int_within(1, 256, "use 8") = 8  # hosts provisioned at once (Ansible forks)


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

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9][a-z0-9-]{0,30}$", value):
            raise ValueError(f"{value!r} is not a valid environment name. Fix: use up to 31 lowercase "
                             "letters, digits and '-', e.g. default")
        return value

    @model_validator(mode="after")
    def _memory_fits(self) -> "Settings":
        if self.provider in ("auto", "qemu") and self.dom0.memory > self.machine.memory - 512:
            raise ValueError(
                f"dom0.memory: {self.dom0.memory}M leaves less than 512M of the built-in machine's "
                f"{self.machine.memory}M for Xen and the domUs. Fix: dom0.memory at most "
                f"{self.machine.memory - 512}M, or raise machine.memory")
        if self.provider == "ssh" and self.lab.inventory is None:
            raise ValueError("lab.inventory: the ssh provider needs an inventory of hosts. "
                             "Fix: set lab.inventory (see inventory/lab.example.yml) or pass --inventory FILE")
        return self

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
        value = err.get("input")
        if err["type"] == "value_error":
            # our own messages already name the value and the fix
            for line in msg.split("\n"):
                problems.append(line if line.startswith(("network.", "dom0.", "machine.", "unikernel.", "lab.",
                                                          "vagrant."))
                                else f"{where}: {line}")
        else:
            shown = "" if isinstance(value, dict) else f" {value!r}:"
            problems.append(f"{where}:{shown} {msg}. Fix: see the settings table in README.md")
    return problems


def load_settings(path: Path | None = None, overrides: dict | None = None) -> Settings:
    """Read `path` (or ./mirage-env.yml when it exists), validate, return the model."""
    source = "defaults"
    data: dict = {}
    if path is None and Path(SETTINGS_FILE).exists():
        path = Path(SETTINGS_FILE)
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise SettingsError(source, [f"cannot read the file ({exc.strerror}). Fix: check the path"]) from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise SettingsError(source, [f"{line}malformed YAML ({exc.problem or exc.context}). "
                                         "Fix: correct the YAML at that line"]) from None
        except yaml.YAMLError as exc:
            raise SettingsError(source, [f"malformed YAML ({exc}). Fix: correct the YAML"]) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise SettingsError(source, [f"the top level is a {type(loaded).__name__}, not a mapping. "
                                         "Fix: write `key: value` lines, e.g. `dom0: {memory: 512M}`"])
        data = loaded
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(source, explain(exc)) from None
