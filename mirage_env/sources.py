"""A deterministic tarball of the bundled unikernel's sources, for building it on the dom0.

Same sources → same bytes (sorted entries, fixed times and owners), so Ansible's copy reports
`changed` only when the sources really changed and a converged dom0 stays at changed=0.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from .paths import UNIKERNEL_DIR
from .state import StateDir

SKIP_DIRS = {"__pycache__", "out", "build"}
SKIP_SUFFIXES = (".o", ".pyc", ".xen", ".dbg", ".host", ".a")


def _wanted(path: Path) -> bool:
    rel = path.relative_to(UNIKERNEL_DIR)
    return (not any(part in SKIP_DIRS or part.startswith(("obj-", ".")) for part in rel.parts)
            and not path.name.endswith(SKIP_SUFFIXES))


def pack_unikernel_sources(state: StateDir) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in UNIKERNEL_DIR.rglob("*") if p.is_file() and _wanted(p)):
            info = tarfile.TarInfo(f"unikernel/{path.relative_to(UNIKERNEL_DIR).as_posix()}")
            data = path.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o755 if path.stat().st_mode & 0o111 else 0o644
            tar.addfile(info, io.BytesIO(data))
    archive = state.create().path("unikernel-src.tar.gz")
    packed = gzip.compress(buffer.getvalue(), mtime=0)
    if not archive.exists() or archive.read_bytes() != packed:
        archive.write_bytes(packed)
    return archive
