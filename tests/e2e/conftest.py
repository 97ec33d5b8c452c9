"""Shared by the end-to-end tests: one base-image cache per test session, so the image is built
once (by whichever test needs it first) and removed at the end."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def image_cache_home():
    """An XDG_CACHE_HOME for the session: mirage-env keeps its base images under it.
    MIRAGE_E2E_IMAGE_CACHE=DIR keeps and reuses one across sessions (for development)."""
    keep = os.environ.get("MIRAGE_E2E_IMAGE_CACHE")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        yield Path(keep)
        return
    base = Path(tempfile.mkdtemp(prefix="mev-e2e-cache-", dir="/var/tmp"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
