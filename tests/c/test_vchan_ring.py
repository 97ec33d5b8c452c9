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
from tests.support import require

HERE = Path(__file__).resolve().parent
UNIKERNEL = HERE.parents[1] / "unikernel"
XEN = UNIKERNEL / "xen"
CFLAGS = ["-std=gnu11", "-g", "-O1", "-Wall", "-Wextra", "-Werror"]
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
VCHAN_HEADER = Path("/usr/include/xen/io/libxenvchan.h")


@pytest.fixture(scope="module")
def clang() -> str:
    cc = shutil.which("clang")
    require(cc is not None, "clang not installed (apt-get install clang libclang-rt-14-dev)")
    require(VCHAN_HEADER.is_file(), "Xen public headers missing (apt-get install libxen-dev)")
    return cc  # type: ignore[return-value]


def test_vchan_ring_against_simulated_client(clang, tmp_path):
    exe = tmp_path / "vchan_ring"
    srcs = [HERE / "vchan_ring.c", XEN / "vchan_ring.c"]
    cmd = [clang, *CFLAGS, *SAN, f"-I{XEN}", f"-I{UNIKERNEL / 'core'}", "-o", str(exe), *map(str, srcs)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1", UBSAN_OPTIONS="print_stacktrace=1"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"^\d+ checks, 0 failures$", res.stdout, re.M), res.stdout
    runs = re.findall(r"traffic order=(\d+) idx0=(0x[0-9a-f]+|0): (\d+) bytes each way, end idx (0x[0-9a-f]+), "
                      r"full left (\d+) right (\d+)", res.stdout)
    assert len(runs) == 4, res.stdout
    # the counters really wrapped past 2^32, and both rings really ran full
    assert any(int(i0, 16) > int(end, 16) for _, i0, _, end, _, _ in runs)
    assert all(int(fl) > 0 and int(fr) > 0 for *_, fl, fr in runs)
    hostile = re.search(r"hostile: (\d+) rounds, (\d+) broken rings reset", res.stdout)
    assert hostile and int(hostile.group(2)) > 0, res.stdout


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
