"""Seed inputs for the fuzzers (formats in fuzz_common.h and each fuzz_*.c).

Valid-looking frames, segments and requests give libFuzzer a head start
into the deep states (a bound DHCP lease, an established TCP connection
with pipelined HTTP requests); it mutates from there.
"""

from __future__ import annotations

import struct
from pathlib import Path

CTL_FIX_CSUM, CTL_TO_US, CTL_DHCP_XID, CTL_TCP_SEQ = 1, 2, 4, 8
PEER_MAC = bytes.fromhex("020000000002")
OUR_MAC = bytes.fromhex("020000000001")
PEER_IP = bytes([10, 0, 0, 1])
OUR_IP = bytes([10, 0, 0, 2])


def rec(ctl: int, payload: bytes) -> bytes:
    return bytes([ctl]) + struct.pack(">H", len(payload)) + payload


def eth(dst: bytes, etype: int, payload: bytes, src: bytes = PEER_MAC) -> bytes:
    return dst + src + struct.pack(">H", etype) + payload


def ipv4(proto: int, payload: bytes, src: bytes = PEER_IP, dst: bytes = OUR_IP) -> bytes:
    # checksum left zero: the harness fixes it when asked (CTL_FIX_CSUM)
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, src, dst) + payload


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, data: bytes = b"", opts: bytes = b"") -> bytes:
    hl = (20 + len(opts)) // 4
    return struct.pack(">HHIIBBHHH", sport, dport, seq, ack, hl << 4, flags, 65535, 0, 0) + opts + data


def udp(sport: int, dport: int, data: bytes) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(data), 0) + data


