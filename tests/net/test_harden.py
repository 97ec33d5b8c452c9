"""The unikernel under pressure and against RFC MUSTs, with real peers in the lab namespace:
many idle clients, pipelined requests with a FIN, repeated failed logins, HTTP/1.1 limits
and forms (curl, Python sockets), fragmented pings (iputils ping).

One lab and one auth unikernel for the module; the failed-login test runs last because it
empties the namespace address's failure allowance.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from netlab import need_tool

USERS = Path(__file__).resolve().parents[2] / "unikernel" / "data" / "auth" / "users"
PASSWORD = (USERS / "mirage").read_text().rstrip("\n")
GOOD = f"/?user=mirage&password={PASSWORD}"


@pytest.fixture(scope="module")
def auth(module_lab):
    need_tool("curl")
    return module_lab.start("auth")


def py(uk, script: str, *args: str, timeout: float = 120):
    r = uk.lab.run_python(script, uk.ip, *args, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def curl(uk, path: str, *args: str) -> tuple[int, str]:
    r = uk.exec_in_ns(["curl", "-sS", "-m", "20", "-o", "-", "-w", "\n%{http_code}", *args,
                       f"http://{uk.ip}:8088{path}"])
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


IDLE_THEN_FRESH = r"""
import json, socket, sys, time
ip, n = sys.argv[1], int(sys.argv[2])
idle = []
for _ in range(n):
    s = socket.create_connection((ip, 8088), timeout=10)
    idle.append(s)
time.sleep(0.5)
t = time.time()
s = socket.create_connection((ip, 8088), timeout=10)
s.sendall(b"GET /?user=x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
data = b""
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
except socket.timeout:
    pass
print(json.dumps({"status": data.split(b"\r\n", 1)[0].decode(errors="replace"),
                  "seconds": round(time.time() - t, 3)}))
"""


def test_100_idle_connections_do_not_lock_out_a_fresh_client(auth):
    res = py(auth, IDLE_THEN_FRESH, "100")
    assert res["status"] == "HTTP/1.1 401 Unauthorized", res


PIPELINE_FIN = r"""
import json, socket, sys
ip, n = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((ip, 8088), timeout=20)
s.sendall(b"GET /?q=1 HTTP/1.1\r\nHost: h\r\n\r\n" * n)
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(json.dumps({"answers": data.count(b"HTTP/1.1 401 ")}))
"""


def test_fin_after_pipelined_requests_answers_them_all(auth):
    assert py(auth, PIPELINE_FIN, "129") == {"answers": 129}


RAW_HTTP = r"""
import json, socket, sys
ip, hexreq = sys.argv[1], sys.argv[2]
s = socket.create_connection((ip, 8088), timeout=20)
s.sendall(bytes.fromhex(hexreq))
data = b""
try:
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            break
        data += b
except (socket.timeout, ConnectionResetError):
    pass
print(json.dumps({"status": data.split(b"\r\n", 1)[0].decode(errors="replace")}))
"""


def raw_status(uk, request: bytes) -> str:
    return py(uk, RAW_HTTP, request.hex())["status"]


def test_http_long_request_line_and_header_limits(auth):
    # RFC 9112 3: request lines of 8000 octets work; longer than we buffer: 414.
    pad = "a" * (8000 - len(GOOD) - len("GET  HTTP/1.1") - len("&pad="))
    code, body = curl(auth, f"{GOOD}&pad={pad}")
    assert (code, body) == (200, "hello mirage!\n")
    assert raw_status(auth, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: h\r\n\r\n") == \
        "HTTP/1.1 414 URI Too Long"
    # ~100 ordinary header fields work; too many or too large ones: 431 (RFC 6585 5).
    headers = [arg for i in range(98) for arg in ("-H", f"X-Field-{i}: value-{i}")]
    assert curl(auth, GOOD, *headers) == (200, "hello mirage!\n")
    many = b"".join(b"X-%d: y\r\n" % i for i in range(150))
    assert raw_status(auth, b"GET / HTTP/1.1\r\nHost: h\r\n" + many + b"\r\n") == \
        "HTTP/1.1 431 Request Header Fields Too Large"
    assert raw_status(auth, b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n") == \
        "HTTP/1.1 431 Request Header Fields Too Large"


def test_http_absolute_form_and_chunked_body(auth):
    code, body = curl(auth, "/", "--request-target", f"http://{auth.ip}:8088{GOOD}")
    assert (code, body) == (200, "hello mirage!\n")
    # curl sends a chunked body when told to (RFC 9112 7.1: a server MUST parse it).
    code, body = curl(auth, GOOD, "-X", "GET", "-H", "Transfer-Encoding: chunked",
                      "--data-binary", "some body")
    assert (code, body) == (200, "hello mirage!\n")
    chunked = (b"GET /?x=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4\r\nWiki\r\n0\r\n\r\n")
    assert raw_status(auth, chunked) == "HTTP/1.1 401 Unauthorized"
    assert raw_status(auth, chunked.replace(b"chunked", b"gzip")) == "HTTP/1.1 501 Not Implemented"


@pytest.mark.parametrize("size", [1600, 3000, 4000])
def test_fragmented_ping_is_answered(auth, size):
    need_tool("ping")
    r = auth.exec_in_ns(["ping", "-c", "1", "-W", "3", "-s", str(size), auth.ip])
    assert r.returncode == 0 and f"{size + 8} bytes from {auth.ip}" in r.stdout, r.stdout + r.stderr


def test_failed_logins_are_limited_per_source(auth):
    # 32 failures at once, then one per 0.5 s: a burst of 60 meets 429s (no PBKDF2 for them).
    urls = [arg for i in range(60)
            for arg in ("-o", "/dev/null", f"http://{auth.ip}:8088/?user=mirage&password=wrong{i}")]
    r = auth.exec_in_ns(["curl", "-sS", "-m", "60", "-w", "%{http_code}\n", *urls])
    codes = [int(c) for c in r.stdout.split()]
    assert len(codes) == 60 and codes[:30] == [401] * 30 and codes.count(429) >= 20, codes
    code, body = curl(auth, GOOD)
    assert code == 429 and "Too many failed logins" in body
    auth.assert_no_sanitizer_report()
