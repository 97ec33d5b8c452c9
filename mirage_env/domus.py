"""The bundled unikernel's domUs on the dom0: run, list, logs, stop (`mirage-env unikernel …`).

The `unikernel` role puts the sources at /opt/mirage-env/src and the built images in
/var/lib/mirage-env/unikernel; these functions work over one SSH connection to the dom0.
"""

from __future__ import annotations

import hashlib
import shlex
import statistics
from dataclasses import dataclass

from .dom0 import dnsmasq, xl
from .dom0.boot import Booted, boot_and_wait_for_console, create_and_wait_for_leases
from .dom0.names import name_problem
from .dom0.paths import AUTO_DIR, LEASE_FILE, SRC, UNIKERNEL_OUT as OUT, autostart_link, console_log, xl_config
from .dom0.xl import DomU, list_domus
from .dom0.xlconfig import render_xl_config
from . import registry
from .errors import MirageEnvError

__all__ = ["DomU", "list_domus", "name_problem", "DomUError", "mac_for", "build", "write_config",
           "run_apps", "run_app", "logs", "stop", "parse_stop_output"]
# apps that need no network: booted when their console says they are ready, not on a DHCP lease
CONSOLE_READY = {"echo": "vchan: server on"}


class DomUError(MirageEnvError):
    """Something the user can act on; the message says what."""


def mac_for(name: str) -> str:
    """A stable MAC in Xen's OUI for a domain name, so it gets the same lease each boot."""
    digest = hashlib.sha256(name.encode()).digest()
    return "00:16:3e:" + ":".join(f"{b:02x}" for b in (digest[0] & 0x7F, digest[1], digest[2]))


def build(sh, app: str, report) -> str:
    """Build APP for Xen on the dom0 unless make says its image is up to date; return its path."""
    code, _ = sh(f"test -f {SRC}/unikernel/Makefile")
    if code != 0:
        raise DomUError("the unikernel sources are not on the dom0. Fix: run `mirage-env provision`")
    image = f"{OUT}/{app}.xen"
    make = f"make -C {SRC}/unikernel APP={shlex.quote(app)} TARGET=xen OUT={OUT} CC=gcc"
    code, _ = sh(f"sudo {make} -q 2>/dev/null")
    if code == 0:
        return image
    report.step(f"building {app} for Xen on the dom0")
    code, out = sh(f"sudo {make} -s", timeout=1200)
    if code != 0:
        raise DomUError(f"building {app} failed on the dom0:\n{out[-1500:]}")
    return image


def write_config(sh, name: str, image: str, memory_mb: int, bridge: str, autostart: bool,
                 cmdline: str = "") -> str:
    """Write /etc/xen/NAME.cfg (CMDLINE: the user's extra kernel command line); with `autostart`,
    link it into /etc/xen/auto so that xendomains boots it with the dom0 (without, remove such a
    link: the latest run decides)."""
    config = render_xl_config(name, image, memory_mb, bridge=bridge, mac=mac_for(name), extra_cmdline=cmdline)
    path, link = xl_config(name), autostart_link(name)
    if autostart:
        tail = f"sudo mkdir -p {AUTO_DIR} && sudo ln -sfn {path} {link}"
    else:
        tail = f"sudo rm -f {link}"
    code, out = sh(f"printf %s {shlex.quote(config)} | sudo tee {path} >/dev/null && {tail}")
    if code != 0:
        raise DomUError(f"could not write {path}: {out}")
    return path


def run_apps(sh, app: str, names: list[str], memory_mb: int, bridge: str, lease_s: int, report,
             autostart: bool = False, timeout: float = 120, image: str | None = None,
             cmdline: str = "") -> dict[str, Booted]:
    """Write one xl config per name (each its own MAC) for IMAGE (APP's image on the dom0; None:
    build it there), boot them all and wait for every lease (or, for a console app, its ready line)."""
    image = image or build(sh, app, report)
    configs = [(name, write_config(sh, name, image, memory_mb, bridge, autostart, cmdline)) for name in names]
    if app in CONSOLE_READY:
        return {name: boot_and_wait_for_console(sh, name, path, CONSOLE_READY[app], timeout, report)
                for name, path in configs}
    return create_and_wait_for_leases(sh, [(name, mac_for(name), path) for name, path in configs],
                                      lease_s, timeout, report)


