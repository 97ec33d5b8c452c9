"""The unikernel's DHCP client against real servers nobody here wrote (ISC
dhcpd, Kea, busybox udhcpd, dnsmasq) through the lease life cycle of RFC
2131: DISCOVER/OFFER/REQUEST/ACK, RENEWING at T1 (a unicast REQUEST with
ciaddr, 4.3.2 and 4.4.5), REBINDING at T2 when unicast is lost, the end of
a lease no server extends, and a NAK while renewing.

What the server recorded (its lease file and log) and a capture of every
frame on the unikernel's TAP (tcpdump) are the evidence. Leases are a few
seconds long; dnsmasq's shortest is 2 minutes, so with it only binding
and renewing (T1 set by an option) are tested here (test_ping_dhcp.py
has its rebinding and NAK tests).
"""

from __future__ import annotations

import re
import time

import pytest

from dhcpcapture import DhcpCapture, DhcpMessage
from dhcpservers import PACKAGES, SERVERS, DhcpServer
from netlab import need_tool
from tests.support import require

LEASE_S = 8            # T1 4 s, T2 7 s (RFC 2131 4.4.5 defaults: 0.5 and 0.875 of the lease)
SHORT_LEASE_S = 6      # the expiry test: T1 3 s, T2 5.25 s
DNSMASQ_T1_S = 3
SLACK_S = 1.0          # timer granularity plus a loaded 2-core CI machine
SHORT_LEASE_SERVERS = ["isc", "kea", "udhcpd"]
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
OTHER_MAC = "02:00:5e:00:53:99"   # a client that is not there (locally administered)

pytestmark = pytest.mark.lab(dnsmasq=False)


@pytest.fixture
def serve(lab):
    """serve(name, lease_s) starts that server on the lab bridge."""

    def start(name: str, lease_s: int = LEASE_S) -> DhcpServer:
        cls = SERVERS[name]
        require(cls.path() is not None, f"{cls.binary} not installed (package {PACKAGES[name]}; "
                                        "run ./scripts/install-deps.sh)")
        if name == "dnsmasq":
            return cls(lab, lease_s, options=(f"option:T1,{DNSMASQ_T1_S}",)).start()
        return cls(lab, lease_s).start()

    return start


def boot(lab):
    """The www app on a fresh TAP with tcpdump on it from the first frame;
    returns (unikernel, capture) once the client says it is bound."""
    need_tool("tcpdump")
    tap = lab.add_tap()
    cap = DhcpCapture(lab, tap)
    uk = lab.start("www", tap=tap, wait=False)
    uk.ip = uk.wait_console(r"DHCP: bound to (\S+) from ", timeout=25).group(1)
    return uk, cap


def ping_ok(uk, ip: str | None = None) -> bool:
    need_tool("ping")
    return uk.exec_in_ns(["ping", "-n", "-c", "1", "-W", "1", ip or uk.ip]).returncode == 0


def http_code(uk) -> int:
    need_tool("curl")
    r = uk.exec_in_ns(["curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", f"http://{uk.ip}/"])
    return int(r.stdout or 0)


def client_msgs(cap: DhcpCapture, uk) -> list[DhcpMessage]:
    return [m for m in cap.messages() if m.op == 1 and m.chaddr == uk.mac]


def server_msgs(cap: DhcpCapture, uk) -> list[DhcpMessage]:
    return [m for m in cap.messages() if m.op == 2 and m.chaddr == uk.mac]


def reply_to(cap: DhcpCapture, uk, request: DhcpMessage) -> DhcpMessage | None:
    """The server's ACK or NAK to a REQUEST (a late OFFER for the same xid, as
    dnsmasq sends when it answers a retransmitted DISCOVER, is not one)."""
    return next((m for m in server_msgs(cap, uk)
                 if m.xid == request.xid and m.time >= request.time and m.type in ("ACK", "NAK")), None)


def bridge_mac(lab) -> str:
    return lab.exec(["cat", f"/sys/class/net/{lab.bridge}/address"], check=True).stdout.strip()


