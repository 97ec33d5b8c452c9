"""dnsmasq serves DHCP on the bridge only, with the configured range and lease, and no DNS."""


def test_dnsmasq_is_running_and_enabled(host):
    svc = host.service("dnsmasq")
    assert svc.is_running
    assert svc.is_enabled


def test_dhcp_range_and_lease(host, expected):
    conf = host.file("/etc/dnsmasq.d/mirage-env.conf").content_string
    bridge = expected["xen_bridge_name"]
    want = (f"dhcp-range={bridge},{expected['dnsmasq_dhcp_start']},{expected['dnsmasq_dhcp_end']},"
            f"{expected['dnsmasq_netmask']},{expected['dnsmasq_lease_time']}")
    assert want in conf.splitlines()
    assert f"interface={bridge}" in conf.splitlines()


def test_dhcp_socket_is_bound_to_the_bridge_only(host, expected):
    bridge = expected["xen_bridge_name"]
    sockets = [line for line in host.check_output("ss -H -ulpn 'sport = :67'").splitlines() if "dnsmasq" in line]
    assert sockets, "dnsmasq has no DHCP socket"
    for line in sockets:
        local = line.split()[3]
        assert local.endswith(f"%{bridge}:67"), f"DHCP socket not bound to {bridge}: {line}"


def test_no_dns_is_served(host):
    assert "dnsmasq" not in host.check_output("ss -H -lnpu 'sport = :53'; ss -H -lnpt 'sport = :53'")
