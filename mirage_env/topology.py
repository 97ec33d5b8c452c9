"""The live topology: host ↔ host-only network ↔ dom0 NIC ↔ bridge ↔ vifs ↔ domUs, read from the
running system (`mirage-env status`).

Collection is one command on each side: on the host side the provider's `host_exec("ip", "-j",
"addr")`; on the dom0 one script over one SSH connection that prints every source in marked
sections (the dom0 is slow under TCG: each SSH command costs). Everything else here is pure
parsing of those outputs, tested on outputs recorded on a real dom0. The settings only say what is
expected: what differs from it becomes a problem line, never a value in the picture.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import time
from dataclasses import asdict, dataclass, field

from .dom0 import xl
from .dom0.dnsmasq import Lease, parse_leases
from .dom0.paths import LEASE_FILE
from .dom0.xl import DomU

SECTION_RE = re.compile(r"^@@mev:(?P<name>[a-z0-9 _.-]+)@@$", re.MULTILINE)
CONNECT_TIMEOUT_S = 60
VIF_RE = re.compile(r"^vif(?P<domid>\d+)\.(?P<devid>\d+)$")

# One pass under one sudo: `ip -d` gives addresses, bridge membership and bridge options at once;
# xl network-list runs once per domU (vif names are vifDOMID.N, their guest MACs are only in xl).
# bash builtins do the rest: under TCG each extra process costs the busy dom0 seconds.
DOM0_SCRIPT = r"""
s() { printf '\n@@mev:%s@@\n' "$1"; }
s ip-addr; ip -j -d addr
s xl-list; L=$(xl list 2>&1); printf '%s\n' "$L"
while read -r _name id _rest; do
  case $id in ''|*[!0-9]*|0) continue ;; esac
  s "xl-network-list $id"; xl network-list "$id" 2>&1
