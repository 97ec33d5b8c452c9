"""Compile a C test program with clang under ASan/UBSan and run it: the one helper of tests/c."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.support import require

UNIKERNEL = Path(__file__).resolve().parents[2] / "unikernel"
CORE = UNIKERNEL / "core"
XEN = UNIKERNEL / "xen"
# The simulated Xen peers' shared grant table and script reader (tests/c and tests/fuzz).
HERE = Path(__file__).resolve().parent
SIMPEER = HERE / "simpeer.c"
CFLAGS = ["-std=gnu11", "-g", "-O1", "-Wall", "-Wextra", "-Werror"]
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1"}


def clang(*headers: Path) -> str:
    """clang's path; skips (fails under CI) without it or without the given system headers."""
    cc = shutil.which("clang")
    require(cc is not None, "clang not installed (apt-get install clang libclang-rt-14-dev)")
    for header in headers:
        require(header.is_file(), f"{header} missing (Xen public headers: apt-get install libxen-dev)")
    return cc  # type: ignore[return-value]


def compile_c(out: Path, sources: list[Path], includes: tuple[Path, ...] = (CORE,),
              extra: tuple[str, ...] = ()) -> Path:
    """Build `sources` into the program `out`, sanitizers on, every warning an error."""
    cmd = [clang(), *CFLAGS, *SAN, *(f"-I{d}" for d in includes), *extra, "-o", str(out), *map(str, sources)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, f"compile failed: {' '.join(cmd)}\n{res.stderr}"
    return out


def run_c(exe: Path, *args: str, timeout: float = 120, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout, input=stdin,
                          env={**os.environ, **SAN_ENV})


def run_checks(exe: Path, timeout: float = 120) -> str:
    """Run a check.h program: it must exit 0 and end on `N checks, 0 failures`; its output."""
    res = run_c(exe, timeout=timeout)
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"^\d+ checks, 0 failures$", res.stdout, re.M), res.stdout
    return res.stdout


def check_xen_engine(tmp: Path, test: str, engine: str, header: Path, timeout: float = 120) -> str:
    """tests/c/<test>.c (with the simulated peer, simpeer.c) against unikernel/xen/<engine>.c: built,
    run, its output (skips without clang or the Xen public header `header`)."""
    clang(header)
    exe = compile_c(tmp / test, [HERE / f"{test}.c", SIMPEER, XEN / f"{engine}.c"], includes=(XEN, CORE))
    return run_checks(exe, timeout=timeout)
