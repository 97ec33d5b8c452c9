"""xl config of the unikernel domU: the fields xl needs, never the seed walk-throughs' mistakes
(wrong disk lists, empty vif, 256 MB), and refusal of values that would break the file."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from mirage_env.dom0.xlconfig import XlConfigError, render_xl_config


def parse(text: str) -> dict[str, str]:
    """key = value lines of an xl config (comments skipped), values as written."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"\s*([a-z_]+)\s*=\s*(.+?)\s*", line)
        assert m, f"not a key = value line: {line!r}"
        assert m.group(1) not in out, f"duplicate key {m.group(1)}"
        out[m.group(1)] = m.group(2)
    return out


def test_basic_fields():
    cfg = parse(render_xl_config("auth", "/var/lib/mirage-env/auth.xen", 4))
    assert cfg["name"] == '"auth"'
    assert cfg["type"] == '"pv"'
    assert cfg["kernel"] == '"/var/lib/mirage-env/auth.xen"'
    assert cfg["memory"] == "4"
    assert cfg["maxmem"] == "4"
    assert cfg["vcpus"] == "1"
    assert cfg["vif"] == '[ "bridge=br0,script=vif-mirage" ]'
    assert cfg["on_crash"] == '"destroy"'
    assert "disk" not in cfg
    assert "extra" not in cfg  # DHCP by default
    assert "ramdisk" not in cfg


def test_mac_and_bridge():
    cfg = parse(render_xl_config("u1", "/k.xen", 8, bridge="xenbr1", mac="00:16:3E:AA:bb:01"))
    assert cfg["vif"] == '[ "bridge=xenbr1,script=vif-mirage,mac=00:16:3e:aa:bb:01" ]'


def test_vif_never_empty():
    for mac in (None, "00:16:3e:00:00:01"):
        vif = parse(render_xl_config("u", "/k.xen", 4, mac=mac))["vif"]
        assert re.fullmatch(r'\[ "bridge=[^"]+" \]', vif), vif


def test_static_address_goes_on_the_command_line():
    cfg = parse(render_xl_config("u", "/k.xen", 4, ip="192.168.56.50/24", gateway="192.168.56.1"))
    assert cfg["extra"] == '"ip=192.168.56.50/24 gw=192.168.56.1"'


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(name=""), "name"),
        (dict(name="a b"), "name"),
        (dict(name='x"; disk=["/etc/shadow"]'), "name"),
        (dict(name="-x"), "name"),
        (dict(kernel_path="auth.xen"), "kernel_path"),
        (dict(kernel_path='/k"\n'), "kernel_path"),
        (dict(memory_mb=0), "memory_mb"),
        (dict(memory_mb=2), "memory_mb"),
        (dict(memory_mb=True), "memory_mb"),
        (dict(memory_mb="4"), "memory_mb"),
        (dict(bridge=""), "bridge"),
        (dict(bridge="br0,script=/bin/x"), "bridge"),
        (dict(bridge="averyverylongbridge"), "bridge"),
        (dict(mac="00:16:3e:00:00"), "mac"),
        (dict(mac="01:16:3e:00:00:01"), "mac"),
        (dict(mac="00:16:3e:00:00:01,script=x"), "mac"),
        (dict(ip="192.168.56.50"), "ip"),
        (dict(ip="192.168.56.500/24"), "ip"),
        (dict(ip="192.168.56.50/24", gateway="10.0.0.1"), "gateway"),
        (dict(gateway="192.168.56.1"), "gateway"),
    ],
)
def test_refuses_bad_values(kwargs, field):
    args = dict(name="u", kernel_path="/k.xen", memory_mb=4)
    args.update(kwargs)
    with pytest.raises(XlConfigError) as e:
        render_xl_config(**args)
    assert field in str(e.value)


def test_xl_parses_it(tmp_path):
    """When xl is installed (a dom0), its own parser accepts the file (dry run, no domain made)."""
    xl = shutil.which("xl")
    if xl is None:
        pytest.skip("xl not installed here (the dom0 e2e run exercises xl create)")
    cfg = tmp_path / "u.cfg"
    kernel = tmp_path / "k.xen"
    kernel.write_bytes(b"\x7fELF")
    cfg.write_text(render_xl_config("u", str(kernel), 4, mac="00:16:3e:00:00:01"))
    res = subprocess.run([xl, "-N", "create", str(cfg)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_a_users_pvh_kernel_with_disks_and_its_own_command_line():
    cfg = parse(render_xl_config("k-site", "/var/lib/mirage-env/kernels/ab.xen", 32, mac="00:16:3e:01:02:03",
                                 guest_type="pvh", on_crash="preserve",
                                 extra_cmdline="--ipv4-only=true -l *:debug",
                                 disks=[("/var/lib/mirage-env/disks/a.img", "xvdb", False),
                                        ("/var/lib/mirage-env/disks/b.img", "xvdc", True)]))
    assert cfg["type"] == '"pvh"'
    assert cfg["on_crash"] == '"preserve"'
    assert cfg["extra"] == '"--ipv4-only=true -l *:debug"'
    assert cfg["disk"] == ('[ "format=raw, vdev=xvdb, access=ro, script=block-mirage, target=/var/lib/mirage-env/disks/a.img", '
                           '"format=raw, vdev=xvdc, access=rw, script=block-mirage, target=/var/lib/mirage-env/disks/b.img" ]')
    assert "bridge=br0" in cfg["vif"] and "mac=00:16:3e:01:02:03" in cfg["vif"]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(guest_type="hvm"), "guest_type"),
        (dict(guest_type="pvh", memory_mb=16), "PVH guest needs >= 32"),
        (dict(on_crash="explode"), "on_crash"),
        (dict(extra_cmdline='a "quoted" word'), "cmdline"),
        (dict(disks=[("rel/a.img", "xvdb", False)]), "disk"),
        (dict(disks=[("/a,b.img", "xvdb", False)]), "disk"),
        (dict(disks=[("/a.img", "xvda", False)]), "vdev"),
        (dict(disks=[("/a.img", "xvdb", False), ("/b.img", "xvdb", False)]), "two disks"),
    ],
)
def test_refuses_bad_user_kernel_values(kwargs, field):
    args = dict(name="u", kernel_path="/k.xen", memory_mb=kwargs.pop("memory_mb", 4))
    args.update(kwargs)
    with pytest.raises(XlConfigError) as e:
        render_xl_config(**args)
    assert field in str(e.value)