done <<< "$L"
s leases; [ -r LEASE_FILE ] && while IFS= read -r l; do printf '%s\n' "$l"; done < LEASE_FILE
s now; printf '%(%s)T\n' -1
s virt-caps; xl info 2>/dev/null | grep -E '^virt_caps'
s mdns; systemctl is-active -q avahi-daemon 2>/dev/null && printf '%s.local\n' "$HOSTNAME"
""".replace("LEASE_FILE", LEASE_FILE)


def dom0_command() -> str:
    return f"sudo -n bash -c {shlex.quote(DOM0_SCRIPT)}"


# -- the model ---------------------------------------------------------------------------------
@dataclass
class Iface:
    name: str
    mac: str | None
    state: str  # operstate: UP, DOWN, UNKNOWN, LOWERLAYERDOWN
    addresses: list[str] = field(default_factory=list)  # IPv4 CIDRs
    master: str | None = None  # the bridge it is a port of
    kind: str | None = None  # bridge, tun, veth, … (None for a plain NIC)
    ageing_s: float | None = None  # bridges only
    stp: bool | None = None  # bridges only


@dataclass
class Vif:
    name: str  # vifDOMID.N
    domid: int
    devid: int
    state: str
    bridge: str | None
    domain: str | None  # the domU's name
    guest_mac: str | None
    ip: str | None  # from dnsmasq's lease for guest_mac


@dataclass
class Topology:
    expected: dict
    host_side: list[Iface] = field(default_factory=list)
    dom0_nic: Iface | None = None
    uplink: Iface | None = None
    bridge: Iface | None = None
    vifs: list[Vif] = field(default_factory=list)
    domus: list[DomU] = field(default_factory=list)
    leases: list[Lease] = field(default_factory=list)
    dom0_now: int | None = None
    guest_types: list[str] | None = None  # what the dom0 can run (xl info virt_caps): pv, pvh, hvm
    virt_caps: str | None = None
    mdns_name: str | None = None  # HOSTNAME.local, when avahi answers on the bridge
    problems: list[str] = field(default_factory=list)
    collect_s: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# -- parsing (pure) ----------------------------------------------------------------------------
def split_sections(text: str) -> dict[str, str]:
    """`@@mev:NAME@@` marked output → {NAME: text}."""
    marks = list(SECTION_RE.finditer(text))
    return {m["name"]: text[m.end():(marks[i + 1].start() if i + 1 < len(marks) else len(text))].strip("\n")
            for i, m in enumerate(marks)}


def parse_ip_addr(text: str) -> dict[str, Iface]:
    """`ip -j [-d] addr` → interfaces by name (IPv4 addresses only; loopback left out)."""
    ifaces = {}
    for item in json.loads(text or "[]"):
        if item.get("link_type") == "loopback":
            continue
        info = item.get("linkinfo") or {}
        data = info.get("info_data") or {}
        iface = Iface(
            name=item["ifname"], mac=item.get("address"), state=item.get("operstate", "UNKNOWN"),
            addresses=[f"{a['local']}/{a['prefixlen']}" for a in item.get("addr_info", [])
                       if a.get("family") == "inet"],
            master=item.get("master"), kind=info.get("info_kind"))
        if iface.kind == "bridge":
            # ip reports the kernel's ageing time in centiseconds
            iface.ageing_s = data["ageing_time"] / 100 if "ageing_time" in data else None
            iface.stp = bool(data["stp_state"]) if "stp_state" in data else None
        ifaces[iface.name] = iface
    return ifaces


def expected_from(settings) -> dict:
    net = settings.network
    return {"subnet": str(net.subnet), "host_address": f"{net.host_address}/{net.prefixlen}",
            "dom0_address": f"{net.dom0_address}/{net.prefixlen}", "bridge": net.bridge,
            "bridged_nic": net.bridged_nic, "uplink_nic": net.uplink_nic,
            "dhcp_range": [str(net.dhcp_start), str(net.dhcp_end)]}


def build(expected: dict, host_addr_json: str | None, dom0_output: str | None,
          host_error: str | None = None, dom0_error: str | None = None) -> Topology:
    """The topology from the raw outputs of both sides, with every mismatch as a problem line."""
    topo = Topology(expected=expected)
    problems = topo.problems
    subnet = ipaddress.IPv4Network(expected["subnet"])

    if host_error:
        problems.append(f"host side: {host_error}")
    elif host_addr_json is not None:
        host = parse_ip_addr(host_addr_json)
        topo.host_side = [i for i in host.values() if any(_in(a, subnet) for a in i.addresses)]
        if not any(expected["host_address"] in i.addresses for i in topo.host_side):
            problems.append(f"host side: no interface has {expected['host_address']} "
                            f"(found {_addresses(host) or 'no IPv4 address'})")

    if dom0_error:
        problems.append(f"dom0: {dom0_error}")
    if dom0_output is None:
        return topo
    sections = split_sections(dom0_output)
    dom0 = parse_ip_addr(sections.get("ip-addr", "[]"))
    topo.dom0_now = int(sections["now"]) if sections.get("now", "").strip().isdigit() else None
    topo.leases = parse_leases(sections.get("leases", ""))
    caps = sections.get("virt-caps", "").partition(":")[2].strip()
    if caps:
        from .kernels import guest_types

        topo.virt_caps, topo.guest_types = caps, guest_types(caps)
    topo.mdns_name = sections.get("mdns", "").strip() or None
    xl_list = sections.get("xl-list", "")
    if "Domain-0" in xl_list:
        macs = {int(name.split()[1]): xl.parse_network_list(text) for name, text in sections.items()
                if name.startswith("xl-network-list ")}
        topo.domus = xl.with_addresses(xl.parse_xl_list(xl_list), macs, sections.get("leases", ""))
    else:
        problems.append(f"dom0: `xl list` failed (not a Xen dom0 yet?): {xl_list.strip()[-200:] or 'no output'}")

    br_name, nic_name = expected["bridge"], expected["bridged_nic"]
    topo.bridge, topo.dom0_nic = dom0.get(br_name), dom0.get(nic_name)
    topo.uplink = dom0.get(expected["uplink_nic"])
    if topo.bridge is None or topo.bridge.kind != "bridge":
        problems.append(f"{br_name} is missing on the dom0 (expected a bridge over {nic_name})")
        topo.bridge = None
    else:
        _check_bridge(topo.bridge, expected, problems)
    if topo.dom0_nic is None:
        problems.append(f"{nic_name} (the host-only NIC) is missing on the dom0")
    else:
        if topo.dom0_nic.master != br_name:
            problems.append(f"{nic_name} is not a port of {br_name} "
                            f"({'port of ' + topo.dom0_nic.master if topo.dom0_nic.master else 'no bridge'})")
        if topo.dom0_nic.addresses:
            problems.append(f"{nic_name} has its own address {', '.join(topo.dom0_nic.addresses)} "
                            f"(expected none: the address belongs on {br_name})")
        if topo.dom0_nic.state not in ("UP", "UNKNOWN"):
            problems.append(f"{nic_name} is {topo.dom0_nic.state} (expected UP)")

    topo.vifs = _vifs(dom0, topo.domus, topo.leases)
    for vif in topo.vifs:
        if vif.bridge != br_name:
            problems.append(f"{vif.name} ({vif.domain or 'domain ' + str(vif.domid)}) is not on {br_name} "
                            f"({'on ' + vif.bridge if vif.bridge else 'no bridge'})")
        # a vif without carrier: its frontend never connected (a vchan-only unikernel such as
        # echo has no netfront), so no lease is expected from it
        if vif.devid == 0 and vif.guest_mac and not vif.ip and vif.state in ("UP", "UNKNOWN"):
            problems.append(f"{vif.domain or vif.name}: no DHCP lease for {vif.guest_mac} "
                            f"in {LEASE_FILE} (network apps get one within a minute of booting)")
    low, high = (ipaddress.IPv4Address(a) for a in expected["dhcp_range"])
    for lease in topo.leases:
        if not low <= ipaddress.IPv4Address(lease.ip) <= high:
            problems.append(f"lease {lease.ip} ({lease.mac}) is outside the DHCP range {low}–{high}")
    return topo


def _check_bridge(bridge: Iface, expected: dict, problems: list[str]) -> None:
    name, want = bridge.name, expected["dom0_address"]
    if want not in bridge.addresses:
        found = f"has {', '.join(bridge.addresses)}" if bridge.addresses else "has no address"
        problems.append(f"{name} {found} (expected {want})")
    if bridge.state not in ("UP", "UNKNOWN"):
        problems.append(f"{name} is {bridge.state} (expected UP)")
    if bridge.ageing_s not in (None, 0):
        problems.append(f"{name} ageing is {bridge.ageing_s:g}s (expected 0: flood frames so new domUs are "
                        "reachable at once)")
    if bridge.stp:
        problems.append(f"{name} has STP on (expected off: ports would wait in listening/learning)")


def _vifs(dom0: dict[str, Iface], domus: list[DomU], leases: list[Lease]) -> list[Vif]:
    by_id = {d.domid: d for d in domus}
    by_mac = {l.mac: l.ip for l in leases}
    vifs = []
    for iface in dom0.values():
        m = VIF_RE.match(iface.name)
        if not m:
            continue
        domid, devid = int(m["domid"]), int(m["devid"])
        domu = by_id.get(domid)
        # list_domus knows the first NIC's guest MAC (devid 0)
        mac = domu.mac if domu and devid == 0 else None
        vifs.append(Vif(iface.name, domid, devid, iface.state, iface.master,
                        domu.name if domu else None, mac, by_mac.get(mac) if mac else None))
    return sorted(vifs, key=lambda v: (v.domid, v.devid))


def _in(cidr: str, subnet: ipaddress.IPv4Network) -> bool:
    return ipaddress.IPv4Interface(cidr).ip in subnet


def _addresses(ifaces: dict[str, Iface]) -> str:
    return ", ".join(f"{a} on {i.name}" for i in ifaces.values() for a in i.addresses)


# -- collection (the live system) --------------------------------------------------------------
def collect(env, running: bool) -> Topology:
    """Read both sides of the running environment; a side that cannot be read becomes a problem."""
    expected = expected_from(env.settings)
    if not running:
        return build(expected, None, None)
    timings = {}
    t0 = time.monotonic()
    host_json, host_error = None, None
    try:
        # a lab host has no separate host side: its "host" probes run on the dom0 itself
        if env.provider.host_side:
            proc = env.provider.host_exec("ip", "-j", "addr", timeout=20)
            if proc.returncode == 0:
                host_json = proc.stdout
            else:
                host_error = f"`ip -j addr` failed: {(proc.stderr or proc.stdout).strip()[-200:]}"
    except Exception as exc:  # a provider without a host side to read, or a timeout
        host_error = f"could not read the host side ({exc})"
    timings["host_s"] = round(time.monotonic() - t0, 2)

    t0 = time.monotonic()
    dom0_out, dom0_error = collect_dom0(env.provider, timings)
    timings["dom0_s"] = round(time.monotonic() - t0, 2)
    topo = build(expected, host_json, dom0_out, host_error, dom0_error)
    topo.collect_s = timings
    return topo


@dataclass
class View:
    """One picture of `status`: the environment's machine, or one lab host."""
    name: str
    info: dict  # the provider's status, narrowed to this host for a lab
    topology: Topology | None  # None: not read (--no-topology)
    graph: object = None  # the graph file to draw it to (a Path), if any


