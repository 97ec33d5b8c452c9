"""`mirage-env doctor`: check the host before anything starts, each failure with the command that fixes it.

What it looks at depends on the provider: VirtualBox (Vagrant and VirtualBox versions, the
host-only interface and its address, VirtualBox's DHCP server on it, the VM's NIC 2 promiscuous
policy), libvirt (Vagrant, the vagrant-libvirt plugin, the libvirt daemon, KVM), the built-in QEMU
machine (QEMU, KVM); always free disk and memory. `ok` and `warn` pass; any `fail` fails.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from . import vbox
from .settings import Settings

VAGRANT_MIN = (2, 2)
VBOX_MIN = (6, 1)
DISK_NEEDED_GIB = 12  # base box/image (~1.5 GiB) + the VM's disk growing with Xen, domUs, build trees
HOST_RESERVE_MIB = 1024  # what the host keeps for itself next to the VM


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""

    @property
    def passed(self) -> bool:
        return self.status != "fail"


def vm_name(settings: Settings) -> str:
    """The VirtualBox VM's name, as the Vagrantfile sets it."""
    return f"mirage-env-{settings.name}"


def _tool_version(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (proc.stdout + proc.stderr).strip() if proc.returncode == 0 else None


def check_vagrant() -> Check:
    if not shutil.which("vagrant"):
        return Check("vagrant", "fail", "vagrant is not installed",
                     "install Vagrant: https://developer.hashicorp.com/vagrant/install "
                     "(Debian/Ubuntu: sudo apt-get install vagrant)")
    out = _tool_version(["vagrant", "--version"]) or ""
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    if not match:
        return Check("vagrant", "fail", f"`vagrant --version` printed {out[-200:]!r}",
                     "reinstall Vagrant: https://developer.hashicorp.com/vagrant/install")
    version = tuple(int(g) for g in match.groups())
    if version[:2] < VAGRANT_MIN:
        return Check("vagrant", "fail", f"Vagrant {'.'.join(map(str, version))} is older than "
                     f"{'.'.join(map(str, VAGRANT_MIN))}", "upgrade Vagrant: https://developer.hashicorp.com/vagrant/install")
    return Check("vagrant", "ok", f"Vagrant {'.'.join(map(str, version))}")


class VirtualBoxChecks:
    """The VirtualBox checks over a VBoxManage runner (the real one, or recorded outputs in tests)."""

    def __init__(self, settings: Settings, run: vbox.Runner = vbox.run_vboxmanage):
        self.settings, self.run = settings, run
        self.version: vbox.Version | None = None

    def all(self) -> list[Check]:
        checks = [self.check_version()]
        if self.version is None:
            return checks
        network, network_checks = self.check_network()
        checks += network_checks
        checks.append(self.check_nic2(network))
        checks.append(self.check_nested())
        return checks

    def check_nested(self) -> Check:
        """PVH guests (MirageOS 4, Unikraft) need hardware-assisted paging inside the VM: VirtualBox's
        nested hardware virtualisation. The Vagrantfile turns it on; a VM made before may lack it."""
        name = vm_name(self.settings)
        try:
            machine = vbox.parse_machinereadable(self.run("showvminfo", name, "--machinereadable"))
        except vbox.VBoxError:
            return Check("guest types", "skip", f"no VM {name} yet: the Vagrantfile turns on nested "
                         "hardware virtualisation, so the dom0 runs PV and PVH guests")
        value = machine.get("nested-hw-virt", "off")
        if value == "on":
            return Check("guest types", "ok", f"{name}: nested hardware virtualisation on: PV and PVH guests")
        fix = f"VBoxManage modifyvm {name} --nested-hw-virt on"
        running = machine.get("VMState") == "running"
        return Check("guest types", "warn", f"{name}: nested hardware virtualisation is {value}: Xen gets no "
                     "hap, so only PV guests run (PVH kernels such as MirageOS 4's are refused)",
                     f"vagrant halt && {fix} && vagrant up" if running else fix)

    def check_version(self) -> Check:
        try:
            self.version = vbox.parse_version(self.run("--version"))
        except vbox.VBoxError as exc:
            return Check("virtualbox", "fail", str(exc),
                         "install VirtualBox 7.0 (or 6.1): https://www.virtualbox.org/wiki/Downloads")
        if (self.version.major, self.version.minor) < VBOX_MIN:
            return Check("virtualbox", "fail", f"VirtualBox {self.version} is older than 6.1",
                         "install VirtualBox 7.0: https://www.virtualbox.org/wiki/Downloads")
        return Check("virtualbox", "ok", f"VirtualBox {self.version} ({self.version.text})")

    # -- the host-only network --------------------------------------------------------------
    def check_network(self) -> tuple[str | None, list[Check]]:
        """(the host-only interface/network name, checks). Linux and Windows hosts and VirtualBox
        6.x use host-only *interfaces* (vboxnetN); VirtualBox 7 on macOS uses host-only *networks*."""
        net = self.settings.network
        ifs = vbox.parse_hostonlyifs(self.run("list", "hostonlyifs"))
        mine = [i for i in ifs if i.ip == str(net.host_address)]
        if mine:
            hostonly = mine[0]
            checks = [self._address_check(hostonly)]
            checks.append(self._dhcp_check(hostonly.name, hostonly.network_name))
            return hostonly.name, checks
        if self.version and self.version.major >= 7:
            nets = vbox.parse_hostonlynets(self.run("list", "hostonlynets"))
            covering = [n for n in nets if _same_subnet(n.lower, n.netmask, net.subnet)]
            if covering:
                return covering[0].name, self._hostonlynet_checks(covering[0])
        in_subnet = [i for i in ifs if i.ip and _same_subnet(i.ip, i.netmask, net.subnet)]
        name = in_subnet[0].name if in_subnet else (ifs[0].name if ifs else "vboxnet0")
        seen = ", ".join(f"{i.name}={i.ip}/{i.netmask}" for i in ifs) or "none"
        fix = (f"VBoxManage hostonlyif ipconfig {name} --ip {net.host_address} --netmask {net.netmask}"
               if ifs else f"VBoxManage hostonlyif create && VBoxManage hostonlyif ipconfig vboxnet0 "
                           f"--ip {net.host_address} --netmask {net.netmask}")
        return None, [Check("host-only network", "fail",
                            f"no host-only interface has {net.host_address} (host-only interfaces: {seen})", fix)]

    def _address_check(self, hostonly: vbox.HostOnlyIf) -> Check:
        net = self.settings.network
        if hostonly.netmask != net.netmask:
            return Check("host-only network", "fail",
                         f"{hostonly.name} has {hostonly.ip} with netmask {hostonly.netmask}, not {net.netmask}",
                         f"VBoxManage hostonlyif ipconfig {hostonly.name} --ip {net.host_address} "
                         f"--netmask {net.netmask}")
        return Check("host-only network", "ok", f"{hostonly.name} has {hostonly.ip}/{net.prefixlen} "
                     f"(status {hostonly.status or 'unknown'})")

    def _dhcp_check(self, ifname: str, network_name: str) -> Check:
        servers = vbox.parse_dhcpservers(self.run("list", "dhcpservers"))
        network_name = network_name or f"HostInterfaceNetworking-{ifname}"
        server = next((s for s in servers if s.network_name == network_name), None)
        if server is None:
            return Check("VirtualBox DHCP server", "ok", f"none on {ifname}")
        if not server.enabled:
            return Check("VirtualBox DHCP server", "ok", f"disabled on {ifname}")
        assert self.version is not None
        return Check("VirtualBox DHCP server", "fail",
                     f"enabled on {ifname} ({server.ip}, handing out {server.lower}–{server.upper}): it races "
                     "dnsmasq on the dom0's bridge for every domU's lease",
                     vbox.dhcp_disable_command(self.version, server.network_name))

    def _hostonlynet_checks(self, hostonly: vbox.HostOnlyNet) -> list[Check]:
        net = self.settings.network
        checks = [Check("host-only network", "ok" if hostonly.enabled else "fail",
                        f"host-only network {hostonly.name} ({hostonly.lower}–{hostonly.upper}/{hostonly.netmask})"
                        + ("" if hostonly.enabled else " is disabled"),
                        "" if hostonly.enabled else f"VBoxManage hostonlynet modify --name={hostonly.name} --enable")]
        # macOS hands out addresses in LowerIP–UpperIP; Vagrant shrinks that range to the network
        # address alone, which leaves dnsmasq the only DHCP server on the segment.
        network_address = str(net.subnet.network_address)
        if hostonly.lower == hostonly.upper == network_address:
            checks.append(Check("VirtualBox DHCP server", "ok", f"no DHCP range on {hostonly.name}"))
        else:
            checks.append(Check("VirtualBox DHCP server", "fail",
                                f"{hostonly.name} hands out {hostonly.lower}–{hostonly.upper}: it races dnsmasq "
                                "on the dom0's bridge", f"VBoxManage hostonlynet modify --name={hostonly.name} "
                                f"--lower-ip={network_address} --upper-ip={network_address}"))
        return checks

    # -- the VM ----------------------------------------------------------------------------
    def check_nic2(self, network: str | None) -> Check:
        name = vm_name(self.settings)
        try:
            machine = self.run("showvminfo", name, "--machinereadable")
        except vbox.VBoxError:
            return Check("VM NIC 2", "skip", f"no VM {name} yet (`mirage-env up` creates it)")
        nic = vbox.vm_nic(machine, self.run("showvminfo", name), 2)
        problems, fixes = [], []
        if nic.attachment not in ("hostonly", "hostonlynetwork"):
            problems.append(f"NIC 2 is attached to {nic.attachment!r}, not the host-only network")
            fixes.append(f"VBoxManage modifyvm {name} --nic2 hostonly --hostonlyadapter2 {network or 'vboxnet0'}")
        elif network and nic.adapter != network:
            problems.append(f"NIC 2 is on {nic.adapter}, not {network}")
            flag = "--host-only-net2" if nic.attachment == "hostonlynetwork" else "--hostonlyadapter2"
            fixes.append(f"VBoxManage modifyvm {name} {flag} {network}")
        if nic.promisc != "allow-all":
            problems.append(f"NIC 2's promiscuous mode is {nic.promisc or 'unknown'}, not allow-all: the domUs' "
                            "frames (their own MACs) never reach the host")
            fixes.append(f"VBoxManage modifyvm {name} --nicpromisc2 allow-all")
        if problems:
            fix = " && ".join(fixes)
            # modifyvm needs the VM powered off
            running = vbox.parse_machinereadable(machine).get("VMState") == "running"
            return Check("VM NIC 2", "fail", "; ".join(problems),
                         f"vagrant halt && {fix} && vagrant up" if running else fix)
        return Check("VM NIC 2", "ok", f"{name}: NIC 2 on {nic.adapter}, MAC {nic.mac}, promiscuous allow-all")


def _same_subnet(address: str, netmask: str, subnet: ipaddress.IPv4Network) -> bool:
    try:
        return ipaddress.IPv4Network(f"{address}/{netmask}", strict=False) == subnet
    except ValueError:
        return False


# -- QEMU, KVM, libvirt ---------------------------------------------------------------------
def check_qemu() -> Check:
    from .providers.qemu import QEMU

    missing = [t for t in (QEMU, "qemu-img") if not shutil.which(t)]
    if missing:
        return Check("qemu", "fail", f"{', '.join(missing)} not installed", "sudo scripts/install-deps.sh")
    out = _tool_version([QEMU, "--version"]) or ""
    return Check("qemu", "ok", out.splitlines()[0] if out else QEMU)


def check_kvm(log: Path | None = None) -> Check:
    from .providers.qemu import kvm_usable

    if kvm_usable(log):
        return Check("kvm", "ok", "KVM runs a guest")
    why = ("no /dev/kvm" if not os.path.exists("/dev/kvm") else
           "no read/write access to /dev/kvm" if not os.access("/dev/kvm", os.R_OK | os.W_OK) else
           "/dev/kvm is there but cannot run a guest (nested virtualization off?)")
    return Check("kvm", "warn", f"{why}: VMs run under software emulation (TCG), several times slower",
                 "enable VT-x/AMD-V in the firmware, then `sudo modprobe kvm_intel` (or kvm_amd) and "
                 "`sudo usermod -aG kvm $USER`")


def check_nested_kvm(sys_module: Path = Path("/sys/module")) -> Check:
    """libvirt: the dom0 VM gets hap (PVH guests) only when this host's KVM allows nesting."""
    for module in ("kvm_intel", "kvm_amd"):
        param = sys_module / module / "parameters" / "nested"
        if param.is_file():
            value = param.read_text().strip()
            if value in ("Y", "1"):
                return Check("guest types", "ok", f"{module} nested={value}: the dom0 runs PV and PVH guests")
            return Check("guest types", "warn", f"{module} nested={value}: Xen in the VM gets no hap, so only "
                         "PV guests run (PVH kernels such as MirageOS 4's are refused)",
                         f"echo 'options {module} nested=1' | sudo tee /etc/modprobe.d/{module}-nested.conf && "
                         f"sudo modprobe -r {module} && sudo modprobe {module} (with no VM running)")
    return Check("guest types", "warn", "no KVM module loaded: the VM runs without nesting, PV guests only",
                 "load kvm_intel or kvm_amd with nested=1")


def check_builtin_guest_types() -> Check:
    return Check("guest types", "ok", "the built-in machine's CPU (qemu64,+svm,+npt) gives Xen hap: "
                 "PV and PVH guests (`mirage-env status` shows what the running dom0 lists)")


def check_libvirt(uri: str | None = None) -> list[Check]:
    uri = uri or os.environ.get("LIBVIRT_DEFAULT_URI") or "qemu:///system"
    checks = []
    plugins = _tool_version(["vagrant", "plugin", "list"]) if shutil.which("vagrant") else None
    if plugins and "vagrant-libvirt" in plugins:
        checks.append(Check("vagrant-libvirt", "ok", next(l for l in plugins.splitlines() if "vagrant-libvirt" in l)))
    else:
        checks.append(Check("vagrant-libvirt", "fail", "the vagrant-libvirt plugin is not installed",
                            "sudo apt-get install vagrant-libvirt (or `vagrant plugin install vagrant-libvirt`)"))
    if not shutil.which("virsh"):
        checks.append(Check("libvirt", "fail", "virsh is not installed",
                            "sudo apt-get install libvirt-daemon-system libvirt-clients"))
        return checks
    out = _tool_version(["virsh", "-c", uri, "version"])
    if out is None:
        checks.append(Check("libvirt", "fail", f"cannot connect to libvirt at {uri}",
                            "sudo systemctl enable --now libvirtd && sudo usermod -aG libvirt $USER"))
    else:
        running = next((l for l in out.splitlines() if "running hypervisor" in l.lower()), out.splitlines()[-1])
        checks.append(Check("libvirt", "ok", f"{uri}: {running.strip()}"))
    return checks


# -- resources ------------------------------------------------------------------------------
def check_disk(path: Path) -> Check:
    path = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    free_gib = shutil.disk_usage(path).free / 1024**3
    if free_gib < DISK_NEEDED_GIB:
        return Check("disk", "fail", f"{free_gib:.1f} GiB free at {path}, {DISK_NEEDED_GIB} GiB needed",
                     f"free space under {path}, or use another state directory: --state-dir DIR")
    return Check("disk", "ok", f"{free_gib:.0f} GiB free at {path}")


def available_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def check_memory(vm_mib: int, available: Callable[[], int] = available_mib) -> Check:
    free = available()
    needed = vm_mib + HOST_RESERVE_MIB
    if free < needed:
        return Check("memory", "fail", f"{free} MiB available, the VM needs {vm_mib} MiB plus "
                     f"{HOST_RESERVE_MIB} MiB for the host", f"close programs, or lower the VM's memory, e.g. "
                     f"-s vagrant.memory={max(1024, free - HOST_RESERVE_MIB) // 256 * 256}")
    return Check("memory", "ok", f"{free} MiB available, the VM takes {vm_mib} MiB")


def run_checks(settings: Settings, provider: str, state_root: Path,
               vboxmanage: vbox.Runner = vbox.run_vboxmanage) -> list[Check]:
    checks: list[Check] = []
    if provider == "virtualbox":
        checks.append(check_vagrant())
        checks += VirtualBoxChecks(settings, vboxmanage).all()
        vm_mib = settings.vagrant.memory
    elif provider == "libvirt":
        checks.append(check_vagrant())
        checks += check_libvirt()
        checks += [check_qemu(), check_kvm(), check_nested_kvm()]
        vm_mib = settings.vagrant.memory
    elif provider == "qemu":
        checks += [check_qemu(), check_kvm(), check_builtin_guest_types()]
        vm_mib = settings.machine.memory
    else:  # ssh: the hosts are elsewhere; only this machine's Ansible side matters
        vm_mib = 0
    checks.append(check_disk(state_root))
    if vm_mib:
        checks.append(check_memory(vm_mib))
    return checks


def as_dict(checks: list[Check], provider: str) -> dict:
    return {"provider": provider, "ok": all(c.passed for c in checks), "checks": [asdict(c) for c in checks]}
