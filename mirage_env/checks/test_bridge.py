"""br0 bridges the host-only NIC with the dom0's address, flooding (ageing 0), no STP, forwarding."""

import ipaddress


def bridge_attr(host, bridge, name):
    return host.file(f"/sys/class/net/{bridge}/bridge/{name}").content_string.strip()


def test_bridge_exists_and_is_up(host, expected):
    iface = host.interface(expected["xen_bridge_name"])
    assert iface.exists
    assert host.file(f"/sys/class/net/{expected['xen_bridge_name']}/operstate").content_string.strip() in ("up", "unknown")


def test_nic_is_a_port_of_the_bridge(host, expected):
    port = f"/sys/class/net/{expected['xen_bridge_name']}/brif/{expected['xen_bridge_nic']}"
    assert host.file(port).exists


def test_bridge_has_the_dom0_address(host, expected):
    want = ipaddress.ip_interface(f"{expected['xen_bridge_address']}/{expected['xen_bridge_prefix']}")
    out = host.check_output(f"ip -4 -o addr show dev {expected['xen_bridge_name']}")
    assert str(want) in out


def test_nic_has_no_address_of_its_own(host, expected):
    out = host.check_output(f"ip -4 -o addr show dev {expected['xen_bridge_nic']}")
    assert out.strip() == ""


def test_ageing_zero_stp_off_no_forward_delay(host, expected):
    bridge = expected["xen_bridge_name"]
    assert bridge_attr(host, bridge, "ageing_time") == "0"
    assert bridge_attr(host, bridge, "stp_state") == "0"
    assert bridge_attr(host, bridge, "forward_delay") == "0"


def test_ip_forwarding_is_on(host):
    assert host.sysctl("net.ipv4.ip_forward") == 1
