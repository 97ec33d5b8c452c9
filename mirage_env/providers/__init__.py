"""Providers give SSH-reachable hosts: the built-in QEMU machine, Vagrant (VirtualBox, libvirt)
and existing hosts over SSH (labs).

Nothing heavy is imported here: `python -m mirage_env.providers.aptproxy` runs once per guest
connection and must start fast (no paramiko, no pydantic); each provider is imported when chosen.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from .. import registry

if TYPE_CHECKING:
    from ..settings import Settings
    from ..state import StateDir
    from .base import Provider


def resolve_provider_name(settings: "Settings") -> str:
    """`auto`: VirtualBox through Vagrant when both are installed (the laptop path), otherwise
    the built-in QEMU machine. libvirt and ssh are chosen explicitly."""
    if settings.provider != "auto":
        return settings.provider
    if shutil.which("vagrant") and shutil.which("VBoxManage"):
        return "virtualbox"
    return "qemu"


def get_provider(settings: "Settings", state: "StateDir", image_cache: Path | None = None,
                 limit: str | None = None) -> "Provider":
    from .base import ProviderError

    name = resolve_provider_name(settings)
    if limit and name != "ssh":
        raise ProviderError(f"--limit {limit!r} selects lab hosts; the {name} provider has one machine. "
                            "Fix: drop --limit, or use the lab: `mirage-env --inventory FILE --limit PATTERN COMMAND`")
    if name == "qemu":
        from .qemu import QemuProvider

        return QemuProvider(settings, state, image_cache)
    if name in registry.VAGRANT_PROVIDERS:
        from .vagrant import VagrantProvider

        return VagrantProvider(settings, state, backend=name)
    if name == "ssh":
        from .ssh import SshProvider

        return SshProvider(settings, state, limit)
    usable = ", ".join(p for p in registry.PROVIDERS if p != "auto")
    raise ProviderError(f"provider {name!r} is not available. Fix: use one of {usable}")


def __getattr__(name: str):
    # `from mirage_env.providers import ProviderError` keeps working, loaded on first use
    if name in ("Provider", "ProviderError", "Host"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Provider", "ProviderError", "get_provider", "resolve_provider_name"]
