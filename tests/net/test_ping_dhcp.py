"""The ping app against a real dnsmasq and the real ping, in a namespace."""

from __future__ import annotations

import re
import signal
import time

import pytest

from netlab import need_tool


def ping(uk, *args: str, count: int = 3, dst: str | None = None):
    need_tool("ping")
    return uk.exec_in_ns(["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", *args, dst or uk.ip])


def test_lease_in_dnsmasq_and_on_console(unikernel, lab):
    uk = unikernel("ping")
    lease = lab.lease_for(uk.mac)
    assert lease is not None and lease["ip"] == uk.ip
    assert lab.subnet + "." in uk.ip
    text = uk.console_text()
    assert re.search(rf"IP address: {re.escape(uk.ip)} netmask 255\.255\.255\.0 gateway {lab.host_ip}\b", text), text
    assert f"DHCP: bound to {uk.ip} from {lab.host_ip}, lease 120 s" in text
    log = lab.dnsmasq_log()
    assert f"DHCPACK({lab.bridge}) {uk.ip} {uk.mac}" in log


def test_ping_answered_and_arp_resolved(unikernel):
    uk = unikernel("ping")
    res = ping(uk, count=5)
    assert res.returncode == 0, res.stdout + res.stderr
    assert " 0% packet loss" in res.stdout, res.stdout
    # biggest unfragmented echo: 1500 - 20 (IP) - 8 (ICMP) = 1472 bytes
    res = ping(uk, "-s", "1472", "-M", "do", count=2)
    assert res.returncode == 0, res.stdout + res.stderr
    neigh = uk.exec_in_ns(["ip", "neigh", "show", uk.ip]).stdout
    assert uk.mac in neigh.lower(), neigh
    assert uk.alive()


def test_fragments_reassembled_and_oversize_dropped(unikernel):
    uk = unikernel("ping")
    # 2000 bytes need two fragments: reassembled (RFC 1122 3.3.2), answered in two
    res = ping(uk, "-s", "2000", count=2)
    assert res.returncode == 0, res.stdout + res.stderr
    # beyond the 4480-byte reassembly buffer: dropped, the stack keeps running
    res = ping(uk, "-s", "8000", count=1)
    assert res.returncode != 0
    assert ping(uk, count=1).returncode == 0
    uk.stop()
    assert re.search(r"net: rx \d+ tx \d+", uk.console_text())
    uk.assert_no_sanitizer_report()


def test_two_unikernels_get_their_own_leases(unikernel, lab):
    a = unikernel("ping")
    b = unikernel("ping")
    assert a.ip != b.ip
    assert {lab.lease_for(a.mac)["ip"], lab.lease_for(b.mac)["ip"]} == {a.ip, b.ip}
    assert ping(a, count=2).returncode == 0
    assert ping(b, count=2).returncode == 0


@pytest.mark.lab(dhcp_options=("option:T1,4", "option:T2,100"))
def test_dhcp_renews_at_t1(unikernel, lab):
    # dnsmasq's shortest lease is 2 minutes, but T1 can be set: 4 s.
    uk = unikernel("ping")
    first = lab.lease_for(uk.mac)["expiry"]
    uk.wait_console(rf"DHCP: renewed {re.escape(uk.ip)} from {re.escape(lab.host_ip)}", timeout=20)
    # the renewal is a unicast REQUEST with ciaddr, ACKed; the lease moved on
    deadline = time.monotonic() + 5
    while lab.lease_for(uk.mac)["expiry"] <= first and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lab.lease_for(uk.mac)["expiry"] > first
    assert len(re.findall(rf"DHCPACK\({lab.bridge}\) {re.escape(uk.ip)} {uk.mac}", lab.dnsmasq_log())) >= 2
    # address unchanged: no second "IP address" line, still answers
    assert len(re.findall(r"IP address: ", uk.console_text())) == 1
    assert ping(uk, count=1).returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_exit_releases_lease(unikernel, lab, sig):
    uk = unikernel("ping")
    assert uk.stop(sig) == 0, uk.describe()
    text = uk.console_text()
    assert f"DHCP: released {uk.ip}" in text and "ping: exit" in text, text
    assert f"DHCPRELEASE({lab.bridge}) {uk.ip} {uk.mac}" in lab.dnsmasq_log()
    deadline = time.monotonic() + 3
    while lab.lease_for(uk.mac) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lab.lease_for(uk.mac) is None
    uk.assert_no_sanitizer_report()


