"""The dnsmasq role's DHCP probe against a real dnsmasq, between two private network namespaces
joined by a veth pair: the other "host" holds the same address as the prober (two lab hosts with
the default dom0 address on one segment) and must still count as another server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mirage_env.paths import project_root
from tests.support import require_root_and_tools

PROBE = project_root() / "roles/dnsmasq/files/dhcp_probe.py"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def segment(tmp_path):
    """(prober namespace, its interface, server namespace, its interface); removed by name."""
    require_root_and_tools("ip", "dnsmasq")
    tag = f"{os.getpid() % 100000}"
    prober, server = f"mev-probe-a{tag}", f"mev-probe-b{tag}"
    pidfile = tmp_path / "dnsmasq.pid"
    try:
        for ns in (prober, server):
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("link", "add", f"mevpa{tag}", "type", "veth", "peer", "name", f"mevpb{tag}")
        for ns, dev in ((prober, f"mevpa{tag}"), (server, f"mevpb{tag}")):
            ip("link", "set", dev, "netns", ns)
            ip("-n", ns, "addr", "add", "192.168.56.5/24", "dev", dev)  # the same address on both
            ip("-n", ns, "link", "set", dev, "up")
        yield prober, f"mevpa{tag}", server, f"mevpb{tag}", pidfile, tmp_path
    finally:
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass
        for ns in (prober, server):  # the veth pair goes with its namespaces...
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        # ...unless moving it failed half-way: then it is still here, under its own name
        subprocess.run(["ip", "link", "del", f"mevpa{tag}"], capture_output=True)


def run_probe(ns: str, dev: str) -> dict:
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, str(PROBE), "--interface", dev,
                           "--seconds", "5"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_server_with_the_probers_own_address_is_another_server(segment):
    prober, prober_dev, server, server_dev, pidfile, tmp = segment
    assert run_probe(prober, prober_dev)["offers"] == []  # nothing serves yet

    subprocess.run(["ip", "netns", "exec", server, "dnsmasq", "--port=0", f"--interface={server_dev}",
                    "--bind-interfaces", "--except-interface=lo", "--no-ping",
                    "--dhcp-range=192.168.56.150,192.168.56.160,2m", f"--dhcp-leasefile={tmp / 'leases'}",
                    f"--pid-file={pidfile}"], check=True, capture_output=True, text=True)
    for _ in range(50):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.1)
    server_mac = subprocess.run(
        ["ip", "-n", server, "-o", "link", "show", server_dev], capture_output=True, text=True,
        check=True).stdout.split("link/ether ")[1].split()[0]

    result = run_probe(prober, prober_dev)
    assert result["probed"] and result["own"] == [], result
    assert [(o["server"], o["mac"]) for o in result["offers"]] == [("192.168.56.5", server_mac)], result
    assert result["offers"][0]["offered"].startswith("192.168.56.1")
