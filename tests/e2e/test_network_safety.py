"""Network changes that cannot lock you out, for real, on the built-in QEMU machine without Xen:

1. xen_bridge builds br0 over the host-only NIC on a plain Debian machine (bridge-utils, ifupdown);
2. a rogue dnsmasq in the host-only namespace → the dnsmasq role refuses, naming the server, and
   leaves dnsmasq neither installed nor configured; forced → it goes on with a warning; rogue
   stopped → a normal run, and the dom0's own dnsmasq is not mistaken for a foreign one;
3. a bridge change with an injected fault that cuts the management NIC → the host's watchdog rolls
   back within the timeout, SSH works again, the message says so, the interface files are back;
   a normal run then converges.

Tests run in file order and share one machine (~10 min under TCG, plus the base image when the
session has none yet).
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from rich.console import Console

from mirage_env.paths import project_root
from tests.support import require_root_and_tools

pytestmark = pytest.mark.e2e

NAME = "netsafe"
ROLLBACK_TIMEOUT = 60  # s: the fault run's watchdog, short enough for a test
# s: the runs that must NOT roll back. Under TCG on a loaded 2-core host the change → fresh SSH →
# confirm round trip was measured at ~90 s, close to the default 120.
CALM_TIMEOUT = 300
ROGUE_RANGE = ("192.168.56.100", "192.168.56.120")
PROBE_SCRIPT = project_root() / "roles/dnsmasq/files/dhcp_probe.py"


class NetSafeMachine:
    def __init__(self, base: Path, cache: Path):
        from mirage_env.settings import load_settings
        from mirage_env.workflow import Environment

        self.base, self.cache = base, cache
        self.settings = load_settings(None, {"name": NAME, "machine.cpus": 1})
        self.env = Environment.open(self.settings, base / "state", cache)
        self.rogue_pidfile = base / "rogue.pid"

    # -- the machine -------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
        env = {**os.environ, "XDG_CACHE_HOME": str(self.cache)}
        cmd = [sys.executable, "-m", "mirage_env.cli", "--state-dir", str(self.base / "state"),
               "-s", f"name={NAME}", "-s", "machine.cpus=1", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        print(f"$ mirage-env {' '.join(args)} → {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}")
        return proc

    @property
    def namespace(self) -> str:
        return self.env.provider.network.namespace

    @property
    def tap(self) -> str:
        return self.env.provider.network.tap

    def sh(self, command: str, timeout: float = 120) -> tuple[int, str]:
        """A command on the machine as root, over a NEW SSH connection (proves SSH works now)."""
        from mirage_env.sshclient import connect, run

        target = self.env.provider.ssh_target()
        client = connect(target, timeout=20)
        try:
            return run(client, command if target.user == "root" else f"sudo -n sh -c {shlex.quote(command)}",
                       timeout=timeout)
        finally:
            client.close()

    def playbook(self, playbook: str, **overrides) -> tuple[object, str, float]:
        """Run one of our playbooks against the machine, the way `mirage-env provision` does."""
        from mirage_env.provisioning import run_on_hosts
        from mirage_env.report import Report

        out = io.StringIO()
        # the real Report, printing into a buffer wide enough that no message is wrapped
        report = Report(f"test-{playbook}", console=Console(file=out, width=100_000, highlight=False))
        start = time.monotonic()
        result = run_on_hosts(self.env.state, self.env.provider.hosts(), playbook, overrides, report)
        seconds = round(time.monotonic() - start, 1)
        messages = out.getvalue() + "\n".join(result.failures)
        print(f"--- {playbook} {overrides}: ok={result.ok} changed={result.changed} in {seconds}s\n{messages[-4000:]}")
        return result, messages, seconds

    # -- the rogue DHCP server in the host-only namespace ------------------------------------------
    def start_rogue(self) -> None:
        subprocess.run(["ip", "netns", "exec", self.namespace, "dnsmasq", "--port=0", f"--interface={self.tap}",
                        "--bind-interfaces", "--except-interface=lo",
                        f"--dhcp-range={ROGUE_RANGE[0]},{ROGUE_RANGE[1]},2m",
                        f"--dhcp-leasefile={self.base / 'rogue.leases'}", f"--pid-file={self.rogue_pidfile}"],
                       check=True, capture_output=True, text=True)
        for _ in range(50):
            if self.rogue_pid():
                return
            time.sleep(0.1)
        raise RuntimeError("the rogue dnsmasq did not start")

    def rogue_pid(self) -> int | None:
        try:
            pid = int(self.rogue_pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"dnsmasq" in cmdline and str(self.rogue_pidfile).encode() in cmdline else None

    def stop_rogue(self) -> None:
        pid = self.rogue_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not self.rogue_pid():
                    break
                time.sleep(0.1)

    def tap_mac(self) -> str:
        out = subprocess.run(["ip", "-n", self.namespace, "-o", "link", "show", self.tap],
                             capture_output=True, text=True, check=True).stdout
        return out.split("link/ether ")[1].split()[0]

    def probe_from_namespace(self) -> dict:
        """The role's own probe script, run on the host-only side: who offers leases on the segment?"""
        proc = subprocess.run(["ip", "netns", "exec", self.namespace, sys.executable, str(PROBE_SCRIPT),
                               "--interface", self.tap, "--seconds", "6"], capture_output=True, text=True, timeout=60)
        return json.loads(proc.stdout)

    # -- cleanup ------------------------------------------------------------------------------
    def cleanup(self) -> None:
        self.stop_rogue()
        try:
            self.cli("down", "--destroy", timeout=600)
        finally:
            provider = self.env.provider
            pid = provider.pid()
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
            provider.network.remove()


