#!/usr/bin/env python3
"""The bundled auth unikernel as a Xen PV domU against the Linux PV probe domU, in the same run,
on a provisioned dom0 (the built-in QEMU machine or any mirage-env environment):

    sudo python3 benchmarks/xen_boot.py --state-dir /tmp/mev-state [--env default] [--runs 2]
                                        [--memory 4] [--wrk-seconds 10] [--json]

Per run, one after the other (never both at once):
  auth     build auth for Xen here (stripped size), copy it to the dom0, `xl create` it with
           memory=M (default 4 MiB), time xl create and xl create -> DHCP lease (the lease must be
           in dnsmasq's lease file AND on the domU's console log), check 200/401 with curl from
           the host-only namespace, wrk for the record, then `xl destroy`.
  linux    the Linux PV probe (/etc/xen/mirage-probe.cfg, written by the domu_probe role), the
           same timings, ping from the namespace, then `xl destroy`.
Also once: the next smaller memory (M-1 MiB), to show where the PV loader refuses.

Both domUs are destroyed, not shut down, so neither releases its lease: each run reports `warm`
(dnsmasq still held a lease for the MAC, so it skips its ~3 s ICMP check of a new address).

Only the dom0 (over the environment's SSH) and the host-only namespace are touched; the domUs
this creates are destroyed by name on the way out, also on errors. Numbers only: nothing here
asserts on time.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mirage_env.bundled import build  # noqa: E402
from mirage_env.dom0.xlconfig import render_xl_config  # noqa: E402

UK_NAME = "bench-auth"
UK_MAC = "00:16:3e:62:65:01"
PROBE_CFG = "/etc/xen/mirage-probe.cfg"
REMOTE = "/tmp/mirage-bench"
USERS = ROOT / "unikernel" / "data" / "auth" / "users"

# Runs as root on the dom0: NAME CFG MAC TIMEOUT -> one "key=value ..." line.
MEASURE = r"""
name=$1 cfg=$2 mac=$3 timeout=$4
log=/var/log/xen/console/guest-$name.log
xl destroy "$name" 2>/dev/null; rm -f "$log"
# warm: dnsmasq still holds a lease for this MAC (it then skips its ~3 s ICMP probe of the address)
warm=0; grep -qi " $mac " /var/lib/misc/dnsmasq.leases 2>/dev/null && warm=1
t0=$(date +%s%N)
if ! xl create "$cfg" >/tmp/mirage-bench/create.out 2>&1; then
  echo "error=create_failed detail=$( (grep -m1 -E 'panic|not enough' /tmp/mirage-bench/create.out || tail -n1 /tmp/mirage-bench/create.out) | head -c 240 | tr ' \n' '_ ')"; exit 0
fi
t1=$(date +%s%N)
ip=""
while :; do
  now=$(date +%s%N)
  if (( (now - t0) / 1000000000 > timeout )); then echo "error=lease_timeout create_ms=$(( (t1 - t0) / 1000000 ))"; exit 0; fi
  ip=$(awk -v m="$mac" 'tolower($2)==tolower(m){print $3}' /var/lib/misc/dnsmasq.leases 2>/dev/null)
  if [ -n "$ip" ] && grep -q "$ip" "$log" 2>/dev/null; then break; fi
  sleep 0.05
