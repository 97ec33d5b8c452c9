"""The vchan server's ring engine (unikernel/xen/vchan_ring.c, the code the Xen kernel
runs) against a simulated libxenvchan client sharing the same control page and ring pages
(tests/c/vchan_ring.c): the struct layout checked against Xen's own xen/io/libxenvchan.h at compile
time, in-page and multi-page rings on scattered pages, index wrap-around past 2^32, full rings, a
slow client, notification flags counted both ways, reconnects, and a hostile client writing
garbage into every shared field. ASan/UBSan on.

The interoperability with Xen's real libxenvchan runs on a dom0: tests/e2e (echo + vchan-client)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mirage_env.bundled import BuildError, build
from tests.c.cbuild import check_xen_engine
from tests.support import require

VCHAN_HEADER = Path("/usr/include/xen/io/libxenvchan.h")


def test_vchan_ring_against_simulated_client(tmp_path):
    out = check_xen_engine(tmp_path, "vchan_ring", "vchan_ring", VCHAN_HEADER, timeout=300)
    runs = re.findall(r"traffic order=(\d+) idx0=(0x[0-9a-f]+|0): (\d+) bytes each way, end idx (0x[0-9a-f]+), "
                      r"full left (\d+) right (\d+)", out)
    assert len(runs) == 4, out
    # the counters really wrapped past 2^32, and both rings really ran full
    assert any(int(i0, 16) > int(end, 16) for _, i0, _, end, _, _ in runs)
    assert all(int(fl) > 0 and int(fr) > 0 for *_, fl, fr in runs)
    hostile = re.search(r"hostile: (\d+) rounds, (\d+) broken rings reset", out)
    assert hostile and int(hostile.group(2)) > 0, out


def test_echo_is_xen_only(tmp_path):
    with pytest.raises(BuildError, match="Xen-only"):
        build("echo", "host", tmp_path)


def test_echo_links_as_pv_kernel(tmp_path):
    cc = os.environ.get("CC", "clang")
    require(shutil.which(cc) is not None and shutil.which("make") is not None, f"needs {cc} and make")
    require(Path("/usr/include/xen/io/netif.h").is_file(), "Xen public headers missing (apt-get install libxen-dev)")
    image = build("echo", "xen", tmp_path)
    notes = subprocess.run(["readelf", "-n", str(image)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^\s+Xen\s", notes, re.M), notes
    syms = subprocess.run(["nm", str(tmp_path / "echo.xen.dbg")], capture_output=True, text=True, check=True).stdout
    for sym in ("vchan_server_start", "vchan_read", "vchan_write", "app_main"):
        assert re.search(rf"\b{sym}$", syms, re.M), sym