def selecting_request(cap: DhcpCapture, uk) -> DhcpMessage:
    """The REQUEST answering the OFFER (RFC 2131 4.4.1: requested address
    and server identifier, ciaddr 0, broadcast); its send time starts the lease."""
    reqs = [m for m in client_msgs(cap, uk) if m.type == "REQUEST" and m.ciaddr == "0.0.0.0"]
    assert reqs, cap.dump()
    return reqs[0]


def assert_renewing_request(m: DhcpMessage, ip: str, lab) -> None:
    """RFC 2131 4.3.2 / 4.4.5 / table 5: in RENEWING the REQUEST is unicast to
    the server, from our address, ciaddr set, no requested address or server id."""
    assert (m.dst_ip, m.src_ip, m.ciaddr) == (lab.host_ip, ip, ip), str(m)
    assert m.dst_mac == bridge_mac(lab), str(m)
    assert 50 not in m.options and 54 not in m.options, str(m)


def assert_rebinding_request(m: DhcpMessage, uk) -> None:
    """RFC 2131 4.4.5: in REBINDING the REQUEST is broadcast, ciaddr set, no
    requested address or server id."""
    assert (m.dst_ip, m.dst_mac, m.ciaddr) == ("255.255.255.255", BROADCAST_MAC, uk.ip), str(m)
    assert 50 not in m.options and 54 not in m.options, str(m)


def wait_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


# ---- DISCOVER, OFFER, REQUEST, ACK ----------------------------------------------


@pytest.mark.parametrize("server_name", ["isc", "kea", "udhcpd", "dnsmasq"])
def test_binds_and_serves(lab, serve, server_name):
    server = serve(server_name)
    uk, cap = boot(lab)
    assert f"DHCP: bound to {uk.ip} from {lab.host_ip}, lease {server.lease_s} s" in uk.console_text()
    assert f"IP address: {uk.ip} netmask 255.255.255.0 gateway {lab.host_ip}" in uk.console_text()
    # the server's own records: an ACK in its log, a lease in its lease file
    assert server.acks(uk.ip, uk.mac) >= 1, server.log()
    assert server.wait_lease_end_after(uk.mac, time.time()) <= time.time() + server.lease_s + 1
    # the messages on the wire (RFC 2131 4.4.1, table 5)
    msgs = client_msgs(cap, uk)
    discover = msgs[0]
    assert discover.type == "DISCOVER", cap.dump()
    assert (discover.dst_ip, discover.dst_mac, discover.src_ip, discover.ciaddr) == \
        ("255.255.255.255", BROADCAST_MAC, "0.0.0.0", "0.0.0.0"), str(discover)
    assert 54 not in discover.options, str(discover)
    req = selecting_request(cap, uk)
    offer = next(m for m in server_msgs(cap, uk) if m.type == "OFFER" and m.xid == req.xid)
    assert req.ip_option(50) == offer.yiaddr == uk.ip, cap.dump()
    assert req.ip_option(54) == offer.ip_option(54) == lab.host_ip, cap.dump()
    assert (req.dst_ip, req.dst_mac, req.src_ip) == ("255.255.255.255", BROADCAST_MAC, "0.0.0.0"), str(req)
    ack = reply_to(cap, uk, req)
    assert ack is not None and ack.type == "ACK" and ack.yiaddr == uk.ip, cap.dump()
    assert ack.u32_option(51) == server.lease_s, str(ack)
    # and the address is in use: ping and HTTP answered
    assert ping_ok(uk), uk.describe()
    assert http_code(uk) == 200, uk.describe()
    # a clean exit gives the address back: RELEASE unicast to the server (RFC 2131 4.4.6, table 5)
    assert uk.stop() == 0, uk.describe()
    release = next((m for m in client_msgs(cap, uk) if m.type == "RELEASE"), None)
    assert release is not None, cap.dump()
    assert (release.dst_ip, release.dst_mac, release.src_ip, release.ciaddr) == \
        (lab.host_ip, bridge_mac(lab), uk.ip, uk.ip), str(release)
    assert release.ip_option(54) == lab.host_ip and 50 not in release.options, str(release)
    deadline = time.monotonic() + 3
    while not server.released(uk.ip, uk.mac) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.released(uk.ip, uk.mac), server.log()
    uk.assert_no_sanitizer_report()