def test_static_address(unikernel, lab):
    ip = f"{lab.subnet}.10"
    uk = unikernel("ping", static=f"{ip}/24", gw=lab.host_ip)
    assert f"IP address: {ip} netmask 255.255.255.0 gateway {lab.host_ip}" in uk.console_text()
    assert ping(uk, count=2).returncode == 0
    assert uk.mac not in lab.dnsmasq_log()  # no DHCP at all
    assert uk.stop() == 0


def test_static_replies_through_gateway(unikernel, lab):
    # A second subnet on the bridge: pings from 10.57.0.1 are off-link for
    # the unikernel, so the replies must go through its gateway.
    lab.exec(["ip", "addr", "add", "10.57.0.1/24", "dev", lab.bridge], check=True)
    uk = unikernel("ping", static=f"{lab.subnet}.11/24", gw=lab.host_ip)
    res = ping(uk, "-I", "10.57.0.1", count=2)
    assert res.returncode == 0, res.stdout + res.stderr
    # without a gateway there is no route back: no replies
    nogw = unikernel("ping", static=f"{lab.subnet}.12/24")
    assert ping(nogw, "-I", "10.57.0.1", count=2).returncode != 0
    assert ping(nogw, count=1).returncode == 0


HOSTILE_SENDER = r'''
import os, random, socket, struct, sys

bridge, dst_mac, dst_ip, src_ip = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), sys.argv[3], sys.argv[4]
src_mac = bytes.fromhex("02feedbeef01")
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((bridge, 0))
dst, src = socket.inet_aton(dst_ip), socket.inet_aton(src_ip)

def ip(proto, payload, ihl=5, frag=0, tot=None, good=True, opts=b""):
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tot if tot is not None else 4 * ihl + len(payload),
                    1, frag, 64, proto, 0, src, dst) + opts
    c = csum(h) if good else csum(h) ^ 0x5a5a
    return h[:10] + struct.pack("!H", c) + h[12:] + payload

def echo(data=b"x" * 32, good=True):
    m = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + data
    c = csum(m) if good else csum(m) ^ 1
    return m[:2] + struct.pack("!H", c) + m[4:]

def send(payload, etype=0x0800):
    s.send(dst_mac + src_mac + struct.pack("!H", etype) + payload)

frames = [
    (echo(), 0x0800),                                   # a bare ICMP message as an IP packet
    (ip(1, echo(), good=False), 0x0800),                # bad IP header checksum
    (ip(1, echo(good=False)), 0x0800),                  # bad ICMP checksum
    (ip(1, echo(), ihl=4), 0x0800),                     # ihl < 5
    (ip(1, echo(), ihl=15), 0x0800),                    # ihl beyond the packet
    (ip(1, echo(), tot=1500), 0x0800),                  # total length beyond the frame
    (ip(1, echo(), tot=10), 0x0800),                    # total length < header
    (ip(1, echo(), frag=0x2000), 0x0800),               # first fragment
    (ip(1, echo(), frag=0x0005), 0x0800),               # later fragment
    (ip(17, struct.pack("!HHHH", 67, 68, 4000, 0) + b"x" * 20), 0x0800),   # UDP length beyond
    (ip(17, struct.pack("!HHHH", 67, 68, 3, 0)), 0x0800),                  # UDP length < 8
    (ip(17, struct.pack("!HHHH", 67, 68, 28, 0xbad) + b"\0" * 20), 0x0800),  # bad UDP checksum
    (ip(17, struct.pack("!HHHH", 67, 68, 8 + 300, 0) + b"\x02\x01\x06" + b"\xff" * 297), 0x0800),  # bogus BOOTP
    (ip(6, b"\0" * 3), 0x0800),                         # truncated TCP (no TCP in ping)
    (ip(99, b"zz"), 0x0800),                            # unknown protocol
    (b"\x00\x01\x08\x00\x06\x04\x00\x01" + src_mac, 0x0806),  # truncated ARP
    (b"\x00\x01\x08\x00\x10\x04\x00\x01" + b"\0" * 20, 0x0806),  # ARP with hlen 16
    (b"", 0x0800), (b"\x45", 0x0800), (b"\x00" * 46, 0x86dd),
]
n = 0
for payload, etype in frames:
    for _ in range(5):
        send(payload, etype)
        n += 1
rnd = random.Random(1234)
for _ in range(2000):
    send(bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 1400))), rnd.choice([0x0800, 0x0806]))
    n += 1
print(n)
'''


