"""The NAT unit's commands, run for real with iptables in a private network namespace, in the
order systemd runs them: start; after the subnet changed, a restart (the new unit's ExecStop, then
its start); stop. No rule of an earlier subnet (nor the one earlier versions of the unit put straight
into POSTROUTING) may survive, and stop leaves nothing behind."""

from __future__ import annotations

import subprocess

from mirage_env.settings import load_settings
from tests.support import require_root_and_tools
from tests.unit.test_roles import render, role_defaults


def unit_commands(subnet: str) -> dict[str, list[str]]:
    variables = {**role_defaults(), **load_settings(None, {"network.nat": True}).role_vars(),
                 "xen_bridge_subnet": subnet}
    unit = render("xen_bridge", "etc/systemd/system/mirage-env-nat.service.j2", variables)
    commands: dict[str, list[str]] = {"start": [], "stop": []}
    for line in unit.splitlines():
        key, _, command = line.partition("=")
        if key in ("ExecStartPre", "ExecStart"):
            commands["start"].append(command)
        elif key == "ExecStop":
            commands["stop"].append(command)
    return commands


def as_shell(commands: list[str]) -> str:
    """systemd's meaning: a command prefixed with '-' may fail; any other failure ends the step."""
    lines = []
    for command in commands:
        if command.startswith("-"):
            lines.append(f"{command[1:]} 2>/dev/null || true")
        else:
            lines.append(f"{command} || exit 1")
    return "\n".join(lines)


def test_a_subnet_change_leaves_only_the_new_rule_and_stop_leaves_none():
    require_root_and_tools("unshare", "iptables")
    old, new = unit_commands("192.168.56.0/24"), unit_commands("10.77.0.0/24")
    show = "echo @@; iptables -t nat -S"
    legacy = "iptables -t nat -A POSTROUTING -s 192.168.56.0/24 -o eth0 -j MASQUERADE"  # before the chain
    script = "\n".join([legacy, as_shell(old["start"]), as_shell(old["start"]), show,  # twice: no duplicate
                        as_shell(new["stop"]), as_shell(new["start"]), show,   # restart after daemon-reload
                        as_shell(new["stop"]), show])
    proc = subprocess.run(["unshare", "--net", "sh", "-ec", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    started, restarted, stopped = [[l for l in part.splitlines() if "MIRAGE" in l or "MASQUERADE" in l]
                                   for part in proc.stdout.split("@@\n")[1:]]
    masquerade = "-o eth0 -j MASQUERADE"
    assert started == ["-N MIRAGE-ENV-NAT", "-A POSTROUTING -j MIRAGE-ENV-NAT",
                       f"-A MIRAGE-ENV-NAT -s 192.168.56.0/24 {masquerade}"], started
    assert restarted == ["-N MIRAGE-ENV-NAT", "-A POSTROUTING -j MIRAGE-ENV-NAT",
                         f"-A MIRAGE-ENV-NAT -s 10.77.0.0/24 {masquerade}"], restarted
    assert stopped == [], stopped
