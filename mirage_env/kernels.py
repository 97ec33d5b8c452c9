"""What kind of Xen guest a kernel file is, read from its ELF notes (standard library only).

Xen's domain builders look for notes named "Xen" (xen/include/public/elfnote.h):
``XEN_ELFNOTE_PHYS32_ENTRY`` (18) is the 32-bit entry point of a PVH guest (MirageOS 4 on
mirage-xen / Solo5's Xen binding, Unikraft's Xen platform, Linux); ``XEN_ELFNOTE_ENTRY`` (1) is
a PV guest's entry point, and the legacy ``__xen_guest`` section (a "GUEST_OS=...,..." string)
marks an old PV kernel. A kernel may carry both; then the dom0's capabilities decide.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EXIT_BAD_INPUT, MirageEnvError

XEN_ELFNOTE_ENTRY = 1
XEN_ELFNOTE_GUEST_OS = 6
XEN_ELFNOTE_PHYS32_ENTRY = 18
PT_NOTE = 4
SHT_NOTE = 7
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB = 1
EM_386, EM_X86_64 = 3, 62
MAX_KERNEL_BYTES = 512 << 20  # a unikernel is KiB to a few MiB; Linux ~10 MiB


class KernelError(MirageEnvError, ValueError):
    """The file cannot be booted as a Xen guest; the message names the file and the fix."""

    exit_code = EXIT_BAD_INPUT


@dataclass
class KernelInfo:
    path: Path
    elf_class: int  # 32 or 64
    machine: str  # "x86_64", "x86" or "other(N)"
    pv: bool  # XEN_ELFNOTE_ENTRY or the __xen_guest section
    pvh: bool  # XEN_ELFNOTE_PHYS32_ENTRY
    guest_os: str | None = None
    sha256: str = ""
    size: int = 0
    notes: list[int] = field(default_factory=list)  # the Xen note types found

    @property
    def types(self) -> list[str]:
        return [t for t, ok in (("pvh", self.pvh), ("pv", self.pv)) if ok]


def _notes(blob: bytes, endian: str) -> list[tuple[str, int, bytes]]:
    """(name, type, desc) of each note in a PT_NOTE segment or SHT_NOTE section."""
    out, off = [], 0
    while off + 12 <= len(blob):
        namesz, descsz, ntype = struct.unpack_from(endian + "III", blob, off)
        off += 12
        name_end = off + namesz
        desc_off = off + ((namesz + 3) & ~3)
        desc_end = desc_off + descsz
        if name_end > len(blob) or desc_end > len(blob):
            break  # truncated: keep what was read
        out.append((blob[off:name_end].rstrip(b"\0").decode("latin-1"), ntype, blob[desc_off:desc_end]))
        off = desc_off + ((descsz + 3) & ~3)
    return out


def inspect(path: Path | str) -> KernelInfo:
    """Read PATH's ELF header, program and section headers; raise KernelError when it is not
    a Xen kernel at all."""
    path = Path(path)
    if not path.is_file():
        raise KernelError(f"--kernel {path}: no such file. Fix: give the path of your unikernel's "
                          "Xen image (e.g. dist/NAME.xen after `mirage configure -t xen && make`)")
    size = path.stat().st_size
    if size > MAX_KERNEL_BYTES:
        raise KernelError(f"--kernel {path}: {size >> 20} MiB is too large for a unikernel image")
    data = path.read_bytes()
    if data[:4] != b"\x7fELF":
        hint = (" It looks like a compressed Linux bzImage/gzip file; give the ELF image (vmlinux or "
                "the unikernel's .xen file)." if data[:2] == b"\x1f\x8b" or b"HdrS" in data[:1024] else "")
        raise KernelError(f"--kernel {path}: not an ELF file, so not a Xen kernel.{hint} "
                          "Fix: give the .xen image your unikernel's build produced")
    if len(data) < 64:
        raise KernelError(f"--kernel {path}: truncated ELF header ({len(data)} bytes)")
    elf_class, elf_data = data[4], data[5]
    if elf_class not in (ELFCLASS32, ELFCLASS64) or elf_data != ELFDATA2LSB:
        raise KernelError(f"--kernel {path}: not a little-endian x86 ELF (class {elf_class}, data {elf_data})")
    e = "<"
    if elf_class == ELFCLASS64:
        (e_machine,) = struct.unpack_from(e + "H", data, 18)
        e_phoff, e_shoff = struct.unpack_from(e + "QQ", data, 32)
        e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = struct.unpack_from(e + "HHHHH", data, 54)
    else:
        (e_machine,) = struct.unpack_from(e + "H", data, 18)
        e_phoff, e_shoff = struct.unpack_from(e + "II", data, 28)
        e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = struct.unpack_from(e + "HHHHH", data, 42)
    machine = {EM_X86_64: "x86_64", EM_386: "x86"}.get(e_machine, f"other({e_machine})")

    blobs: list[bytes] = []
    for i in range(e_phnum):  # PT_NOTE segments: what libelf in Xen's builder reads first
        off = e_phoff + i * e_phentsize
        if off + e_phentsize > len(data):
            break
        if elf_class == ELFCLASS64:
            p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(e + "IIQQQQ", data, off)
        else:
            p_type, p_offset, _, _, p_filesz = struct.unpack_from(e + "IIIII", data, off)
        if p_type == PT_NOTE:
            blobs.append(data[p_offset:p_offset + p_filesz])
    sections: list[tuple[int, int, int, int]] = []  # (name offset, type, file offset, size)
    for i in range(e_shnum):
        off = e_shoff + i * e_shentsize
        if off + e_shentsize > len(data):
            break
        if elf_class == ELFCLASS64:
            sh_name, sh_type, _, _, sh_offset, sh_size = struct.unpack_from(e + "IIQQQQ", data, off)
        else:
            sh_name, sh_type, _, _, sh_offset, sh_size = struct.unpack_from(e + "IIIIII", data, off)
        sections.append((sh_name, sh_type, sh_offset, sh_size))
    legacy_guest = None
    if 0 <= e_shstrndx < len(sections):
        _, _, str_off, str_size = sections[e_shstrndx]
        strtab = data[str_off:str_off + str_size]
        for sh_name, sh_type, sh_offset, sh_size in sections:
            name = strtab[sh_name:strtab.find(b"\0", sh_name)] if sh_name < len(strtab) else b""
            if sh_type == SHT_NOTE and not blobs:
                blobs.append(data[sh_offset:sh_offset + sh_size])
            if name == b"__xen_guest":
                legacy_guest = data[sh_offset:sh_offset + sh_size].split(b"\0")[0].decode("latin-1")

    types, guest_os = [], None
    for blob in blobs:
        for name, ntype, desc in _notes(blob, e):
            if name != "Xen":
                continue
            types.append(ntype)
            if ntype == XEN_ELFNOTE_GUEST_OS:
                guest_os = desc.split(b"\0")[0].decode("latin-1")
    if legacy_guest and guest_os is None:
        guest_os = next((kv[9:] for kv in legacy_guest.split(",") if kv.startswith("GUEST_OS=")), None)
    info = KernelInfo(path, 64 if elf_class == ELFCLASS64 else 32, machine,
                      pv=XEN_ELFNOTE_ENTRY in types or legacy_guest is not None,
                      pvh=XEN_ELFNOTE_PHYS32_ENTRY in types, guest_os=guest_os,
                      sha256=hashlib.sha256(data).hexdigest(), size=size, notes=sorted(set(types)))
    if machine not in ("x86_64", "x86"):
        raise KernelError(f"--kernel {path}: built for {machine}, not x86; this dom0 runs x86 guests")
    if not info.pv and not info.pvh:
        raise KernelError(f"--kernel {path}: an ELF file without Xen ELF notes (no XEN_ELFNOTE_ENTRY "
                          "for PV, no XEN_ELFNOTE_PHYS32_ENTRY for PVH), so Xen cannot boot it. "
                          "Fix: build the unikernel for Xen (MirageOS: `mirage configure -t xen`; "
                          "Unikraft: the Xen platform, e.g. `kraft build --plat xen`)")
    return info


def choose_type(info: KernelInfo, requested: str | None, dom0_caps: set[str] | None,
                dom0_64bit: bool = True) -> str:
    """"pv" or "pvh" for this kernel on this dom0 (KernelError with the fix when neither works).

    ``dom0_caps`` is `xl info`'s virt_caps (None: unknown, assume PV only is certain).
    """
    caps = dom0_caps or set()
    hap = "hvm" in caps and ("hap" in caps or "shadow" in caps)
    if requested not in (None, "pv", "pvh"):
        raise KernelError(f"--type {requested!r}: use pv or pvh")
    if requested == "pv" and not info.pv:
        raise KernelError(f"--type pv: {info.path} has no PV entry (no XEN_ELFNOTE_ENTRY); it is a PVH "
                          "kernel. Fix: drop --type or use --type pvh")
    if requested == "pvh" and not info.pvh:
        raise KernelError(f"--type pvh: {info.path} has no PVH entry (no XEN_ELFNOTE_PHYS32_ENTRY); it is "
                          "a PV kernel. Fix: drop --type or use --type pv")
    # A kernel with both entries (the bundled image) boots PV unless asked: PV needs no ACPI
    # tables (4 MiB suffice) and runs on every dom0; PVH-only kernels (MirageOS 4, Unikraft) boot PVH.
    want = requested or ("pv" if info.pv else "pvh")
    if want == "pv" and info.elf_class == 32 and dom0_64bit:
        raise KernelError(f"--kernel {info.path}: a 32-bit (ELFCLASS32) PV kernel; this 64-bit dom0 "
                          "runs 64-bit PV guests only (Xen dropped 32-bit PV by default). "
                          "Fix: build the kernel for x86_64" + (", or boot it as PVH (--type pvh)" if info.pvh else ""))
    if want == "pvh" and dom0_caps is not None and not hap:
        raise KernelError(pvh_refusal(info.path, caps))
    return want


def pvh_refusal(path, caps: set[str]) -> str:
    return (f"--kernel {path} is a PVH kernel, but this dom0 cannot run PVH guests: Xen lists no "
            f"hardware-assisted paging (xl info virt_caps: {' '.join(sorted(caps)) or 'none'}; PVH needs "
            "'hap'). Fix: give the dom0's VM nested virtualisation — built-in machine: QEMU's "
            "-cpu ...,+svm,+npt (the default; `mirage-env down --destroy && mirage-env up` after an "
            "upgrade); VirtualBox: `VBoxManage modifyvm VM --nested-hw-virt on` (the Vagrantfile sets "
            "it; `mirage-env doctor` checks); libvirt: nested=1 for kvm_intel/kvm_amd and "
            "cpu mode host-passthrough; or build the kernel as PV if it can be")


def guest_types(virt_caps: str) -> list[str]:
    """The guest types a dom0 can run, from `xl info`'s virt_caps line."""
    caps = set(virt_caps.split())
    types = ["pv"] if "pv" in caps else []
    if "hvm" in caps and ("hap" in caps or "shadow" in caps):
        types += ["pvh", "hvm"]
    return types
