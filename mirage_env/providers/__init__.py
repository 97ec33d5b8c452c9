"""Providers give SSH-reachable hosts: the built-in QEMU machine today; Vagrant and labs later."""

from __future__ import annotations

from pathlib import Path

from ..settings import Settings
from ..state import StateDir
from .base import Provider, ProviderError


def resolve_provider_name(settings: Settings) -> str:
    if settings.provider != "auto":
        return settings.provider
    # VirtualBox's Vagrant path comes later; until then the built-in machine is the default.
    return "qemu"


def get_provider(settings: Settings, state: StateDir, image_cache: Path | None = None) -> Provider:
    name = resolve_provider_name(settings)
    if name == "qemu":
        from .qemu import QemuProvider

        return QemuProvider(settings, state, image_cache)
    raise ProviderError(f"provider {name!r} is not available. Fix: set `provider: qemu`")


__all__ = ["Provider", "ProviderError", "get_provider", "resolve_provider_name"]
