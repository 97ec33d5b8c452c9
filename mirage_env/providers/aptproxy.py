"""A one-connection HTTP proxy for the guest's apt, started by QEMU's `guestfwd=...-cmd:`.

The built-in machine's user-mode NIC runs with `restrict=on`: the guest reaches nothing outside.
apt inside the guest talks to 10.0.2.100:3142; QEMU runs this program for each such connection
with the connection on stdin/stdout. It forwards plain-HTTP requests to the allowed archive hosts
only, and refuses everything else (CONNECT, other hosts). It logs to a file: stdio is the guest.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024


def read_head(stream) -> bytes | None:
    head = b""
    while b"\r\n\r\n" not in head:
        line = stream.readline(MAX_HEAD)
        if not line:
            return None
        head += line
        if len(head) > MAX_HEAD:
            return None
        if head == b"\r\n":  # tolerate stray blank lines between requests
            head = b""
    return head


def parse_headers(lines: list[bytes]) -> dict[str, str]:
    headers = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def relay_body(upstream, client, headers: dict[str, str], method: str, status: int) -> bool:
    """Copy one response body; return False when the connection must close afterwards."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return True
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = upstream.readline(1024)
            client.write(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers up to the blank line
                    trailer = upstream.readline(MAX_HEAD)
                    client.write(trailer)
                    if trailer in (b"\r\n", b"\n", b""):
                        return True
            client.write(upstream.read(size + 2))
    if "content-length" in headers:
        remaining = int(headers["content-length"])
        while remaining:
            chunk = upstream.read(min(remaining, 65536))
            if not chunk:
                return False
            client.write(chunk)
            remaining -= len(chunk)
        return True
    while chunk := upstream.read(65536):  # body runs to the end of the connection
        client.write(chunk)
    return False


def refuse(client, code: int, reason: str) -> None:
    body = f"{code} {reason}\n".encode()
    client.write(f"HTTP/1.1 {code} {reason}\r\nContent-Length: {len(body)}\r\n"
                 "Connection: close\r\n\r\n".encode() + body)
    client.flush()


def serve(client_in, client_out, allowed: set[str], log) -> None:
    upstreams: dict[str, tuple] = {}
    while True:
        head = read_head(client_in)
        if head is None:
            return
        request_line, *header_lines = head.rstrip(b"\r\n").split(b"\r\n")
        try:
            method, target, version = request_line.decode("latin-1").split(" ")
        except ValueError:
            refuse(client_out, 400, "Bad Request")
            return
        url = urlsplit(target)
        host, port = (url.hostname or "").lower(), url.port or 80
        if method not in ("GET", "HEAD") or url.scheme != "http" or host not in allowed:
            log.write(f"{time.strftime('%F %T')} refused {method} {target}\n")
            log.flush()
            refuse(client_out, 403, "Forbidden by mirage-env apt proxy")
            return
        log.write(f"{time.strftime('%F %T')} {method} {target}\n")
        log.flush()
        headers = [h for h in header_lines if not h.lower().startswith((b"proxy-", b"connection:"))]
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        request = (f"{method} {path} {version}\r\n".encode() + b"\r\n".join(headers)
                   + b"\r\nConnection: keep-alive\r\n\r\n")
        key = f"{host}:{port}"
        if key not in upstreams:
            sock = socket.create_connection((host, port), timeout=60)
            upstreams[key] = (sock, sock.makefile("rb"))
        sock, upstream = upstreams[key]
        sock.sendall(request)
        status_head = read_head(upstream)
        if status_head is None:
            refuse(client_out, 502, "Bad Gateway")
            return
        client_out.write(status_head)
        status_line, *resp_lines = status_head.rstrip(b"\r\n").split(b"\r\n")
        status = int(status_line.split(b" ")[1])
        keep = relay_body(upstream, client_out, parse_headers(resp_lines), method, status)
        client_out.flush()
        if not keep:
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--allow", required=True, help="archive host names, separated by '+' or ','")
    parser.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    allowed = {h.strip().lower() for h in args.allow.replace("+", ",").split(",") if h.strip()}
    with open(args.log, "a", encoding="utf-8") as log:
        try:
            serve(sys.stdin.buffer, sys.stdout.buffer, allowed, log)
        except (OSError, ValueError) as exc:
            log.write(f"{time.strftime('%F %T')} connection ended: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
