"""Xen is the running hypervisor, dom0's memory is fixed at the limit, GRUB boots Xen by default."""

import re


def test_xen_is_running(host):
    assert host.file("/sys/hypervisor/type").content_string.strip() == "xen"


def test_xl_answers(host):
    assert host.run("xl info").succeeded


def test_dom0_memory_is_the_limit(host, expected):
    row = host.check_output("xl list 0").splitlines()[1].split()
    mem = int(row[2])
    limit = int(expected["xen_dom0_mem_mb"])
    assert int(limit * 0.95) <= mem <= limit, f"dom0 has {mem} MiB, limit {limit} MiB"


def test_xen_booted_with_dom0_mem(host, expected):
    limit = expected["xen_dom0_mem_mb"]
    cmdline = host.check_output("xl info | sed -n 's/^xen_commandline *: //p'")
    assert f"dom0_mem={limit}M,max:{limit}M" in cmdline


def test_grub_boots_xen_by_default(host):
    grub_cfg = host.file("/boot/grub/grub.cfg").content_string
    defaults = re.findall(r'^\s*set default="([^"$]+)"', grub_cfg, re.MULTILINE)
    assert any("with Xen hypervisor" in d for d in defaults), defaults


def test_autoballoon_matches(host, expected):
    want = "on" if expected["xen_dom0_autoballoon"] else "off"
    assert f'autoballoon="{want}"' in host.file("/etc/xen/xl.conf").content_string.splitlines()


def test_guest_consoles_are_logged(host):
    assert host.file("/etc/default/xen").contains('^XENCONSOLED_ARGS=".*--log=guest')
    assert host.process.filter(comm="xenconsoled")


def test_the_lean_hotplug_scripts_are_installed(host):
    # every domU config mirage-env writes names them (script=vif-mirage, script=block-mirage)
    for script in ("vif-mirage", "block-mirage"):
        installed = host.file(f"/etc/xen/scripts/{script}")
        assert installed.is_file and installed.user == "root" and installed.mode & 0o111 == 0o111, script
