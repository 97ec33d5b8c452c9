"""The domU probe: boot a PV domU on br0, wait for its DHCP lease, answer from the host side.

The roles prepare the domUs (`domu_probe`: the Linux PV probe, the baseline; `unikernel`: the
bundled unikernel); this boots one with `xl create`, finds its lease in dnsmasq's lease file (a
fresh one: its expiry must come after the boot) and its address on its console log, pings it from
the host-only namespace, runs the caller's extra checks while it is up (e.g. HTTP), then destroys
it. Timings go to the report.
"""

from __future__ import annotations

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


def run_probe(target: sshclient.SshTarget, provider, settings: Settings, report,
              name: str = "mirage-probe", mac: str = "00:16:3e:6d:65:01",
              config: str | None = None, lease_file: str = "/var/lib/misc/dnsmasq.leases",
              lease_timeout: float | None = None,
              while_up: Callable[[str], list[tuple[str, bool, str]]] | None = None) -> ProbeResult:
    config = config or f"/etc/xen/{name}.cfg"
    console = f"/var/log/xen/console/guest-{name}.log"
    lease_s = lease_seconds(settings.network.lease_time) or 3600
    client = sshclient.connect(target)
    result = ProbeResult(ok=False)

    def sh(command: str, timeout: float = 120) -> tuple[int, str]:
        return sshclient.run(client, command, timeout=timeout)

    try:
        sh(f"sudo xl destroy {shlex.quote(name)} 2>/dev/null; sudo rm -f {console}")
        _, now = sh("date +%s")
        started = int(now.strip())
        report.step(f"xl create {config}")
        t0 = time.monotonic()
        code, out = sh(f"sudo xl create {shlex.quote(config)}")
        result.create_s = round(time.monotonic() - t0, 1)
        if code != 0:
            result.error = f"xl create failed: {out.strip()[-300:]}"
            return result
        lease_timeout = lease_timeout or settings.probe.lease_timeout
        deadline = t0 + lease_timeout
        console_ip, console_part = None, ""
        while time.monotonic() < deadline:
            _, leases = sh(f"cat {lease_file} 2>/dev/null; echo ---; sudo cat {console} 2>/dev/null")
            lease_part, _, console_part = leases.partition("---")
            lease_ip = fresh_lease(lease_part, mac, started, lease_s)
            if lease_ip and lease_ip in console_part:
                console_ip = lease_ip
                break
            report.step(f"waiting for {name}'s DHCP lease ({time.monotonic() - t0:.0f}s)")
            time.sleep(1)
        result.console_tail = console_part.strip()[-400:]
        if console_ip is None:
            result.error = (f"no DHCP lease for {name} ({mac}) within {lease_timeout:.0f}s; "
                            f"see {console} and `journalctl -u dnsmasq` on the dom0")
            return result
        result.ip = console_ip
        result.create_to_lease_s = round(time.monotonic() - t0, 1)
        report.step(f"{name} has {console_ip}: pinging it from the host side")
        ping = provider.host_exec("ping", "-c", "3", "-W", "2", console_ip, timeout=30)
        result.ping_ok = ping.returncode == 0
        if not result.ping_ok:
            result.error = f"{console_ip} did not answer ping from the host side: {ping.stdout[-200:]}"
            return result
        if while_up:
            result.extra = while_up(console_ip)
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
