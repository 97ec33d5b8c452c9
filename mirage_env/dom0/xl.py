"""xl, Xen's toolstack, on the dom0: create, destroy, list — and the one reader of its output.

The parsers are pure (tested on outputs recorded on a Xen 4.17 dom0); the commands take a
`sh(command, timeout=…) -> (exit code, output)` that runs on the dom0 (one SSH connection).
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass

from . import dnsmasq
from .paths import LEASE_FILE, console_log


@dataclass
class DomU:
    name: str
    domid: int
    memory_mb: int
    state: str  # xl's six flags, e.g. "-b----"
    mac: str | None = None  # its first vif's MAC
    ip: str | None = None  # dnsmasq's lease for that MAC


# -- parsing (pure) ----------------------------------------------------------------------------
def parse_xl_list(text: str) -> list[DomU]:
    """`xl list` (Name ID Mem VCPUs State Time(s)) → the domUs (Domain-0 and the header left out)."""
    domus = []
    for line in text.splitlines():
        parts = line.split()
        # a name has no spaces (xl refuses them), so the columns split cleanly
        if len(parts) >= 5 and parts[1].isdigit() and parts[1] != "0" and parts[2].isdigit():
            domus.append(DomU(parts[0], int(parts[1]), int(parts[2]), parts[4]))
    return domus


def parse_network_list(text: str) -> list[str]:
    """`xl network-list DOMAIN` (Idx BE Mac Addr. handle state …) → its vifs' MACs, in order."""
    return [word.lower() for line in text.splitlines() for word in line.split() if word.count(":") == 5]


def parse_xl_list_long(text: str) -> dict[int, list[str]]:
    """`xl list -l` (a JSON array of each domain's libxl config) → domid → its vifs' MACs.
    Text before the JSON (a warning on stderr) is skipped; no JSON at all gives {}."""
    start = text.find("[")
    if start < 0:
        return {}
    try:
        domains, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return {}
    macs = {}
    for domain in domains if isinstance(domains, list) else []:
        nics = ((domain.get("config") or {}).get("nics") or []) if isinstance(domain, dict) else []
        macs[int(domain.get("domid", -1))] = [n["mac"].lower() for n in nics if n.get("mac")]
    return macs


def with_addresses(domus: list[DomU], macs: dict[int, list[str]], lease_text: str) -> list[DomU]:
    """Fill in each domU's first MAC (from `macs`, domid → MACs) and its leased address."""
    leased = dnsmasq.by_mac(dnsmasq.parse_leases(lease_text))
    for domu in domus:
        if macs.get(domu.domid):
            domu.mac = macs[domu.domid][0]
            domu.ip = leased.get(domu.mac)
    return domus


# -- commands on the dom0 ----------------------------------------------------------------------
def list_domus(sh) -> list[DomU]:
    """Running domUs with their first vif's MAC and their address from dnsmasq's leases: one
    round trip (`xl list` for state and memory, `xl list -l` for the MACs, the lease file)."""
    _, out = sh(f"sudo xl list; echo @@long; sudo xl list -l; echo @@leases; cat {LEASE_FILE} 2>/dev/null")
    table, _, rest = out.partition("@@long")
    long_json, _, leases = rest.partition("@@leases")
    return with_addresses(parse_xl_list(table), parse_xl_list_long(long_json), leases)


# what `xl create` says when the vif's hotplug script did not finish in libxl's time
HOTPLUG_FAILURES = ("unable to add vif devices", "timed out", "hotplug", "libxl__userdata_path")


def create_command(config: str) -> str:
    """Shell for `xl create CONFIG` (the exit status is xl's). The new domain's random seed needs no
    step here: the first vif's hotplug script, the dom0's vif-mirage (every config names it), writes
    32 bytes of the dom0's /dev/urandom into data/random-seed of the domain's xenstore home — a node
    only the domain and dom0 can read — and libxl unpauses a domain only once its hotplug scripts
    are done, so the kernel finds the seed when it first runs (also when xendomains autostarts it
    at boot). The bundled kernel mixes it into its CSPRNG and blanks it."""
    return f"xl create {shlex.quote(config)} 2>&1"


def destroy(sh, name: str) -> tuple[int, str]:
    return sh(f"sudo xl destroy {shlex.quote(name)} 2>&1")


def create(sh, name: str, config: str, report) -> tuple[float, float, float | None, str | None]:
    """`xl create` a domU, replacing one of the same name and its console log, in one round trip:
    (dom0 epoch, sub-second, when xl create started; monotonic start; seconds xl create took, on
    the dom0's clock; error or None)."""
    # the dom0's clock around xl create alone: the replaced domain's destroy and the SSH round
    # trip are not part of it
    script = (f"xl destroy {shlex.quote(name)} 2>/dev/null; rm -f {shlex.quote(console_log(name))}; "
              f"date +%s.%N; {create_command(config)}; rc=$?; date +%s.%N; exit $rc")
    report.step(f"xl create {config}")
    t0 = time.monotonic()
    code, out = sh(f"sudo -n bash -c {shlex.quote(script)}")
    for attempt in (2, 3):
        if code == 0 or not any(sign in out for sign in HOTPLUG_FAILURES):
            break
        # libxl gives the vif's hotplug script a fixed 40 s; a starved dom0 (measured: a loaded
        # TCG host) misses it now and then, and the next try usually makes it
        report.step(f"xl create {config}: the vif's hotplug script was too slow, attempt {attempt}")
        code, out = sh(f"sudo -n bash -c {shlex.quote(script)}")
    lines = out.strip().splitlines()
    try:
        started, ended = float(lines[0]), float(lines[-1])
    except (IndexError, ValueError):
        return time.time(), t0, None, f"xl create failed: no clock reading from the dom0: {out.strip()[-300:]}"
    error = None if code == 0 else f"xl create failed: {chr(10).join(lines[1:-1]).strip()[-300:]}"
    return started, t0, round(ended - started, 2), error
