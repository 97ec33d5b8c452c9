"""A one-connection HTTP proxy for the guest's apt, started by QEMU's `guestfwd=...-cmd:`.

The built-in machine's user-mode NIC runs with `restrict=on`: the guest reaches nothing outside.
apt inside the guest talks to 10.0.2.100:3142; QEMU runs this program for each such connection
with the connection on stdin/stdout. It forwards plain-HTTP requests to the allowed archive hosts
only, and refuses everything else (CONNECT, other hosts). It logs to a file: stdio is the guest.

With --cache DIR it keeps what never changes under its name: package files (`pool/…/*.deb`) and
index files fetched by hash (`…/by-hash/SHA256/<hash>`, checked against the hash). A second
environment, or a re-run, then gets them from DIR without going out. Only whole `200` answers with
a Content-Length to plain GETs are stored, written to a temporary file and renamed into place once
complete (concurrent connections are separate processes); the least recently used files go when
the cache passes --cache-max-mb. Release/InRelease/Packages by name always go to the archive.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import socket
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

MAX_HEAD = 64 * 1024
MAX_CACHED_FILE = 512 * 1024 * 1024  # larger answers are relayed, never stored
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._~+/-]+\Z")
_BY_HASH = re.compile(r"/by-hash/SHA256/([0-9a-f]{64})$")


class Cache:
    """Immutable archive files on disk, named by host and path, bounded in total size."""

    def __init__(self, root: Path, max_bytes: int):
        self.root, self.max_bytes = Path(root), max_bytes

    def path_for(self, host: str, port: int, path: str) -> Path | None:
        """Where a cacheable file lives; None for anything that may change (or a strange path)."""
        path = unquote(path)
        if not _SAFE_PATH.match(path) or any(part in ("", ".", "..") for part in path.split("/")[1:]):
            return None
        if not (path.endswith((".deb", ".udeb")) and "/pool/" in path) and not _BY_HASH.search(path):
            return None
        return self.root / f"{host}_{port}" / path.lstrip("/")

    def get(self, file: Path):
        try:
            handle = open(file, "rb")
        except OSError:
            return None
        os.utime(file)  # recently used: evicted last
        return handle

    def store(self, file: Path, chunks, size: int, log) -> bool:
        """Write the body (an iterator of bytes, always consumed: the client gets it whatever
        happens here) to `file` atomically; False when it was not whole, does not match its by-hash
        name, or could not be written (nothing is kept then)."""
        digest, written, out, tmp = hashlib.sha256(), 0, None, None
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".part-")
            out = os.fdopen(fd, "wb")
        except OSError as exc:
            log.write(f"{time.strftime('%F %T')} not cached ({exc}): {file}\n")
        for chunk in chunks:
            digest.update(chunk)
            written += len(chunk)
            if out is not None:
                try:
                    out.write(chunk)
                except OSError as exc:  # e.g. a full disk: the download goes on, uncached
                    log.write(f"{time.strftime('%F %T')} not cached ({exc}): {file}\n")
                    out = self._discard(out, tmp)
        if out is None:
            return False
        expected = _BY_HASH.search(str(file))
        if written != size or (expected and digest.hexdigest() != expected.group(1)):
            log.write(f"{time.strftime('%F %T')} not cached (incomplete or wrong hash): {file}\n")
            self._discard(out, tmp)
            return False
        try:
            out.close()
            os.replace(tmp, file)
        except OSError:
            self._discard(out, tmp)
            return False
        self.evict()
        return True

    @staticmethod
    def _discard(out, tmp) -> None:
        with _quiet():
            out.close()
        with _quiet():
            os.unlink(tmp)
        return None

    def evict(self) -> None:
        files = []
        for f in self.root.rglob("*"):
            with _quiet():
                st = f.stat()
                if f.is_file() and not f.name.startswith(".part-"):
                    files.append((st.st_mtime, st.st_size, f))
        total = sum(size for _, size, _ in files)
        for _, size, f in sorted(files, key=lambda x: x[0]):
            if total <= self.max_bytes:
                break
            with _quiet():
                f.unlink()
            total -= size


class _quiet:
    """Ignore a file that another connection removed or replaced meanwhile."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, OSError)


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


def serve_cached(client_out, handle, log, target: str) -> None:
    size = os.fstat(handle.fileno()).st_size
    client_out.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nContent-Type: application/octet-stream\r\n"
                     "Connection: keep-alive\r\n\r\n".encode())
    with handle:
        while chunk := handle.read(65536):
            client_out.write(chunk)
    client_out.flush()
    log.write(f"{time.strftime('%F %T')} cached GET {target}\n")
    log.flush()


def relay_and_store(upstream, client, size: int, cache: Cache, file: Path, log) -> bool:
    """Copy a Content-Length body to the client and into the cache at once."""
    state = {"whole": True}

    def chunks():
        remaining = size
        while remaining:
            chunk = upstream.read(min(remaining, 65536))
            if not chunk:
                state["whole"] = False
                return
            client.write(chunk)
            remaining -= len(chunk)
            yield chunk

    cache.store(file, chunks(), size, log)
    return state["whole"]


def serve(client_in, client_out, allowed: set[str], log, cache: Cache | None = None) -> None:
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
        path = url.path or "/"
        cached = cache.path_for(host, port, path) if cache and method == "GET" and not url.query else None
        if cached is not None and any(h.lower().startswith((b"range:", b"if-range:")) for h in header_lines):
            cached = None  # a partial download resumed: relayed as asked, never stored
        if cached is not None and (handle := cache.get(cached)) is not None:
            serve_cached(client_out, handle, log, target)
            continue
        log.write(f"{time.strftime('%F %T')} {method} {target}\n")
        log.flush()
        headers = [h for h in header_lines if not h.lower().startswith((b"proxy-", b"connection:"))]
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
        response = parse_headers(resp_lines)
        size = int(response["content-length"]) if response.get("content-length", "").isdigit() else -1
        if (cached is not None and status == 200 and 0 <= size <= MAX_CACHED_FILE
                and "chunked" not in response.get("transfer-encoding", "").lower()):
            keep = relay_and_store(upstream, client_out, size, cache, cached, log)
        else:
            keep = relay_body(upstream, client_out, response, method, status)
        client_out.flush()
        if not keep:
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--allow", required=True, help="archive host names, separated by '+' or ','")
    parser.add_argument("--log", required=True)
    parser.add_argument("--cache", help="directory for package files and by-hash index files")
    parser.add_argument("--cache-max-mb", type=int, default=4096, help="bound of the cache (default 4096)")
    args = parser.parse_args(argv)
    cache = Cache(Path(args.cache), args.cache_max_mb * 1024 * 1024) if args.cache else None
    allowed = {h.strip().lower() for h in args.allow.replace("+", ",").split(",") if h.strip()}
    with open(args.log, "a", encoding="utf-8") as log:
        try:
            serve(sys.stdin.buffer, sys.stdout.buffer, allowed, log, cache)
        except (OSError, ValueError) as exc:
            log.write(f"{time.strftime('%F %T')} connection ended: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
