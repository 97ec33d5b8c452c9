#!/usr/bin/env python3
"""Is there already a DHCP server on this segment? (shipped by the dnsmasq role; stdlib only)

Sends DHCPDISCOVERs on one interface through a raw packet socket (so it needs no address, and no
DHCP client's port 68 gets in the way) and collects the OFFERs for a few seconds. Offers from this
host's own MACs (our own dnsmasq on a re-run) are listed apart as `own`.
Prints JSON: {"interface", "probed", "offers": [{"server", "mac", "offered"}], "own": [...], "error"}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800
MAGIC_COOKIE = b"\x63\x82\x53\x63"
DHCPDISCOVER, DHCPOFFER = 1, 2
RESEND_EVERY_S = 2.0  # a server may miss the first DISCOVER; dnsmasq answers ~3 s late (it pings the address first)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def discover_frame(src_mac: bytes, chaddr: bytes, xid: int) -> bytes:
    options = (bytes([53, 1, DHCPDISCOVER])  # message type
               + bytes([55, 3, 1, 3, 54])  # ask for netmask, router, server id
               + bytes([255]))
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,  # broadcast flag
                        bytes(4), bytes(4), bytes(4), bytes(4), chaddr.ljust(16, b"\0"), b"", b"")
    payload = bootp + MAGIC_COOKIE + options
    udp = struct.pack("!HHHH", 68, 67, 8 + len(payload), 0) + payload  # UDP checksum 0: none
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
                         bytes(4), b"\xff" * 4)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return b"\xff" * 6 + src_mac + struct.pack("!H", ETH_P_IP) + header + udp


def parse_offer(frame: bytes, xid: int) -> dict | None:
    """The offer in an Ethernet frame, or None when the frame is anything else."""
    if len(frame) < 14 + 20 + 8 + 240 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != socket.IPPROTO_UDP:
        return None
    src_port, dst_port = struct.unpack("!HH", ip[ihl:ihl + 4])
    bootp = ip[ihl + 8:]
    if (src_port, dst_port) != (67, 68) or bootp[0] != 2 or struct.unpack("!I", bootp[4:8])[0] != xid:
        return None
    if bootp[236:240] != MAGIC_COOKIE:
        return None
    options, i, kind, server_id = bootp[240:], 0, None, None
    while i < len(options) and options[i] != 255:
        if options[i] == 0:
            i += 1
            continue
        code, length = options[i], options[i + 1]
        value = options[i + 2:i + 2 + length]
        if code == 53 and length == 1:
            kind = value[0]
        elif code == 54 and length == 4:
            server_id = socket.inet_ntoa(value)
        i += 2 + length
    if kind != DHCPOFFER:
        return None
    return {
        "server": server_id or socket.inet_ntoa(ip[12:16]),
        "source_ip": socket.inet_ntoa(ip[12:16]),
        "mac": ":".join(f"{b:02x}" for b in frame[6:12]),
        "offered": socket.inet_ntoa(bootp[16:20]),
    }


def own_macs() -> set[str]:
    """The MACs of this host's interfaces: a frame from one of them is our own dnsmasq's."""
    macs = set()
    for name in os.listdir("/sys/class/net"):
        try:
            with open(f"/sys/class/net/{name}/address") as f:
                macs.add(f.read().strip().lower())
        except OSError:
            pass
    return macs


def probe(interface: str, seconds: float) -> dict:
    result = {"interface": interface, "probed": False, "offers": [], "own": [], "error": None}
    if not os.path.exists(f"/sys/class/net/{interface}"):
        result["error"] = f"there is no interface {interface} (yet)"
        return result
    with open(f"/sys/class/net/{interface}/address") as f:
        src_mac = bytes.fromhex(f.read().strip().replace(":", ""))
    # a random locally administered client MAC: no real machine's lease is touched
    chaddr = bytes([0x02] + [random.randrange(256) for _ in range(5)])
    xid = random.getrandbits(32)
    macs = own_macs()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    try:
        sock.bind((interface, ETH_P_IP))
        frame = discover_frame(src_mac, chaddr, xid)
        deadline = time.monotonic() + seconds
        next_send = 0.0
        seen = set()
        while (now := time.monotonic()) < deadline:
            if now >= next_send:
                sock.send(frame)
                next_send = now + RESEND_EVERY_S
            ready, _, _ = select.select([sock], [], [], min(deadline, next_send) - now)
            if not ready:
                continue
            offer = parse_offer(sock.recv(4096), xid)
            if offer is None or (offer["server"], offer["mac"]) in seen:
                continue
            seen.add((offer["server"], offer["mac"]))
            # by MAC only: two lab hosts on one segment may both hold the default dom0 address
            mine = offer["mac"] in macs
            result["own" if mine else "offers"].append(offer)
        result["probed"] = True
    finally:
        sock.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interface", required=True)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    try:
        result = probe(args.interface, args.seconds)
    except OSError as exc:
        result = {"interface": args.interface, "probed": False, "offers": [], "own": [],
                  "error": f"could not probe {args.interface}: {exc}"}
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
