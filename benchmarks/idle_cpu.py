#!/usr/bin/env python3
"""What an idle unikernel costs: the host-target auth app on a TAP in a namespace with a real
dnsmasq (tests/net/netlab.py), leased, then left alone. Reports CPU seconds and wake-ups (voluntary
context switches, from /proc) over the idle window, per unikernel.

    sudo .venv/bin/python benchmarks/idle_cpu.py [--count 4] [--seconds 20] [--json]

Everything lives in the namespace this creates, removed on the way out. Numbers only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.net.netlab import BuildCache, Lab  # noqa: E402


def usage(pid: int) -> tuple[float, int]:
    """(CPU seconds, voluntary context switches) of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    switches = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("voluntary_ctxt_switches"))
    return cpu, switches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mev-idle-"))
    lab = Lab(work, BuildCache(work / "builds"))
    try:
        lab.setup()
        unikernels = [lab.start("auth", sanitize=False, timeout=60) for _ in range(args.count)]
        time.sleep(2)  # let the lease exchange and the gratuitous ARP settle
        before = [usage(u.proc.pid) for u in unikernels]  # `ip netns exec` execs the app: same PID
        time.sleep(args.seconds)
        after = [usage(u.proc.pid) for u in unikernels]
        rows = [{"cpu_s": round(a[0] - b[0], 3), "wakeups_per_s": round((a[1] - b[1]) / args.seconds, 1)}
                for b, a in zip(before, after)]
        result = {"count": args.count, "idle_seconds": args.seconds, "per_unikernel": rows,
                  "cpu_percent_each": round(100 * sum(r["cpu_s"] for r in rows) / len(rows) / args.seconds, 2),
                  "wakeups_per_s_each": round(sum(r["wakeups_per_s"] for r in rows) / len(rows), 1)}
    finally:
        lab.close()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.count} idle auth unikernels (host target) over {args.seconds:.0f} s: "
              f"{result['cpu_percent_each']}% CPU and {result['wakeups_per_s_each']} wake-ups/s each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
