#!/usr/bin/env python3
"""A new user's waits, measured end to end on the built-in machine: `mirage-env up` (cold: an empty
cache; warm: a cache an earlier environment filled — the image and the apt proxy's packages), then
`provision` on the converged dom0 (changed=0 expected), then `unikernel run --app auth` to HTTP 200
on 127.0.0.1, then `down --destroy`.

    python3 benchmarks/up_times.py --base /var/tmp/bench-up            # cold: BASE/cache starts empty
    python3 benchmarks/up_times.py --base /var/tmp/bench-up2 --cache /var/tmp/bench-up/cache   # warm
    [--keep] leaves the environment running; [--json] prints the figures as JSON

Prints each stage, the provisioning per role, the strategy, and the totals. Figures only: nothing
here asserts on time (the machines are noisy; run it on an idle one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_kernel import free_port, until_200  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAME = "bench"


def child_env(cache: Path) -> dict:
    path = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    return {**os.environ, "PYTHONPATH": path, "XDG_CACHE_HOME": str(cache)}


def cli(base: Path, cache: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mirage_env.cli", "--state-dir", str(base / "state"),
                           "-s", f"name={NAME}", *args], capture_output=True, text=True, cwd=ROOT,
                          env=child_env(cache))
    return proc, round(time.monotonic() - started, 1)


def report(base: Path, command: str) -> dict:
    return json.loads((base / "state" / NAME / f"report-{command}.json").read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, required=True, help="a new directory for the state (and the cache)")
    p.add_argument("--cache", type=Path, help="an existing cache (warm run); default BASE/cache (cold)")
    p.add_argument("--keep", action="store_true", help="leave the environment up")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if (args.base / "state").exists():
        p.error(f"{args.base}/state exists: give a new --base")
    cache = args.cache or args.base / "cache"
    figures: dict = {"cache": "warm" if args.cache else "cold"}
    try:
        proc, figures["up_s"] = cli(args.base, cache, "up")
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        up = report(args.base, "up")
        figures["up_stages_s"] = {s["name"]: s["seconds"] for s in up["stages"]}
        figures["up_provision_roles_s"] = {k[len("provision."):-2]: v for k, v in up["measurements"].items()
                                           if k.startswith("provision.") and k.endswith("_s")}
        figures["strategy"] = up["measurements"].get("provision.strategy")
        figures["lease_s"] = {k: up["measurements"].get(k) for k in (
            "probe.create_to_lease_s", "unikernel.create_to_lease_s", "unikernel_vs_linux_lease_ratio")}

        proc, figures["converged_provision_s"] = cli(args.base, cache, "provision")
        converged = report(args.base, "provision")
        figures["converged_changed"] = converged["measurements"].get("provision.changed")
        figures["converged_provision_roles_s"] = {
            k[len("provision."):-2]: v for k, v in converged["measurements"].items()
            if k.startswith("provision.") and k.endswith("_s")}

        port = free_port()
        started = time.monotonic()
        run = subprocess.Popen([sys.executable, "-m", "mirage_env.cli", "--state-dir", str(args.base / "state"),
                                "-s", f"name={NAME}", "unikernel", "run", "--app", "auth", "--name", "bench-auth",
                                "--publish", f"{port}:8088"], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL,
                               env=child_env(cache))
        ok = until_200(f"http://127.0.0.1:{port}/login?user=alice&password=wonderland")
        figures["run_app_auth_to_200_s"] = round(time.monotonic() - started, 1) if ok else None
        run.wait(timeout=600)
    finally:
        if not args.keep and (args.base / "state").exists():
            cli(args.base, cache, "down", "--destroy")
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