def collect_views(env, info: dict, graph=None, read: bool = True) -> list[View]:
    """What `status` shows: one view of the machine, or one per selected lab host (topologies
    read in parallel, one SSH session per host; graphs to one file per host: NAME-HOST.svg)."""
    if info.get("provider") != "ssh":
        # running None (the provider cannot tell) is worth an SSH attempt; False is not
        return [View(env.settings.name, info, collect(env, info.get("running") is not False) if read else None,
                     graph)]
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from .providers.ssh import SshProvider

    lab = env.provider.lab()
    hosts = [SimpleNamespace(settings=host.settings,
                             provider=SshProvider(env.settings, env.state, limit=host.name)) for host in lab]
    topologies = [None] * len(lab)
    if read:
        with ThreadPoolExecutor(max_workers=max(1, env.settings.lab.parallel)) as pool:
            topologies = list(pool.map(lambda host: collect(host, True), hosts))
    return [View(h.name,
                 {**info, "name": f"{info['name']}/{h.name}", "hosts": [e for e in info["hosts"] if e["name"] == h.name]},
                 topo,
                 graph.with_name(f"{graph.stem}-{h.name}{graph.suffix}") if graph is not None else None)
            for h, topo in zip(lab, topologies)]


def json_topology(info: dict, views: list[View]) -> dict | None:
    """`status --json`'s `topology`: the machine's, or {host: its topology} for a lab."""
    if info.get("provider") == "ssh":
        return {v.name: v.topology.to_dict() for v in views if v.topology} or None
    topo = views[0].topology
    return topo.to_dict() if topo and info.get("running") is not False else None


