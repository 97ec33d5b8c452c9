"""The lab inventory: per-host settings layered over the environment's, refused as a whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mirage_env.lab import load_lab, select
from mirage_env.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def key(tmp_path) -> Path:
    path = tmp_path / "id_ed25519"
    path.write_text("not read by the loader\n")
    return path


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "lab.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def settings():
    return load_settings(None, {"provider": "ssh", "lab.inventory": "unused.yml"})


def test_defaults_then_host_keys_win(tmp_path, key):
    lab = write(tmp_path, {
        "defaults": {"user": "admin", "key": str(key), "network": {"bridged_nic": "eth1"}},
        "hosts": {
            "xen-a": {"address": "10.99.0.11"},
            "xen-b": {"address": "10.99.0.12", "port": 2222, "network": {
                "bridged_nic": "eno2", "subnet": "192.168.61.0/24", "host_address": "192.168.61.1",
                "dom0_address": "192.168.61.5", "dhcp_start": "192.168.61.100", "dhcp_end": "192.168.61.199"},
                "dom0": {"memory": "2G"}},
        },
    })
    a, b = load_lab(lab, settings())
    assert (a.name, a.target.host, a.target.port, a.target.user) == ("xen-a", "10.99.0.11", 22, "admin")
    assert a.settings.network.bridged_nic == "eth1" and str(a.settings.network.subnet) == "192.168.56.0/24"
    assert b.settings.network.bridged_nic == "eno2" and b.settings.dom0.memory == 2048
    assert b.target.port == 2222
    assert b.settings.role_vars()["dnsmasq_dhcp_start"] == "192.168.61.100"
    assert a.settings.role_vars()["xen_dom0_mem_mb"] == 512


def test_a_bad_host_refuses_the_whole_inventory_naming_host_field_value_and_fix(tmp_path, key):
    lab = write(tmp_path, {"defaults": {"user": "admin", "key": str(key)}, "hosts": {
        "good": {"address": "10.99.0.11"},
        "bad": {"address": "10.99.0.12", "network": {"dhcp_start": "192.168.57.150"}},
        "nic": {"address": "10.99.0.13", "network": {"bridged_nic": "eth0"}},
    }})
    with pytest.raises(SettingsError) as err:
        load_lab(lab, settings())
    problems = err.value.problems
    assert any(p.startswith("hosts.bad.network.dhcp_start: 192.168.57.150 is outside the subnet") and "Fix:" in p
               for p in problems)
    assert any(p.startswith("hosts.nic.network.bridged_nic: 'eth0' is the uplink NIC") for p in problems)
    assert not any("hosts.good" in p for p in problems)


@pytest.mark.parametrize("entry, expected", [
    ({"address": "10.0.0.1", "colour": "red"}, "hosts.x.colour: unknown key"),
    ({"user": "admin"}, "hosts.x.address: missing"),
    ({"address": "10.0.0.1", "port": "ssh"}, "hosts.x.port: 'ssh' is not a TCP port"),
    ({"address": "10.0.0.1", "key": "/nonexistent/key"}, "hosts.x.key: /nonexistent/key does not exist"),
    ("10.0.0.1", "hosts.x: expected a mapping"),
])
def test_host_entry_mistakes(tmp_path, key, entry, expected):
    if isinstance(entry, dict):
        entry = {"user": "admin", "key": str(key), **entry} if "user" not in entry else {"key": str(key), **entry}
    lab = write(tmp_path, {"hosts": {"x": entry}})
    with pytest.raises(SettingsError) as err:
        load_lab(lab, settings())
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems


def test_limit_selects_by_name_and_glob_and_refuses_no_match(tmp_path, key):
    lab = write(tmp_path, {"defaults": {"user": "u", "key": str(key)},
                           "hosts": {n: {"address": f"10.0.0.{i}"} for i, n in enumerate(["r1-a", "r1-b", "r2-a"], 1)}})
    hosts = load_lab(lab, settings())
    assert [h.name for h in select(hosts, "r1-*")] == ["r1-a", "r1-b"]
    assert [h.name for h in select(hosts, "r2-a, r1-b")] == ["r1-b", "r2-a"]
    assert select(hosts, None) == hosts
    with pytest.raises(SettingsError, match="matches no host"):
        select(hosts, "r3-*")


def test_the_example_inventory_is_valid_apart_from_its_keys(tmp_path, key):
    data = yaml.safe_load((ROOT / "inventory" / "lab.example.yml").read_text())
    data["defaults"]["key"] = str(key)
    hosts = load_lab(write(tmp_path, data), settings())
    assert [h.name for h in hosts] == ["xen-a", "xen-b"]
    assert hosts[1].settings.network.bridged_nic == "eno2"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirage_env.cli", "--state-dir", str(cwd / "state"), *args],
                          capture_output=True, text=True, cwd=cwd, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_cli_refuses_a_bad_inventory_with_exit_2_and_touches_nothing(tmp_path, key):
    lab = write(tmp_path, {"hosts": {"x": {"address": "10.0.0.1", "user": "u", "key": str(key),
                                           "network": {"lease_time": "30s"}}}})
    proc = run_cli("up", "--inventory", str(lab), cwd=tmp_path)
    assert proc.returncode == 2
    assert "hosts.x.network.lease_time" in proc.stderr and "Fix:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state" / "default" / "inventory.yml").exists()


def test_cli_limit_with_a_single_machine_provider_is_refused(tmp_path):
    proc = run_cli("--provider", "qemu", "--limit", "xen-a", "status", cwd=tmp_path)
    assert proc.returncode == 2 and "--limit 'xen-a'" in proc.stderr and "Fix:" in proc.stderr


@pytest.mark.parametrize("defaults, port, expected", [
    ([1], 22, "defaults: expected a mapping"),
    ("admin", 22, "defaults: expected a mapping"),
    ({"user": "admin"}, None, "hosts.xen-a.port: None is not a TCP port"),
    ({"user": "admin"}, [22], "hosts.xen-a.port: [22] is not a TCP port"),
    ({"user": "admin"}, True, "hosts.xen-a.port: True is not a TCP port"),
    ({"user": "admin"}, 70000, "hosts.xen-a.port: 70000 is not a TCP port"),
])
def test_odd_shapes_are_refused_with_the_field_not_a_traceback(tmp_path, key, defaults, port, expected):
    lab = write(tmp_path, {"defaults": defaults,
                           "hosts": {"xen-a": {"address": "10.99.0.11", "key": str(key), "port": port}}})
    with pytest.raises(SettingsError) as refused:
        load_lab(lab, settings())
    assert expected in refused.value.render()


def test_a_lab_hosts_report_reads_back_its_own_measurements():
    """The unikernel/Linux lease ratio is computed from the host's own probe time."""
    from mirage_env.report import Report
    from mirage_env.workflow import _HostReport

    report = Report("verify", path=None)
    a, b = _HostReport(report, "laba"), _HostReport(report, "labb")
    a.measure("probe.create_to_lease_s", 20.0)
    b.measure("probe.create_to_lease_s", 30.0)
    assert a.measurements == {"probe.create_to_lease_s": 20.0}
    assert report.measurements == {"laba.probe.create_to_lease_s": 20.0, "labb.probe.create_to_lease_s": 30.0}