done
t2=$(date +%s%N)
echo "create_ms=$(( (t1 - t0) / 1000000 )) lease_ms=$(( (t2 - t0) / 1000000 )) ip=$ip warm=$warm"
"""


class Dom0:
    def __init__(self, state_dir: Path, env: str):
        self.cfg = state_dir / env / "ssh_config"
        if not self.cfg.is_file():
            sys.exit(f"{self.cfg} missing: run `mirage-env --state-dir {state_dir} ssh true` once first")
        self.alias = f"mirage-{env}"

    def sh(self, command: str, timeout: float = 300, stdin: str | None = None) -> str:
        res = subprocess.run(["ssh", "-F", str(self.cfg), self.alias, command], input=stdin,
                             capture_output=True, text=True, timeout=timeout)
        return res.stdout + res.stderr

    def put(self, local: Path, remote: str) -> None:
        subprocess.run(["scp", "-q", "-F", str(self.cfg), str(local), f"{self.alias}:{remote}"], check=True, timeout=120)

    def measure(self, name: str, cfg: str, mac: str, timeout: int = 180) -> dict:
        out = self.sh(f"sudo bash -s {shlex.quote(name)} {shlex.quote(cfg)} {shlex.quote(mac)} {timeout}",
                      timeout=timeout + 120, stdin=MEASURE)
        line = [ln for ln in out.splitlines() if "=" in ln][-1:] or [f"error=no_output detail={out[-200:]}"]
        return dict(kv.split("=", 1) for kv in line[0].split() if "=" in kv)


def namespace(state_dir: Path, env: str) -> str:
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "mirage-env"), "--state-dir", str(state_dir), "status"],
                         capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"host_only_namespace:\s*(\S+)", out)
    if not m:
        sys.exit(f"no host_only_namespace in `mirage-env status`:\n{out}")
    return m.group(1)


def ns_run(ns: str, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout)


def curl(ns: str, url: str) -> tuple[int, str]:
    res = ns_run(ns, "curl", "-s", "-m", "10", "-w", "\n%{http_code}", url)
    body, _, code = res.stdout.rpartition("\n")
    return (int(code) if code.isdigit() else 0), body


def wrk(ns: str, url: str, seconds: int, connections: int) -> dict:
    res = ns_run(ns, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url, timeout=seconds + 60)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", res.stdout)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", res.stdout)
    scale = {"us": 0.001, "ms": 1, "s": 1000}
    return {"rps": float(rps.group(1)) if rps else None,
            "p50_ms": round(float(p50.group(1)) * scale[p50.group(2)], 2) if p50 else None,
            "errors": "Non-2xx" in res.stdout or "Socket errors" in res.stdout}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--env", default="default")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--memory", type=int, default=4, help="MiB for the unikernel (default 4)")
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    dom0 = Dom0(args.state_dir, args.env)
    ns = namespace(args.state_dir, args.env)
    user = sorted(p for p in USERS.iterdir() if p.is_file())[0]
    password = user.read_text().strip()
    results: dict = {"runs": []}

    with tempfile.TemporaryDirectory() as tmp:
        image = build("auth", target="xen", out_dir=tmp)
        results["auth_xen_bytes"] = image.stat().st_size
        cfg_m = Path(tmp) / "bench-auth.cfg"
        cfg_m.write_text(render_xl_config(UK_NAME, f"{REMOTE}/auth.xen", args.memory, mac=UK_MAC))
        # one MiB less than the smallest the config generator allows, written by hand
        cfg_small = Path(tmp) / "bench-auth-small.cfg"
        small = args.memory - 1
        cfg_small.write_text(cfg_m.read_text().replace(f"memory = {args.memory}", f"memory = {small}")
                             .replace(f"maxmem = {args.memory}", f"maxmem = {small}"))
        if UK_NAME in dom0.sh("sudo xl list"):
            sys.exit(f"{UK_NAME} is already running on the dom0: destroy it first")
        dom0.sh(f"mkdir -p {REMOTE}")
        for f in (image, cfg_m, cfg_small):
            dom0.put(f, f"{REMOTE}/{f.name}")
        have_probe = "yes" in dom0.sh(f"test -f {PROBE_CFG} && echo yes")
        probe_mac = None
        if have_probe:
            m = re.search(r"mac=([0-9a-fA-F:]{17})", dom0.sh(f"cat {PROBE_CFG}"))
            probe_mac = m.group(1) if m else None
        try:
            small_res = dom0.measure(UK_NAME, f"{REMOTE}/{cfg_small.name}", UK_MAC, timeout=60)
            dom0.sh(f"sudo xl destroy {UK_NAME} 2>/dev/null")
            results["memory_below_min"] = {"memory_mb": small, **small_res}
            for run in range(args.runs):
                r: dict = {"run": run + 1}
                uk = dom0.measure(UK_NAME, f"{REMOTE}/{cfg_m.name}", UK_MAC)
                r["auth"] = {"memory_mb": args.memory, **uk}
                if "ip" in uk:
                    base = f"http://{uk['ip']}:8088/login"
                    r["auth"]["http_200"] = curl(ns, f"{base}?user={user.name}&password={password}") == (200, f"hello {user.name}!\n")
                    r["auth"]["http_401"] = curl(ns, f"{base}?user={user.name}&password=wrong")[0] == 401
                    r["auth"]["ping"] = ns_run(ns, "ping", "-c", "3", "-W", "2", uk["ip"]).returncode == 0
                    r["auth"]["wrk"] = wrk(ns, f"{base}?user={user.name}&password={password}",
                                           args.wrk_seconds, args.connections)
                r["auth"]["console"] = dom0.sh(f"sudo cat /var/log/xen/console/guest-{UK_NAME}.log")[-600:]
                # destroyed like the probe (a clean `xl shutdown` would send DHCPRELEASE and make the
                # next boot "cold" for dnsmasq): both domUs meet the same DHCP server state
                dom0.sh(f"sudo xl destroy {UK_NAME}")
                if have_probe and probe_mac:
                    lx = dom0.measure("mirage-probe", PROBE_CFG, probe_mac)
                    r["linux"] = {**lx}
                    if "ip" in lx:
                        r["linux"]["ping"] = ns_run(ns, "ping", "-c", "3", "-W", "2", lx["ip"]).returncode == 0
                    dom0.sh("sudo xl destroy mirage-probe 2>/dev/null")
                    if "lease_ms" in uk and "lease_ms" in lx:
                        r["lease_ratio"] = round(int(uk["lease_ms"]) / int(lx["lease_ms"]), 3)
                results["runs"].append(r)
        finally:
            dom0.sh(f"sudo xl destroy {UK_NAME} 2>/dev/null; rm -rf {REMOTE}")
            if have_probe:
                dom0.sh("sudo xl destroy mirage-probe 2>/dev/null")

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"auth.xen (stripped): {results['auth_xen_bytes']} bytes ({results['auth_xen_bytes'] / 1024:.1f} KiB)")
    mb = results["memory_below_min"]
    print(f"memory={mb['memory_mb']} MiB: {mb.get('error', 'booted')} {mb.get('detail', '')[:160]}")
    for r in results["runs"]:
        a, lx = r["auth"], r.get("linux", {})
        print(f"run {r['run']}: auth memory={a['memory_mb']} create {a.get('create_ms')} ms, lease {a.get('lease_ms')} ms"
              f" warm {a.get('warm')}"
              f" {a.get('error', '')}; 200 {a.get('http_200')} 401 {a.get('http_401')} ping {a.get('ping')};"
              f" wrk {a.get('wrk')}")
        if lx:
            print(f"        linux: create {lx.get('create_ms')} ms, lease {lx.get('lease_ms')} ms warm {lx.get('warm')}"
                  f" {lx.get('error', '')};"
                  f" ping {lx.get('ping')}; lease ratio auth/linux {r.get('lease_ratio')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