def run_app(sh, app: str, name: str, memory_mb: int, bridge: str, lease_s: int, report,
            timeout: float = 120) -> Booted:
    return run_apps(sh, app, [name], memory_mb, bridge, lease_s, report, timeout=timeout)[name]


def _lease_seconds(booted: dict[str, Booted]) -> list[float]:
    return [b.create_to_lease_s for b in booted.values() if b.create_to_lease_s is not None]


def run_summary(names: list[str], booted: dict[str, Booted], total_s: float) -> dict:
    """`unikernel run --json`: each domU and the spread of its xl create → lease times."""
    leases = _lease_seconds(booted)
    return {
        "domus": [{"name": n, "mac": mac_for(n), "ip": booted[n].ip, "xl_create_s": booted[n].create_s,
                   "create_to_lease_s": booted[n].create_to_lease_s, "error": booted[n].error}
                  for n in names],
        "total_s": total_s,
        "create_to_lease_median_s": statistics.median(leases) if leases else None,
        "create_to_lease_worst_s": max(leases) if leases else None,
    }


def try_url(app: str, ip: str) -> str | None:
    """The URL `unikernel run` suggests for an app that serves HTTP (a login of a demo user)."""
    from .unikernel_probe import try_path

    path = try_path(app)
    return registry.apps()[app].url(ip, path) if path and registry.apps()[app].port else None


def run_hints(app: str, names: list[str], booted: dict[str, Booted], total_s: float, autostart: bool,
              namespace: str | None) -> list[str]:
    """`unikernel run`'s lines for a person: where each domU is and what to do next."""
    lines = []
    failed = {n for n, b in booted.items() if b.error}
    leases = _lease_seconds(booted)
    for n in names:
        b = booted[n]
        if b.error:
            continue
        if b.ip is None:  # a vchan app: no network
            lines.append(f"{n} is up (vchan); talk to it: mirage-env vchan {n} [--send TEXT]")
            continue
        lines.append(f"{n} is up at {b.ip} (xl create → lease {b.create_to_lease_s}s)")
        url = try_url(app, b.ip)
        if namespace and url and len(names) == 1:
            lines.append(f"try: ip netns exec {namespace} curl '{url}'")
    if len(names) > 1 and leases:
        lines.append(f"{len(leases)} of {len(names)} up in {total_s}s; xl create → lease median "
                     f"{statistics.median(leases)}s, worst {max(leases)}s")
    if len(failed) < len(names):
        if autostart:
            lines.append("they boot with the dom0 (xendomains); `unikernel stop` ends that too")
        running = [n for n in names if n not in failed]
        # a command the user can paste: the name itself, not a placeholder
        logs_of = running[0] if len(running) == 1 else f"NAME (one of: {' '.join(running)})"
        lines.append(f"console: mirage-env unikernel logs {logs_of}; stop: mirage-env unikernel stop "
                     f"{' '.join(running)}")
    return lines


def logs(sh, name: str) -> str:
    code, out = sh(f"sudo cat {console_log(name)}")
    if code != 0:
        raise DomUError(f"no console log for {name!r} ({console_log(name)}). "
                        "Fix: check the name with `mirage-env unikernel list`")
    return out


def stop(sh, names: list[str], bridge: str) -> tuple[list[str], list[str]]:
    """Destroy domUs, remove their autostart links and give their addresses back to dnsmasq
    (`dhcp_release`, from dnsmasq-utils, when installed), so stopped unikernels do not hold
    addresses of the DHCP range until their leases expire. One remote script does it all: a
    round trip per step per domU had made stopping twenty of them take minutes on a slow dom0.
    Returns (a line per stopped domU, an error per domU that was not running); a domU that is
    not running still has its link and lease cleaned up."""
    names = list(dict.fromkeys(names))  # `stop a a` stops a once
    _, out = sh(_stop_script(names), timeout=60 + 30 * len(names))
    seen = parse_stop_output(out)
    macs = {n: m or [mac_for(n)] for n, m in seen.macs.items()}
    released = _release(sh, macs, seen.leases, seen.has_release, bridge)
    done, errors = [], []
    for n in names:
        cleaned = f" ({released[n]})" if released.get(n) else ""
        if n not in seen.macs:
            errors.append(f"could not stop {n!r}: no answer from the dom0. Fix: check `mirage-env unikernel list`")
        elif n in seen.failures:
            errors.append(f"could not stop {n!r}: {seen.failures[n]}{cleaned}. "
                          "Fix: check `mirage-env unikernel list`")
        else:
            done.append(f"{n} stopped" + (f"; {released[n]}" if released.get(n) else "")
                        + (f" (xl destroy reported, for a domain it did destroy: {seen.warnings[n][-300:]})"
                           if n in seen.warnings else ""))
    return done, errors


