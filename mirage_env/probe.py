"""The domU probe: boot a PV domU on br0, wait for its DHCP lease, answer from the host side.

The roles prepare the domUs (`domu_probe`: the Linux PV probe, the baseline; `unikernel`: the
bundled unikernel); this boots one with `xl create`, finds its lease in dnsmasq's lease file (a
fresh one: its expiry must come after the boot) and its address on its console log, pings it from
the host-only namespace, runs the caller's extra checks while it is up (e.g. HTTP), then destroys
it. Timings go to the report.
"""

from __future__ import annotations

import ipaddress
import shlex
import time
from dataclasses import dataclass, field
from typing import Callable

from . import sshclient
from .settings import Settings, lease_seconds


@dataclass
class ProbeResult:
    ok: bool
    ip: str | None = None
    create_s: float | None = None
    create_to_lease_s: float | None = None
    ping_ok: bool = False
    error: str | None = None
    console_tail: str = ""
    timings: dict = field(default_factory=dict)
    extra: list = field(default_factory=list)  # (name, ok, detail) from the caller's checks


def fresh_lease(lease_text: str, mac: str, not_before: int, lease_s: int) -> str | None:
    """The IP leased to `mac` by a lease granted at or after `not_before` (dnsmasq's file format:
    `expiry mac ip hostname client-id`, expiry in epoch seconds)."""
    for line in lease_text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1].lower() == mac.lower():
            expiry = int(parts[0]) if parts[0].isdigit() else 0
            if expiry == 0 or expiry >= not_before + lease_s - 5:
                return parts[2]
    return None


def lease_expiry(lease_text: str, mac: str) -> int | None:
    """The expiry (epoch seconds, 0: infinite) of `mac`'s lease in dnsmasq's lease file."""
    for line in lease_text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1].lower() == mac.lower() and parts[0].isdigit():
            return int(parts[0])
    return None


LEASE_FILE = "/var/lib/misc/dnsmasq.leases"


def console_log(name: str) -> str:
    return f"/var/log/xen/console/guest-{name}.log"


@dataclass
class Booted:
    ip: str | None
    create_s: float | None
    create_to_lease_s: float | None
    console_tail: str
    error: str | None


# what `xl create` says when the vif's hotplug script did not finish in libxl's time
HOTPLUG_FAILURES = ("unable to add vif devices", "timed out", "hotplug", "libxl__userdata_path")


def _create(sh, name: str, config: str, report) -> tuple[int, float, float | None, str | None]:
    """`xl create` a domU, replacing one of the same name: (dom0 epoch at start, monotonic start,
    seconds xl create took, error)."""
    sh(f"sudo xl destroy {shlex.quote(name)} 2>/dev/null; sudo rm -f {console_log(name)}")
    _, now = sh("date +%s")
    report.step(f"xl create {config}")
    t0 = time.monotonic()
    code, out = sh(f"sudo xl create {shlex.quote(config)}")
    for attempt in (2, 3):
        if code == 0 or not any(sign in out for sign in HOTPLUG_FAILURES):
            break
        # libxl gives the vif's hotplug script a fixed 40 s; a starved dom0 (measured: a loaded
        # TCG host) misses it now and then, and the next try usually makes it
        report.step(f"xl create {config}: the vif's hotplug script was too slow, attempt {attempt}")
        sh(f"sudo xl destroy {shlex.quote(name)} 2>/dev/null")
        code, out = sh(f"sudo xl create {shlex.quote(config)}")
    create_s = round(time.monotonic() - t0, 1)
    return int(now.strip()), t0, create_s, (None if code == 0 else f"xl create failed: {out.strip()[-300:]}")


@dataclass
class Pending:
    """A domU just created, waiting for its lease."""
    name: str
    mac: str
    started: int  # dom0 epoch seconds before its `xl create`
    t0: float  # monotonic, before its `xl create`
    create_s: float | None


@dataclass
class DhcpRange:
    start: ipaddress.IPv4Address
    end: ipaddress.IPv4Address

    @property
    def size(self) -> int:
        return int(self.end) - int(self.start) + 1

    def __contains__(self, ip: str) -> bool:
        try:
            return self.start <= ipaddress.IPv4Address(ip) <= self.end
        except ValueError:
            return False


