"""VBoxManage parsing against recorded outputs of VirtualBox 6.1 and 7.0 (see data/vbox/SOURCES.md)."""

from pathlib import Path

import pytest

from mirage_env import vbox

DATA = Path(__file__).parent / "data" / "vbox"


def recorded(version: str, name: str) -> str:
    return (DATA / version / f"{name}.txt").read_text()


@pytest.mark.parametrize("version,name,expected,text", [
    ("6.1", "version", (6, 1, 50), "6.1.50r161033"),
    ("6.1", "version-debian-warning", (6, 1, 38), "6.1.38_Ubuntur153438"),
    ("7.0", "version", (7, 0, 20), "7.0.20r163906"),
    ("7.0-macos", "version", (7, 0, 14), "7.0.14r161095"),
])
def test_versions_including_distribution_builds_after_a_warning(version, name, expected, text):
    parsed = vbox.parse_version(recorded(version, name))
    assert (parsed.major, parsed.minor, parsed.patch) == expected and parsed.text == text


def test_a_version_that_is_not_one_is_refused():
    with pytest.raises(vbox.VBoxError):
        vbox.parse_version("VBoxManage: error: Failed to create the VirtualBox object!\n")


def test_hostonlyifs_6_1_two_interfaces():
    ifs = vbox.parse_hostonlyifs(recorded("6.1", "hostonlyifs"))
    assert [(i.name, i.ip, i.netmask, i.status, i.dhcp) for i in ifs] == [
        ("vboxnet0", "192.168.56.1", "255.255.255.0", "Up", False),
        ("vboxnet1", "192.168.33.1", "255.255.255.0", "Down", False)]
    assert ifs[0].network_name == "HostInterfaceNetworking-vboxnet0"


def test_dhcpservers_nested_configuration_is_not_read_as_fields():
    servers = vbox.parse_dhcpservers(recorded("6.1", "dhcpservers"))
    assert [(s.network_name, s.ip, s.lower, s.upper, s.enabled) for s in servers] == [
        ("HostInterfaceNetworking-vboxnet0", "192.168.56.100", "192.168.56.101", "192.168.56.254", True),
        ("HostInterfaceNetworking-vboxnet1", "192.168.33.100", "192.168.33.101", "192.168.33.254", False)]
    assert vbox.parse_dhcpservers(recorded("7.0", "dhcpservers"))[0].enabled is False
    assert vbox.parse_dhcpservers("") == []


def test_hostonlynets_blank_line_inside_a_block():
    nets = vbox.parse_hostonlynets(recorded("7.0-macos", "hostonlynets"))
    assert [(n.name, n.enabled, n.lower, n.upper, n.network_name) for n in nets] == [
        ("vagrantnet-vbox1", True, "192.168.56.0", "192.168.56.0", "hostonly-vagrantnet-vbox1"),
        ("HostOnly", True, "192.168.57.2", "192.168.57.199", "hostonly-HostOnly")]


def test_machinereadable_quoted_keys_escapes_and_non_key_lines():
    info = vbox.parse_machinereadable(recorded("6.1", "showvminfo-machinereadable"))
    assert info["nic2"] == "hostonly" and info["hostonlyadapter2"] == "vboxnet0"
    assert info["SATA Controller-0-0"].endswith("debian-12-generic-amd64-disk001.vmdk")
    assert info["description"] == 'mirage-env "default" (a Xen dom0 for unikernels)'
    assert info["memory"] == "2048" and info["VMState"] == "running"
    seven = vbox.parse_machinereadable(recorded("7.0", "showvminfo-machinereadable"))
    assert "Encryption" not in seven and seven["name"] == "mirage-env-default"


def test_machinereadable_has_no_promiscuous_policy_so_it_comes_from_the_human_output():
    assert not [k for k in vbox.parse_machinereadable(recorded("7.0", "showvminfo-machinereadable"))
                if "promisc" in k]
    assert vbox.parse_nic_promisc(recorded("6.1", "showvminfo")) == {1: "deny", 2: "deny"}
    assert vbox.parse_nic_promisc(recorded("7.0", "showvminfo")) == {1: "deny", 2: "allow-all"}


@pytest.mark.parametrize("version,attachment,adapter,mac,promisc", [
    ("6.1", "hostonly", "vboxnet0", "080027DD5ADF", "deny"),
    ("7.0", "hostonly", "vboxnet0", "080027F04A19", "allow-all"),
    ("7.0-macos", "hostonlynetwork", "vagrantnet-vbox1", "0800272E9F44", "allow-all"),
])
def test_vm_nic_2(version, attachment, adapter, mac, promisc):
    nic = vbox.vm_nic(recorded(version, "showvminfo-machinereadable"), recorded(version, "showvminfo"), 2)
    assert (nic.attachment, nic.adapter, nic.mac, nic.promisc) == (attachment, adapter, mac, promisc)


def test_dhcp_disable_command_per_version():
    name = "HostInterfaceNetworking-vboxnet0"
    assert vbox.dhcp_disable_command(vbox.Version(6, 1, 50, ""), name) == \
        "VBoxManage dhcpserver modify --network=HostInterfaceNetworking-vboxnet0 --disable"
    assert vbox.dhcp_disable_command(vbox.Version(6, 0, 24, ""), name) == \
        "VBoxManage dhcpserver modify --netname HostInterfaceNetworking-vboxnet0 --disable"
