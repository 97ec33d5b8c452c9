"""A packet capture of the DHCP (and ARP) frames on one TAP, by the real
tcpdump inside the lab namespace, decoded here into DHCP messages.

    cap = DhcpCapture(lab, tap)           # before the unikernel starts on tap
    ...
    for m in cap.messages():              # in capture order
        m.type, m.op, m.ciaddr, m.options.get(50), m.dst_ip, m.dst_mac, m.time

The capture sees every frame the unikernel sends, also those a filter on
the bridge drops before the server sees them. tcpdump is stopped by PID
when the lab closes (it is started with lab.popen).
"""

from __future__ import annotations

import ipaddress
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MAGIC = 0x63825363
TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}


@dataclass
class DhcpMessage:
    time: float                 # capture timestamp (seconds since the epoch)
    src_mac: str
    dst_mac: str
    src_ip: str
    dst_ip: str
    op: int                     # 1 BOOTREQUEST (client), 2 BOOTREPLY (server)
    xid: int
    ciaddr: str
    yiaddr: str
    chaddr: str
    options: dict[int, bytes] = field(default_factory=dict)

    @property
    def type(self) -> str:
        t = self.options.get(53, b"")
        return TYPES.get(t[0], f"type {t[0]}") if len(t) == 1 else "no type"

    def ip_option(self, code: int) -> str | None:
        v = self.options.get(code)
        return str(ipaddress.IPv4Address(v)) if v is not None and len(v) == 4 else None

    def u32_option(self, code: int) -> int | None:
        v = self.options.get(code)
        return struct.unpack(">I", v)[0] if v is not None and len(v) == 4 else None

    def __str__(self) -> str:
        opts = ", ".join(f"{c}={v.hex()}" for c, v in self.options.items())
        return (f"{self.time:.3f} {self.type} {self.src_mac}>{self.dst_mac} {self.src_ip}>{self.dst_ip} "
                f"xid {self.xid:#010x} ciaddr {self.ciaddr} yiaddr {self.yiaddr} [{opts}]")


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _ip(b: bytes) -> str:
    return str(ipaddress.IPv4Address(b))


def read_pcap(path: Path) -> list[tuple[float, bytes]]:
    """The (timestamp, frame) records of a classic pcap file; a record that
    tcpdump has not finished writing is left out."""
    data = path.read_bytes() if path.exists() else b""
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a pcap file (magic {magic.hex()})")
    frac = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    out, i = [], 24
    while i + 16 <= len(data):
        sec, sub, caplen, _ = struct.unpack(endian + "IIII", data[i:i + 16])
        if i + 16 + caplen > len(data):
            break
        out.append((sec + sub * frac, data[i + 16:i + 16 + caplen]))
        i += 16 + caplen
    return out


def parse_dhcp(ts: float, frame: bytes) -> DhcpMessage | None:
    """A DHCP message from an Ethernet/IPv4/UDP frame, or None."""
    if len(frame) < 14 + 20 or struct.unpack(">H", frame[12:14])[0] != 0x0800:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != 17 or len(ip) < ihl + 8:
        return None
    udp = ip[ihl:]
    sport, dport, ulen = struct.unpack(">HHH", udp[:6])
    if {sport, dport} - {67, 68}:
        return None
    m = udp[8:ulen]
    if len(m) < 240 or struct.unpack(">I", m[236:240])[0] != MAGIC:
        return None
    options: dict[int, bytes] = {}
    i = 240
    while i < len(m) and m[i] != 255:
        if m[i] == 0:
            i += 1
            continue
        if i + 2 > len(m) or i + 2 + m[i + 1] > len(m):
            break
        options.setdefault(m[i], m[i + 2:i + 2 + m[i + 1]])
        i += 2 + m[i + 1]
    return DhcpMessage(time=ts, src_mac=_mac(frame[6:12]), dst_mac=_mac(frame[0:6]), src_ip=_ip(ip[12:16]),
                       dst_ip=_ip(ip[16:20]), op=m[0], xid=struct.unpack(">I", m[4:8])[0], ciaddr=_ip(m[12:16]),
                       yiaddr=_ip(m[16:20]), chaddr=_mac(m[28:34]), options=options)


class DhcpCapture:
    """tcpdump on ``iface`` in the lab namespace, writing a pcap file."""

    def __init__(self, lab, iface: str):
        self.lab = lab
        self.path = lab.workdir / f"{iface}.pcap"   # .pcap: tcpdump's AppArmor profile lets it write these
        self.err_path = lab.workdir / f"{iface}.tcpdump.err"
        with open(self.err_path, "wb") as err:
            # -p: the bridge port must not go promiscuous; -U, --immediate-mode: each packet
            # handed over and written at once (not when a kernel buffer block fills);
            # -Z root: keep the right to write into the root-owned lab directory
            self.proc = lab.popen(["tcpdump", "-i", iface, "-p", "-n", "-U", "--immediate-mode", "-s", "0",
                                   "-Z", "root", "-w", str(self.path), "udp port 67 or udp port 68 or arp"],
                                  stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 10
        while "listening on" not in self.err_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"tcpdump on {iface} did not start: {self.err_path.read_text(errors='replace')}")
            time.sleep(0.05)

    def messages(self) -> list[DhcpMessage]:
        out = []
        for ts, frame in read_pcap(self.path):
            m = parse_dhcp(ts, frame)
            if m is not None:
                out.append(m)
        return out

    def dump(self) -> str:
        return "\n".join(str(m) for m in self.messages())
