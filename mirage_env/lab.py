"""A lab inventory for the `ssh` provider: hosts, how to reach them, and their own settings.

Each host's settings are the environment's settings with the inventory's `defaults` and then the
host's own keys laid over them, validated as a whole — so a host's bad DHCP range is refused the
same way, naming `hosts.NAME.network.dhcp_start`, before any host is touched.
"""

from __future__ import annotations

import copy
import fnmatch
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .settings import Settings, SettingsError, explain, read_yaml, shown
from .sshclient import SshTarget

DNS_NAME_RE = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                         r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?")
USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")  # what useradd accepts, without a trailing $
HOST_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
CONNECTION_KEYS = {"address", "port", "user", "key"}
SETTINGS_KEYS = {"network", "dom0", "probe", "unikernel"}


@dataclass(frozen=True)
class LabHost:
    name: str
    target: SshTarget
    settings: Settings


def _merge(base: dict, over: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def address_ok(value: Any) -> bool:
    """An IPv4/IPv6 address or a DNS name (what ssh and Ansible take as a host)."""
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(DNS_NAME_RE.fullmatch(value)) and not value.replace(".", "").isdigit()


def _host_problems(name: str, entry: Any, where: str) -> list[str]:
    if not HOST_NAME_RE.match(name):
        return [f"{where}: {name!r} is not a usable host name. Fix: letters, digits, '.', '_', '-'"]
    if not isinstance(entry, dict):
        return [f"{where}: expected a mapping of address/user/key/network…, got {type(entry).__name__}. "
                f"Fix: e.g. `{name}: {{address: 10.0.0.11}}`"]
    unknown = set(entry) - CONNECTION_KEYS - SETTINGS_KEYS
    if unknown:
        return [f"{where}.{sorted(unknown)[0]}: unknown key. Fix: use only "
                f"{', '.join(sorted(CONNECTION_KEYS | SETTINGS_KEYS))}"]
    return []


def load_lab(path: Path, settings: Settings) -> list[LabHost]:
    """Read and validate the whole inventory; any problem in any host refuses all of it."""
    source = str(path)
    data = read_yaml(path, source, "the inventory (lab.inventory / --inventory)")
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), dict) or not data["hosts"]:
        raise SettingsError(source, ["no `hosts:` mapping. Fix: list hosts as in inventory/lab.example.yml"])
    unknown = set(data) - {"defaults", "hosts"}
    if unknown:
        raise SettingsError(source, [f"{sorted(unknown)[0]}: unknown key. Fix: use `defaults:` and `hosts:` only"])
    defaults = data.get("defaults") or {}
    problems = _host_problems("defaults", defaults, "defaults") if defaults else []
    if problems:  # hosts are merged over the defaults: report the defaults' problems alone
        raise SettingsError(source, problems)
    base = settings.model_dump(mode="json")
    hosts: list[LabHost] = []
    for name, entry in data["hosts"].items():
        name = str(name)
        where = f"hosts.{name}"
        found = _host_problems(name, entry, where)
        if found:
            problems += found
            continue
        entry = _merge(defaults, entry)
        if not entry.get("address"):
            problems.append(f"{where}.address: missing. Fix: the address or DNS name the host answers SSH on")
            continue
        if not address_ok(entry["address"]):
            problems.append(f"{where}.address: {shown(entry['address'])} is not an IP address or DNS name. "
                            "Fix: e.g. `address: 10.0.0.11` or `address: rack1-a.lab`")
            continue
        if not entry.get("user"):
            problems.append(f"{where}.user: missing. Fix: an account with passwordless sudo, e.g. `user: admin`")
            continue
        if not isinstance(entry["user"], str) or not USER_RE.fullmatch(entry["user"]):
            problems.append(f"{where}.user: {shown(entry['user'])} is not a user name. "
                            "Fix: an account with passwordless sudo, e.g. `user: admin`")
            continue
        port = entry.get("port", 22)
        if isinstance(port, bool) or not isinstance(port, (int, str)) \
                or not re.fullmatch(r"[0-9]{1,5}", str(port).strip()) or not 1 <= int(port) <= 65535:
            problems.append(f"{where}.port: {port!r} is not a TCP port. Fix: e.g. 22")
            continue
        port = int(port)
        key = Path(str(entry.get("key", "~/.ssh/id_ed25519"))).expanduser()
        if not key.is_file():
            problems.append(f"{where}.key: {key} does not exist. Fix: point `key:` at the private key for {name}")
            continue
        layered = _merge(base, {k: entry[k] for k in SETTINGS_KEYS if k in entry})
        try:
            host_settings = Settings.model_validate(layered)
        except ValidationError as exc:
            problems += [f"{where}.{p}" for p in explain(exc)]
            continue
        hosts.append(LabHost(name, SshTarget(str(entry["address"]), port, str(entry["user"]), key), host_settings))
    seen: dict[tuple[str, int], str] = {}
    for host in hosts:  # two names for one machine would provision it twice, concurrently
        where = (host.target.host.lower(), host.target.port)
        if where in seen:
            problems.append(f"hosts.{host.name}.address: {host.target.host} port {host.target.port} is also "
                            f"hosts.{seen[where]}. Fix: list each machine once")
        else:
            seen[where] = host.name
    if problems:
        raise SettingsError(source, problems)
    return hosts


def select(hosts: list[LabHost], limit: str | None, source: str = "the inventory") -> list[LabHost]:
    """`--limit a,b,rack1-*`: the hosts whose names match any pattern, in inventory order."""
    if not limit:
        return hosts
    patterns = [p.strip() for p in limit.split(",") if p.strip()]
    chosen = [h for h in hosts if any(fnmatch.fnmatchcase(h.name, p) for p in patterns)]
    if not chosen:
        raise SettingsError(source, [f"--limit {limit!r} matches no host. "
                                     f"Fix: use one of {', '.join(h.name for h in hosts)} (globs allowed)"])
    return chosen
