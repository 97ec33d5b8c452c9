"""The live topology: parsers and problem lines on outputs recorded on a real dom0 (a bookworm dom0
provisioned by `mirage-env up` under QEMU), the drawings, and `status` on a machine that is down.

Recordings (tests/unit/data/topology/NAME/): `dom0.txt` is the raw output of topology.DOM0_SCRIPT
over SSH, `host-ip-addr.json` the host side's `ip -j addr` in the host-only namespace. The mismatch
tests change the *settings* (what is expected) or remove one field from a real recording, so every
value parsed comes from a real system.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from mirage_env import topology
from mirage_env.cli import cli
from mirage_env.settings import load_settings
from mirage_env.topology_render import GraphError, render_text, to_dot, write_graph
from tests.support import require

DATA = Path(__file__).parent / "data" / "topology"
INFO = {"name": "default", "provider": "qemu", "running": True, "accel": "tcg",
        "host_only_namespace": "mev-7bd000"}


def recording(name: str) -> tuple[str, str]:
    return (DATA / name / "host-ip-addr.json").read_text(), (DATA / name / "dom0.txt").read_text()


def expected(**overrides) -> dict:
    return topology.expected_from(load_settings(None, {f"network.{k}": v for k, v in overrides.items()}))


def test_split_sections_keeps_each_source_apart():
    _, dom0 = recording("bookworm-no-domu")
    sections = topology.split_sections(dom0)
    assert {"ip-addr", "xl-list", "leases", "now"} <= set(sections)
    assert sections["xl-list"].startswith("Name") and "Domain-0" in sections["xl-list"]
    assert sections["now"].isdigit()
    json.loads(sections["ip-addr"])  # whole, nothing of the next section in it


def test_ip_addr_gives_bridge_ports_options_and_ipv4_only():
    _, dom0 = recording("bookworm-no-domu")
    ifaces = topology.parse_ip_addr(topology.split_sections(dom0)["ip-addr"])
    assert "lo" not in ifaces
    br0, eth1 = ifaces["br0"], ifaces["eth1"]
    assert br0.kind == "bridge" and br0.addresses == ["192.168.56.5/24"]
    assert br0.ageing_s == 0 and br0.stp is False and br0.state == "UP"
    assert eth1.master == "br0" and eth1.addresses == [] and eth1.mac.startswith("52:54:00:")
    assert ifaces["eth0"].addresses == ["10.0.2.15/24"] and ifaces["eth0"].master is None


def test_a_provisioned_dom0_without_domus_has_no_problems():
    host, dom0 = recording("bookworm-no-domu")
    topo = topology.build(expected(), host, dom0)
    assert topo.problems == []
    assert [i.addresses for i in topo.host_side] == [["192.168.56.1/24"]]
    assert topo.dom0_nic.name == "eth1" and topo.bridge.name == "br0" and topo.uplink.name == "eth0"
    assert topo.vifs == [] and topo.domus == []


def test_a_running_domu_is_drawn_from_its_vif_to_its_lease():
    host, dom0 = recording("bookworm-www")
    topo = topology.build(expected(), host, dom0)
    assert topo.problems == []
    [vif] = [v for v in topo.vifs if v.domain == "topo-www"]
    assert vif.bridge == "br0" and vif.devid == 0 and vif.name == f"vif{vif.domid}.0"
    assert vif.guest_mac.startswith("00:16:3e:")
    assert vif.ip in {l.ip for l in topo.leases if l.mac == vif.guest_mac}
    [domu] = [d for d in topo.domus if d.name == "topo-www"]
    assert domu.memory_mb == 4 and domu.ip == vif.ip
    text = render_text(INFO, topo)
    assert f"{vif.name}  UP  → topo-www" in text and f"lease {vif.ip}" in text


@pytest.mark.parametrize("override, problem", [
    ({"dom0_address": "192.168.56.6"}, "br0 has 192.168.56.5/24 (expected 192.168.56.6/24)"),
    ({"bridge": "xenbr0"}, "xenbr0 is missing on the dom0 (expected a bridge over eth1)"),
    ({"bridged_nic": "eth2", "uplink_nic": "eth0"}, "eth2 (the host-only NIC) is missing on the dom0"),
    ({"host_address": "192.168.56.2"}, "host side: no interface has 192.168.56.2/24 "
                                       "(found 192.168.56.1/24 on mevtap7bd000)"),
])
def test_settings_that_differ_from_the_running_system_become_problems(override, problem):
    host, dom0 = recording("bookworm-no-domu")
    assert problem in topology.build(expected(**override), host, dom0).problems


def test_bridge_without_its_address_is_shown_and_named():
    host, dom0 = recording("bookworm-no-domu")
    sections = topology.split_sections(dom0)
    links = json.loads(sections["ip-addr"])
    for link in links:
        if link["ifname"] == "br0":
            link["addr_info"] = []
    dom0 = dom0.replace(sections["ip-addr"], json.dumps(links))
    topo = topology.build(expected(), host, dom0)
    assert "br0 has no address (expected 192.168.56.5/24)" in topo.problems
    assert "no address (expected 192.168.56.5/24)" in render_text(INFO, topo)


def test_a_dom0_without_xen_says_so():
    host, dom0 = recording("bookworm-no-domu")
    xl = topology.split_sections(dom0)["xl-list"]
    topo = topology.build(expected(), host, dom0.replace(xl, "sh: 1: xl: not found"))
    assert any(p.startswith("dom0: `xl list` failed") and "xl: not found" in p for p in topo.problems)


def test_an_unreachable_dom0_is_a_problem_not_a_crash():
    host, _ = recording("bookworm-no-domu")
    topo = topology.build(expected(), host, None, dom0_error="not reachable over SSH (timed out)")
    assert topo.problems == ["dom0: not reachable over SSH (timed out)"]
    assert "dom0 eth1: not read" in render_text(INFO, topo)


def test_the_recorded_domu_gets_its_mac_and_lease_from_the_dom0_parsers():
    host, dom0 = recording("bookworm-www")
    topo = topology.build(expected(), host, dom0)
    assert [(d.name, d.domid, d.mac, d.ip) for d in topo.domus] == [
        ("topo-www", 1, "00:16:3e:18:5d:25", "192.168.56.158")]


@pytest.mark.parametrize("name", ["bookworm-www", "bookworm-no-domu"])
def test_the_terminal_drawing_fits_80_columns(name):
    host, dom0 = recording(name)
    text = render_text(INFO, topology.build(expected(), host, dom0), width=200)
    assert max(len(line) for line in text.splitlines()) <= 80, text
    for part in ("mevtap7bd000", "host-only network 192.168.56.0/24", "dom0 eth1", "br0", "ageing 0s, STP off"):
        assert part in text


def test_dot_renders_to_svg_with_every_node(tmp_path):
    require(shutil.which("dot") is not None, "needs Graphviz's dot (apt-get install graphviz)")
    host, dom0 = recording("bookworm-www")
    topo = topology.build(expected(dom0_address="192.168.56.6"), host, dom0)
    svg = tmp_path / "topology.svg"
    write_graph(to_dot(INFO, topo), svg)
    root = ET.parse(svg).getroot()  # well-formed SVG
    titles = {t.text for t in root.iter("{http://www.w3.org/2000/svg}title")}
    assert {"host0", "net", "nic", "bridge", "problems"} <= titles
    assert any(t and t.startswith("v_vif") for t in titles) and any(t and t.startswith("d_") for t in titles)
    words = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "topo-www" in words and "expected 192.168.56.6/24" in words
    png = tmp_path / "topology.png"
    write_graph(to_dot(INFO, topo), png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_graph_with_an_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(GraphError, match=r"\.svg or \.png"):
        write_graph("graph {}", tmp_path / "t.pdf")
    result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path / "s"), "status", "--graph", "t.pdf"])
    assert result.exit_code == 2 and "Fix:" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s").exists()


def test_status_of_a_machine_that_is_down_reads_nothing(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["--state-dir", str(tmp_path), "status", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["running"] is False and info["topology"] is None
    for key in ("name", "state_dir", "provider", "host_only_namespace"):
        assert key in info
    text = runner.invoke(cli, ["--state-dir", str(tmp_path), "status"])
    assert text.exit_code == 0 and "not running" in text.output and "mirage-env up" in text.output
    if shutil.which("dot"):
        svg = tmp_path / "down.svg"
        graph = runner.invoke(cli, ["--state-dir", str(tmp_path), "status", "--graph", str(svg)])
        assert graph.exit_code == 0 and "the machine is not running" in svg.read_text()


def test_lab_hosts_whose_state_the_provider_cannot_tell_are_read_and_drawn():
    host, dom0 = recording("bookworm-www")
    text = render_text({**INFO, "provider": "ssh", "running": None}, topology.build(expected(), host, dom0))
    assert "state read over SSH" in text and "vif1.0  UP  → topo-www" in text
    assert "no problems" in text


def test_a_domu_without_a_connected_netfront_is_not_missing_a_lease():
    """A vchan-only unikernel (echo: no netfront) leaves its vif without carrier and asks for no
    lease; a vif that is UP without a lease is still a problem. From the real recording, with the
    lease removed and then the vif's operstate set as netback leaves it before a frontend connects."""
    host, dom0 = recording("bookworm-www")
    [vif] = [v for v in topology.build(expected(), host, dom0).vifs if v.domain == "topo-www"]
    sections = dom0.split("@@mev:leases@@")
    without_lease = sections[0] + "@@mev:leases@@" + "\n".join(
        l for l in sections[1].split("\n") if vif.guest_mac not in l.lower())
    assert any("no DHCP lease" in p for p in topology.build(expected(), host, without_lease).problems)
    no_carrier = without_lease.replace(f'"ifname":"{vif.name}"', f'"ifname":"{vif.name}"', 1)
    start = no_carrier.index(f'"ifname":"{vif.name}"')
    end = no_carrier.index('"operstate":"UP"', start) if '"operstate":"UP"' in no_carrier[start:] else -1
    assert end > 0
    no_carrier = no_carrier[:end] + '"operstate":"DOWN"' + no_carrier[end + len('"operstate":"UP"'):]
    assert not any("no DHCP lease" in p for p in topology.build(expected(), host, no_carrier).problems)


def test_the_mdns_name_is_read_when_avahi_answers_and_drawn():
    host, dom0 = recording("bookworm-no-domu")
    without = topology.build(expected(), host, dom0)
    assert without.mdns_name is None and "mDNS" not in render_text({"running": True}, without)
    topo = topology.build(expected(), host, dom0 + "\n@@mev:mdns@@\ndebian-box.local\n")
    assert topo.mdns_name == "debian-box.local"
    assert "the dom0 answers as debian-box.local on br0" in render_text({"running": True}, topo)
