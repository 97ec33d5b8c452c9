"""auth and www on the host target, against dnsmasq, curl, Python clients and
a raw-socket peer (hostile input), all inside the lab namespace.

One lab (namespace + bridge + dnsmasq) and one auth and one www unikernel
are shared by the module; the tests in the middle throw broken input at
them and the last ones check that they still answer and exit cleanly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netlab import client_json, need_tool

HERE = Path(__file__).resolve().parent
USERS = Path(__file__).resolve().parents[2] / "unikernel" / "data" / "auth" / "users"
PASSWORDS = {u.name: u.read_text().rstrip("\n") for u in USERS.iterdir()}
GOOD = f"user=mirage&password={PASSWORDS['mirage']}"
RAW_MAC, RAW_IP = "02:6d:65:76:74:01", "192.168.56.250"


@pytest.fixture(scope="module")
def auth(module_lab):
    need_tool("curl")
    return module_lab.start("auth")


@pytest.fixture(scope="module")
def www(module_lab):
    need_tool("curl")
    return module_lab.start("www")


@pytest.fixture(scope="module")
def rawif(module_lab):
    """A veth pair: mevt-rawb0 is a bridge port, mevt-raw0 is free for
    rawpeer.py (no address on it, so the kernel never answers for RAW_IP)."""
    ns = module_lab.name
    module_lab.exec(["ip", "link", "add", "mevt-raw0", "type", "veth", "peer", "name", "mevt-rawb0"], check=True)
    try:
        for cmd in (["ip", "link", "set", "mevt-raw0", "address", RAW_MAC],
                    ["ip", "link", "set", "mevt-rawb0", "master", module_lab.bridge],
                    ["sysctl", "-q", "-w", "net.ipv6.conf.mevt-raw0.disable_ipv6=1"],
                    ["ip", "link", "set", "mevt-rawb0", "up"],
                    ["ip", "link", "set", "mevt-raw0", "up"]):
            module_lab.exec(cmd, check=True)
        yield "mevt-raw0"
    finally:
        module_lab.exec(["ip", "link", "del", "mevt-raw0"])
        assert ns == module_lab.name


def rawpeer(lab, iface: str, *args: str, timeout: float = 60) -> dict:
    r = lab.exec([sys.executable, str(HERE / "rawpeer.py"), iface, RAW_MAC, RAW_IP, *args], timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def curl(uk, url_path: str, *args: str, port: int = 8088):
    """curl inside the namespace: returns (http_code, body, stderr)."""
    r = uk.exec_in_ns(["curl", "-sS", "-m", "20", "-o", "-", "-w", "\n%{http_code}", *args,
                       f"http://{uk.ip}:{port}{url_path}"])
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body, r.stderr


# ---- auth: the seed walk-through's answers -------------------------------------


@pytest.mark.parametrize(
    "query,status,body",
    [
        (GOOD, 200, "hello mirage!\n"),
        (f"password={PASSWORDS['alice']}&user=alice", 200, "hello alice!\n"),
        ("user=alice&password=" + PASSWORDS["alice"].replace("w", "%77"), 200, "hello alice!\n"),
        ("user=mirage&password=wrong", 401, "Invalid login\n"),
        ("user=nobody&password=" + PASSWORDS["mirage"], 401, "Invalid login\n"),
        ("user=alice&password=" + PASSWORDS["mirage"], 401, "Invalid login\n"),
        ("user=mirage&password=", 401, "Invalid login\n"),
        ("user=" + "a" * 300 + "&password=x", 401, "Invalid login\n"),
        ("user=mirage", 401, "No user given\n"),
        ("password=x", 401, "No user given\n"),
        ("user=&password=x", 401, "No user given\n"),
        ("", 401, "No user given\n"),
        ("user=%zz&password=x", 400, "Bad Request\n"),
        ("user=mirage&password=%4", 400, "Bad Request\n"),
    ],
)
def test_auth_answers(auth, query, status, body):
    code, got, err = curl(auth, f"/any/path?{query}")
    assert (code, got) == (status, body), err


def test_auth_any_path_head_and_methods(auth):
    assert curl(auth, f"/?{GOOD}")[:2] == (200, "hello mirage!\n")
    assert curl(auth, f"/a/b/c.html?{GOOD}")[:2] == (200, "hello mirage!\n")
    r = auth.exec_in_ns(["curl", "-sS", "-m", "20", "-I", f"http://{auth.ip}:8088/?{GOOD}"])
    # (text mode: curl's CR LF arrive as LF)
    assert r.stdout.startswith("HTTP/1.1 200 OK\n"), r.stdout
    assert "Content-Length: 14\n" in r.stdout
    code, body, _ = curl(auth, "/", "-X", "POST", "-d", "user=mirage")
    assert (code, body) == (405, "Method Not Allowed\n")
    r = auth.exec_in_ns(["curl", "-sS", "-m", "20", "-i", "-X", "DELETE", f"http://{auth.ip}:8088/"])
    assert "Allow: GET, HEAD\n" in r.stdout
    # nothing listens on other ports: refused at once by our RST (a
    # dropped SYN would end in curl's timeout, exit code 28)
    r = auth.exec_in_ns(["curl", "-sS", "-m", "5", f"http://{auth.ip}:8089/"])
    assert r.returncode == 7, r.stderr


def test_auth_keepalive_one_connection(auth):
    r = auth.exec_in_ns(["curl", "-sS", "-v", "-m", "20",
                         f"http://{auth.ip}:8088/1?{GOOD}", f"http://{auth.ip}:8088/2?user=mirage&password=no",
                         f"http://{auth.ip}:8088/3?user=alice&password={PASSWORDS['alice']}"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello mirage!\nInvalid login\nhello alice!\n"
    assert r.stderr.count("Re-using existing connection") == 2, r.stderr
    assert r.stderr.count("Connected to") == 1, r.stderr


PIPELINE = r"""
import json, sys
ip, good = sys.argv[1], sys.argv[2]
reqs = b"".join(f"GET /{i}?{good if i % 2 == 0 else 'user=x'} HTTP/1.1\r\nHost: uk\r\n\r\n".encode() for i in range(6))
reqs += b"GET /last?" + good.encode() + b" HTTP/1.1\r\nHost: uk\r\nConnection: close\r\n\r\n"
data, _ = exchange(ip, reqs, wait=20)
print(json.dumps(data.decode()))
"""


def test_auth_pipelined_requests_in_order(auth):
    data = client_json(auth, PIPELINE, GOOD)
    parts = re.findall(r"HTTP/1\.1 (\d+) [^\r]*\r\n(.*?)\r\n\r\n([^H]*)", data, re.S)
    assert [p[0] for p in parts] == ["200", "401"] * 3 + ["200"], data
    assert [p[2] for p in parts] == ["hello mirage!\n", "No user given\n"] * 3 + ["hello mirage!\n"]
    for _, headers, body in parts:
        assert f"Content-Length: {len(body)}" in headers
    assert "Connection: close" in parts[-1][1]


CONCURRENT = r"""
import http.client, json, sys, threading
ip, good, alice = sys.argv[1], sys.argv[2], sys.argv[3]
N = int(sys.argv[4])
results = [None] * N
barrier = threading.Barrier(N)
def run(i):
    try:
        c = http.client.HTTPConnection(ip, 8088, timeout=60)
        c.connect()
        barrier.wait(timeout=60)           # all N connections open at once
        kind = i % 3
        path, want = [(f"/c{i}?{good}", (200, "hello mirage!\n")),
                      (f"/c{i}?user=alice&password=bad{i}", (401, "Invalid login\n")),
                      (f"/c{i}?user=alice", (401, "No user given\n"))][kind]
        c.request("GET", path)
        r = c.getresponse()
        got = (r.status, r.read().decode())
        c.request("GET", f"/again?user=alice&password={alice}")   # keep-alive, second request
        r = c.getresponse()
        got2 = (r.status, r.read().decode())
        results[i] = [got == want and got2 == (200, "hello alice!\n"), got, got2]
        c.close()
    except Exception as e:
        results[i] = [False, repr(e)]
