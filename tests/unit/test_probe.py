"""Reading dnsmasq's lease file: only a lease granted after the probe booted counts."""

from mirage_env.dom0.dnsmasq import fresh_lease

MAC = "00:16:3e:6d:65:01"


def test_fresh_lease_is_found():
    text = f"5000 {MAC} 192.168.56.171 mirage-probe 01:{MAC}\n"
    assert fresh_lease(text, MAC, not_before=1400, lease_s=3600) == "192.168.56.171"


def test_stale_lease_from_an_earlier_boot_is_ignored():
    text = f"4000 {MAC} 192.168.56.171 mirage-probe *\n"
    assert fresh_lease(text, MAC, not_before=1400, lease_s=3600) is None


def test_other_macs_and_garbage_are_ignored():
    text = "garbage\n9999 00:16:3e:00:00:09 192.168.56.160 other *\n"
    assert fresh_lease(text, MAC, not_before=0, lease_s=60) is None


def test_infinite_lease_has_expiry_zero():
    assert fresh_lease(f"0 {MAC} 192.168.56.150 * *\n", MAC, not_before=10**9, lease_s=60) == "192.168.56.150"
