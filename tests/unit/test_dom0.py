"""The dom0 layer's parsers on outputs recorded on a real Xen 4.17 dom0 (tests/unit/data/dom0/ and
the topology recordings): xl list, xl list -l, xl network-list, dnsmasq's lease file and config."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirage_env import topology
from mirage_env.dom0 import dnsmasq, xl
from mirage_env.dom0.names import MAX_NAME_LEN, name_problem

DATA = Path(__file__).parent / "data"


def recorded(section: str) -> str:
    return topology.split_sections((DATA / "topology" / "bookworm-www" / "dom0.txt").read_text())[section]


def test_xl_list_gives_the_domus_without_domain_0():
    assert xl.parse_xl_list(recorded("xl-list")) == [xl.DomU("topo-www", 1, 4, "-b----")]


def test_xl_network_list_gives_the_vif_macs():
    assert xl.parse_network_list(recorded("xl-network-list 1")) == ["00:16:3e:18:5d:25"]


def test_lease_file_lines_become_leases():
    assert dnsmasq.parse_leases(recorded("leases")) == [
        dnsmasq.Lease(1795310870, "00:16:3e:18:5d:25", "192.168.56.158", "*")]


def test_a_lease_line_cut_short_or_stderr_in_the_file_is_skipped():
    text = recorded("leases") + "\n1795310871 00:16:3e:00\nsudo: unable to resolve host dom0\n"
    assert [l.ip for l in dnsmasq.parse_leases(text)] == ["192.168.56.158"]


def test_domus_get_their_lease_by_mac():
    domus = xl.with_addresses(xl.parse_xl_list(recorded("xl-list")),
                              {1: xl.parse_network_list(recorded("xl-network-list 1"))}, recorded("leases"))
    assert (domus[0].mac, domus[0].ip) == ("00:16:3e:18:5d:25", "192.168.56.158")


def test_dhcp_range_and_what_is_leased_in_it():
    dhcp = dnsmasq.parse_dhcp_range("# mirage-env\ninterface=br0\ndhcp-range=192.168.56.150,192.168.56.199,255.255.255.0,1h\n")
    assert (str(dhcp.start), str(dhcp.end), dhcp.size) == ("192.168.56.150", "192.168.56.199", 50)
    assert dnsmasq.leased_in_range(recorded("leases"), dhcp) == 1
    assert "192.168.56.200" not in dhcp and "bogus" not in dhcp


def test_ack_times_are_the_first_dhcpack_per_mac_with_sub_second_precision():
    journal = """1764877101.204518 debian-box dnsmasq-dhcp[612]: DHCPDISCOVER(br0) 00:16:3e:5a:11:02
1764877101.301422 debian-box dnsmasq-dhcp[612]: DHCPACK(br0) 192.168.56.190 00:16:3e:5a:11:02 mirage-auth
1764877105.000001 debian-box dnsmasq-dhcp[612]: DHCPACK(br0) 192.168.56.190 00:16:3E:5A:11:02 mirage-auth
1764877107.5 debian-box dnsmasq-dhcp[612]: DHCPACK(br0) 192.168.56.175 00:16:3e:00:00:aa
Dec 04 19:40:01 debian-box dnsmasq-dhcp[612]: DHCPACK(br0) 192.168.56.176 00:16:3e:00:00:bb
1764877108.0 debian-box dnsmasq-dhcp[612]: DHCPACK(br0) 192.168.56.177
1764877109.0 debian-box dnsmasq-dhcp[612]: DHCPNAK(br0) 192.168.56.178 00:16:3e:00:00:cc wrong address"""
    assert dnsmasq.ack_times(journal) == {"00:16:3e:5a:11:02": 1764877101.301422, "00:16:3e:00:00:aa": 1764877107.5}
    assert dnsmasq.ack_times("") == {}


def test_refused_macs_come_from_dnsmasqs_log_line():
    line = "DHCPDISCOVER(br0) 00:16:3E:AA:BB:CC no address available"
    assert dnsmasq.refused_macs(line + "\nDHCPOFFER(br0) 192.168.56.151 00:16:3e:00:00:01") == {"00:16:3e:aa:bb:cc"}


@pytest.mark.parametrize("name", ["a", "my-auth", "x" * MAX_NAME_LEN, "auth.v2_1"])
def test_usable_names(name):
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", "-a", "a b", "../../etc/passwd", "a..b", "x" * (MAX_NAME_LEN + 1), "é"])
def test_unusable_names_say_the_rule(name):
    assert f"at most {MAX_NAME_LEN} characters" in name_problem(name)


# Recorded on the dev dom0 (Xen 4.17): list_domus's one command with two auth domUs running, and
# `xl list -l NAME; echo @@net; xl network-list NAME` of a domU whose config gave no MAC
RECORDED = DATA / "dom0"


def test_list_domus_output_gives_names_macs_and_leases():
    table, _, rest = (RECORDED / "list-domus.txt").read_text().partition("@@long")
    long_json, _, leases = rest.partition("@@leases")
    domus = xl.with_addresses(xl.parse_xl_list(table), xl.parse_xl_list_long(long_json), leases)
    assert [(d.name, d.domid, d.memory_mb, d.mac, d.ip) for d in domus] == [
        ("kvdisk-auth", 16, 4, "00:16:3e:06:7d:82", "192.168.56.193"),
        ("house-auth", 17, 4, "00:16:3e:2d:5c:17", "192.168.56.191")]
    assert xl.parse_xl_list_long(long_json)[0] == []  # Domain-0 has no vif


def test_xl_list_long_has_the_mac_xl_picked_for_a_config_without_one():
    long_json, _, net = (RECORDED / "xl-list-l-random-mac.txt").read_text().partition("@@net")
    assert xl.parse_xl_list_long(long_json) == {20: ["00:16:3e:73:66:69"]}
    assert xl.parse_network_list(net) == ["00:16:3e:73:66:69"]  # the vif xl network-list shows


def test_xl_list_long_without_json_gives_nothing():
    assert xl.parse_xl_list_long("libxl: error: cannot connect to xenstored") == {}
    assert xl.parse_xl_list_long("[ {\"domid\": 3, \"config\": ") == {}
