"""A lab under test, for real: two built-in machines on one shared "lab LAN" inside a namespace,
each with its own host-only segment, provisioned together by the `ssh` provider in one parallel
run — the controller (mirage-env, Ansible, paramiko) runs inside the lab LAN's namespace and reaches
the hosts over their lab-LAN addresses, as a lab's admin machine would.

Then: per-host results in the report; `--limit`; a DHCP client on the lab LAN gets no offer from
either host's dnsmasq, while the same client on a host's own segment does (so the silence on the
lab LAN means something).

Opt-in (MIRAGE_E2E_LAB=1): ~15 minutes under TCG on an idle machine. The two hosts run with one vCPU each and without the probe and unikernel
roles (the main end-to-end test covers those); Xen, br0 and dnsmasq are fully provisioned.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.support import require_root_and_tools

pytestmark = pytest.mark.e2e

LAN_NS = f"mevt-lab{os.getpid() % 100000}"
LAN_CIDR = "10.99.0.1/24"
# name → (lab-LAN address, host-only subnet, dom0 memory): the second host overrides the plan
HOSTS = {
    "laba": ("10.99.0.11", "192.168.56", "512M"),
    "labb": ("10.99.0.12", "192.168.57", "640M"),
}


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def plan(prefix: str) -> list[str]:
    return ["-s", f"network.subnet={prefix}.0/24", "-s", f"network.host_address={prefix}.1",
            "-s", f"network.dom0_address={prefix}.5", "-s", f"network.dhcp_start={prefix}.150",
            "-s", f"network.dhcp_end={prefix}.200"]


class Lab:
    def __init__(self, base: Path, cache: Path):
        self.base, self.cache = base, cache
        self.state = base / "state"
        self.inventory = base / "lab.yml"

    def run(self, *args: str, netns: str | None = None, timeout: float = 3600) -> subprocess.CompletedProcess:
        env = {**os.environ, "XDG_CACHE_HOME": str(self.cache)}
        cmd = [sys.executable, "-m", "mirage_env.cli", "--state-dir", str(self.state), *args]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        print(f"$ mirage-env {' '.join(args)} → {proc.returncode}\n{proc.stdout}\n{proc.stderr[-6000:]}")
        return proc

    def machine(self, name: str, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
        address, prefix, memory = HOSTS[name]
        return self.run("-s", f"name={name}", "-s", "machine.cpus=1", "-s", f"machine.lan={LAN_NS}",
                        "-s", f"dom0.memory={memory}", *plan(prefix), *args, timeout=timeout)

    def lab(self, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
        """mirage-env with the ssh provider, run from inside the lab LAN (the admin's machine)."""
        return self.run("-s", "name=lab", "-s", "probe.enabled=false", "-s", "unikernel.enabled=false",
                        "--inventory", str(self.inventory), *args, netns=LAN_NS, timeout=timeout)

    def report(self, env: str, command: str) -> dict:
        return json.loads((self.state / env / f"report-{command}.json").read_text())


def make_lan() -> None:
    ip("netns", "add", LAN_NS)
    ip("-n", LAN_NS, "link", "set", "lo", "up")
    ip("-n", LAN_NS, "link", "add", "lan0", "type", "bridge")
    ip("-n", LAN_NS, "addr", "add", LAN_CIDR, "dev", "lan0")
    ip("-n", LAN_NS, "link", "set", "lan0", "up")


def remove_lan() -> None:
    if LAN_NS in ip("netns", "list").stdout.split():
        ip("netns", "del", LAN_NS, check=False)


def stop_machine(lab: Lab, name: str) -> None:
    """`down --destroy`, then by PID file and device names if that could not finish."""
    from mirage_env.providers.qemu import QemuProvider
    from mirage_env.settings import load_settings
    from mirage_env.state import StateDir

    try:
        lab.machine(name, "down", "--destroy", timeout=600)
    finally:
        settings = load_settings(None, {"name": name, "machine.lan": LAN_NS})
        provider = QemuProvider(settings, StateDir.for_env(name, lab.state))
        pid = provider.pid()
        if pid is not None:
            os.kill(pid, 15)
        provider.network.remove()
        if provider.lan:
            provider.lan.remove()


@pytest.fixture(scope="module")
def lab(image_cache_home):
    if os.environ.get("MIRAGE_E2E_LAB") != "1":
        pytest.skip("opt-in: set MIRAGE_E2E_LAB=1 to run the two-host lab end-to-end test "
                    "(two more TCG machines provisioned in parallel: ~15 min on an idle 2-core machine)")
    require_root_and_tools("qemu-system-x86_64", "qemu-img", "debootstrap", "ip", "ssh", "busybox")
    base = Path(tempfile.mkdtemp(prefix="mev-lab-", dir="/var/tmp"))
    remove_lan()
    make_lan()
    environment = Lab(base, image_cache_home)
    try:
        yield environment
    finally:
        try:
            for name in HOSTS:
                stop_machine(environment, name)
        finally:
            remove_lan()
            keep = os.environ.get("MIRAGE_E2E_KEEP_LOGS")  # a directory: the machines' logs go there
            if keep:
                for logs in environment.state.glob("*/logs"):
                    shutil.copytree(logs, Path(keep) / logs.parent.name, dirs_exist_ok=True)
            shutil.rmtree(base, ignore_errors=True)


def configure_lab_nic(lab: Lab, name: str) -> None:
    """What a lab's installer does: the host's management address on the lab LAN (eth2)."""
    address = HOSTS[name][0]
    stanza = f"auto eth2\\niface eth2 inet static\\n    address {address}/24\\n"
    proc = lab.machine(name, "ssh", f"printf '{stanza}' | sudo tee /etc/network/interfaces.d/eth2 >/dev/null "
                                    "&& sudo ifup eth2 && ip -4 -o addr show dev eth2", timeout=300)
    assert proc.returncode == 0 and address in proc.stdout, proc.stderr


def test_two_hosts_are_provisioned_in_one_parallel_run(lab, measure):
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        booted = list(pool.map(lambda n: lab.machine(n, "up", "--no-provision"), HOSTS))
    assert all(p.returncode == 0 for p in booted), [p.stderr[-2000:] for p in booted]
    measure("lab: two machines booted (s)", round(time.monotonic() - started, 1))
    for name in HOSTS:
        configure_lab_nic(lab, name)
    hosts = {}
    for name, (address, prefix, memory) in HOSTS.items():
        entry = {"address": address, "key": str(lab.state / name / "id_ed25519")}
        if prefix != "192.168.56":  # the per-host overrides of the network plan and dom0 memory
            entry["network"] = {"subnet": f"{prefix}.0/24", "host_address": f"{prefix}.1",
                                "dom0_address": f"{prefix}.5", "dhcp_start": f"{prefix}.150",
                                "dhcp_end": f"{prefix}.200"}
            entry["dom0"] = {"memory": memory}
        hosts[name] = entry
    lab.inventory.write_text(yaml.safe_dump({"defaults": {"user": "vagrant", "network": {"bridged_nic": "eth1"}},
                                             "hosts": hosts}))

    proc = lab.lab("up")
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = lab.report("lab", "up")
    assert report["ok"]
    assert set(report["hosts"]) == set(HOSTS)
    for name, result in report["hosts"].items():
        assert result["ok"] and result["provisioned"] == "ok", (name, result)
        assert result["checks_total"] >= 15 and result["checks_passed"] == result["checks_total"], (name, result)
    # both hosts really are dom0s with their own plan
    for name, (address, prefix, memory) in HOSTS.items():
        proc = lab.machine(name, "ssh", "cat /sys/hypervisor/type; ip -4 -o addr show dev br0; "
                                        "sudo xl list 0 | tail -1", timeout=120)
        assert "xen" in proc.stdout and f"{prefix}.5/24" in proc.stdout, proc.stdout
        assert int(proc.stdout.strip().splitlines()[-1].split()[2]) <= int(memory.rstrip("M")), proc.stdout
    stages = {s["name"]: s["seconds"] for s in report["stages"]}
    measure("lab: provision 2 hosts in parallel (s)", next(v for k, v in stages.items() if k.startswith("provision")))
    measure("lab: up total (s)", report["seconds"])
    for key in ("provision.xen_dom0_s", "provision.xen_bridge_s", "provision.dnsmasq_s",
                "provision.reboot_into_xen_s"):
        measure(f"lab: {key}", report["measurements"].get(key))


def test_limit_verifies_one_host(lab):
    proc = lab.lab("verify", "--limit", "labb")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = lab.report("lab", "verify")
    assert list(report["hosts"]) == ["labb"]
    assert all(c["name"].startswith("labb: ") for c in report["checks"])


def test_status_draws_each_lab_host(lab, measure):
    started = time.monotonic()
    proc = lab.lab("status", "--json", timeout=600)
    measure("lab: status --json, 2 hosts (s)", round(time.monotonic() - started, 1))
    assert proc.returncode == 0, proc.stderr[-3000:]
    topology = json.loads(proc.stdout)["topology"]
    assert set(topology) == set(HOSTS)
    for name, (_, prefix, _) in HOSTS.items():
        host = topology[name]
        assert host["problems"] == [], (name, host["problems"])
        assert host["bridge"]["name"] == "br0" and f"{prefix}.5/24" in host["bridge"]["addresses"], host["bridge"]
    text = lab.lab("status", timeout=600)
    assert text.returncode == 0 and all(f"lab/{name}" in text.stdout for name in HOSTS), text.stdout


def dhcp_offer(namespace: str, interface: str) -> subprocess.CompletedProcess:
    """busybox udhcpc: exit 0 when a server offered and acked a lease, non-zero when none did.
    `-s /bin/true` keeps it from configuring anything."""
    return subprocess.run(["ip", "netns", "exec", namespace, "busybox", "udhcpc", "-i", interface, "-n", "-q",
                           "-f", "-t", "4", "-T", "2", "-s", "/bin/true"], capture_output=True, text=True, timeout=60)


def test_no_dhcp_offer_on_the_lab_lan_but_one_on_each_hosts_own_segment(lab):
    from mirage_env.providers.qemu import QemuProvider
    from mirage_env.settings import load_settings
    from mirage_env.state import StateDir

    on_lan = dhcp_offer(LAN_NS, "lan0")
    print("lab LAN:", on_lan.returncode, on_lan.stdout, on_lan.stderr)
    assert on_lan.returncode != 0, "a DHCP server answered on the lab LAN"
    for name, (_, prefix, _) in HOSTS.items():
        provider = QemuProvider(load_settings(None, {"name": name, "machine.lan": LAN_NS}),
                                StateDir.for_env(name, lab.state))
        own = dhcp_offer(provider.network.namespace, provider.network.tap)
        print(name, "own segment:", own.returncode, own.stdout, own.stderr)
        assert own.returncode == 0 and f"{prefix}." in (own.stdout + own.stderr), (name, own.stderr)
