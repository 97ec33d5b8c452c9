#!/usr/bin/env python3
"""Wall time of `mirage-env unikernel run` from the command to HTTP 200 on 127.0.0.1, against a
running environment: your own kernel (--kernel, first run: copied; second run: nothing copied),
as PV or PVH, and the bundled --app auth.

    python3 benchmarks/run_kernel.py --state-dir DIR [-s name=dev] [--kernel FILE] [--type pv|pvh]
        [--app auth] [--runs 2] [--name bench-k] [--json]

Each run: `unikernel stop NAME` (untimed), then `unikernel run ... --publish PORT:8088` timed from
the start of the command until GET http://127.0.0.1:PORT/login?user=alice&password=wonderland
answers 200. The kernel must serve the bundled auth app's login on port 8088 (a copy of the
bundled auth.xen under another name does). Numbers only; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(base: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirage_env.cli", *base, *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def until_200(url: str, limit_s: float = 300) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--state-dir", required=True)
    p.add_argument("-s", "--set", action="append", default=[], help="mirage-env -s KEY=VALUE (e.g. name=dev)")
    p.add_argument("--kernel", type=Path)
    p.add_argument("--app")
    p.add_argument("--type", choices=("pv", "pvh"))
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--name", default="bench-k")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    base = ["--state-dir", args.state_dir] + [x for kv in args.set for x in ("-s", kv)]
    what = ["--kernel", str(args.kernel.resolve())] if args.kernel else ["--app", args.app or "auth"]
    if args.type:
        what += ["--type", args.type]
    results = []
    for i in range(args.runs):
        cli(base, "unikernel", "stop", args.name)
        port = free_port()
        t0 = time.monotonic()
        proc = cli(base, "unikernel", "run", "--json", *what, "--name", args.name, "--publish", f"{port}:8088")
        ok = proc.returncode == 0 and until_200(f"http://127.0.0.1:{port}/login?user=alice&password=wonderland")
        total = round(time.monotonic() - t0, 1)
        out = json.loads(proc.stdout)["domus"][0] if proc.stdout.strip().startswith("{") else {}
        results.append({"run": i + 1, "ok": ok, "command_to_200_s": total, "type": out.get("type"),
                        "copied": out.get("copied"), "xl_create_s": out.get("xl_create_s"),
                        "create_to_lease_s": out.get("create_to_lease_s"), "cli_total_s": out.get("total_s"),
                        "phases": out.get("phases"),
                        "error": out.get("error") or (proc.stderr.strip()[-300:] if proc.returncode else None)})
    cli(base, "unikernel", "stop", args.name)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"run {r['run']}: {'200' if r['ok'] else 'FAILED'} after {r['command_to_200_s']}s "
                  f"({r['type']}, copied {len(r['copied'] or [])} file(s), xl create {r['xl_create_s']}s, "
                  f"create→lease {r['create_to_lease_s']}s; {r['phases']}){'  ' + r['error'] if r['error'] else ''}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
