"""Settings: defaults of the classic topology, and every bad input refused with field, value and fix."""

import pytest

from mirage_env.settings import Settings, SettingsError, load_settings


def load_text(tmp_path, text):
    path = tmp_path / "mirage-env.yml"
    path.write_text(text)
    return load_settings(path)


def refused(tmp_path, text) -> str:
    with pytest.raises(SettingsError) as info:
        load_text(tmp_path, text)
    return info.value.render()


def test_defaults_are_the_classic_topology():
    s = Settings()
    assert str(s.network.subnet) == "192.168.56.0/24"
    assert str(s.network.host_address) == "192.168.56.1"
    assert str(s.network.dom0_address) == "192.168.56.5"
    assert (s.network.bridge, s.network.bridged_nic) == ("br0", "eth1")
    assert (str(s.network.dhcp_start), str(s.network.dhcp_end)) == ("192.168.56.150", "192.168.56.200")
    assert s.network.lease_time == "1h"
    assert s.dom0.memory == 512


def test_empty_file_gives_defaults(tmp_path):
    assert load_text(tmp_path, "") == Settings()


def test_sizes_parse(tmp_path):
    s = load_text(tmp_path, "dom0: {memory: 1G}\nmachine: {memory: 3072M}\n")
    assert (s.dom0.memory, s.machine.memory) == (1024, 3072)


@pytest.mark.parametrize("text, field, value, fix", [
    ("network: {dhcp_start: 192.168.57.150, dhcp_end: 192.168.57.200}", "network.dhcp_start",
     "192.168.57.150", "inside 192.168.56.0/24"),
    ("network: {dhcp_start: 192.168.56.200, dhcp_end: 192.168.56.150}", "network.dhcp_start/dhcp_end",
     "reversed", "dhcp_start: 192.168.56.150"),
    ("network: {dom0_address: 192.168.56.160}", "network.dom0_address", "192.168.56.160",
     "outside the range"),
    ("network: {host_address: 192.168.56.175}", "network.host_address", "192.168.56.175",
     "outside the range"),
    ("network: {host_address: 10.1.2.3}", "network.host_address", "10.1.2.3", "inside 192.168.56.0/24"),
    ("network: {dom0_address: 192.168.56.255}", "network.dom0_address", "broadcast", "host address"),
    ("network: {host_address: 192.168.56.0}", "network.host_address", "network address", "host address"),
    ("network: {bridge: 'br 0'}", "network.bridge", "'br 0'", "1–15 characters"),
    ("network: {bridged_nic: averyveryverylongname}", "network.bridged_nic", "averyveryverylongname",
     "1–15 characters"),
    ("network: {bridged_nic: eth0}", "network.bridged_nic", "eth0", "host-only NIC"),
    ("network: {lease_time: 30s}", "network.lease_time", "30s", "2m or more"),
    ("network: {lease_time: soon}", "network.lease_time", "soon", "1h"),
    ("network: {subnet: 192.168.56.0/33}", "network.subnet", "192.168.56.0/33", "192.168.56.0/24"),
    ("dom0: {memory: lots}", "dom0.memory", "lots", "512M"),
    ("dom0: {memory: 4G}", "dom0.memory", "4096M", "at most 1536M"),
    ("dom0: {memory: 64M}", "dom0.memory", "64M", "256M or more"),
    ("machine: {memory: 64G}", "machine.memory", "64G", "between 1G and 16G"),
    ("netwrk: {}", "netwrk", "did you mean `network`", "remove it"),
    ("network: {brige: br1}", "network.brige", "did you mean `bridge`", "remove it"),
    ("- a\n- b\n", "top level", "list", "key: value"),
    ("machine: {mirror: 'ftp://example.invalid/debian'}", "machine.mirror", "ftp://", "http://"),
])
def test_bad_input_names_field_value_and_fix(tmp_path, text, field, value, fix):
    message = refused(tmp_path, text)
    assert "nothing was changed" in message
    assert field in message and value in message and "Fix:" in message and fix in message, message


def test_malformed_yaml_names_the_line(tmp_path):
    message = refused(tmp_path, "network:\n  bridge: br0\n   nat: true\n")
    assert "line 3" in message and "malformed YAML" in message


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError) as info:
        load_settings(tmp_path / "nope.yml")
    assert "cannot read" in info.value.render()


def test_overrides_apply_and_validate(tmp_path):
    s = load_settings(None, {"dom0.memory": "768M"})
    assert s.dom0.memory == 768
    with pytest.raises(SettingsError):
        load_settings(None, {"network.bridge": "bad name"})


@pytest.mark.parametrize("text, field, fix", [
    ("unikernel: {memory: 2M}", "unikernel.memory", "8M"),
    ("unikernel: {mac: '01:16:3e:00:00:01'}", "unikernel.mac", "unicast"),
    ("unikernel: {app: doom}", "unikernel.app", "Fix:"),
])
def test_bad_unikernel_settings(tmp_path, text, field, fix):
    message = refused(tmp_path, text)
    assert field in message and fix in message, message