def parse_dhcp_range(conf_text: str) -> DhcpRange | None:
    """The first IPv4 `dhcp-range=[tag,]START,END,…` in dnsmasq's configuration."""
    for line in conf_text.splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip() != "dhcp-range":
            continue
        addrs = []
        for word in value.split(","):
            try:
                addrs.append(ipaddress.IPv4Address(word.strip()))
            except ValueError:
                continue
        if len(addrs) >= 2:
            return DhcpRange(addrs[0], addrs[1])
    return None


def leased_in_range(lease_text: str, dhcp: DhcpRange) -> int:
    return len({p[2] for p in (l.split() for l in lease_text.splitlines()) if len(p) >= 3 and p[2] in dhcp})


def refused_macs(journal_text: str) -> set[str]:
    """MACs dnsmasq logged `no address available` for (`DHCPDISCOVER(br0) MAC no address available`)."""
    macs = set()
    for line in journal_text.splitlines():
        if "no address available" in line:
            macs.update(w.lower() for w in line.split() if w.count(":") == 5)
    return macs


def exhausted_message(name: str, dhcp: DhcpRange, leased: int, said_by_dnsmasq: bool) -> str:
    how = "dnsmasq logged 'no address available'" if said_by_dnsmasq else "the lease file is full"
    return (f"no lease for {name}: dnsmasq has no free address in {dhcp.start}–{dhcp.end} "
            f"({leased} of {dhcp.size} leased; {how}). Fix: stop unikernels you no longer need "
            "(`mirage-env unikernel list` / `mirage-env unikernel stop NAME`), or widen "
            "network.dhcp_start/dhcp_end and run `mirage-env provision`")


DNSMASQ_CONF = "/etc/dnsmasq.d/*.conf /etc/dnsmasq.conf"


def wait_for_leases(sh: Callable[..., tuple[int, str]], pending: list[Pending], lease_s: int,
                    timeout: float, report, lease_file: str = LEASE_FILE) -> dict[str, Booted]:
    """Wait until dnsmasq has granted each domU's MAC a fresh lease and its console shows the
    address. A domU that cannot get one because the DHCP range is used up fails at once, with
    the range and the fix, instead of after the whole timeout."""
    done: dict[str, Booted] = {}
    _, conf = sh(f"sudo cat {DNSMASQ_CONF} 2>/dev/null")
    dhcp = parse_dhcp_range(conf)
    since = min((p.started for p in pending), default=0)
    # from when the last `xl create` returned: creating many on a slow dom0 takes minutes
    deadline = time.monotonic() + timeout
    consoles: dict[str, str] = {}
    while len(done) < len(pending) and time.monotonic() < deadline:
        waiting = [p for p in pending if p.name not in done]
        script = f"cat {lease_file} 2>/dev/null; echo ---journal; " \
                 f"sudo journalctl -u dnsmasq --since @{since} -o cat --no-pager 2>/dev/null " \
                 "| grep 'no address available'"
        for p in waiting:
            script += f"; echo ---console; sudo cat {console_log(p.name)} 2>/dev/null"
        _, out = sh(script)
        lease_part, _, rest = out.partition("---journal")
        journal_part, *console_parts = rest.split("---console")
        refused = refused_macs(journal_part)
        full = dhcp is not None and leased_in_range(lease_part, dhcp) >= dhcp.size
        for p, console in zip(waiting, console_parts):
            consoles[p.name] = console
            ip = fresh_lease(lease_part, p.mac, p.started, lease_s)
            if ip and ip in console:
                # when dnsmasq granted it (expiry - lease time, dom0 clock), not when this loop saw
                # it: while many are created one after another, the first are seen late
                expiry = lease_expiry(lease_part, p.mac) or 0
                granted = expiry - lease_s - p.started if expiry else None
                seen = round(time.monotonic() - p.t0, 1)
                done[p.name] = Booted(ip, p.create_s, float(granted) if granted is not None and 0 <= granted <= seen
                                      else seen, console.strip()[-400:], None)
            elif dhcp is not None and not ip and (p.mac.lower() in refused
                                                  or (full and p.mac.lower() not in lease_part.lower())):
                done[p.name] = Booted(None, p.create_s, None, console.strip()[-400:],
                                      exhausted_message(p.name, dhcp, leased_in_range(lease_part, dhcp),
                                                        p.mac.lower() in refused))
        if len(done) < len(pending):
            oldest = min(p.t0 for p in pending if p.name not in done)
            report.step(f"waiting for {len(pending) - len(done)} DHCP lease(s) "
                        f"({time.monotonic() - oldest:.0f}s)")
            time.sleep(1)
    for p in pending:
        if p.name not in done:
            done[p.name] = Booted(None, p.create_s, None, consoles.get(p.name, "").strip()[-400:],
                                  f"no DHCP lease for {p.name} ({p.mac}) within {timeout:.0f}s; see "
                                  f"{console_log(p.name)} and `journalctl -u dnsmasq` on the dom0")
    return done


