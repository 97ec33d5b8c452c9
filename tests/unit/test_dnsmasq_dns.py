"""The dnsmasq role's configuration, run by the real dnsmasq in a network namespace made here:
DNS answers the domUs' names on the bridge only — no socket on the loopback or on another
interface (the uplink), nothing forwarded upstream."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import uuid

import pytest

from mirage_env.settings import Settings
from tests.unit.test_roles import render, role_defaults

from tests.support import require


@pytest.fixture(autouse=True)
def _dnsmasq_and_root():
    require(shutil.which("dnsmasq") is not None and os.geteuid() == 0, "needs dnsmasq and root (network namespaces)")

QUERY = """
import socket, struct, sys
name, server = sys.argv[1], sys.argv[2]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(q, (server, 53))
try:
    r = s.recv(512)
except OSError as e:
    print("noanswer", e); sys.exit(0)
rcode, ancount = r[3] & 15, struct.unpack(">H", r[6:8])[0]
print("rcode", rcode, "answers", ancount, ".".join(map(str, r[-4:])) if ancount else "")
"""


def ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@pytest.fixture
def dom0_namespace(tmp_path):
    ns = f"mevdns-{uuid.uuid4().hex[:6]}"
    ip("netns", "add", ns)
    proc = None
    try:
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "link", "add", "br0", "type", "bridge")
        ip("-n", ns, "addr", "add", "192.168.56.5/24", "dev", "br0")
        ip("-n", ns, "link", "set", "br0", "up")
        ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")  # the uplink
        ip("-n", ns, "addr", "add", "10.0.2.15/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "link", "set", "eth0p", "up")
        variables = {**role_defaults(), **Settings().role_vars(),
                     "dnsmasq_lease_file": str(tmp_path / "leases"),
                     "dnsmasq_hosts_file": str(tmp_path / "dhcp-hosts")}
        conf = tmp_path / "mirage-env.conf"
        conf.write_text(render("dnsmasq", "etc/dnsmasq.d/mirage-env.conf.j2", variables))
        expiry = int(time.time()) + 3600
        (tmp_path / "leases").write_text(f"{expiry} 00:16:3e:6e:52:7b 192.168.56.167 k-site *\n")
        (tmp_path / "dhcp-hosts").write_text("00:16:3e:6e:52:7b,k-site\n")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "dnsmasq", "--keep-in-foreground",
                                 f"--conf-file={conf}", f"--pid-file={tmp_path / 'pid'}", "--log-facility=-"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(100):
            if ":53" in ip("netns", "exec", ns, "ss", "-Hlnu").stdout or proc.poll() is not None:
                break
            time.sleep(0.05)
        yield ns, proc
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        ip("netns", "del", ns, check=False)


def query(ns: str, name: str, server: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", QUERY, name, server],
                          capture_output=True, text=True, timeout=20).stdout.strip()


def test_dns_answers_domu_names_on_the_bridge_only(dom0_namespace):
    ns, proc = dom0_namespace
    assert proc.poll() is None, proc.stdout.read()
    sockets = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hlnup", "sport = :53"],
                             capture_output=True, text=True).stdout
    sockets += subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hlntp", "sport = :53"],
                              capture_output=True, text=True).stdout
    local = [line.split()[3] for line in sockets.splitlines() if "dnsmasq" in line]
    assert local, sockets
    for address in local:  # br0's address (and its IPv6 link-local), nothing else
        assert address.startswith("192.168.56.5:") or "%br0" in address, local
    assert "answers 1 192.168.56.167" in query(ns, "k-site.mirage.internal", "192.168.56.5")
    assert "answers 1 192.168.56.167" in query(ns, "k-site", "192.168.56.5")
    assert "rcode 3" in query(ns, "absent.mirage.internal", "192.168.56.5")  # NXDOMAIN, not forwarded
    # nothing upstream: another domain is not forwarded (refused or not found), and the uplink's
    # and the loopback's addresses have no DNS at all
    assert "answers 0" in query(ns, "example.com", "192.168.56.5")
    assert "noanswer" in query(ns, "k-site.mirage.internal", "10.0.2.15")
    assert "noanswer" in query(ns, "k-site.mirage.internal", "127.0.0.1")
