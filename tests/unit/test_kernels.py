"""kernels.py tells PV from PVH from the ELF notes of real ELF files built here with gcc and ld,
and refuses what Xen cannot boot (no notes, not ELF, 32-bit PV) with the fix."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mirage_env import kernels
from mirage_env.kernels import KernelError, choose_type, guest_types, inspect

from tests.support import require


@pytest.fixture(autouse=True)
def _gcc_and_ld():
    require(shutil.which("gcc") is not None and shutil.which("ld") is not None, "needs gcc and ld")

NOTE = """
.macro xennote type, desc:vararg
  .pushsection .note.xen, "a", @note
  .balign 4
  .long 4f - 3f      /* namesz */
  .long 6f - 5f      /* descsz */
  .long \\type
3: .asciz "Xen"
4: .balign 4
5: \\desc
6: .balign 4
  .popsection
.endm
"""


def build_elf(tmp_path: Path, name: str, body: str, m32: bool = False, section: str = "") -> Path:
    src = tmp_path / f"{name}.S"
    src.write_text(NOTE + body + section + "\n.text\n.globl _start\n_start: hlt\n")
    obj, out = tmp_path / f"{name}.o", tmp_path / f"{name}.elf"
    arch = ["-m32"] if m32 else []
    subprocess.run(["gcc", *arch, "-c", str(src), "-o", str(obj)], check=True)
    subprocess.run(["ld", *(["-m", "elf_i386"] if m32 else []), "-nostdlib", "-e", "_start",
                    str(obj), "-o", str(out)], check=True)
    return out


def test_pvh_note_only(tmp_path):
    info = inspect(build_elf(tmp_path, "pvh", "xennote 18, .long _start"))
    assert (info.pv, info.pvh, info.elf_class) == (False, True, 64)
    assert choose_type(info, None, {"pv", "hvm", "hap"}) == "pvh"


def test_pv_notes_with_guest_os(tmp_path):
    info = inspect(build_elf(tmp_path, "pv", 'xennote 6, .asciz "MyOS"\nxennote 1, .quad _start'))
    assert (info.pv, info.pvh, info.guest_os) == (True, False, "MyOS")
    assert choose_type(info, None, {"pv", "hvm", "hap"}) == "pv"
    with pytest.raises(KernelError, match="--type pvh.*no PVH entry"):
        choose_type(info, "pvh", {"pv", "hvm", "hap"})


def test_both_entries_boot_pv_unless_pvh_is_asked_for(tmp_path):
    info = inspect(build_elf(tmp_path, "both", "xennote 1, .quad _start\nxennote 18, .long _start"))
    assert info.types == ["pvh", "pv"]
    assert choose_type(info, None, {"pv", "hvm", "hap"}) == "pv"
    assert choose_type(info, None, {"pv", "hvm", "gnttab-v1"}) == "pv"
    assert choose_type(info, "pvh", {"pv", "hvm", "hap"}) == "pvh"
    with pytest.raises(KernelError, match="hap"):
        choose_type(info, "pvh", {"pv", "hvm", "gnttab-v1"})


def test_pvh_kernel_on_a_dom0_without_hap_is_refused_with_the_fix(tmp_path):
    info = inspect(build_elf(tmp_path, "pvh", "xennote 18, .long _start"))
    with pytest.raises(KernelError) as err:
        choose_type(info, None, {"pv", "hvm", "gnttab-v1", "gnttab-v2"})
    assert "cannot run PVH" in str(err.value) and "nested-hw-virt" in str(err.value) and "+npt" in str(err.value)


def test_legacy_xen_guest_section_means_pv(tmp_path):
    section = '\n.section __xen_guest, "a"\n.asciz "GUEST_OS=linux,XEN_VER=xen-3.0,LOADER=generic"\n'
    info = inspect(build_elf(tmp_path, "legacy", "", section=section))
    assert info.pv and not info.pvh and info.guest_os == "linux"


def test_32bit_pv_kernel_is_refused_on_a_64bit_dom0(tmp_path):
    info = inspect(build_elf(tmp_path, "pv32", "xennote 1, .long _start", m32=True))
    assert (info.elf_class, info.machine, info.pv) == (32, "x86", True)
    with pytest.raises(KernelError, match="32-bit.*ELFCLASS32"):
        choose_type(info, None, {"pv", "hvm", "hap"})


def test_32bit_pvh_kernel_is_fine(tmp_path):
    info = inspect(build_elf(tmp_path, "pvh32", "xennote 18, .long _start", m32=True))
    assert choose_type(info, None, {"pv", "hvm", "hap"}) == "pvh"


def test_elf_without_xen_notes_is_refused(tmp_path):
    with pytest.raises(KernelError, match="without Xen ELF notes.*mirage configure -t xen"):
        inspect(build_elf(tmp_path, "plain", ""))


def test_non_elf_and_missing_files_are_refused(tmp_path):
    text = tmp_path / "kernel.txt"
    text.write_text("hello\n")
    with pytest.raises(KernelError, match="not an ELF file"):
        inspect(text)
    gz = tmp_path / "vmlinuz"
    gz.write_bytes(b"\x1f\x8b\x08" + bytes(100))
    with pytest.raises(KernelError, match="compressed"):
        inspect(gz)
    with pytest.raises(KernelError, match="no such file"):
        inspect(tmp_path / "absent.xen")


def test_truncated_notes_do_not_crash(tmp_path):
    elf = build_elf(tmp_path, "pvh", "xennote 18, .long _start")
    data = bytearray(elf.read_bytes())
    at = data.find(b"Xen\0") - 12
    data[at:at + 4] = (0xFFFF).to_bytes(4, "little")  # namesz far past the segment
    elf.write_bytes(bytes(data))
    with pytest.raises(KernelError, match="without Xen ELF notes"):
        inspect(elf)


def test_the_bundled_image_is_a_pv_kernel(tmp_path):
    from mirage_env import bundled

    info = inspect(bundled.build("hello", "xen", tmp_path))
    assert info.pv and info.elf_class == 64 and info.guest_os == "mirage-env"
    assert len(info.sha256) == 64


def test_guest_types_from_virt_caps():
    assert guest_types("pv hvm gnttab-v1 gnttab-v2") == ["pv"]
    assert guest_types("pv hvm hap shadow gnttab-v1") == ["pv", "pvh", "hvm"]
    assert kernels.guest_types("") == []