@pytest.fixture(scope="module")
def machine(image_cache_home):
    require_root_and_tools("qemu-system-x86_64", "qemu-img", "debootstrap", "ip", "ssh", "dnsmasq")
    base = Path(tempfile.mkdtemp(prefix="mev-netsafe-", dir="/var/tmp"))
    m = NetSafeMachine(base, image_cache_home)
    try:
        start = time.monotonic()
        proc = m.cli("up", "--no-provision")
        assert proc.returncode == 0, proc.stderr[-3000:]
        m.up_seconds = round(time.monotonic() - start, 1)
        yield m
    finally:
        try:
            m.cleanup()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def test_a_nic_that_ifupdown_already_configures_is_refused(machine, measure):
    """A stanza for the bridged NIC in a file of interfaces.d (not only /etc/network/interfaces)
    stops the role before anything changes, naming the file and line."""
    rc, out = machine.sh("mkdir -p /etc/network/interfaces.d && "
                         "printf 'allow-hotplug eth1\\niface eth1 inet dhcp\\n' > /etc/network/interfaces.d/lab-eth1")
    assert rc == 0, out
    try:
        result, messages, seconds = machine.playbook("xen_bridge.yml", xen_bridge_rollback_timeout=CALM_TIMEOUT)
        measure("xen_bridge refusal (stanza in interfaces.d) s", seconds)
        assert not result.ok
        for text in ("ifupdown already configures eth1: /etc/network/interfaces.d/lab-eth1:1:allow-hotplug eth1",
                     "Nothing was changed", "Fix: remove that stanza"):
            assert text in messages, text
        rc, out = machine.sh("ls /etc/network/interfaces.d; ip -o link show br0 2>&1; "
                             "ls /var/lib/mirage-env/net-rollback 2>&1")
        assert "mirage-env-bridge" not in out and "does not exist" in out and "No such file" in out, out
    finally:
        machine.sh("rm -f /etc/network/interfaces.d/lab-eth1")


def test_xen_bridge_works_on_a_machine_without_xen(machine, measure):
    measure("machine up --no-provision s", machine.up_seconds)
    rc, hypervisor = machine.sh("cat /sys/hypervisor/type 2>/dev/null || echo none")
    assert "xen" not in hypervisor
    result, _, seconds = machine.playbook("xen_bridge.yml", xen_bridge_rollback_timeout=CALM_TIMEOUT)
    assert result.ok, result.failures
    measure("xen_bridge first run s", seconds)
    rc, out = machine.sh("ip -4 -o addr show dev br0; cat /var/lib/mirage-env/net-rollback/log")
    assert rc == 0 and "192.168.56.5/24" in out and "confirmed" in out, out
    ping = subprocess.run(["ip", "netns", "exec", machine.namespace, "ping", "-c", "2", "-W", "2", "192.168.56.5"],
                          capture_output=True, text=True)
    assert ping.returncode == 0, ping.stdout


