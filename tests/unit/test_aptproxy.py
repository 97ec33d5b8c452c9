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