def test_hostile_frames_do_not_hurt(unikernel, lab):
    need_tool("python3")
    uk = unikernel("ping")
    res = lab.run_python(HOSTILE_SENDER, lab.bridge, uk.mac, uk.ip, lab.host_ip)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) > 2000
    assert uk.alive(), uk.describe()
    assert ping(uk, count=3).returncode == 0
    assert uk.stop() == 0, uk.describe()
    m = re.search(r"net: rx (\d+) tx \d+ dropped rx (\d+) tx \d+ bad checksums (\d+)", uk.console_text())
    assert m, uk.console_text()
    rx, dropped, bad = map(int, m.groups())
    assert rx > 2000 and dropped > 1900 and bad >= 15, m.group(0)
    uk.assert_no_sanitizer_report()


def test_tap_removed_is_an_error_exit(unikernel, lab):
    uk = unikernel("ping")
    lab.exec(["ip", "link", "del", uk.tap], check=True)
    try:
        rc = uk.proc.wait(timeout=10)
    except Exception:
        pytest.fail(f"unikernel still running after its TAP was deleted:\n{uk.describe()}")
    assert rc == 1, uk.describe()
    assert "net: device error, exiting" in uk.console_text()


@pytest.mark.lab(dhcp_options=("option:T1,3", "option:T2,7"))
def test_dhcp_rebinds_when_the_server_is_unreachable_by_unicast(unikernel, lab):
    uk = unikernel("ping")
    # The server's side moves to another MAC and stops answering ARP
    # requests (arp_ignore=8; it still resolves addresses itself): the
    # client's unicast renewal goes to the old MAC and is lost, so at T2
    # it broadcasts (REBINDING), which dnsmasq answers.
    lab.exec(["sysctl", "-q", "-w", f"net.ipv4.conf.{lab.bridge}.arp_ignore=8"], check=True)
    lab.exec(["ip", "link", "set", lab.bridge, "address", "02:00:5e:00:53:01"], check=True)
    uk.wait_console(r"DHCP: renewing ", timeout=10)
    m = uk.wait_console(r"DHCP: rebinding .*\n(.*\n)*DHCP: renewed ", timeout=15)
    assert f"renewed {uk.ip} from {lab.host_ip}" in uk.console_text()[m.start():]
    assert "IP address: none" not in uk.console_text()


@pytest.mark.lab(dhcp_options=("option:T1,3",))
def test_dhcp_nak_restarts_with_a_new_lease(unikernel, lab):
    uk = unikernel("ping")
    old_ip = uk.ip
    # the server comes back serving another range: it NAKs the renewal
    lab.restart_dnsmasq(f"{lab.subnet}.210", f"{lab.subnet}.220")
    nak = uk.wait_console(r"DHCP: NAK from server, restarting", timeout=15)
    new_ip = uk.wait_console(r"DHCP: bound to (\S+) from", timeout=20, after=nak.end()).group(1)
    assert new_ip != old_ip and 210 <= int(new_ip.rsplit(".", 1)[1]) <= 220
    assert "IP address: none" in uk.console_text()
    assert f"DHCPNAK({lab.bridge}) {old_ip} {uk.mac}" in lab.dnsmasq_log()
    assert lab.lease_for(uk.mac)["ip"] == new_ip
    uk.ip = new_ip
    assert ping(uk, count=1).returncode == 0


def test_ping_flood(unikernel):
    uk = unikernel("ping")
    need_tool("ping")
    res = uk.exec_in_ns(["ping", "-n", "-q", "-f", "-c", "3000", "-s", "1000", uk.ip], timeout=60)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", res.stdout)
    assert m, res.stdout + res.stderr
    sent, got = map(int, m.groups())
    assert sent == 3000 and got >= 0.99 * sent, res.stdout
    assert uk.stop() == 0
    uk.assert_no_sanitizer_report()