# ---- RENEWING at T1 ----------------------------------------------------------------


@pytest.mark.parametrize("server_name", ["isc", "kea", "udhcpd", "dnsmasq"])
def test_renews_at_t1_with_a_unicast_request(lab, serve, server_name):
    server = serve(server_name)
    uk, cap = boot(lab)
    first_end = server.wait_lease_end_after(uk.mac, 0)
    t1 = DNSMASQ_T1_S if server_name == "dnsmasq" else server.lease_s / 2
    uk.wait_console(rf"DHCP: renewed {re.escape(uk.ip)} from {re.escape(lab.host_ip)}, lease {server.lease_s} s",
                    timeout=t1 + 10)
    start = selecting_request(cap, uk)
    renew = next(m for m in client_msgs(cap, uk) if m.type == "REQUEST" and m.ciaddr != "0.0.0.0")
    assert_renewing_request(renew, uk.ip, lab)
    # at T1, counted from when the first REQUEST was sent (RFC 2131 4.4.1)
    assert start.time + t1 - 0.05 <= renew.time <= start.time + t1 + SLACK_S, cap.dump()
    ack = reply_to(cap, uk, renew)
    assert ack is not None and ack.type == "ACK" and ack.yiaddr == uk.ip, cap.dump()
    # the server extended the lease and says so in its records
    assert server.wait_lease_end_after(uk.mac, first_end) > first_end
    assert server.acks(uk.ip, uk.mac) >= 2, server.log()
    if server_name != "dnsmasq":
        # past the first lease's end the address is still ours and in use
        wait_until(first_end + 1.5)
        assert ping_ok(uk) and http_code(uk) == 200, uk.describe()
    assert "IP address: none" not in uk.console_text() and "expired" not in uk.console_text()
    assert len(re.findall(r"IP address: ", uk.console_text())) == 1


# ---- REBINDING at T2 -------------------------------------------------------------


@pytest.mark.parametrize("server_name", SHORT_LEASE_SERVERS)
def test_rebinds_at_t2_when_unicast_is_lost(lab, serve, server_name):
    need_tool("ebtables")
    server = serve(server_name)
    uk, cap = boot(lab)
    first_end = server.wait_lease_end_after(uk.mac, 0)
    # From now on the server gets no unicast DHCP: frames to the bridge's
    # own MAC for UDP port 67 are dropped before the host (and the servers'
    # raw sockets) see them; broadcasts still pass. The TAP capture sees all.
    lab.exec(["ebtables", "-A", "INPUT", "-p", "IPv4", "--ip-proto", "udp", "--ip-dport", "67",
              "-d", "!", BROADCAST_MAC, "-j", "DROP"], check=True)
    uk.wait_console(r"DHCP: rebinding ", timeout=15)
    m = uk.wait_console(rf"DHCP: renewed {re.escape(uk.ip)} from {re.escape(lab.host_ip)}", timeout=10)
    start = selecting_request(cap, uk)
    later = [x for x in client_msgs(cap, uk) if x.type == "REQUEST" and x.ciaddr != "0.0.0.0"]
    unicast = [x for x in later if x.dst_ip != "255.255.255.255"]
    broadcast = [x for x in later if x.dst_ip == "255.255.255.255"]
    assert unicast and broadcast, cap.dump()
    rebind = broadcast[0]
    for x in unicast:
        assert_renewing_request(x, uk.ip, lab)
    # the server never saw the unicast ones: no answer before the broadcast
    assert not [x for x in server_msgs(cap, uk) if unicast[0].time <= x.time < rebind.time], cap.dump()
    assert_rebinding_request(rebind, uk)
    t2 = server.lease_s * 7 / 8
    assert start.time + t2 - 0.05 <= rebind.time <= start.time + t2 + SLACK_S, cap.dump()
    assert max(x.time for x in unicast) < rebind.time
    ack = reply_to(cap, uk, rebind)
    assert ack is not None and ack.type == "ACK" and ack.yiaddr == uk.ip, cap.dump()
    assert server.wait_lease_end_after(uk.mac, first_end) > first_end
    assert server.acks(uk.ip, uk.mac) == 2, server.log()  # the first ACK and the rebinding one
    wait_until(first_end + 1.5)
    assert ping_ok(uk), uk.describe()
    assert "IP address: none" not in uk.console_text()[m.start():]


