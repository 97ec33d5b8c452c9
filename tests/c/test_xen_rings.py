"""netfront's ring engine (unikernel/xen/netfront_ring.c, the code the Xen kernel runs)
against a simulated netback sharing the same ring and buffer pages (tests/c/xen_rings.c): full
rings, index wrap-around near 2^32, batched responses, a backend slower than the frontend,
notification suppression counted in both directions, a hostile backend. ASan/UBSan on.
The xenstore client likewise, against a simulated xenstored (tests/c/xen_xenstore.c), and
blkfront's ring engine against a simulated blkback (tests/c/xen_blkfront.c).

Plus checks of the Xen build itself: every app links as a PV kernel with the Xen ELF notes the
domain builder needs, and auth stays within its 96 KiB budget."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mirage_env.bundled import build
from tests.c.cbuild import XEN, check_xen_engine, clang
from tests.support import require as need

XEN_HEADERS = Path("/usr/include/xen/io/netif.h")


def test_rings_against_simulated_backend(tmp_path):
    out = check_xen_engine(tmp_path, "xen_rings", "netfront_ring", XEN_HEADERS, timeout=300)
    # the wrap-around runs really crossed 2^32 and the slow backend really filled the ring
    runs = re.findall(r"traffic idx0=(0x[0-9a-f]+|0) slow=(\d+): (\d+) frames each way, (\d+) full", out)
    assert len(runs) == 4, out
    assert any(int(i, 16) > 0xFFFFF000 for i, *_ in runs)
    assert all(int(full) > 0 for _, slow, _, full in runs if slow != "0")


def test_blkfront_against_simulated_backend(tmp_path):
    """xen/blkfront_ring.c against a simulated blkback on the same ring and data pages: reads of
    every shape checked byte for byte against the simulated disk, in-order, reversed and one-at-a-
    time answers, the 2^32 index wrap, and hostile backends (invented id, duplicate id, an extra
    response, rsp_prod jumping far ahead, error status, wrong operation, silence) ending in -1,
    never in an overrun, a hang or data delivered for a request that was not answered."""
    out = check_xen_engine(tmp_path, "xen_blkfront", "blkfront_ring", XEN_HEADERS)
    runs = re.findall(r"reads mode=\d idx0=(0x[0-9a-f]+|0): (\d+) requests", out)
    assert len(runs) == 3 and any(int(i, 16) > 0xFFFFF000 for i, _ in runs), out


def test_xenstore_client_against_simulated_daemon(tmp_path):
    """xen/xenstore.c against a simulated xenstored on the same ring page: round trips across the
    2^32 index wrap, requests bigger than the ring, replies byte by byte, stale replies and watch
    events skipped, and hostile or dead daemons (oversized lengths, corrupt indices, silence)
    ending in an error after the timeout, never an overrun or a hang."""
    check_xen_engine(tmp_path, "xen_xenstore", "xenstore", XEN_HEADERS)


def elf_notes(readelf: str, image: Path) -> str:
    return subprocess.run([readelf, "-n", "-l", "-h", str(image)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("app", ["hello", "ping", "auth", "www"])
def test_xen_image(tmp_path, app):
    clang(XEN_HEADERS)
    readelf = shutil.which("readelf")
    need(readelf is not None, "readelf not installed (apt-get install binutils)")
    image = build(app, target="xen", out_dir=tmp_path)
    assert image.name == f"{app}.xen"
    out = elf_notes(readelf, image)
    assert "ELF64" in out and "X86-64" in out and "EXEC" in out
    assert re.search(r"Entry point address:\s+0x0\b", out)
    assert "NOTE" in out  # a PT_NOTE program header: where libxenguest looks
    # readelf does not name Xen's note types: count the Xen-owned ones (guest os, guest version,
    # xen version, loader, virt base, paddr offset, entry, PVH entry, hypercall page, features)
    assert len(re.findall(r"^\s+Xen\s+0x", out, re.M)) == 10, out
    assert "67 65 6e 65 72 69 63 00" in out  # loader "generic"
    assert "78 65 6e 2d 33 2e 30 00" in out  # "xen-3.0"
    syms = subprocess.run(["nm", str(image)], capture_output=True, text=True)
    assert "no symbols" in syms.stderr  # stripped; <app>.xen.dbg keeps them
    assert (tmp_path / f"{app}.xen.dbg").is_file()
    if app == "auth":
        assert image.stat().st_size <= 96 * 1024, f"auth.xen is {image.stat().st_size} bytes, budget 96 KiB"


def test_xen_core_uses_no_host_headers():
    """The Xen platform includes only freestanding headers, Xen's public ones and our own."""
    allowed = {"stdint.h", "stddef.h", "stdbool.h", "stdarg.h"}
    for path in sorted(XEN.glob("*.[chS]")):
        for m in re.finditer(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', path.read_text(), re.M):
            kind, name = m.groups()
            if kind == "<":
                assert name in allowed or name.startswith("xen/"), f"{path.name} includes <{name}>"