def test_dnsmasq_refuses_a_segment_with_another_dhcp_server(machine, measure):
    machine.start_rogue()
    result, messages, seconds = machine.playbook("dnsmasq.yml")
    measure("dnsmasq refusal s", seconds)
    assert not result.ok
    mac = machine.tap_mac()
    for text in ("Another DHCP server already answers on br0", "192.168.56.1 (MAC " + mac, "Nothing was changed",
                 "Fix: stop that server", "network.force_dhcp: true"):
        assert text in messages, text
    rc, out = machine.sh("test -e /etc/dnsmasq.d/mirage-env.conf && echo configured; "
                         "dpkg-query -W -f '${Status}' dnsmasq 2>/dev/null; echo; pgrep -x dnsmasq || echo none")
    assert "configured" not in out and "install ok installed" not in out and "none" in out, out


def test_forced_dhcp_goes_on_with_a_warning_then_a_normal_run(machine, measure):
    assert machine.rogue_pid(), "the rogue DHCP server of the previous test is gone"
    forced, messages, seconds = machine.playbook("dnsmasq.yml", dnsmasq_force_dhcp=True)
    measure("dnsmasq forced run s", seconds)
    assert forced.ok, forced.failures
    assert "Going on because network.force_dhcp (dnsmasq_force_dhcp) is true" in messages
    rc, out = machine.sh("systemctl is-active dnsmasq; dpkg-query -W -f '${Status}' dnsmasq-utils; "
                         "command -v dhcp_release")
    assert "active" in out and "install ok installed" in out and "dhcp_release" in out, out

    machine.stop_rogue()
    assert machine.rogue_pid() is None
    normal, messages, seconds = machine.playbook("dnsmasq.yml")
    measure("dnsmasq normal run (own dnsmasq running) s", seconds)
    assert normal.ok and normal.changed == 0, normal.failures
    assert "Another DHCP server" not in messages
    # the dom0's dnsmasq answers on the segment, and it is the only server there now
    offers = machine.probe_from_namespace()["offers"]
    assert offers and {o["server"] for o in offers} == {"192.168.56.5"}, offers


def test_a_change_that_cuts_ssh_is_rolled_back(machine, measure):
    _, before = machine.sh("cat /etc/network/interfaces; echo ----; cat /etc/network/interfaces.d/mirage-env-bridge")
    fault = "ip link set eth0 down"
    start = time.monotonic()
    # a new bridge address makes it a real change; the fault then cuts the management NIC (eth0)
    result, messages, seconds = machine.playbook(
        "xen_bridge.yml", xen_bridge_address="192.168.56.6", xen_bridge_rollback_timeout=ROLLBACK_TIMEOUT,
        xen_bridge_fault_after_apply=fault)
    measure("fault run until the failure is reported s", seconds)
    assert not result.ok
    for text in ("rolled back to the previous network configuration",
                 "the change cut the management connection", "SSH works again",
                 f"A fault was injected on purpose after the change: {fault}"):
        assert text in messages, text
    rc, after = machine.sh("cat /etc/network/interfaces; echo ----; cat /etc/network/interfaces.d/mirage-env-bridge")
    assert rc == 0 and after == before
    rc, log = machine.sh("cat /var/lib/mirage-env/net-rollback/log; ip -4 -o addr show dev br0")
    assert "rolled back" in log and "192.168.56.5/24" in log and "192.168.56.6" not in log, log
    armed_at = [line for line in log.splitlines() if "armed:" in line][-1]
    rolled_at = [line for line in log.splitlines() if line.endswith("rolled back")][-1]
    measure("watchdog: armed → rolled back s", _seconds_between(armed_at, rolled_at))
    measure("fault run wall s (incl. reconnect)", round(time.monotonic() - start, 1))

    converged, _, seconds = machine.playbook("xen_bridge.yml", xen_bridge_rollback_timeout=CALM_TIMEOUT)
    measure("converging run after the rollback s", seconds)
    assert converged.ok and converged.changed == 0, converged.failures
    ping = subprocess.run(["ip", "netns", "exec", machine.namespace, "ping", "-c", "2", "-W", "2", "192.168.56.5"],
                          capture_output=True, text=True)
    assert ping.returncode == 0, ping.stdout


def _seconds_between(first: str, second: str) -> float:
    from datetime import datetime

    def stamp(line: str) -> datetime:
        return datetime.strptime(" ".join(line.split()[:2]), "%Y-%m-%d %H:%M:%S")

    return (stamp(second) - stamp(first)).total_seconds()