# ---- the lease ends ----------------------------------------------------------------


@pytest.mark.parametrize("server_name", SHORT_LEASE_SERVERS)
def test_lease_expires_when_no_server_answers(lab, serve, server_name):
    server = serve(server_name, SHORT_LEASE_S)
    uk, cap = boot(lab)
    server_end = server.wait_lease_end_after(uk.mac, 0)
    server.stop()
    # RENEWING: still our address
    uk.wait_console(r"DHCP: renewing ", timeout=SHORT_LEASE_S)
    assert ping_ok(uk), uk.describe()
    expired = uk.wait_console(r"DHCP: lease expired, restarting\n", timeout=SHORT_LEASE_S + 5)
    assert "IP address: none" in uk.console_text()[expired.start():]
    msgs = client_msgs(cap, uk)
    start = selecting_request(cap, uk)
    rediscover = next((x for x in msgs if x.type == "DISCOVER" and x.time > start.time), None)
    assert rediscover is not None and rediscover.ciaddr == "0.0.0.0", cap.dump()
    last_requests = [x for x in msgs if x.type == "REQUEST" and start.time < x.time < rediscover.time]
    assert any(x.dst_ip == lab.host_ip for x in last_requests), cap.dump()            # RENEWING
    assert last_requests[-1].dst_ip == "255.255.255.255", cap.dump()                  # REBINDING
    # RFC 2131 4.4.5: the address is given up when the lease ends: not before
    # the end the client computed from its REQUEST, not after the end the
    # server recorded (whole seconds in its file, so up to 1 s later)
    assert start.time + SHORT_LEASE_S - 0.05 <= rediscover.time <= server_end + 1 + 0.25, \
        f"server's lease end {server_end}, request {start.time}:\n{cap.dump()}"
    assert not ping_ok(uk), uk.describe()  # nothing answers on the old address


# ---- NAK while renewing ------------------------------------------------------------


@pytest.mark.parametrize("server_name", ["isc", "kea"])
def test_nak_while_renewing_goes_back_to_init(lab, serve, server_name):
    server = serve(server_name)
    uk, cap = boot(lab)
    old_ip = uk.ip
    # The server comes back with its lease database saying our address is
    # another client's: it NAKs the renewal (RFC 2131 4.3.2). (Both stay
    # silent, as the RFC allows, for an address they have no record of.)
    server.give_leases_to(uk.mac, OTHER_MAC)
    nak_line = uk.wait_console(r"DHCP: NAK from server, restarting", timeout=server.lease_s)
    new_ip = uk.wait_console(r"DHCP: bound to (\S+) from ", timeout=20, after=nak_line.end()).group(1)
    assert "IP address: none" in uk.console_text()[nak_line.start():]
    assert new_ip != old_ip
    msgs = client_msgs(cap, uk)
    renew = next(x for x in msgs if x.type == "REQUEST" and x.ciaddr == old_ip)
    assert_renewing_request(renew, old_ip, lab)
    nak = reply_to(cap, uk, renew)
    assert nak is not None and nak.type == "NAK", cap.dump()
    # back to INIT: a DISCOVER from 0.0.0.0, nothing more for the old address
    again = next((x for x in msgs if x.type == "DISCOVER" and x.time > nak.time), None)
    assert again is not None and again.ciaddr == "0.0.0.0" and again.src_ip == "0.0.0.0", cap.dump()
    assert not [x for x in msgs if x.time > nak.time and old_ip in (x.ciaddr, x.src_ip, x.ip_option(50))], cap.dump()
    assert server.naks(old_ip, uk.mac) >= 1, server.log()
    assert server.acks(new_ip, uk.mac) >= 1, server.log()
    uk.ip = new_ip
    assert ping_ok(uk) and not ping_ok(uk, old_ip), uk.describe()
