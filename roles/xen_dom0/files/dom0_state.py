#!/usr/bin/env python3
"""What the xen_dom0 role needs to know about the running host, read in one go (one task instead
of one per look-up: each task costs seconds on an emulated host). Prints one JSON object:

  missing_packages  which of --packages are not installed (the role's apt task runs only then)

  hypervisor      /sys/hypervisor/type ("xen" under Xen, "" otherwise)
  grub_has_limit  whether /boot/grub/grub.cfg boots Xen with dom0_mem=<N>M,max:<N>M
  dom0_mem_mb     dom0's memory as `xl list 0` reports it (null when Xen does not run)

    dom0_state.py --mem-mb 512        (run as root: xl needs it)
Read-only.
"""

import argparse
import json
import subprocess


def read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def dom0_memory() -> int | None:
    try:
        done = subprocess.run(["xl", "list", "0"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    rows = done.stdout.splitlines()
    if done.returncode != 0 or len(rows) < 2 or len(rows[1].split()) < 3:
        return None
    return int(rows[1].split()[2])


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
    parser.add_argument("--mem-mb", type=int, required=True)
    parser.add_argument("--packages", nargs="*", default=[], help="report which of these are not installed")
    args = parser.parse_args()
    hypervisor = read("/sys/hypervisor/type").strip()
    limit = f"dom0_mem={args.mem_mb}M,max:{args.mem_mb}M"
    print(json.dumps({
        "missing_packages": missing_packages(args.packages),
        "hypervisor": hypervisor,
        "grub_has_limit": limit in read("/boot/grub/grub.cfg"),
        "dom0_mem_mb": dom0_memory() if hypervisor == "xen" else None,
    }))


if __name__ == "__main__":
    main()
