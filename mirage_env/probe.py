"""The domU probe: boot a PV domU on br0, wait for its DHCP lease, answer from the host side.

The role `domu_probe` prepares the Linux PV probe (kernel + busybox initrd + xl config); this
boots it with `xl create`, finds its lease in dnsmasq's lease file (a fresh one: its expiry must
come after the boot) and on its console log, pings it from the host-only namespace, then
destroys it. Timings go to the report: they are the baseline the unikernel is compared against.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field

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
              config: str | None = None, lease_file: str = "/var/lib/misc/dnsmasq.leases") -> ProbeResult:
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
        deadline = t0 + settings.probe.lease_timeout
        console_ip, console_part = None, ""
        while time.monotonic() < deadline:
            _, leases = sh(f"cat {lease_file} 2>/dev/null; echo ---; sudo cat {console} 2>/dev/null")
            lease_part, _, console_part = leases.partition("---")
            lease_ip = fresh_lease(lease_part, mac, started, lease_s)
            if lease_ip and f"lease {lease_ip}" in console_part:
                console_ip = lease_ip
                break
            report.step(f"waiting for {name}'s DHCP lease ({time.monotonic() - t0:.0f}s)")
            time.sleep(1)
        result.console_tail = console_part.strip()[-400:]
        if console_ip is None:
            result.error = (f"no DHCP lease for {name} ({mac}) within {settings.probe.lease_timeout}s; "
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
        result.ok = True
        return result
    finally:
        t1 = time.monotonic()
        sh(f"sudo xl destroy {shlex.quote(name)} 2>/dev/null")
        result.timings["destroy_s"] = round(time.monotonic() - t1, 1)
        client.close()
