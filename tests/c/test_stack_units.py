"""C unit tests of the runtime and lower stack (eth, ARP, IPv4, ICMP, UDP,
DHCP), built with ASan/UBSan over the capturing test platform
(plat_test.c), plus checks of the build itself (hello, freestanding core)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mirage_env.bundled import build
from tests.c import cbuild
from tests.c.cbuild import CORE, UNIKERNEL, compile_c, run_checks

HERE = Path(__file__).resolve().parent
LOWER = ["rt", "netif", "cksum", "eth", "arp", "ipv4", "icmp", "udp", "dhcp"]
FREESTANDING_HEADERS = {"stdint.h", "stddef.h", "stdbool.h", "stdarg.h"}


@pytest.fixture(scope="module")
def clang() -> str:
    return cbuild.clang()


def test_stack_units(tmp_path):
    srcs = [HERE / "stack_units.c", HERE / "plat_test.c"] + [CORE / f"{n}.c" for n in LOWER]
    out = run_checks(compile_c(tmp_path / "stack_units", srcs, includes=(CORE, HERE)))
    assert "FAIL" not in out


def test_cmdline_reader(tmp_path):
    """core/cmdline.c (the one reader of the kernel command line) against hostile lines."""
    out = run_checks(compile_c(tmp_path / "cmdline_check", [HERE / "cmdline_check.c", CORE / "cmdline.c"],
                               includes=(CORE, HERE)))
    assert int(out.split()[0]) >= 80, out


def test_core_is_freestanding():
    """core/ and apps/ include only the freestanding headers and our own."""
    for path in sorted(list(CORE.glob("*.[ch]")) + list((UNIKERNEL / "apps").glob("*.c"))):
        for m in re.finditer(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', path.read_text(), re.M):
            kind, name = m.groups()
            if kind == "<":
                assert name in FREESTANDING_HEADERS, f"{path.name} includes <{name}>"
            else:
                assert not name.startswith("/") and (path.parent / name).exists(), f"{path.name}: {name}"


def test_core_compiles_freestanding_without_libc(clang, tmp_path):
    """The lower stack links into a -nostdlib object with only the
    string functions left for the platform to provide."""
    objs = []
    for n in LOWER:
        o = tmp_path / f"{n}.o"
        res = subprocess.run([clang, "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-ffreestanding",
                              "-fno-stack-protector", "-nostdinc", f"-isystem{_clang_include(clang)}", f"-I{CORE}",
                              "-c", str(CORE / f"{n}.c"), "-o", str(o)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        objs.append(str(o))
    res = subprocess.run([clang, "-nostdlib", "-r", "-o", str(tmp_path / "lower.o"), *objs],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    nm = subprocess.run(["nm", "-u", str(tmp_path / "lower.o")], capture_output=True, text=True).stdout
    undefined = {line.split()[-1] for line in nm.splitlines() if line.strip()}
    allowed = {"memcpy", "memmove", "memset", "memcmp", "strlen", "strcmp", "strncmp",
               "plat_now_ms", "plat_console_write", "plat_net_send", "plat_net_recv", "plat_mac",
               "plat_random", "plat_stopping", "plat_netcfg", "plat_exit"}
    assert undefined <= allowed, undefined - allowed


def _clang_include(clang: str) -> str:
    res = subprocess.run([clang, "-print-resource-dir"], capture_output=True, text=True, check=True)
    return str(Path(res.stdout.strip()) / "include")


def test_hello_runs_and_links_no_network(clang, tmp_path):
    exe = build("hello", "host", tmp_path, sanitize=True)
    res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert "Hello World!" in res.stdout and "hello: exit" in res.stdout
    syms = subprocess.run(["nm", str(exe)], capture_output=True, text=True).stdout
    assert "eth_input" not in syms and "dhcp_start" not in syms


def test_host_platform_rejects_bad_arguments(clang, tmp_path):
    exe = build("ping", "host", tmp_path)
    for args in (["--ip", "300.1.1.1/24"], ["--ip", "10.0.0.1/33"], ["--mac", "01:00:00:00:00:01"],
                 ["--mac", "zz"], ["--gw"], ["--bogus", "x"]):
        res = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=10)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert "usage" in res.stderr or "--mac" in res.stderr


def test_build_driver_errors(tmp_path):
    from mirage_env.bundled import BuildError, main
    with pytest.raises(BuildError, match="unknown app"):
        build("nope", "host", tmp_path)
    with pytest.raises(BuildError, match="unknown target"):
        build("ping", "vax", tmp_path)
    with pytest.raises(BuildError, match="needs target 'host'"):
        build("ping", "xen", tmp_path, sanitize=True)
    assert main(["--app", "hello", "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "hello.host").is_file()
