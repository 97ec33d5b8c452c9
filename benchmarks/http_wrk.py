#!/usr/bin/env python3
"""Requests/s and latency of the auth unikernel under wrk, against nginx
answering the same fixed response, in the same run and the same namespace.

    sudo python3 benchmarks/http_wrk.py [--duration 10] [--connections 10] [--json]

Everything runs inside a network namespace this script creates (a bridge,
dnsmasq for the unikernel's lease, the host-target auth unikernel on a TAP,
nginx bound to the bridge address 192.168.56.1:8089 with its own config in a
temporary directory, wrk as the client) and removes again, also on errors.

Scenarios, each measured with the same wrk settings:

  nginx          nginx (Debian nginx-light, 1 worker) returning "hello mirage!\\n"
  auth-ok        GET /?user=mirage&password=...: 200 "hello mirage!\\n". After the
                 first request the login is answered from auth's cache of
                 verified logins (two HMAC blocks), not PBKDF2.
  auth-invalid   a wrong password: 401 "Invalid login\\n", full PBKDF2 on every
                 request (failures are never cached): the cost of the hash.
  auth-nouser    no parameters: 401 "No user given\\n", no crypto at all: the
                 cost of the stack + HTTP alone.

It also times PBKDF2-HMAC-SHA256 itself (the C code of the unikernel, -O2) at
the build's iteration count. Numbers only; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "net"))
sys.path.insert(0, str(ROOT))

from mirage_env.bundled import pack_data as appdata  # noqa: E402

USERS = ROOT / "unikernel" / "data" / "auth" / "users"
NGINX_PORT = 8089
BODY = "hello mirage!\n"

NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    server {{
        listen {ip}:{port};
        location / {{
            default_type "text/plain; charset=utf-8";
            return 200 "{body}";
        }}
    }}
}}
"""


def check_prereqs() -> None:
    missing = [t for t in ("ip", "dnsmasq", "clang", "make", "wrk", "nginx", "curl") if shutil.which(t) is None]
    if os.geteuid() != 0:
        sys.exit("http_wrk.py needs root (network namespace, TAP device)")
    if missing:
        sys.exit(f"missing tools: {', '.join(missing)} (apt-get install wrk nginx-light dnsmasq-base clang make curl)")


def parse_wrk(out: str) -> dict:
    def dur_ms(v: str, unit: str) -> float:
        return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    res: dict = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    m = re.search(r"Latency\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", out)
    if m:
        res["lat_avg_ms"] = dur_ms(m.group(1), m.group(2))
        res["lat_stdev_ms"] = dur_ms(m.group(3), m.group(4))
        res["lat_max_ms"] = dur_ms(m.group(5), m.group(6))
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if m:
            res[f"p{pct}_ms"] = dur_ms(m.group(1), m.group(2))
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(map(int, m.groups())) if m else 0
    return res