ts = [threading.Thread(target=run, args=(i,)) for i in range(N)]
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps(results))
"""


def test_50_concurrent_clients_all_correct(auth):
    results = client_json(auth, CONCURRENT, GOOD, PASSWORDS["alice"], "50", timeout=180)
    bad = [(i, r) for i, r in enumerate(results) if not r[0]]
    assert len(results) == 50 and not bad, bad
    assert auth.alive()


# ---- www -------------------------------------------------------------------------


def test_www_page_and_content_types(www):
    r = www.exec_in_ns(["curl", "-sS", "-m", "20", "-i", f"http://{www.ip}/"])
    head, _, body = r.stdout.partition("\n\n")   # text mode: CR LF read as LF
    assert head.startswith("HTTP/1.1 200 OK"), r.stdout
    assert "Content-Type: text/html; charset=utf-8" in head
    assert "Hello Mirage World!" in body
    assert f"Content-Length: {len(body.encode())}" in head
    assert curl(www, "/index.html", port=80)[1] == body
    r = www.exec_in_ns(["curl", "-sS", "-m", "20", "-o", "/dev/null", "-w", "%{http_code} %{content_type}",
                        f"http://{www.ip}/style.css"])
    assert r.stdout == "200 text/css; charset=utf-8"
    assert curl(www, "/missing.html", port=80)[:2] == (404, "Not Found\n")
    assert curl(www, "/%zz", port=80)[:2] == (400, "Bad Request\n")
    assert curl(www, "/index%2ehtml", port=80)[1] == body    # %-escapes decoded in paths
    assert curl(www, "/../index.html", "--path-as-is", port=80)[0] == 404


def test_www_streams_a_large_file(module_lab, tmp_path):
    """A 300 KB file is far bigger than the send buffer: streamed as the
    client's ACKs come, byte-exact."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>Hello Mirage World!</h1>")
    blob = os.urandom(300 * 1024)
    (site / "blob.bin").write_bytes(blob)
    uk = module_lab.start("www", data_dir=site)
    r = uk.exec_in_ns(["sh", "-c", f"curl -sS -m 60 http://{uk.ip}/blob.bin | sha256sum"])
    assert r.stdout.split()[0] == hashlib.sha256(blob).hexdigest(), r.stderr
    r = uk.exec_in_ns(["curl", "-sS", "-m", "20", "-o", "/dev/null", "-w", "%{content_type}", f"http://{uk.ip}/blob.bin"])
    assert r.stdout == "application/octet-stream"
    # two large downloads at once, one over a slow reader (small window)
    r = uk.exec_in_ns(["sh", "-c", f"curl -sS -m 60 --limit-rate 200k http://{uk.ip}/blob.bin | sha256sum & "
                                   f"curl -sS -m 60 http://{uk.ip}/blob.bin | sha256sum; wait"])
    assert r.stdout.split()[::2] == [hashlib.sha256(blob).hexdigest()] * 2, r.stdout + r.stderr
    assert uk.stop() == 0
    uk.assert_no_sanitizer_report()


