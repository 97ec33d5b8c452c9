"""The bundled unikernel's domUs on the dom0: run, list, logs, stop (`mirage-env unikernel …`).

The `unikernel` role puts the sources at /opt/mirage-env/src and the built images in
/var/lib/mirage-env/unikernel; these functions work over one SSH connection to the dom0.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass

from .probe import LEASE_FILE, Booted, boot_and_wait_for_console, console_log, create_and_wait_for_leases
from .unikernel.xlconfig import render_xl_config

SRC = "/opt/mirage-env/src"
OUT = "/var/lib/mirage-env/unikernel"
XL_DIR = "/etc/xen"
AUTO_DIR = "/etc/xen/auto"  # xendomains boots the configs linked here with the dom0
# apps that need no network: booted when their console says they are ready, not on a DHCP lease
CONSOLE_READY = {"echo": "vchan: server on"}


class DomUError(Exception):
    """Something the user can act on; the message says what."""


def mac_for(name: str) -> str:
    """A stable MAC in Xen's OUI for a domain name, so it gets the same lease each boot."""
    digest = hashlib.sha256(name.encode()).digest()
    return "00:16:3e:" + ":".join(f"{b:02x}" for b in (digest[0] & 0x7F, digest[1], digest[2]))


@dataclass
class DomU:
    name: str
    domid: int
    memory_mb: int
    state: str
    mac: str | None = None
    ip: str | None = None


def build(sh, app: str, report) -> str:
    """Build APP for Xen on the dom0 unless its image is up to date; return the image's path."""
    code, _ = sh(f"test -f {SRC}/mirage_env/unikernel/build.py")
    if code != 0:
        raise DomUError("the unikernel sources are not on the dom0. Fix: run `mirage-env provision`")
    image = f"{OUT}/{app}.xen"
    # up to date: built, and no source newer than the image (a rebuild costs minutes on a slow dom0)
    code, _ = sh(f"test -f {image} && test -z \"$(find {SRC}/mirage_env/unikernel -newer {image} -print -quit)\"")
    if code == 0:
        return image
    report.step(f"building {app} for Xen on the dom0")
    code, out = sh(f"cd {SRC} && sudo env CC=gcc python3 -m mirage_env.unikernel.build --app {shlex.quote(app)} "
                   f"--target xen --out {OUT}", timeout=1200)
    if code != 0:
        raise DomUError(f"building {app} failed on the dom0:\n{out[-1500:]}")
    return image


def write_config(sh, name: str, image: str, memory_mb: int, bridge: str, autostart: bool) -> str:
    """Write /etc/xen/NAME.cfg; with `autostart`, link it into /etc/xen/auto so that xendomains
    boots it with the dom0 (without, remove such a link: the latest run decides)."""
    config = render_xl_config(name, image, memory_mb, bridge=bridge, mac=mac_for(name))
    path = f"{XL_DIR}/{name}.cfg"
    link = f"{AUTO_DIR}/{name}.cfg"
    if autostart:
        tail = f"sudo mkdir -p {AUTO_DIR} && sudo ln -sfn {path} {link}"
    else:
        tail = f"sudo rm -f {link}"
    code, out = sh(f"printf %s {shlex.quote(config)} | sudo tee {path} >/dev/null && {tail}")
    if code != 0:
        raise DomUError(f"could not write {path}: {out}")
    return path


def run_apps(sh, app: str, names: list[str], memory_mb: int, bridge: str, lease_s: int, report,
             autostart: bool = False, timeout: float = 120) -> dict[str, Booted]:
    """Build APP once, write one xl config per name (each its own MAC), boot them all and wait
    for every lease (or, for a console app, its ready line)."""
    image = build(sh, app, report)
    configs = [(name, write_config(sh, name, image, memory_mb, bridge, autostart)) for name in names]
    if app in CONSOLE_READY:
        return {name: boot_and_wait_for_console(sh, name, path, CONSOLE_READY[app], timeout, report)
                for name, path in configs}
    return create_and_wait_for_leases(sh, [(name, mac_for(name), path) for name, path in configs],
                                      lease_s, timeout, report)


def run_app(sh, app: str, name: str, memory_mb: int, bridge: str, lease_s: int, report,
            timeout: float = 120) -> Booted:
    return run_apps(sh, app, [name], memory_mb, bridge, lease_s, report, timeout=timeout)[name]


def list_domus(sh) -> list[DomU]:
    """Running domUs with their vif MACs and their addresses from dnsmasq's leases."""
    _, xl = sh("sudo xl list")
    domus = []
    for line in xl.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[1].isdigit() and parts[1] != "0":
            domus.append(DomU(parts[0], int(parts[1]), int(parts[2]), parts[4]))
    if not domus:
        return domus
    _, leases = sh(f"cat {LEASE_FILE} 2>/dev/null")
    by_mac = {p[1].lower(): p[2] for p in (l.split() for l in leases.splitlines()) if len(p) >= 3}
    for domu in domus:
        _, nets = sh(f"sudo xl network-list {domu.domid}")
        for line in nets.splitlines()[1:]:
            fields = line.split()
            mac = next((f for f in fields if f.count(":") == 5), None)
            if mac:
                domu.mac, domu.ip = mac.lower(), by_mac.get(mac.lower())
                break
    return domus


def logs(sh, name: str) -> str:
    code, out = sh(f"sudo cat {console_log(name)}")
    if code != 0:
        raise DomUError(f"no console log for {name!r} ({console_log(name)}). "
                        "Fix: check the name with `mirage-env unikernel list`")
    return out


def stop(sh, name: str, bridge: str) -> str:
    """Destroy a domU, remove its autostart link and give its address back to dnsmasq
    (`dhcp_release`, from dnsmasq-utils, when installed), so stopped unikernels do not hold
    addresses of the DHCP range until their leases expire. Returns what was done; a domU that is
    not running is an error, after its link and lease are cleaned up all the same."""
    q = shlex.quote(name)
    _, nets = sh(f"sudo xl network-list {q} 2>/dev/null")
    # a running domU's own vif MACs; else the MAC `unikernel run` gives that name
    macs = [f.lower() for line in nets.splitlines()[1:] for f in line.split() if f.count(":") == 5] or [mac_for(name)]
    code, out = sh(f"sudo xl destroy {q}")
    sh(f"sudo rm -f {AUTO_DIR}/{name}.cfg")
    released = _release(sh, macs, bridge)
    if code != 0:
        raise DomUError(f"could not stop {name!r}: {out.strip()}. Fix: check `mirage-env unikernel list`")
    return f"stopped; {released}" if released else "stopped"


def _release(sh, macs: list[str], bridge: str) -> str:
    _, leases = sh(f"cat {LEASE_FILE} 2>/dev/null")
    ips = [(p[2], p[1].lower()) for p in (l.split() for l in leases.splitlines())
           if len(p) >= 3 and p[1].lower() in macs]
    if not ips:
        return ""
    code, _ = sh("command -v dhcp_release")
    if code != 0:
        return "its lease stays until it expires (install dnsmasq-utils to release it)"
    for ip, mac in ips:
        sh(f"sudo dhcp_release {shlex.quote(bridge)} {ip} {mac}")
    return f"released {', '.join(ip for ip, _ in ips)}"
