"""xl configuration of a unikernel domU (the bundled apps and users' own kernels).

``render_xl_config()`` writes a config a user can ``xl create`` by hand:
a PV or PVH guest, one vCPU, a ``vif`` on the bridge (never an empty ``vif``),
a disk list only of images that exist (xvdb, xvdc, ...), and the console/crash
behaviour that keeps failures visible in the console log.
"""

from __future__ import annotations

import ipaddress
import re

from .names import NAME_RULE, name_problem
from .paths import BLOCK_SCRIPT, VIF_SCRIPT
from ..errors import MirageEnvError

_BRIDGE = re.compile(r"^[A-Za-z0-9_.-]{1,15}\Z")  # Linux IFNAMSIZ - 1
_CMDWORD = re.compile(r"^[A-Za-z0-9_.=/:-]{1,128}\Z")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\Z")
MIN_MEMORY_MB = 4  # the smallest the bundled auth app boots and serves in (measured)
# libxl adds ACPI tables past a PVH guest's RAM: `memory = 16` failed in the domain builder
# ("Failed allocation ... 8 extents") on the built-in machine, 32 worked (xen-under-qemu notes)
MIN_PVH_MEMORY_MB = 32
GUEST_TYPES = ("pv", "pvh")
ON_CRASH = ("destroy", "preserve", "restart", "coredump-destroy")
MAX_MEMORY_MB = 1 << 20


class XlConfigError(MirageEnvError, ValueError):
    """A value that would make a broken or unsafe xl config."""


def _quote(value: str) -> str:
    # every value is validated first; refuse anything that would need escaping
    if any(c in value for c in '"\\\n\r') or not value.isprintable():
        raise XlConfigError(f"value {value!r} contains characters xl strings cannot hold")
    return f'"{value}"'


def cmdline_problem(cmdline: str) -> str | None:
    """What is wrong with a user's extra kernel command line (xl's `extra`), or None."""
    if cmdline and (len(cmdline) > 1024 or any(c in cmdline for c in '"\\\n\r') or not cmdline.isprintable()):
        return (f"cmdline {cmdline!r}: printable, no quotes or backslashes, <= 1024 characters. "
                "Fix: e.g. --cmdline 'echo=tcp'")
    return None