def pbkdf2_cost(iterations: int, tmp: Path) -> dict:
    """Time the unikernel's own PBKDF2 (host, -O2) at the given count."""
    core = ROOT / "unikernel" / "core"
    src = tmp / "pbkdf2_bench.c"
    src.write_text(r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "sha256.h"
int main(int argc, char **argv) {
    unsigned it = (unsigned)atoi(argv[1]), n = 0;
    unsigned char dk[32], salt[16] = {1};
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
        pbkdf2_sha256("password", 8, salt, 16, it, dk, 32);
        n++;
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6 < 1000);
    printf("%f %u\n", ((b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6) / n, n);
    return dk[0] == 0x42 && dk[1] == 0x42;
}
""")
    exe = tmp / "pbkdf2_bench"
    subprocess.run(["clang", "-O2", "-std=gnu11", f"-I{core}", str(src), str(core / "sha256.c"),
                    str(core / "pbkdf2.c"), "-o", str(exe)], check=True)
    ms, n = subprocess.run([str(exe), str(iterations)], capture_output=True, text=True).stdout.split()
    return {"iterations": iterations, "ms_per_verification": float(ms), "runs": int(n)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    ap.add_argument("--connections", type=int, default=10, help="wrk connections (default 10)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args(argv)
    check_prereqs()

    import netlab  # tests/net: the namespace + bridge + dnsmasq lab

    iterations = appdata.iterations_from_env()
    password = (USERS / "mirage").read_text().rstrip("\n")
    work = Path(tempfile.mkdtemp(prefix="mevt-wrk-"))
    lab = netlab.Lab(work / "lab", netlab.BuildCache(work / "builds"))
    (work / "lab").mkdir()
    nginx = None
    results: dict = {"iterations": iterations, "duration_s": args.duration, "connections": args.connections,
                     "threads": args.threads, "cpus": os.cpu_count()}
    try:
        results["pbkdf2"] = pbkdf2_cost(iterations, work)
        lab.setup()
        uk = lab.start("auth", sanitize=False)     # optimised build, no sanitizers
        ndir = work / "nginx"
        ndir.mkdir()
        conf = ndir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=ndir, ip=lab.host_ip, port=NGINX_PORT, body=BODY.replace("\n", "\\n")))
        nginx = lab.popen(["nginx", "-c", str(conf), "-p", str(ndir)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
        ok_q = f"user=mirage&password={password}"
        targets = {
            "nginx": f"http://{lab.host_ip}:{NGINX_PORT}/?{ok_q}",
            "auth-ok": f"http://{uk.ip}:8088/?{ok_q}",
            "auth-invalid": f"http://{uk.ip}:8088/?user=mirage&password=wrong-password",
            "auth-nouser": f"http://{uk.ip}:8088/",
        }
        # same answer from both servers, checked before measuring
        deadline = time.monotonic() + 10
        while True:
            r = lab.exec(["curl", "-s", "-m", "5", targets["nginx"]])
            if r.stdout == BODY or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        got = {k: lab.exec(["curl", "-s", "-m", "10", u]).stdout for k, u in targets.items()}
        assert got["nginx"] == got["auth-ok"] == BODY, got
        assert got["auth-invalid"] == "Invalid login\n" and got["auth-nouser"] == "No user given\n", got

        for name, url in targets.items():
            r = lab.exec(["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
                          "--latency", "--timeout", "10s", url], timeout=args.duration + 60)
            res = parse_wrk(r.stdout)
            res["wrk_rc"] = r.returncode
            results[name] = res
        for name in ("auth-ok", "auth-invalid", "auth-nouser"):
            if results[name]["rps"] and results["nginx"]["rps"]:
                results[name]["ratio_to_nginx"] = round(results[name]["rps"] / results["nginx"]["rps"], 3)
        results["auth_alive"] = uk.alive()
        uk.stop()
        results["auth_console_tail"] = uk.console_text().strip().splitlines()[-3:]
    finally:
        if nginx is not None and nginx.poll() is None:
            nginx.terminate()
            nginx.wait(timeout=10)
        lab.close()
        shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    p = results["pbkdf2"]
    print(f"PBKDF2-HMAC-SHA256, {p['iterations']} iterations (our C, -O2, one core): "
          f"{p['ms_per_verification']:.3f} ms per verification")
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {results['cpus']} CPUs shared by "
          f"client and servers\n")
    print(f"{'scenario':14} {'req/s':>10} {'avg ms':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'non-2xx':>8} {'errors':>6} {'vs nginx':>8}")
    for name in ("nginx", "auth-ok", "auth-invalid", "auth-nouser"):
        r = results[name]
        ratio = r.get("ratio_to_nginx")
        print(f"{name:14} {r['rps'] or 0:10.0f} {r.get('lat_avg_ms', 0):8.3f} {r.get('p50_ms', 0):8.3f} "
              f"{r.get('p99_ms', 0):8.3f} {r.get('lat_max_ms', 0):8.2f} {r['non2xx']:8d} {r['socket_errors']:6d} "
              f"{(f'{ratio:.3f}' if ratio is not None else '-'):>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
