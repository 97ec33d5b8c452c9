"""A raw-socket peer for hostile-input tests, run inside the lab namespace:

    python3 rawpeer.py IFACE MAC IP SCENARIO ARGS...

IFACE is the free end of a veth pair whose other end is a bridge port, so
frames we write reach the unikernel and frames for MAC come back to us.
The kernel holds no address on IFACE and never answers for IP (it would
reset our hand-made TCP connections). We answer ARP for IP ourselves.

Scenarios print one JSON object with what was observed:

    tcp UK_IP PORT QUERY    hand-made TCP against auth (QUERY: a good login)
    frames UK_IP            truncated/broken frames (nothing should answer)
    dhcp_bogus SECONDS      wait for a DHCPDISCOVER, answer it with bogus OFFERs
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import socket
import struct
import sys
import time
from pathlib import Path

ETH_P_ALL = 0x0003
BCAST = b"\xff" * 6


def mac_bytes(s: str) -> bytes:
    return bytes(int(x, 16) for x in s.split(":"))


def ip_bytes(s: str) -> bytes:
    return socket.inet_aton(s)


def _dhcp_probe():
    """The dnsmasq role's DHCP probe script, for its RFC 1071 checksum (one copy of it)."""
    path = Path(__file__).resolve().parents[2] / "roles" / "dnsmasq" / "files" / "dhcp_probe.py"
    spec = importlib.util.spec_from_file_location("dhcp_probe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


csum = _dhcp_probe().checksum


class Peer:
    def __init__(self, iface: str, mac: str, ip: str):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((iface, 0))
        self.mac, self.ip = mac_bytes(mac), ip_bytes(ip)
        self.ipid = 1

    # -- frames -------------------------------------------------------------
    def send(self, frame: bytes) -> None:
        if len(frame) < 14:
            # the kernel refuses sends shorter than a header: pad with
            # nothing is impossible, so send what AF_PACKET accepts
            frame = frame + b"\0" * (14 - len(frame))
        self.sock.send(frame)

    def eth(self, dst: bytes, etype: int, payload: bytes) -> bytes:
        return dst + self.mac + struct.pack("!H", etype) + payload

    def ipv4(self, dst: bytes, proto: int, payload: bytes, src: bytes | None = None,
             bad_csum: bool = False, tot: int | None = None, flags_frag: int = 0) -> bytes:
        src = src or self.ip
        self.ipid += 1
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, tot if tot is not None else 20 + len(payload),
                        self.ipid & 0xFFFF, flags_frag, 64, proto, 0, src, dst)
        c = csum(h) ^ (0x5555 if bad_csum else 0)
        return h[:10] + struct.pack("!H", c) + h[12:] + payload

    def tcp(self, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, data: bytes = b"",
            wnd: int = 65535, opts: bytes = b"", bad_csum: bool = False) -> bytes:
        off = (20 + len(opts)) // 4
        h = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, off << 4, flags, wnd, 0, 0)
        seg = h + opts + data
        pseudo = self.ip + dst + struct.pack("!BBH", 0, 6, len(seg))
        c = csum(pseudo + seg) ^ (0x1111 if bad_csum else 0)
        return seg[:16] + struct.pack("!H", c) + seg[18:]

    def recv_until(self, pred, timeout: float):
        """Frames until pred(frame) returns something truthy (returned), or
        None on timeout. ARP requests for our IP are answered meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            f, addr = self.sock.recvfrom(65535)
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            self.answer_arp(f)
            v = pred(f)
            if v:
                return v

    def answer_arp(self, f: bytes) -> None:
        if len(f) >= 42 and f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x01" and f[38:42] == self.ip:
            sha, spa = f[22:28], f[28:32]
            arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + self.mac + self.ip + sha + spa
            self.send(self.eth(sha, 0x0806, arp))

    def resolve(self, ip: bytes) -> bytes | None:
        arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + self.mac + self.ip + b"\0" * 6 + ip
        self.send(self.eth(BCAST, 0x0806, arp))

        def is_reply(f):
            if len(f) >= 42 and f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x02" and f[28:32] == ip:
                return f[22:28]
            return None
        return self.recv_until(is_reply, 3)


def parse_tcp(f: bytes, src_ip: bytes, dport: int):
    if len(f) < 34 or f[12:14] != b"\x08\x00" or f[23] != 6 or f[26:30] != src_ip:
        return None
    ihl = (f[14] & 15) * 4
    tot = struct.unpack("!H", f[16:18])[0]
    t = f[14 + ihl:14 + tot]
    if len(t) < 20:
        return None
    sport, dp, seq, ack, off, flags, wnd = struct.unpack("!HHIIBBH", t[:16])
    if dp != dport:
        return None
    hl = (off >> 4) * 4
    opts = t[20:hl]
    mss = None
    if len(opts) >= 4 and opts[0] == 2 and opts[1] == 4:
        mss = struct.unpack("!H", opts[2:4])[0]
    return {"sport": sport, "seq": seq, "ack": ack, "flags": flags, "wnd": wnd, "mss": mss, "data": t[hl:]}


SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08


def scenario_tcp(p: Peer, uk_ip_s: str, port_s: str, query: str) -> dict:
    uk_ip, port = ip_bytes(uk_ip_s), int(port_s)
    res: dict = {}
    uk_mac = p.resolve(uk_ip)
    res["arp"] = uk_mac is not None
    if not uk_mac:
        return res
    sport = 40000 + os.getpid() % 20000
    my = 0x10000000

    def send(seq, ack, flags, data=b"", **kw):
        p.send(p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 6, p.tcp(uk_ip, sport, port, seq, ack, flags, data, **kw))))

    def expect(timeout=2.0, pred=lambda s: True):
        return p.recv_until(lambda f: (lambda s: s if s and pred(s) else None)(parse_tcp(f, uk_ip, sport)), timeout)

    # handshake, with MSS 536 announced
    send(my, 0, SYN, opts=b"\x02\x04\x02\x18")
    sa = expect()
    res["synack"] = bool(sa and sa["flags"] == SYN | ACK and sa["ack"] == my + 1)
    res["synack_mss"] = sa and sa["mss"]
    if not res["synack"]:
        return res
    their = sa["seq"] + 1
    my += 1
    send(my, their, ACK)

    req = f"GET /x?{query} HTTP/1.1\r\nHost: {uk_ip_s}\r\n\r\n".encode()
    # 1. bad checksum: must be ignored (no ACK advancing past it)
    send(my, their, ACK | PSH, req, bad_csum=True)
    r = expect(0.7)
    res["bad_csum_ignored"] = r is None
    # 2. far out of window: ACKed (ack stays at my), data dropped
    send(my + 300000, their, ACK | PSH, b"EVIL")
    r = expect(1.5)
    res["out_of_window_acked"] = bool(r and r["flags"] & ACK and r["ack"] == my and not r["data"])
    # 3. out of order (a hole before it): duplicate ACK for my
    send(my + 10, their, ACK | PSH, req[10:])
    r = expect(1.5)
    res["out_of_order_dupack"] = bool(r and r["ack"] == my and not r["data"])
    # 4. blind RST (in window, not exact): challenge ACK, connection lives
    send(my + 5, 0, RST)
    r = expect(1.5)
    res["blind_rst_challenged"] = bool(r and r["flags"] & ACK and r["ack"] == my)
    # 5. SYN on the live connection: challenge ACK
    send(my + 1, 0, SYN)
    r = expect(1.5)
    res["syn_challenged"] = bool(r and r["flags"] & ACK and not r["flags"] & SYN)
    # 6. the real request, in two segments: 200 comes back
    send(my, their, ACK, req[:7])
    expect(1.0)
    send(my + 7, their, ACK | PSH, req[7:])
    my += len(req)
    body = b""
    first_seq, t0 = None, None
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and b"!\n" not in body:
        r = expect(1.0, lambda s: bool(s["data"]))
        if not r:
            break
        if first_seq is None:
            first_seq, t0 = r["seq"], time.monotonic()
        body += r["data"]
        their = (r["seq"] + len(r["data"])) & 0xFFFFFFFF
    res["response"] = body.decode(errors="replace")
    # 7. we do not ACK the response: it comes again after the RTO, and
    # again after twice that (exponential backoff)
    times = []
    for _ in range(2):
        r = expect(6.0, lambda s: s["seq"] == first_seq and bool(s["data"]))
        if not r:
            break
        times.append(time.monotonic() - t0)
    res["retransmits_s"] = [round(t, 2) for t in times]
    send(my, their, ACK)
    # 8. our FIN: we get its ACK and the server's FIN
    send(my, their, ACK | FIN)
    got_fin = expect(2.0, lambda s: bool(s["flags"] & FIN))
    res["server_fin"] = bool(got_fin and got_fin["ack"] == my + 1)
    if got_fin:
        send(my + 1, got_fin["seq"] + 1, ACK)
    # 9. closed port: RST
    sport2 = sport + 1
    p.send(p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 6, p.tcp(uk_ip, sport2, 9, 5000, 0, SYN))))
    r = p.recv_until(lambda f: parse_tcp(f, uk_ip, sport2), 2)
    res["closed_port_rst"] = bool(r and r["flags"] & RST and r["ack"] == 5001)
    # 10. ACK for a connection that does not exist: RST with seq = that ack
    p.send(p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 6, p.tcp(uk_ip, sport2, port, 7000, 123456, ACK, b"x"))))
    r = p.recv_until(lambda f: parse_tcp(f, uk_ip, sport2), 2)
    res["stray_ack_rst"] = bool(r and r["flags"] & RST and r["seq"] == 123456)
    return res


def scenario_frames(p: Peer, uk_ip_s: str) -> dict:
    """Broken frames at every layer; count any answer (there should be none
    except where noted)."""
    uk_ip = ip_bytes(uk_ip_s)
    uk_mac = p.resolve(uk_ip)
    if not uk_mac:
        return {"arp": False}
    sent = 0
    icmp = struct.pack("!BBHHH", 8, 0, 0, 7, 1) + b"x" * 32
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    good_ip = p.ipv4(uk_ip, 1, icmp)
    syn = p.tcp(uk_ip, 1234, 8088, 1, 0, SYN)
    frames = [
        p.eth(uk_mac, 0x0800, b""),                         # Ethernet header only
        p.eth(uk_mac, 0x0800, good_ip[:10]),                 # half an IP header
        p.eth(uk_mac, 0x0800, good_ip[:19]),
        p.eth(uk_mac, 0x0800, b"\x46" + good_ip[1:]),        # IHL 24 but no options
        p.eth(uk_mac, 0x0800, b"\x4f" + good_ip[1:20]),      # IHL 60 > packet
        p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 1, icmp, tot=2000)),  # total length > frame
        p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 1, icmp, tot=10)),    # total length < header
        p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 1, icmp, bad_csum=True)),  # IP checksum
        p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 1, icmp[:2] + b"\0\0" + icmp[4:])),  # ICMP checksum
        p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 1, icmp[:3])),   # ICMP too short
        p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 6, syn, bad_csum=False)[:20] + syn[:12]),  # TCP truncated
        p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 6, syn[:12] + b"\xf0" + syn[13:])),  # TCP offset 60 > len
        p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 6, p.tcp(uk_ip, 1234, 8088, 1, 0, SYN, bad_csum=True))),
        p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 17, b"\x00\x35\x00")),  # UDP truncated
        p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 17, struct.pack("!HHHH", 53, 9, 200, 0) + b"u")),  # UDP len > IP
        p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 1, icmp, flags_frag=0x2000)),  # first fragment
        p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 1, icmp, flags_frag=0x0010)),  # later fragment
        p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 99, b"proto")),  # unknown protocol
        p.eth(uk_mac, 0x0800, b"\x60" + good_ip[1:]),        # IPv6 version in an IPv4 frame
        p.eth(uk_mac, 0x0806, b"\x00\x01\x08\x00\x06"),      # ARP truncated
        p.eth(uk_mac, 0x0806, struct.pack("!HHBBH", 1, 0x0800, 6, 4, 9) + b"\0" * 20),  # ARP bad op
        p.eth(uk_mac, 0x86DD, b"\x60" + b"\0" * 39),         # IPv6 (not spoken)
        p.eth(uk_mac, 0x0800, p.ipv4(uk_ip, 6, p.tcp(uk_ip, 1234, 8088, 1, 0, SYN | FIN | RST | 0x20))),
    ]
    for f in frames:
        p.send(f)
        sent += 1
    answers = []

    def any_answer(f):
        if f[6:12] == uk_mac and f[12:14] == b"\x08\x00":
            answers.append(f[23])
        return None
    p.recv_until(any_answer, 1.0)
    # the stack still answers a good echo afterwards
    p.send(p.eth(uk_mac, 0x0800, good_ip))
    pong = p.recv_until(lambda f: f[6:12] == uk_mac and len(f) > 34 and f[23] == 1 and f[34] == 0, 2)
    return {"arp": True, "sent": sent, "answers": answers, "echo_after": bool(pong)}


def scenario_dhcp_bogus(p: Peer, secs: str) -> dict:
    """Wait for a DISCOVER; answer with broken OFFERs before dnsmasq does."""
    def discover(f):
        if len(f) >= 14 + 20 + 8 + 240 and f[12:14] == b"\x08\x00" and f[23] == 17:
            u = 14 + (f[14] & 15) * 4
            if f[u + 2:u + 4] == b"\x00\x43":
                return f
        return None
    f = p.recv_until(discover, float(secs))
    if not f:
        return {"discover": False}
    u = 14 + (f[14] & 15) * 4
    bootp = f[u + 8:]
    xid, chaddr, cmac = bootp[4:8], bootp[28:34], f[6:12]
    me = p.ip
    yi = ip_bytes("192.168.56.77")

    def reply(opts: bytes, *, op=2, hlen=6, xid_=xid, yiaddr=yi, magic=b"\x63\x82\x53\x63", cut=None):
        b = struct.pack("!BBBB", op, 1, hlen, 0) + xid_ + b"\0" * 8 + b"\0" * 4 + yiaddr + me + b"\0" * 4
        b += chaddr + b"\0" * 10 + b"\0" * 192 + magic + opts
        if cut is not None:
            b = b[:cut]
        udp = struct.pack("!HHHH", 67, 68, 8 + len(b), 0) + b
        ip = p.ipv4(b"\xff" * 4, 17, udp)
        p.send(p.eth(cmac, 0x0800, ip))

    server = b"\x36\x04" + me
    offer = b"\x35\x01\x02"
    bogus = [
        offer + server + b"\x01\x04\xff\xff\xff\x00\x03\x40" + me,         # router option runs past the end
        offer + server + b"\x33",                                          # option code without length
        server + b"\xff",                                                  # no message type
        b"\x35\x00" + server + b"\xff",                                    # message type of length 0
        b"\x35\x02\x02\x02" + server + b"\xff",                            # message type of length 2
        offer + b"\xff",                                                   # no server identifier
        offer + b"\x36\x02\x01\x02\xff",                                   # short server identifier
        server + b"\x00" * 300,                                            # only pads after the server id
        offer + server + bytes([200, 255]) + b"z" * 10,                    # length 255 past the end
        offer + server + b"\xff",                                          # good options, bad magic below
        offer + server + b"\xff",                                          # good options, hlen 16 below
        offer + server + b"\xff",                                          # wrong xid below
        offer + server + b"\xff",                                          # yiaddr broadcast below
        offer + server + b"\xff",                                          # truncated BOOTP below
        offer + server + b"\xff",                                          # BOOTREQUEST op below
    ]
    for i, o in enumerate(bogus):
        kw = {}
        if i == 9:
            kw["magic"] = b"\x63\x82\x53\x64"
        elif i == 10:
            kw["hlen"] = 16
        elif i == 11:
            kw["xid_"] = bytes(x ^ 0xFF for x in xid)
        elif i == 12:
            kw["yiaddr"] = b"\xff" * 4
        elif i == 13:
            kw["cut"] = 100
        elif i == 14:
            kw["op"] = 1
        reply(o, **kw)
    return {"discover": True, "sent": len(bogus), "xid": xid.hex()}


def main() -> None:
    iface, mac, ip, scenario, *args = sys.argv[1:]
    p = Peer(iface, mac, ip)
    fn = {"tcp": scenario_tcp, "frames": scenario_frames, "dhcp_bogus": scenario_dhcp_bogus}[scenario]
    print(json.dumps(fn(p, *args)))


if __name__ == "__main__":
    main()
