#!/usr/bin/env python3
"""What the xen_bridge role needs to know before it changes anything, read in one go (one task
instead of one per look-up: each task costs seconds on an emulated host). Prints one JSON object:

  missing_packages  which of --packages are not installed (the role's apt task runs only then)

  ssh_connection  $SSH_CONNECTION of this (unprivileged) session: the management connection
  interfaces      the host's interfaces; bridge_exists: whether the bridge is one of them
  nic_addresses   the IPv4 addresses of the NIC to bridge
  conflicts       "file:line:text" of each ifupdown stanza for the NIC, or bridge holding it
  ip_forward      the live net.ipv4.ip_forward; nat_unit: whether an earlier NAT unit exists

    bridge_state.py --nic eth1 --bridge br0
Read-only; needs no root (every file read is world-readable).
"""

import argparse
import glob
import json
import os
import re
import subprocess


def addresses(nic: str) -> list:
    done = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", nic], capture_output=True, text=True)
    return [line.split()[3].split("/")[0] for line in done.stdout.splitlines() if len(line.split()) > 3]


def conflicts(nic: str) -> list:
    """ifupdown reads /etc/network/interfaces and what it sources (interfaces.d on Debian); this
    role's own stanza file is not a conflict."""
    name = re.escape(nic)  # eth1.100: the dot is literal
    patterns = [re.compile(r"^\s*(auto|allow-hotplug|iface)\s+" + name + r"(\s|$)"),
                re.compile(r"^\s*bridge[-_]ports(\s+\S+)*\s+" + name + r"(\s|$)")]
    found = []
    for path in ["/etc/network/interfaces"] + sorted(glob.glob("/etc/network/interfaces.d/*")):
        if os.path.basename(path) == "mirage-env-bridge" or not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        found += [f"{path}:{n}:{line}" for n, line in enumerate(lines, 1) if any(p.search(line) for p in patterns)]
    return found


def missing_packages(names: list) -> list:
    """Which packages dpkg does not list as installed (dpkg-query is quick; apt's cache is not)."""
    if not names:
        return []
    done = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Package}\n", *names],
                          capture_output=True, text=True)
    installed = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("ii ")}
    return [name for name in names if name not in installed]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nic", required=True)
    parser.add_argument("--bridge", required=True)
    parser.add_argument("--packages", nargs="*", default=[], help="report which of these are not installed")
    args = parser.parse_args()
    interfaces = sorted(os.listdir("/sys/class/net"))
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            forward = f.read().strip()
    except OSError:
        forward = ""
    print(json.dumps({
        "missing_packages": missing_packages(args.packages),
        "ssh_connection": os.environ.get("SSH_CONNECTION", ""),
        "interfaces": interfaces,
        "bridge_exists": args.bridge in interfaces,
        "nic_addresses": addresses(args.nic) if args.nic in interfaces else [],
        "conflicts": conflicts(args.nic),
        "ip_forward": forward,
        "nat_unit": os.path.exists("/etc/systemd/system/mirage-env-nat.service"),
    }))


if __name__ == "__main__":
    main()
