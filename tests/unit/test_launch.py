"""`unikernel run --kernel`: what it reads from the dom0 (outputs recorded on a Xen 4.17 dom0), the
scripts it runs there, and the real CLI refusing bad input before any dom0 is contacted."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mirage_env import launch
from mirage_env.launch import Dom0Facts, Plan

ROOT = Path(__file__).resolve().parents[2]

DOM0_FACTS = """@@info
virt_caps              : pv hvm hap gnttab-v1 gnttab-v2
free_memory            : 1496
@@running
@@present
/var/lib/mirage-env/kernels/f2130ca13355987778094fdce44403dfdad5ddaf583701b19c183b60ffd9d241.xen
@@dns
domain=mirage.internal
dhcp-hostsfile=/var/lib/mirage-env/dhcp-hosts
@@bridge
4: br0    inet 192.168.56.5/24 brd 192.168.56.255 scope global br0\\       valid_lft forever preferred_lft forever
@@conf
interface=br0
dhcp-range=br0,192.168.56.150,192.168.56.200,255.255.255.0,1h
"""


def test_dom0_facts_from_one_round_trip():
    seen = []

    def sh(command, timeout=300):
        seen.append(command)
        return 0, DOM0_FACTS

    facts = launch.read_dom0(sh, "k-site", ["/var/lib/mirage-env/kernels/x.xen"], "br0")
    assert len(seen) == 1
    assert facts.virt_caps == {"pv", "hvm", "hap", "gnttab-v1", "gnttab-v2"} and facts.free_memory_mb == 1496
    assert not facts.running and facts.domain == "mirage.internal"
    assert facts.hosts_file == "/var/lib/mirage-env/dhcp-hosts" and facts.bridge_ip == "192.168.56.5"
    assert facts.dhcp.size == 51
    assert any(p.endswith("d241.xen") for p in facts.present)
    running = launch.read_dom0(lambda c, timeout=300: (0, DOM0_FACTS.replace("@@running\n", "@@running\n7\n")),
                               "k-site", [], "br0")
    assert running.running
    no_dns = launch.read_dom0(lambda c, timeout=300: (0, DOM0_FACTS.replace("domain=mirage.internal", "port=0")),
                              "k-site", [], "br0")
    assert no_dns.domain is None


def plan(**kw) -> Plan:
    args = dict(name="k-site", mac="00:16:3e:6e:52:7b", guest_type="pvh", memory_mb=32, kernel_local=Path("/k"),
                kernel_sha="ab" * 32, kernel_remote=f"{launch.KERNELS}/{'ab' * 32}.xen", disks=[],
                disk_remote=[(f"{launch.DISKS}/{'cd' * 32}.img", "xvdb", False)], cmdline="-l *:debug",
                publish=[], kernel_label="/k")
    args.update(kw)
    return Plan(**args)


def test_config_and_name_scripts():
    script, path = launch.config_script(plan(), "br0", autostart=True)
    assert path == "/etc/xen/k-site.cfg" and 'type = \\"pvh\\"' not in script  # quoted for the shell once
    assert "type = " in script and "xvdb" in script and "on_crash" in script and "/etc/xen/auto/k-site.cfg" in script
    facts = Dom0Facts(domain="mirage.internal", hosts_file="/var/lib/mirage-env/dhcp-hosts")
    names, dns = launch.name_script(facts, "k-site", "00:16:3e:6e:52:7b")
    assert dns == "k-site.mirage.internal" and "00:16:3e:6e:52:7b,k-site" in names and "HUP dnsmasq" in names
    assert launch.name_script(facts, "my_site", "00:16:3e:00:00:01") == ("", None)  # not a DNS label
    assert launch.name_script(Dom0Facts(), "k-site", "00:16:3e:00:00:01") == ("", None)  # no DNS on this dom0


def test_memory_checks():
    launch.check_memory(16, "pv", 1496, "k")
    with pytest.raises(launch.BadInput, match="needs >= 32"):
        launch.check_memory(16, "pvh", 1496, "k")
    with pytest.raises(launch.BadInput, match="can give 100 MiB"):
        launch.check_memory(128, "pv", 100, "k")


def test_xl_uptime_and_types():
    uptime = ("Name                                ID Uptime\nDomain-0                             0 1 day,  0:22:32\n"
              "k-site                              18  0:01:06\n")
    assert launch._parse_uptime(uptime) == {"Domain-0": 86400 + 22 * 60 + 32, "k-site": 66}
    long_json = json.dumps([{"domid": 23, "config": {"c_info": {"type": "pvh", "name": "k-pvh"},
                                                     "b_info": {"kernel": "/var/lib/mirage-env/kernels/x.xen"}}}])
    assert launch._parse_types("warning\n" + long_json) == {"k-pvh": {"type": "pvh",
                                                                       "kernel": "/var/lib/mirage-env/kernels/x.xen"}}
    assert launch.human_uptime(3725) == "1h02m05s" and launch.human_uptime(None) == "-"


def cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "mirage_env.cli", "--state-dir", str(tmp_path), "unikernel", "run",
                           *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_bad_input_is_refused_before_any_dom0_is_contacted(tmp_path):
    """No machine exists here: every refusal below comes from the local checks, exit 2, no traceback."""
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        for args, says in ((["--kernel", str(text)], "not an ELF file"),
                           (["--kernel", str(tmp_path / "absent.xen")], "no such file"),
                           (["--kernel", "/bin/true"], "without Xen ELF notes"),
                           (["--app", "auth", "--disk", str(tmp_path / "none")], "does not exist"),
                           (["--app", "auth", "--publish", f"{port}:8088"], "already in use"),
                           (["--app", "auth", "--publish", "8080"], "HOSTPORT:GUESTPORT"),
                           (["--app", "auth", "--kernel", str(text)], "give one"),
                           (["--app", "auth", "--name", "a b"], "not usable")):
            proc = cli(tmp_path, *args)
            assert proc.returncode == 2, (args, proc.stderr)
            assert says in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
