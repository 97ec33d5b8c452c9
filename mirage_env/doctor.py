"""`mirage-env doctor`: check the host before anything starts, each failure with the command that fixes it.

What it looks at depends on the provider: VirtualBox (Vagrant and VirtualBox versions, the
host-only interface and its address, VirtualBox's DHCP server on it, the VM's NIC 2 promiscuous
policy), libvirt (Vagrant, the vagrant-libvirt plugin, the libvirt daemon, KVM), the built-in QEMU
machine (QEMU, KVM); on each, whether the dom0 VM will run PVH guests (nested virtualisation);
always free disk and memory. `ok` and `warn` pass; any `fail` fails.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from . import vbox
from .hostcaps import (Check, VirtualBoxChecks, check_builtin_guest_types, check_host_tools, check_kvm,
                       check_libvirt, check_nested_kvm, check_qemu, check_vagrant, vm_name)
from .settings import Settings

__all__ = ["Check", "VirtualBoxChecks", "check_kvm", "check_libvirt", "check_qemu", "check_vagrant", "vm_name",
           "check_nested_kvm", "check_builtin_guest_types",
           "check_disk", "check_memory", "available_mib", "run_checks", "as_dict"]

DISK_NEEDED_GIB = 12  # base box/image (~1.5 GiB) + the VM's disk growing with Xen, domUs, build trees
HOST_RESERVE_MIB = 1024  # what the host keeps for itself next to the VM


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


def check_memory(vm_mib: int, available: Callable[[], int] = available_mib, setting: str = "vagrant.memory",
                 minimum: int = 1024) -> Check:
    """Enough memory here for a VM of VM_MIB? The fix names SETTING (the provider's own) and a
    value only when that value is below the refused one and still allowed (≥ MINIMUM)."""
    free = available()
    needed = vm_mib + HOST_RESERVE_MIB
    if free < needed:
        smaller = (free - HOST_RESERVE_MIB) // 256 * 256
        fix = f"close programs to free {needed - free} MiB"
        fix += (f", or lower the VM's memory: `mirage-env -s {setting}={smaller}M up`" if minimum <= smaller < vm_mib else
                f" ({setting} cannot go below {minimum}M)")
        return Check("memory", "fail", f"{free} MiB available, the VM needs {vm_mib} MiB plus "
                     f"{HOST_RESERVE_MIB} MiB for the host", fix)
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
        checks += check_host_tools(provider)
        checks += [check_qemu(), check_kvm(), check_builtin_guest_types()]
        vm_mib = settings.machine.memory
    else:  # ssh: the hosts are elsewhere; only this machine's Ansible side matters
        checks += check_host_tools(provider)
        vm_mib = 0
    checks.append(check_disk(state_root))
    if vm_mib:
        checks.append(check_memory(vm_mib, setting="machine.memory" if provider == "qemu" else "vagrant.memory"))
    return checks


def as_dict(checks: list[Check], provider: str) -> dict:
    return {"provider": provider, "ok": all(c.passed for c in checks), "checks": [asdict(c) for c in checks]}
