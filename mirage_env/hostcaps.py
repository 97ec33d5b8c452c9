"""What this host can run: KVM, QEMU, Vagrant, VirtualBox (and its host-only network), libvirt.

The ground floor under `doctor` (which reports these checks) and the providers (which refuse to
start without what they need); it imports neither.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import vbox

if TYPE_CHECKING:
    from .settings import Settings

QEMU = "qemu-system-x86_64"
VAGRANT_MIN = (2, 2)
VBOX_MIN = (6, 1)


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""

    @property
    def passed(self) -> bool:
        return self.status != "fail"


def vm_name(settings: "Settings") -> str:
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

    def __init__(self, settings: "Settings", run: vbox.Runner = vbox.run_vboxmanage):
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
def kvm_usable(log: Path | None = None) -> bool:
    """Boot a 512-byte guest that writes to isa-debug-exit, on the same machine type and CPU
    model as the real run: only a real run proves KVM works (on some hosts /dev/kvm opens but
    fails to set up an ordinary guest's CPU)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK) or not shutil.which(QEMU):
        return False
    sector = bytes([0xB0, 0x31, 0xE6, 0xF4, 0xF4])  # mov al,0x31; out 0xf4,al; hlt
    sector += bytes(510 - len(sector)) + b"\x55\xaa"
    with tempfile.NamedTemporaryFile(suffix=".img") as disk:
        disk.write(sector)
        disk.flush()
        try:
            proc = subprocess.run(
                [QEMU, "-accel", "kvm", "-machine", "q35", "-cpu", "host", "-display", "none", "-no-reboot",
                 "-drive", f"file={disk.name},format=raw,if=ide",
                 "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
                capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            return False
    if log:
        with open(log, "a") as f:
            f.write(f"kvm probe: exit {proc.returncode} {proc.stderr.strip()}\n")
    return proc.returncode == (0x31 << 1) | 1


# what the built-in machine runs on this host (image build, taps, namespaces, keys), by package
QEMU_HOST_TOOLS = {"debootstrap": "debootstrap", "ssh-keygen": "openssh-client", "ip": "iproute2"}
SSH_HOST_TOOLS = {"ssh": "openssh-client", "ssh-keygen": "openssh-client"}


def _other_provider() -> str:
    """The provider to suggest when the built-in machine cannot run here."""
    if shutil.which("vagrant") and shutil.which("VBoxManage"):
        return "or use VirtualBox instead: `mirage-env -s provider=virtualbox up`"
    if shutil.which("vagrant") and shutil.which("virsh"):
        return "or use libvirt instead: `mirage-env -s provider=libvirt up`"
    return "or run on a Debian host you have over SSH: `mirage-env -s provider=ssh -s lab.inventory=FILE up`"


def check_host_tools(provider: str, euid: int | None = None) -> list[Check]:
    """What `up` needs on this host for `provider`: root and the tools the built-in machine runs
    (debootstrap, ssh-keygen, ip) — QEMU itself is check_qemu — or ssh for a lab."""
    checks = []
    tools = QEMU_HOST_TOOLS if provider == "qemu" else SSH_HOST_TOOLS if provider == "ssh" else {}
    if provider == "qemu":
        euid = os.geteuid() if euid is None else euid
        if euid == 0:
            checks.append(Check("root", "ok", "running as root (debootstrap, loop mounts, taps, namespaces)"))
        else:
            checks.append(Check("root", "fail", "the built-in machine needs root: its image is built with "
                                "debootstrap and loop mounts, its network with a tap in a namespace",
                                f"run `sudo mirage-env up`, {_other_provider()}"))
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        packages = " ".join(sorted({tools[t] for t in missing}))
        fix = f"sudo apt-get install {packages}"
        if provider == "qemu":
            fix += f", {_other_provider()}"
        checks.append(Check("host tools", "fail", f"{', '.join(missing)} not installed", fix))
    elif tools:
        checks.append(Check("host tools", "ok", ", ".join(tools)))
    return checks


def check_qemu() -> Check:
    missing = [t for t in (QEMU, "qemu-img") if not shutil.which(t)]
    if missing:
        return Check("qemu", "fail", f"{', '.join(missing)} not installed",
                     f"sudo scripts/install-deps.sh (qemu-system-x86 qemu-utils), {_other_provider()}")
    out = _tool_version([QEMU, "--version"]) or ""
    return Check("qemu", "ok", out.splitlines()[0] if out else QEMU)


def check_kvm(log: Path | None = None) -> Check:
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
