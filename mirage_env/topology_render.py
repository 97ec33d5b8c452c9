"""Drawings of a `Topology`: a terminal tree (rich) and a Graphviz graph (DOT → SVG/PNG)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from .topology import Iface, Topology, Vif
from .errors import MirageEnvError

GRAPH_FORMATS = {".svg": "svg", ".png": "png"}


class GraphError(MirageEnvError):
    """The graph could not be written; the message says why and how to fix it."""


# -- terminal ----------------------------------------------------------------------------------
def _iface_line(label: str, iface: Iface, expected_address: str | None = None) -> Text:
    text = Text()
    text.append(label, style="bold")
    text.append(f"  {iface.mac or '-'}", style="dim")
    text.append(f"  {iface.state}", style="green" if iface.state in ("UP", "UNKNOWN") else "red")
    if iface.addresses:
        text.append("  " + ", ".join(iface.addresses), style="cyan")
    elif expected_address:
        text.append(f"  no address (expected {expected_address})", style="red")
    return text


def _vif_line(vif: Vif, topo: Topology) -> Text:
    text = Text()
    text.append(vif.name, style="bold")
    text.append(f"  {vif.state}", style="green" if vif.state in ("UP", "UNKNOWN") else "red")
    text.append("  → ")
    text.append(vif.domain or f"domain {vif.domid}", style="bold magenta")
    domu = next((d for d in topo.domus if d.domid == vif.domid), None)
    if domu:
        text.append(f" (id {domu.domid}, {domu.memory_mb} MiB, {domu.state})", style="dim")
    text.append("\n")
    if vif.guest_mac:
        text.append(f"{vif.guest_mac}", style="dim")
    if vif.ip:
        text.append(f"  lease {vif.ip}", style="cyan")
    elif vif.devid == 0 and vif.guest_mac:
        text.append("  no lease", style="red")
    return text


def render_tree(info: dict, topo: Topology | None) -> Tree:
    running = info.get("running")
    head = Text()
    head.append(f"{info.get('name')}", style="bold")
    head.append(f" — {info.get('provider')}, ")
    # running None: the provider cannot tell (lab hosts): the topology read says it
    head.append({True: "running", False: "not running", None: "state read over SSH"}.get(running, str(running)),
                style="green" if running else "yellow")
    for key in ("accel", "ssh"):
        if info.get(key):
            head.append(f", {key} {info[key]}", style="dim")
    tree = Tree(head)
    if running is False or topo is None:
        tree.add(Text("the machine is not running: nothing to read. Start it: mirage-env up", style="yellow"))
        return tree
    exp = topo.expected
    ns = info.get("host_only_namespace")
    host = tree
    for iface in topo.host_side:
        host = host.add(_iface_line(f"host {iface.name}", iface))
        if ns:
            host.label.append(f"\n(network namespace {ns})", style="dim")
    net = host.add(Text(f"host-only network {exp['subnet']}", style="bold blue"))
    if topo.dom0_nic is None:
        net.add(Text(f"dom0 {exp['bridged_nic']}: not read", style="red"))
        return tree
    nic = net.add(_iface_line(f"dom0 {topo.dom0_nic.name}", topo.dom0_nic))
    if topo.bridge is None:
        nic.add(Text(f"{exp['bridge']}: missing", style="red"))
        return tree
    label = _iface_line(topo.bridge.name, topo.bridge, exp["dom0_address"])
    if topo.bridge.ageing_s is not None:
        label.append(f"\nageing {topo.bridge.ageing_s:g}s, STP {'on' if topo.bridge.stp else 'off'}", style="dim")
    bridge = nic.add(label)
    ports = [v for v in topo.vifs if v.bridge == topo.bridge.name]
    for vif in ports:
        bridge.add(_vif_line(vif, topo))
    if not ports:
        bridge.add(Text("no vifs: no domU runs (mirage-env unikernel run)", style="dim"))
    if topo.uplink is not None:
        tree.add(_iface_line(f"dom0 uplink {topo.uplink.name} (NAT, management)", topo.uplink))
    return tree


def render_text(info: dict, topo: Topology | None, width: int = 100, color: bool = False) -> str:
    """The whole status as text: the tree, the leases, the problems."""
    out = io.StringIO()
    console = Console(file=out, width=width, color_system="standard" if color else None,
                      force_terminal=color, highlight=False)
    console.print(render_tree(info, topo))
    if topo is not None and info.get("running") is not False:
        if topo.guest_types is not None:
            types = ", ".join(t.upper() for t in topo.guest_types) or "none"
            note = "" if "pvh" in topo.guest_types else \
                " (no PVH: Xen lists no hap; see `mirage-env doctor` for nested virtualisation)"
            console.print(Text(f"guest types: {types}{note}  [virt_caps: {topo.virt_caps}]"))
        if topo.mdns_name:
            console.print(Text(f"mDNS: the dom0 answers as {topo.mdns_name} on {topo.expected['bridge']}"))
        if topo.leases:
            now = topo.dom0_now
            console.print(Text("dnsmasq leases:", style="bold"))
            for lease in topo.leases:
                left = ("infinite" if lease.expiry == 0 else
                        f"{max(0, lease.expiry - now) // 60} min left" if now else f"expires {lease.expiry}")
                console.print(f"  {lease.ip:<16} {lease.mac}  {lease.hostname:<16} {left}")
        if topo.problems:
            console.print(Text("problems:", style="bold red"))
            for problem in topo.problems:
                console.print(Text(f"  ✗ {problem}", style="red"))
        else:
            console.print(Text("no problems: the running system matches the settings", style="green"))
        if topo.collect_s:
            t = topo.collect_s
            parts = [f"host {t.get('host_s')}s", f"dom0 {t.get('dom0_s')}s"]
            if "dom0_script_s" in t:
                parts[-1] += f" (SSH handshake {t.get('ssh_connect_s')}s, script {t['dom0_script_s']}s)"
            console.print(Text("read in " + ", ".join(parts), style="dim"))
    return out.getvalue()


# -- Graphviz ----------------------------------------------------------------------------------
def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(*lines: str | None) -> str:
    return _q("\n".join(l for l in lines if l))


def to_dot(info: dict, topo: Topology | None) -> str:
    """The topology as a Graphviz graph, left to right from the host to the domUs."""
    lines = ["graph topology {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", '
             'fillcolor="#f4f4f4", fontname="Helvetica", fontsize=10];',
             '  edge [color="#555555"];',
             f"  labelloc=t; fontname=Helvetica; label={_q('mirage-env ' + str(info.get('name')) + ' — ' + str(info.get('provider')))};"]
    if info.get("running") is False or topo is None:
        lines.append(f"  down [label={_q('the machine is not running')}, fillcolor=\"#fff3cd\"];")
        return "\n".join(lines + ["}"]) + "\n"
    exp, chain = topo.expected, []
    for i, iface in enumerate(topo.host_side):
        node = f"host{i}"
        lines.append(f"  {node} [label={_label('host ' + iface.name, iface.mac, *iface.addresses)}];")
        chain.append(node)
    lines.append(f"  net [shape=ellipse, fillcolor=\"#dbe9ff\", label={_label('host-only network', exp['subnet'])}];")
    chain.append("net")
    if topo.dom0_nic is not None:
        n = topo.dom0_nic
        lines.append(f"  nic [label={_label('dom0 ' + n.name, n.mac, n.state)}];")
        chain.append("nic")
    if topo.bridge is not None and topo.dom0_nic is not None:
        b = topo.bridge
        addr = ", ".join(b.addresses) or f"no address (expected {exp['dom0_address']})"
        options = f"ageing {b.ageing_s:g}s, STP {'on' if b.stp else 'off'}" if b.ageing_s is not None else None
        lines.append(f"  bridge [fillcolor=\"#e2f5e2\", label={_label(b.name, b.mac, addr, options)}];")
        chain.append("bridge")
    for a, b in zip(chain, chain[1:]):
        lines.append(f"  {a} -- {b};")
    for vif in topo.vifs:
        node = "v_" + vif.name.replace(".", "_")
        lines.append(f"  {node} [label={_label(vif.name, vif.state)}];")
        if vif.bridge and topo.bridge is not None and vif.bridge == topo.bridge.name:
            lines.append(f"  bridge -- {node};")
        domu = f"d_{vif.domid}"
        lines.append(f"  {domu} [fillcolor=\"#f3e5f5\", label="
                     f"{_label(vif.domain or 'domain ' + str(vif.domid), vif.guest_mac, vif.ip and 'lease ' + vif.ip)}];")
        lines.append(f"  {node} -- {domu};")
    if topo.problems:
        text = "\n".join("✗ " + p for p in topo.problems)
        lines.append(f"  problems [shape=note, fillcolor=\"#fde2e2\", fontcolor=\"#a00000\", label={_q(text)}];")
    return "\n".join(lines + ["}"]) + "\n"


def write_graph(dot_text: str, path: Path) -> None:
    """Write an SVG or PNG (chosen by the file's suffix) through Graphviz's `dot`."""
    fmt = GRAPH_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise GraphError(f"--graph {path}: unknown suffix {path.suffix!r}. Fix: end the name in .svg or .png")
    if not shutil.which("dot"):
        raise GraphError("Graphviz's `dot` is not installed. Fix: sudo apt-get install graphviz "
                         "(or run scripts/install-deps.sh)")
    proc = subprocess.run(["dot", f"-T{fmt}", "-o", str(path)], input=dot_text, capture_output=True,
                          text=True, timeout=60)
    if proc.returncode != 0:
        raise GraphError(f"dot failed on {path}: {proc.stderr.strip()[-300:]}")
