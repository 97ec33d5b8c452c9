"""The guest's apt proxy: forwards GET/HEAD to allowed hosts only (a local server stands in for
the archive, on loopback), refuses everything else without connecting anywhere."""

import http.server
import io
import threading

import pytest

from mirage_env.providers.aptproxy import serve


class Archive(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = f"file {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def archive():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Archive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def through_proxy(requests: bytes, allowed: set[str]) -> tuple[bytes, str]:
    out, log = io.BytesIO(), io.StringIO()
    serve(io.BytesIO(requests), out, allowed, log)
    return out.getvalue(), log.getvalue()


def test_forwards_keep_alive_requests_to_an_allowed_host(archive):
    req = (f"GET http://127.0.0.1:{archive}/debian/dists/bookworm/Release HTTP/1.1\r\nHost: x\r\n\r\n"
           f"GET http://127.0.0.1:{archive}/debian/pool/a.deb HTTP/1.1\r\nHost: x\r\n\r\n").encode()
    out, log = through_proxy(req, {"127.0.0.1"})
    assert out.count(b"HTTP/1.1 200") == 2
    assert b"file /debian/dists/bookworm/Release" in out and b"file /debian/pool/a.deb" in out
    assert "refused" not in log


@pytest.mark.parametrize("request_line", [
    b"GET http://other.invalid/x HTTP/1.1",
    b"CONNECT other.invalid:443 HTTP/1.1",
    b"POST http://127.0.0.1/x HTTP/1.1",
])
def test_refuses_other_hosts_and_methods(request_line):
    out, log = through_proxy(request_line + b"\r\nHost: x\r\n\r\n", {"127.0.0.1"})
    assert out.startswith(b"HTTP/1.1 403") and "refused" in log


# -- the cache: package files and by-hash index files, from a second request on ------------------
import hashlib  # noqa: E402

from mirage_env.providers.aptproxy import Cache  # noqa: E402

INDEX = b"Package: hello\nVersion: 1\n"
INDEX_HASH = hashlib.sha256(INDEX).hexdigest()


class CountingArchive(Archive):
    hits: list = []

    def do_GET(self):
        CountingArchive.hits.append(self.path)
        if self.path.startswith("/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/"):
            body = INDEX
        elif self.path.endswith("short.deb"):  # announces more than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.close_connection = True
            return
        else:
            body = f"file {self.path}\n".encode() * 100
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def counting_archive():
    CountingArchive.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CountingArchive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def fetch(port: int, path: str, cache: Cache, extra: str = "") -> bytes:
    out, log = io.BytesIO(), io.StringIO()
    serve(io.BytesIO(f"GET http://127.0.0.1:{port}{path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()),
          out, {"127.0.0.1"}, log, cache)
    return out.getvalue()


def body(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


def test_a_package_file_is_fetched_once_then_served_from_the_cache(counting_archive, tmp_path):
    cache = Cache(tmp_path / "apt", 10 * 1024 * 1024)
    deb = "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"
    first = fetch(counting_archive, deb, cache)
    second = fetch(counting_archive, deb, cache)
    assert CountingArchive.hits == [deb]
    assert second.startswith(b"HTTP/1.1 200") and body(second) == body(first) != b""
    assert not list((tmp_path / "apt").rglob(".part-*"))


def test_by_hash_files_are_cached_only_when_they_match_their_hash(counting_archive, tmp_path):
    cache = Cache(tmp_path / "apt", 10 * 1024 * 1024)
    good = f"/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/{INDEX_HASH}"
    bad = "/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + "0" * 64
    for path in (good, good, bad, bad):
        assert body(fetch(counting_archive, path, cache)) == INDEX
    assert CountingArchive.hits == [good, bad, bad]


def test_what_may_change_or_is_partial_is_never_cached(counting_archive, tmp_path):
    cache = Cache(tmp_path / "apt", 10 * 1024 * 1024)
    release = "/debian/dists/bookworm/InRelease"
    deb = "/debian/pool/main/r/ranged/ranged_1_amd64.deb"
    short = "/debian/pool/main/s/short/short.deb"
    for _ in range(2):
        fetch(counting_archive, release, cache)
        fetch(counting_archive, deb, cache, extra="Range: bytes=10-\r\n")
        fetch(counting_archive, short, cache)
    assert CountingArchive.hits == [release, deb, short] * 2
    assert not [f for f in (tmp_path / "apt").rglob("*") if f.is_file()]


@pytest.mark.parametrize("path", ["/debian/pool/../../../etc/x.deb", "/debian/pool/%2e%2e/x.deb",
                                  "/debian/pool//x.deb", "/pool/a b.deb"])
def test_strange_paths_have_no_place_in_the_cache(tmp_path, path):
    assert Cache(tmp_path, 1).path_for("deb.debian.org", 80, path) is None


def test_the_cache_stays_within_its_bound(counting_archive, tmp_path):
    cache = Cache(tmp_path / "apt", 6000)  # each test .deb is ~4 KB: only the latest fits
    for name in ("a", "b", "c"):
        fetch(counting_archive, f"/debian/pool/main/{name}/{name}/{name}_1_amd64.deb", cache)
    kept = [f.name for f in (tmp_path / "apt").rglob("*.deb")]
    assert kept == ["c_1_amd64.deb"]
def test_the_proxy_starts_without_paramiko_or_pydantic():
    """It runs once per guest connection: importing the SSH and settings stacks would cost each one."""
    import subprocess
    import sys
    from pathlib import Path

    probe = ("import runpy, sys; sys.argv = ['aptproxy', '--help']\n"
             "try:\n    runpy.run_module('mirage_env.providers.aptproxy', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print(sorted(m for m in ('paramiko', 'pydantic', 'yaml') if m in sys.modules))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
