"""The net tier's lab: a network namespace with a bridge, a real
dnsmasq serving DHCP on it, and host-target unikernels on TAP devices.

Everything lives inside a namespace named ``mevt-<pid>-<n>`` that the
fixture creates and deletes (with the TAPs, dnsmasq and the unikernel
processes, by name and PID), also when a test fails. Nothing is sent to
any address outside it.

Use::

    def test_x(lab, unikernel):
        uk = unikernel("ping")                    # DHCP, waits for the lease
        uk.exec_in_ns(["ping", "-c1", uk.ip])     # clients run in the namespace
        st = unikernel("ping", static="192.168.56.10/24", gw="192.168.56.1")

For several tests sharing one unikernel, ``module_lab`` is the same thing
with module scope: ``uk = module_lab.start("auth")``.

Needs root, /dev/net/tun, ``ip``, ``dnsmasq``, ``clang`` and ``make``:
missing ones skip the test with the reason, or fail it under CI=true.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mirage_env.bundled import build as build_unikernel

CI = os.environ.get("CI") == "true"
PREFIX = "mevt-"
SUBNET = "192.168.56"          # the project's host-only network, here only inside our namespace
BRIDGE = "mevtbr0"
HOST_IP = f"{SUBNET}.1"
DHCP_FIRST, DHCP_LAST = f"{SUBNET}.100", f"{SUBNET}.199"
IP_LINE = re.compile(r"IP address: (\d+\.\d+\.\d+\.\d+)")
_counter = itertools.count()


# Defined before every script run_python runs in the namespace (the clients and raw senders of
# the tests): one TCP exchange, the status line of an answer, the Internet checksum.
SCRIPT_HELPERS = r'''
import socket
import struct


def exchange(ip, payload, wait=5.0, port=8088, eof=False, until=None):
    """Connect to ip:port, send payload (then EOF when eof), read until the peer closes or
    `until` has arrived: (bytes, how it ended: "" or "timeout" or the OSError's class name)."""
    s = socket.create_connection((ip, port), timeout=wait)
    try:
        s.sendall(payload)
        if eof:
            s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    data = b""
    try:
        while until is None or until not in data:
            c = s.recv(65536)
            if not c:
                break
            data += c
    except socket.timeout:
        return data, "timeout"
    except OSError as e:
        return data, e.__class__.__name__
    finally:
        s.close()
    return data, ""


def status_line(data):
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF
'''


def client_json(uk: "Unikernel", script: str, *args: str, timeout: float = 120) -> object:
    """Run a client script in uk's namespace with uk's address as argv[1]: what it printed, as JSON."""
    r = uk.lab.run_python(script, uk.ip, *args, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def need(ok: bool, reason: str) -> None:
    """Skip (or fail under CI=true) when a prerequisite is missing."""
    if not ok:
        if CI:
            pytest.fail(f"prerequisite missing under CI: {reason}")
        pytest.skip(reason)


def need_tool(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"{name} not installed")
    return path  # type: ignore[return-value]


def check_prereqs() -> None:
    need(os.geteuid() == 0, "net tests need root (network namespaces, TAP devices)")
    need(os.path.exists("/dev/net/tun"), "/dev/net/tun missing")
    for tool in ("ip", "dnsmasq", "clang", "make"):
        need_tool(tool)


def _run(cmd: list[str], check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, timeout=timeout, text=True, capture_output=True, **kw)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5) -> int:
    """Signal one process we started, by its PID; kill it if it lingers."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=timeout)
    return proc.returncode


def sweep_stale_namespaces() -> None:
    """Delete namespaces left by earlier test runs that were killed: only
    ours (mevt-<pid>-<n>) and only when that pid is gone."""
    res = _run(["ip", "netns", "list"], check=False)
    for line in res.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(r"mevt-(\d+)-\d+", name)
        if m and not _pid_alive(int(m.group(1))):
            _run(["ip", "netns", "del", name], check=False)


@dataclass
class Unikernel:
    """One running host-target unikernel on a TAP in the lab namespace."""

    lab: "Lab"
    app: str
    tap: str
    mac: str
    proc: subprocess.Popen
    console_path: Path
    stderr_path: Path
    ip: str | None = None
    stopped: bool = False

    def console_text(self) -> str:
        return self.console_path.read_text(errors="replace")

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def exec_in_ns(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        return self.lab.exec(cmd, **kw)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def describe(self) -> str:
        return (f"{self.app} on {self.tap} ({self.mac}), returncode {self.proc.poll()}\n"
                f"--- console ---\n{self.console_text()}\n--- stderr ---\n{self.stderr_text()}")

    def wait_console(self, pattern: str, timeout: float = 20, after: int = 0) -> re.Match:
        """Wait until the console (from offset ``after``) matches pattern, a
        regex; fail with the console, stderr and dnsmasq log when it does
        not, or when the process dies."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.console_text(), after)
            if m:
                return m
            if not self.alive():
                pytest.fail(f"unikernel exited while waiting for {pattern!r}:\n{self.describe()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {pattern!r} on the console after {timeout}s:\n{self.describe()}\n"
                            f"--- DHCP server log ---\n{self.lab.dhcp_log()}")
            time.sleep(0.05)

    def wait_lease(self, timeout: float = 30) -> str:
        """Wait for both dnsmasq's lease file and the console to show the
        same address for our MAC; return it."""
        deadline = time.monotonic() + timeout
        while True:
            lease = self.lab.lease_for(self.mac)
            m = IP_LINE.search(self.console_text())
            if lease and m:
                if lease["ip"] != m.group(1):
                    pytest.fail(f"lease file says {lease['ip']}, console says {m.group(1)}:\n{self.describe()}")
                self.ip = lease["ip"]
                return self.ip
            if not self.alive():
                pytest.fail(f"unikernel exited before getting a lease:\n{self.describe()}\n"
                            f"--- dnsmasq log ---\n{self.lab.dnsmasq_log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no lease after {timeout}s (lease file: {self.lab.leases()}):\n{self.describe()}\n"
                            f"--- dnsmasq log ---\n{self.lab.dnsmasq_log()}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5) -> int:
        """Signal the unikernel and return its exit status."""
        self.stopped = True
        return _stop_process(self.proc, sig, timeout)

    def assert_no_sanitizer_report(self) -> None:
        err = self.stderr_text()
        assert "Sanitizer" not in err and "runtime error" not in err, err


class Lab:
    """A namespace with a bridge (HOST_IP/24) and dnsmasq on it."""

    def __init__(self, workdir: Path, builds: "BuildCache", lease: str = "2m",
                 dhcp_options: tuple[str, ...] = (), dnsmasq_args: tuple[str, ...] = (),
                 dnsmasq: bool = True):
        self.name = f"{PREFIX}{os.getpid()}-{next(_counter)}"
        self.workdir = workdir
        self.builds = builds
        self.lease = lease
        self.dhcp_options = dhcp_options
        self.dnsmasq_args = dnsmasq_args
        self.want_dnsmasq = dnsmasq  # False: the test starts another DHCP server (dhcpservers.py)
        self.dhcp_log_sources: list = []  # callables giving another server's log, for failure messages
        self.dhcp_first, self.dhcp_last = DHCP_FIRST, DHCP_LAST
        self.bridge = BRIDGE
        self.host_ip = HOST_IP
        self.subnet = SUBNET
        self.lease_file = workdir / "dnsmasq.leases"
        self.log_file = workdir / "dnsmasq.log"
        self.dnsmasq: subprocess.Popen | None = None
        self.unikernels: list[Unikernel] = []
        self.procs: list[subprocess.Popen] = []  # started with popen()
        self._taps = itertools.count()
        self._created = False

    # -- setup / teardown ---------------------------------------------------
    def setup(self) -> "Lab":
        ns, br = self.name, self.bridge
        _run(["ip", "netns", "add", ns])
        self._created = True
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        _run(["ip", "-n", ns, "link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
        _run(["ip", "-n", ns, "addr", "add", f"{self.host_ip}/24", "dev", br])
        _run(["ip", "-n", ns, "link", "set", br, "up"])
        if self.want_dnsmasq:
            self.start_dnsmasq()
        return self

    def start_dnsmasq(self) -> None:
        cmd = [
            "ip", "netns", "exec", self.name, "dnsmasq",
            "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            f"--interface={self.bridge}", "--bind-interfaces", "--except-interface=lo",
            f"--dhcp-range={self.dhcp_first},{self.dhcp_last},255.255.255.0,{self.lease}",
            f"--dhcp-leasefile={self.lease_file}", f"--pid-file={self.workdir / 'dnsmasq.pid'}",
            f"--log-facility={self.log_file}", "--log-dhcp", "--dhcp-authoritative",
            *[f"--dhcp-option={o}" for o in self.dhcp_options], *self.dnsmasq_args,
        ]
        self.dnsmasq = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while "sockets bound" not in self.dnsmasq_log():
            if self.dnsmasq.poll() is not None:
                raise RuntimeError(f"dnsmasq exited: {self.dnsmasq.stderr.read()}\n{self.dnsmasq_log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dnsmasq did not start:\n{self.dnsmasq_log()}")
            time.sleep(0.05)

    def restart_dnsmasq(self, first: str | None = None, last: str | None = None) -> None:
        """Stop dnsmasq (by PID) and start it again, optionally with another
        address range (its lease file stays)."""
        if self.dnsmasq is not None:
            _stop_process(self.dnsmasq)
            if self.dnsmasq.stderr:
                self.dnsmasq.stderr.close()
        if first and last:
            self.dhcp_first, self.dhcp_last = first, last
        self.log_file.rename(self.log_file.with_suffix(f".log.{time.monotonic_ns()}"))
        self.start_dnsmasq()

    def close(self) -> None:
        for proc in self.procs:
            _stop_process(proc)
        for uk in self.unikernels:
            _stop_process(uk.proc)
        if self.dnsmasq is not None:
            _stop_process(self.dnsmasq)
            if self.dnsmasq.stderr:
                self.dnsmasq.stderr.close()
        if self._created:
            for uk in self.unikernels:
                _run(["ip", "-n", self.name, "link", "del", uk.tap], check=False)
            _run(["ip", "-n", self.name, "link", "del", self.bridge], check=False)
            _run(["ip", "netns", "del", self.name], check=False)
            self._created = False

    # -- helpers --------------------------------------------------------------
    def exec(self, cmd: list[str], check: bool = False, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        """Run a command inside the namespace (returns CompletedProcess, text)."""
        return _run(["ip", "netns", "exec", self.name, *cmd], check=check, timeout=timeout, **kw)

    def popen(self, cmd: list[str], **kw) -> subprocess.Popen:
        """Start a command inside the namespace; it is stopped (by PID) when
        the lab closes, if the test has not done it."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kw)
        self.procs.append(proc)
        return proc

    def run_python(self, script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a Python script inside the namespace (e.g. raw-socket senders), SCRIPT_HELPERS defined."""
        return self.exec(["python3", "-c", SCRIPT_HELPERS + script, *args], timeout=timeout)

    def dnsmasq_log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def dhcp_log(self) -> str:
        """The log of whichever DHCP server serves this lab (for failure messages)."""
        if self.dhcp_log_sources:
            return "\n".join(source() for source in self.dhcp_log_sources)
        return self.dnsmasq_log()

    def leases(self) -> list[dict]:
        """dnsmasq's lease file: expiry mac ip hostname clientid."""
        if not self.lease_file.exists():
            return []
        out = []
        for line in self.lease_file.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] != "duid":
                out.append({"expiry": int(parts[0]), "mac": parts[1].lower(), "ip": parts[2],
                            "hostname": parts[3] if len(parts) > 3 else "*"})
        return out

    def lease_for(self, mac: str) -> dict | None:
        for lease in self.leases():
            if lease["mac"] == mac.lower():
                return lease
        return None

    def add_tap(self) -> str:
        tap = f"mevt-tap{next(self._taps)}"
        _run(["ip", "-n", self.name, "tuntap", "add", "dev", tap, "mode", "tap"])
        _run(["ip", "-n", self.name, "link", "set", tap, "master", self.bridge])
        _run(["ip", "-n", self.name, "link", "set", tap, "up"])
        return tap

    def start(self, app: str, static: str | None = None, gw: str | None = None, data_dir: Path | None = None,
              mac: str | None = None, sanitize: bool = True, wait: bool = True, timeout: float = 30,
              disk: Path | None = None, tap: str | None = None) -> Unikernel:
        """Build (cached) and start ``app`` on a new TAP on the bridge.

        ``disk``: an image file given to the unikernel as its block device (``--disk``).
        ``tap``: a TAP made with add_tap() beforehand (e.g. to capture on it from the first frame).

        DHCP unless ``static`` ("A.B.C.D/N", with optional ``gw``). With
        ``wait`` it returns once the address is up (lease file + console
        for DHCP, console for static)."""
        binary = self.builds.get(app, data_dir=data_dir, sanitize=sanitize)
        tap = tap or self.add_tap()
        if mac is None:
            b = bytearray(os.urandom(6))
            b[0] = (b[0] & 0xFE) | 0x02  # locally administered unicast
            mac = ":".join(f"{x:02x}" for x in b)
        n = len(self.unikernels)
        console = self.workdir / f"{app}-{n}.console"
        stderr = self.workdir / f"{app}-{n}.stderr"
        cmd = [str(binary), "--tap", tap, "--mac", mac]
        if static:
            cmd += ["--ip", static]
            if gw:
                cmd += ["--gw", gw]
        if disk is not None:
            cmd += ["--disk", str(disk)]
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
        with open(console, "wb") as out, open(stderr, "wb") as err:
            proc = subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, env=env)
        uk = Unikernel(self, app, tap, mac.lower(), proc, console, stderr)
        self.unikernels.append(uk)
        if wait:
            if static:
                uk.ip = static.split("/")[0]
                m = uk.wait_console(r"IP address: (\d+\.\d+\.\d+\.\d+)", timeout)
                assert m.group(1) == uk.ip, uk.describe()
            else:
                uk.wait_lease(timeout)
        return uk


class BuildCache:
    """Builds each (app, data dir, sanitize) once per test session."""

    def __init__(self, root: Path):
        self.root = root
        self.cache: dict[tuple, Path] = {}

    def get(self, app: str, data_dir: Path | None = None, sanitize: bool = True) -> Path:
        key = (app, str(data_dir) if data_dir else None, sanitize)
        if key not in self.cache:
            out = self.root / f"{app}-{len(self.cache)}{'-san' if sanitize else ''}"
            self.cache[key] = build_unikernel(app, "host", out, data_dir, sanitize=sanitize)
        return self.cache[key]