def render_xl_config(
    name: str,
    kernel_path: str,
    memory_mb: int,
    bridge: str = "br0",
    mac: str | None = None,
    ip: str | None = None,
    gateway: str | None = None,
    cmdline: tuple[str, ...] | list[str] = (),
    guest_type: str = "pv",
    disks: tuple | list = (),
    extra_cmdline: str = "",
    on_crash: str = "destroy",
) -> str:
    """Return the xl config text of a unikernel domU.

    ``mac`` fixes the vif's MAC (unicast, e.g. ``00:16:3e:..``); without it
    the toolstack picks a random one in 00:16:3e. ``ip`` ("A.B.C.D/N") and
    ``gateway`` give the unikernel a static address through its command line
    (``extra``); without ``ip`` it asks DHCP. ``cmdline`` adds kernel command line words
    (e.g. ``["echo=tcp"]``, ``["vchan_order=16"]``, ``["ts"]``); ``extra_cmdline`` is a user's
    own kernel's command line as given (e.g. MirageOS's ``--ipv4=... -l *:debug``).
    ``disks`` is a list of (absolute path on the dom0, vdev e.g. "xvdb", writable) attached raw.
    """
    if name_problem(name):
        raise XlConfigError(f"name {name!r}: use {NAME_RULE}")
    if not kernel_path or not kernel_path.startswith("/"):
        raise XlConfigError(f"kernel_path {kernel_path!r}: give the absolute path of the .xen image on the dom0")
    if any(c in kernel_path for c in '"\\,') or not kernel_path.isprintable():
        raise XlConfigError(f"kernel_path {kernel_path!r}: no quotes, backslashes, commas or control characters")
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int):
        raise XlConfigError(f"memory_mb {memory_mb!r}: an integer number of MiB")
    if not MIN_MEMORY_MB <= memory_mb <= MAX_MEMORY_MB:
        raise XlConfigError(f"memory_mb {memory_mb}: use {MIN_MEMORY_MB}..{MAX_MEMORY_MB} (the unikernel needs >= {MIN_MEMORY_MB})")
    if guest_type not in GUEST_TYPES:
        raise XlConfigError(f"guest_type {guest_type!r}: use one of {', '.join(GUEST_TYPES)}")
    if guest_type == "pvh" and memory_mb < MIN_PVH_MEMORY_MB:
        raise XlConfigError(f"memory_mb {memory_mb}: a PVH guest needs >= {MIN_PVH_MEMORY_MB} MiB (libxl puts "
                            f"ACPI tables past its RAM). Fix: --memory {MIN_PVH_MEMORY_MB}")
    if on_crash not in ON_CRASH:
        raise XlConfigError(f"on_crash {on_crash!r}: use one of {', '.join(ON_CRASH)}")
    if not _BRIDGE.match(bridge or ""):
        raise XlConfigError(f"bridge {bridge!r}: a Linux interface name (1-15 of letters, digits, '_', '.', '-')")
    # vif-mirage: the xen_dom0 role's lean hotplug script (the stock vif-bridge costs ~10 s a boot)
    vif = [f"bridge={bridge}", f"script={VIF_SCRIPT}"]
    if mac is not None:
        if not _MAC.match(mac):
            raise XlConfigError(f"mac {mac!r}: six hex pairs separated by ':' (e.g. 00:16:3e:00:00:01)")
        if int(mac[:2], 16) & 1:
            raise XlConfigError(f"mac {mac!r} is a multicast address: the first octet must be even")
        vif.append(f"mac={mac.lower()}")
    extra = []
    if ip is not None:
        try:
            iface = ipaddress.IPv4Interface(ip)
        except ValueError:
            raise XlConfigError(f"ip {ip!r}: an IPv4 address with prefix, e.g. 192.168.56.50/24") from None
        if "/" not in ip:
            raise XlConfigError(f"ip {ip!r}: give the prefix length too, e.g. {ip}/24")
        extra.append(f"ip={iface.ip}/{iface.network.prefixlen}")
        if gateway is not None:
            try:
                gw = ipaddress.IPv4Address(gateway)
            except ValueError:
                raise XlConfigError(f"gateway {gateway!r}: an IPv4 address") from None
            if gw not in iface.network:
                raise XlConfigError(f"gateway {gateway} is not in {iface.network}")
            extra.append(f"gw={gw}")
    elif gateway is not None:
        raise XlConfigError("gateway needs ip (with DHCP the server gives the router)")
    for word in cmdline:
        if not isinstance(word, str) or not _CMDWORD.match(word):
            raise XlConfigError(f"cmdline word {word!r}: letters, digits and '_.=/:-' only, no spaces")
        extra.append(word)
    if extra_cmdline:
        if problem := cmdline_problem(extra_cmdline):
            raise XlConfigError(problem)
        extra.append(extra_cmdline)
    disk_specs = []
    for i, disk in enumerate(disks):
        path, vdev, writable = disk
        if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in '"\\,=') \
                or not path.isprintable():
            raise XlConfigError(f"disk {path!r}: an absolute path on the dom0 without quotes, commas or '='")
        if not re.fullmatch(r"xvd[b-z]", vdev or ""):
            raise XlConfigError(f"disk vdev {vdev!r}: xvdb..xvdz (xvda is left for a root disk)")
        # block-mirage: the xen_dom0 role's lean block hotplug script (binds the file to a loop
        # device; the stock `block` costs ~2 s a disk and can fail a destroy). target= last: xl
        # reads the rest of the spec as the path
        disk_specs.append(f"format=raw, vdev={vdev}, access={'rw' if writable else 'ro'}, "
                          f"script={BLOCK_SCRIPT}, target={path}")
    if len({d.split(",")[1] for d in disk_specs}) != len(disk_specs):
        raise XlConfigError("disks: two disks on one vdev")

    lines = [
        f"# mirage-env unikernel {name}: xl create <this file>; console: xl console {name}",
        f"name = {_quote(name)}",
        f"type = {_quote(guest_type)}",
        f"kernel = {_quote(kernel_path)}",
        f"memory = {memory_mb}",
        f"maxmem = {memory_mb}",
        "vcpus = 1",
        f"vif = [ {_quote(','.join(vif))} ]",
    ]
    if disk_specs:
        lines.append("disk = [ " + ", ".join(_quote(d) for d in disk_specs) + " ]")
    if extra:
        lines.append(f"extra = {_quote(' '.join(extra))}")
    lines += [
        'on_poweroff = "destroy"',
        'on_reboot = "destroy"',
        f"on_crash = {_quote(on_crash)}",
    ]
    return "\n".join(lines) + "\n"
