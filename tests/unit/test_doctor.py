"""`mirage-env doctor`: the VirtualBox checks over recorded VBoxManage outputs (VirtualBox cannot be
installed here), the host checks (QEMU, KVM, disk, memory) for real on this machine."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


from mirage_env import doctor, vbox
from mirage_env.settings import load_settings

DATA = Path(__file__).parent / "data" / "vbox"


def recorded_vboxmanage(version: str, **replace: str):
    """A VBoxManage runner answering from the recordings of one VirtualBox version; a VM that
    was not recorded does not exist, as with the real `showvminfo`."""
    folder = DATA / version

    def run(*args: str) -> str:
        if args == ("--version",):
            name = "version"
        elif args[0] == "list":
            name = args[1]
        elif args[0] == "showvminfo":
            if args[1] != "mirage-env-default":
                raise vbox.VBoxError(f"Could not find a registered machine named '{args[1]}'")
            name = "showvminfo-machinereadable" if "--machinereadable" in args else "showvminfo"
        else:
            raise AssertionError(f"doctor ran an unexpected VBoxManage command: {args}")
        name = replace.get(name, name)
        path = folder / f"{name}.txt"
        return path.read_text() if path.exists() else ""

    return run


def by_name(checks):
    return {c.name: c for c in checks}


def test_virtualbox_6_1_newcomer_traps_are_named_with_their_fixes():
    checks = by_name(doctor.VirtualBoxChecks(load_settings(None), recorded_vboxmanage("6.1")).all())
    assert checks["virtualbox"].status == "ok" and "6.1.50" in checks["virtualbox"].detail
    assert checks["host-only network"].status == "ok"
    dhcp = checks["VirtualBox DHCP server"]
    assert dhcp.status == "fail" and "192.168.56.101–192.168.56.254" in dhcp.detail
    assert dhcp.fix == "VBoxManage dhcpserver modify --network=HostInterfaceNetworking-vboxnet0 --disable"
    nic = checks["VM NIC 2"]
    assert nic.status == "fail" and "deny" in nic.detail
    # the recorded VM is running: modifyvm needs it powered off
    assert nic.fix == ("vagrant halt && VBoxManage modifyvm mirage-env-default --nicpromisc2 allow-all"
                       " && vagrant up")


def test_virtualbox_7_0_set_up_right_passes():
    checks = doctor.VirtualBoxChecks(load_settings(None), recorded_vboxmanage("7.0")).all()
    assert [(c.name, c.status) for c in checks] == [
        ("virtualbox", "ok"), ("host-only network", "ok"), ("VirtualBox DHCP server", "ok"), ("VM NIC 2", "ok"),
        ("guest types", "ok")]


def test_a_vm_without_nested_virtualisation_runs_pv_only_and_says_the_fix():
    checks = by_name(doctor.VirtualBoxChecks(load_settings(None), recorded_vboxmanage("7.0-macos")).all())
    nested = checks["guest types"]  # the recording has no nested-hw-virt="on" line: VirtualBox's default, off
    assert nested.status == "warn" and "only PV guests" in nested.detail and "PVH" in nested.detail
    assert nested.fix == ("vagrant halt && VBoxManage modifyvm mirage-env-default --nested-hw-virt on"
                          " && vagrant up")


def test_nested_kvm_module_parameter(tmp_path):
    param = tmp_path / "kvm_amd" / "parameters"
    param.mkdir(parents=True)
    (param / "nested").write_text("0\n")
    off = doctor.check_nested_kvm(tmp_path)
    assert off.status == "warn" and "kvm_amd nested=0" in off.detail and "nested=1" in off.fix
    (param / "nested").write_text("1\n")
    assert doctor.check_nested_kvm(tmp_path).status == "ok"
    assert doctor.check_nested_kvm(tmp_path / "none").status == "warn"


def test_host_only_interface_with_another_address():
    checks = by_name(doctor.VirtualBoxChecks(
        load_settings(None), recorded_vboxmanage("7.0", hostonlyifs="hostonlyifs-other-address")).all())
    net = checks["host-only network"]
    assert net.status == "fail" and "vboxnet0=192.168.99.1/255.255.255.0" in net.detail
    assert net.fix == "VBoxManage hostonlyif ipconfig vboxnet0 --ip 192.168.56.1 --netmask 255.255.255.0"


def test_settings_drive_the_expected_network():
    settings = load_settings(None, {"network.subnet": "192.168.33.0/24", "network.host_address": "192.168.33.1",
                                    "network.dom0_address": "192.168.33.5", "network.dhcp_start": "192.168.33.150",
                                    "network.dhcp_end": "192.168.33.200", "name": "lab"})
    checks = by_name(doctor.VirtualBoxChecks(settings, recorded_vboxmanage("6.1")).all())
    assert "vboxnet1" in checks["host-only network"].detail
    assert checks["VirtualBox DHCP server"].status == "ok"  # vboxnet1's server is disabled
    assert checks["VM NIC 2"].status == "skip" and "mirage-env-lab" in checks["VM NIC 2"].detail


def test_virtualbox_7_macos_host_only_networks():
    checks = by_name(doctor.VirtualBoxChecks(load_settings(None), recorded_vboxmanage("7.0-macos")).all())
    assert checks["host-only network"].status == "ok" and "vagrantnet-vbox1" in checks["host-only network"].detail
    assert checks["VirtualBox DHCP server"].status == "ok"
    assert checks["VM NIC 2"].status == "ok"
    # the other network hands out addresses: pointing the settings at it names the fix
    settings = load_settings(None, {"network.subnet": "192.168.57.0/24", "network.host_address": "192.168.57.1",
                                    "network.dom0_address": "192.168.57.5", "network.dhcp_start": "192.168.57.210",
                                    "network.dhcp_end": "192.168.57.250"})
    checks = by_name(doctor.VirtualBoxChecks(settings, recorded_vboxmanage("7.0-macos")).all())
    assert checks["VirtualBox DHCP server"].fix == \
        "VBoxManage hostonlynet modify --name=HostOnly --lower-ip=192.168.57.0 --upper-ip=192.168.57.0"
    assert checks["VM NIC 2"].fix == ("vagrant halt && VBoxManage modifyvm mirage-env-default "
                                      "--host-only-net2 HostOnly && vagrant up")


def test_no_host_only_interface_at_all():
    checks = by_name(doctor.VirtualBoxChecks(
        load_settings(None), recorded_vboxmanage("7.0-macos", hostonlynets="missing")).all())
    assert checks["host-only network"].status == "fail"
    assert checks["host-only network"].fix.startswith("VBoxManage hostonlyif create")


def test_missing_virtualbox_is_one_failure_with_the_install_hint():
    def absent(*args):
        raise vbox.VBoxError("VBoxManage is not installed")

    checks = doctor.VirtualBoxChecks(load_settings(None), absent).all()
    assert [(c.name, c.status) for c in checks] == [("virtualbox", "fail")]
    assert "virtualbox.org" in checks[0].fix


def test_disk_and_memory_for_real(tmp_path):
    assert doctor.check_disk(tmp_path / "not" / "yet").status in ("ok", "fail")
    assert doctor.check_disk(tmp_path).detail.endswith(f"free at {tmp_path}")
    free = doctor.available_mib()
    assert free > 0
    assert doctor.check_memory(512).status == ("ok" if free >= 512 + doctor.HOST_RESERVE_MIB else "fail")
    too_much = doctor.check_memory(free + 10**6)
    assert too_much.status == "fail" and "vagrant.memory" in too_much.fix


@pytest.mark.parametrize("vm_mib, free", [(1024, 1500), (2048, 3000), (2048, 2500), (4096, 100)])
def test_the_memory_fix_never_suggests_the_refused_size_or_one_below_the_minimum(vm_mib, free):
    """1024 MiB refused with 1500 free suggested -s vagrant.memory=1024 before: the refused value."""
    check = doctor.check_memory(vm_mib, lambda: free, setting="machine.memory")
    assert check.status == "fail"
    suggested = re.search(r"machine\.memory=(\d+)M", check.fix)
    if suggested:
        assert 1024 <= int(suggested.group(1)) < vm_mib, check.fix
    else:
        assert "cannot go below 1024M" in check.fix, check.fix


def test_qemu_and_kvm_for_real():
    qemu = doctor.check_qemu()
    assert qemu.status == ("ok" if shutil.which("qemu-system-x86_64") and shutil.which("qemu-img") else "fail")
    kvm = doctor.check_kvm()
    assert kvm.status in ("ok", "warn")  # no KVM only slows things down
    assert kvm.passed


def run_cli(*args, state):
    return subprocess.run([sys.executable, "-m", "mirage_env.cli", "--state-dir", str(state), *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_json_and_exit_code(tmp_path):
    proc = run_cli("-s", "provider=qemu", "doctor", "--json", state=tmp_path)
    result = json.loads(proc.stdout)
    assert result["provider"] == "qemu"
    assert {c["name"] for c in result["checks"]} >= {"qemu", "kvm", "disk", "memory"}
    assert proc.returncode == (0 if result["ok"] else 1)
    assert result["ok"] == all(c["status"] != "fail" for c in result["checks"])
    # the VM needs more memory than this host has: exit 1, the fix named
    proc = run_cli("-s", "provider=virtualbox", "-s", "vagrant.memory=65536", "doctor", state=tmp_path)
    assert proc.returncode == 1 and "fix:" in proc.stdout and "Traceback" not in proc.stderr


def test_cli_bad_settings_exit_2(tmp_path):
    proc = run_cli("-s", "vagrant.cpus=0", "doctor", state=tmp_path)
    assert proc.returncode == 2 and "vagrant.cpus" in proc.stderr and "Fix:" in proc.stderr
