"""The bundled unikernel's Xen images, built here on the controller for the unikernel role to copy.

Building on the controller takes seconds; building on an emulated dom0 first installs gcc and
libxen-dev there (minutes under TCG). A PV kernel does not depend on the dom0's libraries, so the
same ~60 KB image serves every host. Without a C compiler or make here, the role builds on the dom0
from the packed sources instead (its behaviour when used alone).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .state import StateDir


def missing_tools() -> list[str]:
    """What this machine lacks to build a Xen image (the compiler bundled.build would use, make)."""
    cc = os.environ.get("CC", "clang")
    return [tool for tool in (cc, "make") if shutil.which(tool) is None]


def build_images(state: StateDir, apps: set[str]) -> dict[str, Path]:
    """Build each app for Xen into the state dir; {app: image}. make decides what is out of date,
    so an unchanged source tree gives the same bytes and the role's copy stays unchanged."""
    from .bundled import build

    out = state.path("unikernel-build")
    return {app: build(app, "xen", out) for app in sorted(apps)}
