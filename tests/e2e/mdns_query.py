"""A one-shot mDNS question (RFC 6762 §6.7, "legacy unicast": sent from an ordinary port, so the
responder answers this socket directly): NAME.local → its IPv4 address, as a host-only peer such as
the user's laptop would ask. Run inside the host-only namespace:

    ip netns exec NS python3 -m tests.e2e.mdns_query NAME.local --via 192.168.56.1
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import struct
import sys
import time

MDNS = ("224.0.0.251", 5353)
TYPE_A, CLASS_IN = 1, 1


def question(name: str, ident: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    return struct.pack("!HHHHHH", ident, 0, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", TYPE_A, CLASS_IN)


def read_name(msg: bytes, pos: int) -> tuple[str, int]:
    """A (possibly compressed) name at pos → (name, position after it). Bounded: a pointer loop or a
    name past the end raises ValueError."""
    labels, end, jumps = [], None, 0
    while True:
        if pos >= len(msg):
            raise ValueError("name runs past the message")
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(msg) or jumps > 16:
                raise ValueError("bad compression pointer")
            end = pos + 2 if end is None else end
            pos, jumps = ((length & 0x3F) << 8) | msg[pos + 1], jumps + 1
            continue
        if length == 0:
            return ".".join(labels), (pos + 1 if end is None else end)
        labels.append(msg[pos + 1:pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length


def answers_a(msg: bytes, ident: int, name: str) -> list[str]:
    """The A records for name in a response to our question ident."""
    if len(msg) < 12:
        return []
    rid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    if rid != ident or not flags & 0x8000:
        return []
    pos = 12
    for _ in range(qd):
        _, pos = read_name(msg, pos)
        pos += 4
    found = []
    for _ in range(an):
        rname, pos = read_name(msg, pos)
        rtype, rclass, _ttl, length = struct.unpack("!HHIH", msg[pos:pos + 10])
        pos += 10
        if rtype == TYPE_A and rclass & 0x7FFF == CLASS_IN and length == 4 and rname.lower() == name.lower():
            found.append(str(ipaddress.IPv4Address(msg[pos:pos + 4])))
        pos += length
    return found


def resolve(name: str, via: str, timeout: float = 5.0) -> list[str]:
    """Ask on the interface that holds address via; retry each second until timeout."""
    ident = int.from_bytes(os.urandom(2), "big")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(via))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        sock.bind((via, 0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sock.sendto(question(name, ident), MDNS)
            sock.settimeout(min(1.0, max(0.05, deadline - time.monotonic())))
            try:
                while True:
                    msg, _ = sock.recvfrom(9000)
                    found = answers_a(msg, ident, name)
                    if found:
                        return found
            except (socket.timeout, ValueError, struct.error):
                continue
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--via", required=True, help="this side's address on the link to ask on")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    found = resolve(args.name, args.via, args.timeout)
    print(" ".join(found))
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