def create_and_wait_for_leases(sh: Callable[..., tuple[int, str]], domus: list[tuple[str, str, str]],
                               lease_s: int, timeout: float, report,
                               lease_file: str = LEASE_FILE) -> dict[str, Booted]:
    """`xl create` each (name, mac, config) in turn, then wait for all their leases together."""
    pending, failed = [], {}
    for name, mac, config in domus:
        started, t0, create_s, error = _create(sh, name, config, report)
        if error:
            failed[name] = Booted(None, create_s, None, "", error)
        else:
            pending.append(Pending(name, mac, started, t0, create_s))
    return {**wait_for_leases(sh, pending, lease_s, timeout, report, lease_file), **failed}


def boot_and_wait_for_lease(sh: Callable[..., tuple[int, str]], name: str, mac: str, config: str,
                            lease_s: int, timeout: float, report,
                            lease_file: str = LEASE_FILE) -> Booted:
    """Boot a domU and wait until dnsmasq has granted its MAC a fresh lease and the domU's console
    shows that address."""
    return create_and_wait_for_leases(sh, [(name, mac, config)], lease_s, timeout, report, lease_file)[name]


def boot_and_wait_for_console(sh: Callable[..., tuple[int, str]], name: str, config: str, marker: str,
                              timeout: float, report) -> Booted:
    """Boot a domU that needs no network (e.g. the vchan echo) and wait for `marker` on its console."""
    console = console_log(name)
    _, t0, create_s, error = _create(sh, name, config, report)
    if error:
        return Booted(None, create_s, None, "", error)
    text = ""
    while time.monotonic() < t0 + timeout:
        _, text = sh(f"sudo cat {console} 2>/dev/null")
        if marker in text:
            return Booted(None, create_s, None, text.strip()[-400:], None)
        report.step(f"waiting for {name} to say {marker!r} ({time.monotonic() - t0:.0f}s)")
        time.sleep(1)
    return Booted(None, create_s, None, text.strip()[-400:],
                  f"{name} did not print {marker!r} within {timeout:.0f}s; see {console}")


def run_probe(target: sshclient.SshTarget, provider, settings: Settings, report,
              name: str = "mirage-probe", mac: str = "00:16:3e:6d:65:01",
              config: str | None = None, lease_timeout: float | None = None,
              while_up: Callable[[str], list[tuple[str, bool, str]]] | None = None) -> ProbeResult:
    """Boot → lease → ping from the host side → the caller's checks → destroy."""
    client = sshclient.connect(target)
    result = ProbeResult(ok=False)

    def sh(command: str, timeout: float = 120) -> tuple[int, str]:
        return sshclient.run(client, command, timeout=timeout)

    try:
        booted = boot_and_wait_for_lease(sh, name, mac, config or f"/etc/xen/{name}.cfg",
                                         lease_seconds(settings.network.lease_time) or 3600,
                                         lease_timeout or settings.probe.lease_timeout, report)
        result.ip, result.create_s = booted.ip, booted.create_s
        result.create_to_lease_s, result.console_tail = booted.create_to_lease_s, booted.console_tail
        if booted.error:
            result.error = booted.error
            return result
        report.step(f"{name} has {booted.ip}: pinging it from the host side")
        ping = provider.host_exec("ping", "-c", "3", "-W", "2", booted.ip, timeout=30)
        result.ping_ok = ping.returncode == 0
        if not result.ping_ok:
            result.error = f"{booted.ip} did not answer ping from the host side: {ping.stdout[-200:]}"
            return result
        if while_up:
            result.extra = while_up(booted.ip)
            failed = [f"{n}: {d}" for n, ok, d in result.extra if not ok]
            if failed:
                result.error = "; ".join(failed)
                return result
        result.ok = True
        return result
    finally:
        t1 = time.monotonic()
        sh(f"sudo xl destroy {shlex.quote(name)} 2>/dev/null")
        result.timings["destroy_s"] = round(time.monotonic() - t1, 1)
        client.close()
