"""avahi answers mDNS as HOSTNAME.local on the bridge only (network.mdns), and does not run when
mDNS is off."""

MDNS_GROUP = "224.0.0.251"


def mdns_members(maddr: str) -> set[str]:
    """Interfaces that joined the mDNS group, from `ip -4 maddr show` (the kernel's own table)."""
    members, current = set(), None
    for line in maddr.splitlines():
        if line[:1].isdigit():
            current = line.split()[1]
        elif MDNS_GROUP in line.split() and current:
            members.add(current)
    return members


def test_avahi_answers_on_the_bridge_only_or_not_at_all(host, expected):
    svc = host.service("avahi-daemon")
    if not expected.get("avahi_enabled", False):
        conf = host.file("/etc/avahi/avahi-daemon.conf")
        ours = conf.exists and "Written by mirage-env (role avahi)" in conf.content_string
        assert not (ours and svc.is_running), "network.mdns is off but this project's avahi still runs"
        return
    bridge = expected["xen_bridge_name"]
    assert svc.is_running and svc.is_enabled
    assert f"allow-interfaces={bridge}" in host.file("/etc/avahi/avahi-daemon.conf").content_string.splitlines()
    # avahi joins the group only on the interfaces it serves: no other interface sends or answers mDNS
    members = mdns_members(host.check_output("ip -4 maddr show"))
    assert members == {bridge}, f"mDNS group {MDNS_GROUP} joined on {sorted(members) or 'no interface'}, " \
                                f"expected {bridge} only"