# ---- hostile input ---------------------------------------------------------------

HOSTILE_HTTP = r"""
import json, sys, time
ip = sys.argv[1]
def shown(payload, **kw):
    data, end = exchange(ip, payload, **kw)
    return data.decode(errors="replace") + (f"<{end}>" if end else "")
out = {}
out["flood"] = shown(b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"y" * 50) for i in range(200)) + b"\r\n")
out["many_small"] = shown(b"GET / HTTP/1.1\r\nHost: a\r\n" + b"A: b\r\n" * 40 + b"\r\n")
out["long_line"] = shown(b"GET /" + b"a" * 7980 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
out["too_long_line"] = shown(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
out["bad_escape"] = shown(b"GET /?user=%G1&password=%%% HTTP/1.1\r\nHost: a\r\n\r\n")
out["nul"] = shown(b"GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n")
out["binary"] = shown(bytes(range(1, 256)) * 4 + b"\r\n\r\n")
out["http2"] = shown(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
out["no_host"] = shown(b"GET / HTTP/1.1\r\n\r\n")
out["version"] = shown(b"GET / HTTP/3.0\r\nHost: a\r\n\r\n")
out["chunked"] = shown(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
out["gzip"] = shown(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n")
out["cl_conflict"] = shown(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
out["big_body"] = shown(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"b" * 20000)
out["folded"] = shown(b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n")
out["ctl_in_value"] = shown(b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\x02\r\n\r\n")
out["early_close"] = shown(b"GET /?user=mirage&pass", eof=True)   # half a request, then EOF
t = time.monotonic()
out["slow"] = shown(b"GET / HTTP/1.1\r\n", wait=30)    # never finished: 408 after 10 s
out["slow_s"] = round(time.monotonic() - t, 1)
print(json.dumps(out))
"""