def collect_dom0(provider, timings: dict | None = None) -> tuple[str | None, str | None]:
    """(output of the one dom0 script, error) over one SSH connection; the handshake's and the
    script's seconds go to `timings`."""
    timings = {} if timings is None else timings
    from . import sshclient
    from .providers import ProviderError

    try:
        target = provider.ssh_target()
    except ProviderError as exc:  # e.g. never started, or several lab hosts selected
        return None, str(exc)
    try:
        # generous: a busy TCG dom0 has taken 20 s for the SSH handshake alone
        t0 = time.monotonic()
        client = sshclient.connect(target, timeout=CONNECT_TIMEOUT_S)
        timings["ssh_connect_s"] = round(time.monotonic() - t0, 2)
    except sshclient.HostKeyChanged as exc:
        return None, str(exc)
    except Exception as exc:
        return None, (f"not reachable over SSH within {CONNECT_TIMEOUT_S}s ({exc or type(exc).__name__}): "
                      "still booting or very busy? Try again, or `mirage-env ssh`")
    try:
        t0 = time.monotonic()
        code, out = sshclient.run(client, dom0_command(), timeout=120)
        timings["dom0_script_s"] = round(time.monotonic() - t0, 2)
    except Exception as exc:
        return None, f"the topology script failed ({exc or type(exc).__name__})"
    finally:
        client.close()
    if "@@mev:ip-addr@@" not in out:
        return None, f"the topology script failed (exit {code}): {out.strip()[-300:]}"
    return out, None
