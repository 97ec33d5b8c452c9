"""Booting domUs on the dom0 and waiting until they are up: a DHCP lease (a fresh one, granted
after the boot) that the domU's console also shows, or a ready line on the console for a domU
without network. Used by the probe, `unikernel run` and the benchmarks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from . import dnsmasq, xl
from .paths import DNSMASQ_CONF, LEASE_FILE, console_log


@dataclass
class Booted:
    ip: str | None
    create_s: float | None
    create_to_lease_s: float | None
    console_tail: str
    error: str | None


@dataclass
class Pending:
    """A domU just created, waiting for its lease."""
    name: str
    mac: str
    started: float  # dom0 epoch seconds (sub-second) before its `xl create`
    t0: float  # monotonic, before its `xl create`
    create_s: float | None


def wait_for_leases(sh: Callable[..., tuple[int, str]], pending: list[Pending], lease_s: int,
                    timeout: float, report, lease_file: str = LEASE_FILE) -> dict[str, Booted]:
    """Wait until dnsmasq has granted each domU's MAC a fresh lease and its console shows the
    address. A domU that cannot get one because the DHCP range is used up fails at once, with
    the range and the fix, instead of after the whole timeout."""
    done: dict[str, Booted] = {}
    _, conf = sh(f"sudo cat {DNSMASQ_CONF} 2>/dev/null")
    dhcp = dnsmasq.parse_dhcp_range(conf)
    since = int(min((p.started for p in pending), default=0))
    # from when the last `xl create` returned: creating many on a slow dom0 takes minutes
    deadline = time.monotonic() + timeout
    consoles: dict[str, str] = {}
    while len(done) < len(pending) and time.monotonic() < deadline:
        waiting = [p for p in pending if p.name not in done]
        script = f"cat {lease_file} 2>/dev/null; echo ---journal; " \
                 f"sudo journalctl -u dnsmasq --since @{since} -o short-unix --no-pager 2>/dev/null " \
                 "| grep -E 'no address available|DHCPACK'"
        for p in waiting:
            script += f"; echo ---console; sudo cat {console_log(p.name)} 2>/dev/null"
        _, out = sh(script)
        lease_part, _, rest = out.partition("---journal")
        journal_part, *console_parts = rest.split("---console")
        refused = dnsmasq.refused_macs(journal_part)
        acks = dnsmasq.ack_times(journal_part)
        leased = dnsmasq.leased_in_range(lease_part, dhcp) if dhcp is not None else 0
        full = dhcp is not None and leased >= dhcp.size
        for p, console in zip(waiting, console_parts):
            consoles[p.name] = console
            ip = dnsmasq.fresh_lease(lease_part, p.mac, p.started, lease_s)
            if ip and ip in console:
                # when dnsmasq granted it (its DHCPACK in the journal, else the lease's expiry minus
                # the lease time: whole seconds; both on the dom0's clock), not when this loop saw
                # it: while many are created one after another, the first are seen late
                expiry = dnsmasq.lease_expiry(lease_part, p.mac) or 0
                ack = acks.get(p.mac.lower())
                granted = (round(ack - p.started, 2) if ack is not None and ack >= p.started else
                           expiry - lease_s - int(p.started) if expiry else None)
                seen = round(time.monotonic() - p.t0, 1)
                done[p.name] = Booted(ip, p.create_s, float(granted) if granted is not None and 0 <= granted <= seen
                                      else seen, console.strip()[-400:], None)
            elif dhcp is not None and not ip and (
                    p.mac.lower() in refused
                    or (full and dnsmasq.lease_for(dnsmasq.parse_leases(lease_part), p.mac) is None)):
                done[p.name] = Booted(None, p.create_s, None, console.strip()[-400:],
                                      dnsmasq.exhausted_message(p.name, dhcp, leased, p.mac.lower() in refused))
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
        started, t0, create_s, error = xl.create(sh, name, config, report)
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
    _, t0, create_s, error = xl.create(sh, name, config, report)
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