def arp(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> bytes:
    return struct.pack(">HHBBH", 1, 0x0800, 6, 4, op) + sha + spa + tha + tpa


def bootp(msgtype: int, yiaddr: bytes = bytes([10, 0, 0, 50]), extra: bytes = b"", lease: int = 60,
          t1: int | None = 30) -> bytes:
    fixed = struct.pack(">BBBBIHH4s4s4s4s", 2, 1, 6, 0, 0, 0, 0, b"\0" * 4, yiaddr, PEER_IP, b"\0" * 4)
    fixed += OUR_MAC + b"\0" * 10 + b"\0" * 64 + b"\0" * 128
    opts = bytes([53, 1, msgtype, 54, 4]) + PEER_IP
    opts += bytes([1, 4, 255, 255, 255, 0, 3, 4]) + PEER_IP
    opts += bytes([51, 4]) + struct.pack(">I", lease)
    if t1 is not None:
        opts += bytes([58, 4]) + struct.pack(">I", t1)
    return fixed + struct.pack(">I", 0x63825363) + opts + extra + bytes([255])


MSS = bytes([2, 4, 0x05, 0xB4])
GET = b"GET / HTTP/1.1\r\nHost: uk\r\n\r\n"
AUTH = b"GET /x?user=mirage&password=p%40ss HTTP/1.1\r\nHost: uk\r\n\r\n"
PIPE = GET + b"HEAD /style.css HTTP/1.1\r\nHost: uk\r\n\r\n" + b"GET /nope HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
FIX = CTL_FIX_CSUM | CTL_TO_US


def tcp_session(data: bytes, ctl_extra: int = 0) -> list[tuple[int, bytes]]:
    """SYN, ACK, data, FIN as (ctl, segment) with seq/ack patched live."""
    return [
        (CTL_FIX_CSUM, tcp(40000, 80, 1000, 0, 0x02, opts=MSS)),
        (CTL_FIX_CSUM | CTL_TCP_SEQ, tcp(40000, 80, 0, 0, 0x10)),
        (CTL_FIX_CSUM | CTL_TCP_SEQ | ctl_extra, tcp(40000, 80, 0, 0, 0x18, data)),
        (CTL_FIX_CSUM | CTL_TCP_SEQ, tcp(40000, 80, 0, 0, 0x11)),
    ]


def net_seeds() -> dict[str, bytes]:
    s = {}
    s["arp"] = b"\0" + rec(FIX, eth(b"\xff" * 6, 0x0806, arp(1, PEER_MAC, PEER_IP, b"\0" * 6, OUR_IP)))
    s["arp_reply"] = b"\0" + rec(FIX, eth(OUR_MAC, 0x0806, arp(2, PEER_MAC, bytes([10, 0, 0, 9]), OUR_MAC, OUR_IP)))
    icmp = struct.pack(">BBHHH", 8, 0, 0, 1, 1) + b"ping" * 8
    s["icmp"] = b"\0" + rec(FIX, eth(OUR_MAC, 0x0800, ipv4(1, icmp)))
    s["udp"] = b"\0" + rec(FIX, eth(OUR_MAC, 0x0800, ipv4(17, udp(5000, 9, b"hello"))))
    frag = ipv4(17, udp(5000, 9, b"x" * 16))
    s["frag"] = b"\0" + rec(FIX, eth(OUR_MAC, 0x0800, frag[:6] + b"\x20\x00" + frag[8:]))
    sess = b"".join(rec(c, eth(OUR_MAC, 0x0800, ipv4(6, seg))) for c, seg in tcp_session(PIPE))
    s["tcp_http"] = b"\0" + sess
    s["tcp_auth"] = b"\0" + b"".join(rec(c, eth(OUR_MAC, 0x0800, ipv4(6, seg))) for c, seg in tcp_session(AUTH))
    dh = lambda t: eth(b"\xff" * 6, 0x0800, ipv4(17, udp(67, 68, bootp(t)), dst=b"\xff" * 4))  # noqa: E731
    s["dhcp"] = b"\1" + rec(FIX | CTL_DHCP_XID, dh(2)) + rec(FIX | CTL_DHCP_XID | 0x40, dh(5)) + rec(0xF0, b"")
    s["oversized"] = b"\0" + rec(FIX, eth(OUR_MAC, 0x0800, ipv4(17, udp(1, 2, b"z" * 1600))))
    s["truncated"] = b"\0" + rec(0, eth(OUR_MAC, 0x0800, b"\x45\x00"))
    return s


def tcp_seeds() -> dict[str, bytes]:
    s = {}
    for name, data in (("get", GET), ("pipe", PIPE), ("auth", AUTH)):
        s[name] = b"".join(rec(c, seg) for c, seg in tcp_session(data))
    # window probing and timers: zero window, then time passes
    sess = tcp_session(b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n")
    sess[1] = (sess[1][0], tcp(40000, 80, 0, 0, 0x10)[:14] + b"\0\0" + tcp(40000, 80, 0, 0, 0x10)[16:])
    s["zerownd"] = b"".join(rec(c | 0x40, seg) for c, seg in sess)
    s["rst"] = b"".join(rec(c, seg) for c, seg in tcp_session(GET)[:2]) + rec(CTL_FIX_CSUM | CTL_TCP_SEQ, tcp(40000, 80, 0, 0, 0x04))
    s["closed_port"] = rec(CTL_FIX_CSUM, tcp(40001, 81, 5, 0, 0x02))
    return s


def http_seeds() -> dict[str, bytes]:
    s = {
        "get": b"\x05" + GET,
        "pipe": b"\x85" + PIPE,
        "auth": b"\x00" + AUTH,
        "badpct": b"\x01GET /?user=%zz&password=%4 HTTP/1.1\r\nHost: a\r\n\r\n",
        "post": b"\x02POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        "body": b"\x03GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbodyGET /style.css HTTP/1.1\r\nHost: a\r\n\r\n",
        "flood": b"\x40GET / HTTP/1.1\r\nHost: a\r\n" + b"X-A: b\r\n" * 40 + b"\r\n",
        "te": b"\x04GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "http10": b"\x06GET /index.html HTTP/1.0\r\n\r\n",
        "close": b"\x07GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    }
    return s


# each 0xF0 record advances the clock 15 x 250 ms = 3.75 s
def wait_s(seconds: float) -> bytes:
    return rec(0xF0, b"") * -int(-seconds // 3.75)


def dhcp_seeds() -> dict[str, bytes]:
    x = CTL_DHCP_XID
    # after the ACK, ~1 s of ARP probing (RFC 5227) before BOUND
    bound = rec(x, bootp(2)) + rec(x, bootp(5)) + rec(0x20, b"") * 3
    return {
        "offer_ack": bound,
        # lease 60 s, T1 30 s: ~34 s later the ACK answers the RENEWING request
        "renew": bound + wait_s(32) + rec(x, bootp(5)),
        # past T2 (52.5 s): the ACK answers the REBINDING broadcast
        "rebind": bound + wait_s(54) + rec(x, bootp(5)),
        # RENEWING, retried; then a NAK: back to INIT, a new OFFER and ACK
        "renew_nak": bound + wait_s(45) + rec(x, bootp(6)) + rec(x, bootp(2, bytes([10, 0, 0, 51])))
        + rec(x, bootp(5, bytes([10, 0, 0, 51]))) + rec(0x20, b"") * 3,
        # no answer at all: RENEWING, REBINDING, the lease ends, DISCOVER, bound again
        "expire": bound + wait_s(64) + bound,
        # a 3 s lease with T1 beyond it: T1/T2 fall back, it ends during probing
        "short_lease": rec(x, bootp(2, lease=3, t1=40)) + rec(x, bootp(5, lease=3, t1=40)) + rec(0x20, b"") * 8
        + wait_s(4),
        "zero_lease": rec(x, bootp(2, lease=0)) + rec(x, bootp(5, lease=0)) + rec(0x20, b"") * 3,
        "nak": rec(x, bootp(2)) + rec(x, bootp(6)),
        "bogus_opts": rec(x, bootp(2, extra=bytes([1, 2, 3, 250, 200]))),
        "no_xid": rec(0, bootp(2)),
    }


def _disk_seed(image: bytes) -> bytes:
    """fuzz_disk's input: the disk size in sectors (LE32), then the image without its zero tail
    (the harness reads the rest of the disk as zeros)."""
    return struct.pack("<I", len(image) // 512) + image.rstrip(b"\0")


def _tool(name: str) -> str | None:
    import shutil

    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def disk_seeds() -> dict[str, bytes]:
    """Images as mkfs.fat + mcopy and tar make them (made here, at test time): a tree with long
    names and subdirectories, and the auth store's user records."""
    import io
    import os
    import subprocess
    import tarfile
    import tempfile

    files = {
        "index.html": b"<h1>Hello</h1>",
        "css/site.css": b"h1{}",
        "sub/readme.txt": b"r",
        "sub/deeper/A Very Long File Name.txt": b"long",
        "user/mirage": bytes([0, 0, 0, 2]) + b"s" * 48,
        "UPPER.TXT": b"U",
        **{f"many/file-number-{i:03d}-with-a-long-name.html": b"%d" % i for i in range(12)},
        "big/blob.bin": bytes(range(256)) * 12,
    }
    out: dict[str, bytes] = {}
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
            for rel, body in list(files.items()) + [("dir/n\u00e4me.txt", b"u"), ("d" * 60 + "/" + "z" * 60 + ".txt", b"z")]:
                info = tarfile.TarInfo(rel)
                info.size = len(body)
                t.addfile(info, io.BytesIO(body))
        out[f"tar{fmt}"] = _disk_seed(buf.getvalue())
    mkfs, mcopy, mmd = _tool("mkfs.fat"), _tool("mcopy"), _tool("mmd")
    if not (mkfs and mcopy and mmd):
        return out  # tar seeds only (the FAT reader is still fuzzed from mutations)
    env = {**os.environ, "MTOOLSRC": "/dev/null", "MTOOLS_SKIP_CHECK": "1"}
    with tempfile.TemporaryDirectory(prefix="fuzz-disk-") as tmp:
        src = Path(tmp) / "src"
        for rel, body in files.items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(body)
        # FAT32 with one FAT: ~280 KB of seed (its FAT alone is 256 KB, mostly zeros)
        for name, args, kib in (("fat12", ["-F", "12", "-s", "1"], 128), ("fat16", ["-F", "16", "-s", "1"], 2200),
                                ("fat32", ["-F", "32", "-s", "1", "-f", "1"], 33500)):
            img = Path(tmp) / f"{name}.img"
            subprocess.run([mkfs, "-C", *args, str(img), str(kib)], check=True, capture_output=True)
            for d in ("css", "sub", "sub/deeper", "user", "many", "big"):
                subprocess.run([mmd, "-i", str(img), "::/" + d], check=True, env=env, capture_output=True)
            for rel in files:
                subprocess.run([mcopy, "-i", str(img), str(src / rel), "::/" + rel], check=True, env=env,
                               capture_output=True)
            out[name] = _disk_seed(img.read_bytes())
    return out



def netback_seeds() -> dict[str, bytes]:
    # scripts for fuzz_netback.c: op byte (op % 8) then its arguments
    send = bytes([0, 0x05, 0xDC])  # a 1500-byte frame
    tx_rsp = lambda rid, d: bytes([1]) + struct.pack(">HhB", rid, 0, 1) + bytes([d])  # noqa: E731
    rx_rsp = lambda rid, size, d: bytes([2]) + struct.pack(">HHHh", rid, 0, 0, size) + bytes([1, d])  # noqa: E731
    recv = bytes([3, 0x06, 0x00])
    return {
        "echo": bytes([0]) + send + tx_rsp(63, 1) + bytes([4, 1]) + rx_rsp(0, 60, 1) + recv,
        "wrap": bytes([1, 0xF0]) + (send + tx_rsp(63, 1) + bytes([4, 0])) * 20 + (rx_rsp(0, 1500, 1) + recv) * 20,
        "runaway_prod": bytes([0]) + send + bytes([1, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]) + bytes([4, 1]),
        "extras": bytes([0]) + rx_rsp(0, 60, 1).replace(b"\x00\x00\x00\x00", b"\x00\x00\x00\x08", 1) + recv * 3,
    }


def vchan_seeds() -> dict[str, bytes]:
    # scripts for fuzz_vchan.c: two order picks, then op byte (op % 9, bit 7: 4-byte arg) + arg
    op = lambda o, x: bytes([o]) + struct.pack(">H", x)  # noqa: E731
    return {
        "echo": bytes([2, 3]) + op(3, 1) + op(0, 100) + op(4, 200) + op(5, 100) + op(1, 100) + op(6, 0),
        "wrap": bytes([0, 1]) + (op(0, 900) + op(4, 1000) + op(5, 900) + op(1, 900)) * 10,
        "bad_idx": bytes([2, 2]) + bytes([0x80]) + struct.pack(">I", 0x7FFFFFFF) + op(4, 10) + op(8, 0) + op(4, 10),
        "arm": bytes([1, 0]) + op(7, 0) + op(3, 0x0301) + op(7, 0) + op(2, 5) + op(6, 0),
    }


def app_seeds() -> dict[str, bytes]:
    # scripts for fuzz_app.c: records [conn][flags][wnd][len] + data (see there)
    def seg(conn: int, flags: int, wnd: int, data: bytes) -> bytes:
        return bytes([conn, flags]) + struct.pack(">HH", wnd, len(data)) + data

    good = b"GET /?user=mirage&password=x HTTP/1.1\r\nHost: a\r\n\r\n"
    page = b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n"
    many = b"".join(seg(c, 0x02, 65535, b"") for c in range(80))  # more SYNs than slots, 8 peers
    return {
        "login": seg(0, 0x02, 65535, b"") + seg(0, 0x18, 65535, good) + seg(0, 0x80, 65535, b""),
        "pipeline_fin": seg(1, 0x02, 65535, b"") + seg(1, 0x19, 65535, good * 6),
        "zero_window": seg(2, 0x02, 0, b"") + seg(2, 0x18, 0, page * 3) + seg(2, 0x90, 0, b"") * 8
        + seg(2, 0x90, 65535, b""),
        "wrap": seg(3, 0x02, 2000, b"") + (seg(3, 0x18, 2000, page) + seg(3, 0x90, 2000, b"")) * 12,
        "table_full": many + seg(5, 0x18, 65535, page),
        # 100 established connections from 8 addresses: a full table, recycling, per-source caps
        "established_full": b"".join(seg(c, 0x02, 65535, b"") + seg(c, 0x10, 65535, b"") for c in range(100))
        + seg(99, 0x18, 65535, page),
        "chunked": seg(4, 0x02, 65535, b"")
        + seg(4, 0x18, 65535, b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    }


SEEDS = {"net": net_seeds, "tcp": tcp_seeds, "http": http_seeds, "dhcp": dhcp_seeds, "disk": disk_seeds,
         "netback": netback_seeds, "vchan": vchan_seeds, "auth": app_seeds, "www": app_seeds}


def write_seeds(name: str, d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for k, v in SEEDS[name]().items():
        (d / k).write_bytes(v)
    return d


if __name__ == "__main__":
    import sys

    for n in SEEDS:
        write_seeds(n, Path(sys.argv[1]) / n)
