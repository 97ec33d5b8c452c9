"""dnsmasq serves DHCP on the bridge only, with the configured range and lease, and DNS for the
domUs' names on the bridge only (never the uplink, a lab LAN or the loopback)."""


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


def test_dns_is_served_on_the_bridge_only(host, expected):
    """Every dnsmasq socket on port 53 is bound to the bridge's own address (or its link-local
    IPv6 address): none on 0.0.0.0, the loopback, the uplink or a lab LAN. With no DNS domain
    configured, no socket at all."""
    sockets = [line for line in host.check_output("ss -H -lnpu 'sport = :53'; ss -H -lnpt 'sport = :53'").splitlines()
               if "dnsmasq" in line]
    if not expected.get("dnsmasq_domain", "mirage.internal"):
        assert not sockets, sockets
        return
    address = expected["xen_bridge_address"]
    bridge = expected["xen_bridge_name"]
    assert sockets, "dnsmasq serves no DNS on the bridge"
    for line in sockets:
        local = line.split()[3]
        assert local.startswith(f"{address}:") or f"%{bridge}:" in local, f"DNS socket not on {bridge} only: {line}"
