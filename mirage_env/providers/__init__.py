"""Providers give SSH-reachable hosts: the built-in QEMU machine, Vagrant (VirtualBox, libvirt)
and existing hosts over SSH (labs)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..settings import Settings
from ..state import StateDir
from .base import Provider, ProviderError


def resolve_provider_name(settings: Settings) -> str:
    """`auto`: VirtualBox through Vagrant when both are installed (the laptop path), otherwise
    the built-in QEMU machine. libvirt and ssh are chosen explicitly."""
    if settings.provider != "auto":
        return settings.provider
    if shutil.which("vagrant") and shutil.which("VBoxManage"):
        return "virtualbox"
    return "qemu"


def get_provider(settings: Settings, state: StateDir, image_cache: Path | None = None,
                 limit: str | None = None) -> Provider:
    name = resolve_provider_name(settings)
    if limit and name != "ssh":
        raise ProviderError(f"--limit {limit!r} selects lab hosts; the {name} provider has one machine. "
                            "Fix: drop --limit, or use --provider ssh with an inventory")
    if name == "qemu":
        from .qemu import QemuProvider

        return QemuProvider(settings, state, image_cache)
    if name in ("virtualbox", "libvirt"):
        from .vagrant import VagrantProvider

        return VagrantProvider(settings, state, backend=name)
    if name == "ssh":
        from .ssh import SshProvider

        return SshProvider(settings, state, limit)
    raise ProviderError(f"provider {name!r} is not available. Fix: use one of qemu, virtualbox, libvirt, ssh")


__all__ = ["Provider", "ProviderError", "get_provider", "resolve_provider_name"]
