"""The project's lists, each read from its one source: the bundled unikernel's apps (from
``unikernel/apps.mk``, which the Makefile includes too) and the providers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .paths import UNIKERNEL_DIR

_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:=\s*(.*)$")


@dataclass(frozen=True)
class App:
    name: str
    xen_only: bool  # no host build (echo: a vchan to dom0)
    has_data: bool  # links a key/value table packed from data/NAME
    probe: bool  # can stand in for a domU probe (asks DHCP, is reachable)
    port: int  # the TCP port it serves on, 0 for none

    def url(self, ip: str, path: str = "/") -> str:
        """Where its HTTP server answers (port 80 left out of the URL)."""
        return f"http://{ip}{'' if self.port == 80 else f':{self.port}'}{path}"


@lru_cache(maxsize=1)
def _apps_mk() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (UNIKERNEL_DIR / "apps.mk").read_text().splitlines():
        found = _ASSIGN.match(line.strip())
        if found:
            values[found.group(1)] = found.group(2).split()
    return values


@lru_cache(maxsize=1)
def apps() -> dict[str, App]:
    mk = _apps_mk()
    return {
        name: App(name, name in mk.get("XEN_APPS", []), name in mk.get("DATA_APPS", []),
                  name in mk.get("PROBE_APPS", []), int((mk.get(f"PORT_{name}") or ["0"])[0]))
        for name in mk["APPS"]
    }


def app_names() -> tuple[str, ...]:
    return tuple(apps())


def host_app_names() -> tuple[str, ...]:
    return tuple(a.name for a in apps().values() if not a.xen_only)


def runnable_app_names() -> tuple[str, ...]:
    """Apps `unikernel run` and the settings' `unikernel.app` accept (they boot as networked domUs)."""
    return tuple(a.name for a in apps().values() if a.probe)


# Providers: the machine kinds `provider:` accepts. "auto" picks one (VirtualBox when usable, else qemu).
PROVIDERS = ("auto", "qemu", "virtualbox", "libvirt", "ssh")
VAGRANT_PROVIDERS = ("virtualbox", "libvirt")
