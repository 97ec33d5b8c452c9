"""The unikernel under pressure and against RFC MUSTs, with real peers in the lab namespace:
many idle clients, pipelined requests with a FIN, repeated failed logins, HTTP/1.1 limits
and forms (curl, Python sockets), fragmented pings (iputils ping).

One lab and one auth unikernel for the module; the failed-login test runs last because it
locks the namespace's address out of auth for a minute.
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


def test_failed_logins_are_limited_per_source(auth):
    codes = [curl(auth, f"/?user=mirage&password=wrong{i}")[0] for i in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429], codes
    code, body = curl(auth, GOOD)
    assert code == 429 and "Too many failed logins" in body
    auth.assert_no_sanitizer_report()