def test_hostile_http_requests(auth):
    out = client_json(auth, HOSTILE_HTTP, timeout=180)
    expect = {
        # RFC 6585/9112: too many fields 431; 40 fields, an 8000-octet line and a chunked
        # body are fine (401: no user given); a longer line than we buffer 414.
        "flood": 431, "many_small": 401, "long_line": 401, "too_long_line": 414, "bad_escape": 400,
        "nul": 400, "binary": 400, "http2": 505, "no_host": 400, "version": 505, "chunked": 401,
        "gzip": 501, "cl_conflict": 400, "big_body": 413,
        "folded": 400, "ctl_in_value": 400, "slow": 408,
    }
    for k, status in expect.items():
        m = re.match(r"HTTP/1\.1 (\d+) ", out[k])
        assert m and int(m.group(1)) == status, (k, out[k][:300])
        clen = int(re.search(r"Content-Length: (\d+)", out[k]).group(1))
        if status == 401:   # a valid request: answered, the connection stays open
            assert out[k].endswith("<timeout>"), (k, out[k][:300])
            continue
        assert "Connection: close\r\n" in out[k], (k, out[k][:300])
        assert len(out[k].partition("\r\n\r\n")[2]) == clen, (k, out[k])   # then closed by us
    assert out["early_close"] == "", out["early_close"]
    assert 9 <= out["slow_s"] <= 25, out["slow_s"]
    assert curl(auth, f"/?{GOOD}")[:2] == (200, "hello mirage!\n")


def test_hostile_tcp_segments(auth, module_lab, rawif):
    res = rawpeer(module_lab, rawif, "tcp", auth.ip, "8088", GOOD)
    assert res.get("arp") and res.get("synack"), res
    assert res["synack_mss"] == 1460
    for k in ("bad_csum_ignored", "out_of_window_acked", "out_of_order_dupack", "blind_rst_challenged",
              "syn_challenged", "server_fin", "closed_port_rst", "stray_ack_rst"):
        assert res[k] is True, (k, res)
    assert res["response"].startswith("HTTP/1.1 200 OK\r\n") and res["response"].endswith("hello mirage!\n"), res
    # unacknowledged: resent after the initial RTO (1 s), then after 2 s more
    t1, t2 = res["retransmits_s"]
    assert 0.8 <= t1 <= 2.0 and 1.6 <= t2 - t1 <= 3.5, res["retransmits_s"]
    assert curl(auth, f"/?{GOOD}")[:2] == (200, "hello mirage!\n")


def test_hostile_frames(auth, module_lab, rawif):
    res = rawpeer(module_lab, rawif, "frames", auth.ip)
    assert res["arp"] and res["sent"] > 20
    # the only answers allowed are none at all: every frame was broken
    assert res["answers"] == [], res
    assert res["echo_after"], res
    assert curl(auth, f"/?{GOOD}")[:2] == (200, "hello mirage!\n")


def test_bogus_dhcp_offers_are_ignored(module_lab, rawif):
    """Answer a booting unikernel's DISCOVER with broken OFFERs before
    dnsmasq does: it must ignore them all and take dnsmasq's lease."""
    peer = module_lab.popen([sys.executable, str(HERE / "rawpeer.py"), rawif, RAW_MAC, RAW_IP, "dhcp_bogus", "30"],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)  # the peer listens before the unikernel boots
    uk = module_lab.start("auth", wait=False)
    ip = uk.wait_lease(timeout=60)
    out, _ = peer.communicate(timeout=40)
    res = json.loads(out.strip().splitlines()[-1])
    assert res["discover"] and res["sent"] >= 10, res
    assert ip.startswith(module_lab.subnet + ".") and ip != "192.168.56.77"
    assert "192.168.56.77" not in uk.console_text()
    assert curl(uk, f"/?{GOOD}")[:2] == (200, "hello mirage!\n")
    assert uk.stop() == 0
    uk.assert_no_sanitizer_report()


# ---- after all that ---------------------------------------------------------------


def test_still_serving_then_clean_exit_and_no_password_logged(auth, www):
    assert curl(auth, f"/?{GOOD}")[:2] == (200, "hello mirage!\n")
    code, body, err = curl(www, "/", port=80)
    if code == 0 and www.alive():
        # Seen once in CI (stop 20's pre-check), not reproduced in 200 s of load and renewals: curl
        # got no answer from an idle www at all. One more try, with the evidence on the output.
        print(f"www: no answer ({err.strip()}); trying again\n{www.describe()}")
        time.sleep(1)
        code, body, err = curl(www, "/", port=80)
    assert "Hello Mirage World!" in body, (code, err, www.describe())
    assert auth.stop(signal.SIGTERM) == 0
    assert www.stop(signal.SIGINT) == 0
    auth.assert_no_sanitizer_report()
    www.assert_no_sanitizer_report()
    text = auth.console_text() + auth.stderr_text()
    m = re.search(r"auth: (\d+) ok, (\d+) invalid, (\d+) without user, (\d+) pbkdf2, (\d+) cached", text)
    assert m and int(m.group(1)) > 50 and int(m.group(5)) > 0, text
    for pw in PASSWORDS.values():
        assert pw not in text
    assert "wrong" not in text and "bad1" not in text