STOP_PARALLEL = 8  # domUs destroyed at once: each `xl destroy` mostly waits (backends, hotplug)


def _stop_script(names: list[str]) -> str:
    """The dom0 side of `stop`: for each name its vif MACs, `xl destroy`'s status and message,
    then the lease file and whether dhcp_release exists, each section after an @@ marker. Every
    command's stderr is caught or dropped, so nothing lands in a later section. Up to
    STOP_PARALLEL destroys run at once (one took ~20 s on a TCG dom0, twenty-two in a row 451 s),
    each writing its own file, printed in the order of the names."""
    quoted = " ".join(shlex.quote(n) for n in names)
    return f"""out=$(mktemp -d) || exit 1
i=0
for n in {quoted}; do
  i=$((i + 1))
  {{
    echo "@@domu $n"
    vifs=$(sudo xl network-list "$n" 2>/dev/null) && existed=1 || existed=0
    echo "$vifs" | tail -n +2
    result=$(sudo xl destroy "$n" 2>&1); rc=$?
    # a device's hotplug script can fail the destroy of a domain that is gone all the same
    [ $rc -ne 0 ] && [ $existed = 1 ] && ! sudo xl domid "$n" >/dev/null 2>&1 && rc=gone
    sudo rm -f "{AUTO_DIR}/$n.cfg" 2>/dev/null
    echo "@@destroyed $rc $(echo "$result" | tr '\\n' ' ')"
  }} > "$out/$(printf %05d $i)" &
  [ $((i % {STOP_PARALLEL})) -eq 0 ] && wait
done
wait
cat "$out"/* 2>/dev/null; rm -rf "$out"
echo "@@leases"; cat {LEASE_FILE} 2>/dev/null
command -v dhcp_release >/dev/null 2>&1 && echo "@@has-dhcp-release"
true"""


@dataclass
class StopOutput:
    macs: dict[str, list[str]]      # name → its running vifs' MACs (empty: it was not running)
    failures: dict[str, str]        # name → xl destroy's message, where it failed
    warnings: dict[str, str]        # name → xl destroy's message, where it failed but the domain is gone
    leases: list[dnsmasq.Lease]
    has_release: bool


def parse_stop_output(out: str) -> StopOutput:
    result = StopOutput({}, {}, {}, [], False)
    section, name, leases = "", "", []
    for line in out.splitlines():
        if line.startswith("@@domu "):
            section, name = "domu", line.split(" ", 1)[1]
            result.macs[name] = []
        elif line.startswith("@@destroyed "):
            _, rc, *message = line.split(" ", 2)
            if rc == "gone":
                result.warnings[name] = " ".join(message).strip()
            elif rc != "0":
                result.failures[name] = " ".join(message).strip()
            section = ""
        elif line == "@@leases":
            section = "leases"
        elif line == "@@has-dhcp-release":
            result.has_release, section = True, ""
        elif section == "domu":
            result.macs[name] += xl.parse_network_list(line)
        elif section == "leases":
            leases.append(line)
    result.leases = dnsmasq.parse_leases("\n".join(leases))
    return result


def _release(sh, macs: dict[str, list[str]], leases: list[dnsmasq.Lease], has_release: bool,
             bridge: str) -> dict[str, str]:
    """name → what happened to its leases."""
    ips = {n: [(lease.ip, lease.mac) for lease in leases if lease.mac in m] for n, m in macs.items()}
    if not has_release:
        return {n: "its lease stays until it expires (install dnsmasq-utils to release it)"
                for n, held in ips.items() if held}
    commands = [f"sudo dhcp_release {shlex.quote(bridge)} {ip} {mac}" for held in ips.values() for ip, mac in held]
    if commands:
        sh("; ".join(commands))
    return {n: f"released {', '.join(ip for ip, _ in held)}" for n, held in ips.items() if held}
