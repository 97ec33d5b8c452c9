"""The domU probe: boot a PV domU on br0, wait for its DHCP lease, answer from the host side.

The roles prepare the domUs (`domu_probe`: the Linux PV probe, the baseline; `unikernel`: the
bundled unikernel); this boots one (`dom0.boot`: `xl create`, a fresh lease in dnsmasq's lease
file that its console also shows), pings it from the host-only namespace, runs the caller's extra
checks while it is up (e.g. HTTP), then destroys it. Timings go to the report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from . import sshclient
from .dom0 import xl
from .dom0.boot import boot_and_wait_for_lease
from .dom0.paths import xl_config
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
        booted = boot_and_wait_for_lease(sh, name, mac, config or xl_config(name),
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
        xl.destroy(sh, name)
        result.timings["destroy_s"] = round(time.monotonic() - t1, 1)
        client.close()
