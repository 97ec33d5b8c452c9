"""Prerequisites of the tests: skip with the reason outside CI, fail under CI=true."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip with the reason, except under CI=true where a missing prerequisite is a failure."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"prerequisite missing under CI: {reason}")
    pytest.skip(reason)


def require_root_and_tools(*tools: str) -> None:
    require(os.geteuid() == 0, "needs root (network namespaces, tap devices)")
    missing = [t for t in tools if not shutil.which(t)]
    require(not missing, f"needs {', '.join(missing)} (run ./scripts/install-deps.sh)")
