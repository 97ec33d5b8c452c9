"""The whole path, for real: fresh base image → QEMU machine → Ansible over SSH → reboot into Xen →
br0 + dnsmasq → checks → Linux PV domU probe gets a lease and answers the host-only namespace →
the management NIC refused as a bridge port → idempotent re-run → down → up resumes.

~15–20 minutes under TCG. Tests run in file order and share one machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import require_root_and_tools

pytestmark = pytest.mark.e2e


class Env:
    def __init__(self, base: Path):
        self.base = base
        self.state = base / "state"
        self.cache = base / "cache"

    def run(self, *args: str, timeout: float = 2400) -> subprocess.CompletedProcess:
        env = {**os.environ, "XDG_CACHE_HOME": str(self.cache)}
        cmd = [sys.executable, "-m", "mirage_env.cli", "--state-dir", str(self.state), "-s", "name=e2e", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        print(f"$ mirage-env {' '.join(args)} → {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def report(self, command: str) -> dict:
        return json.loads((self.state / "e2e" / f"report-{command}.json").read_text())

    def status(self) -> dict:
        return json.loads(self.run("status", "--json").stdout)


@pytest.fixture(scope="module")
def env():
    require_root_and_tools("qemu-system-x86_64", "qemu-img", "debootstrap", "ip", "ssh")
    base = Path(tempfile.mkdtemp(prefix="mev-e2e-", dir="/var/tmp"))
    environment = Env(base)
    try:
        yield environment
    finally:
        try:
            environment.run("down", "--destroy", timeout=600)
        finally:
            stop_leftovers(environment)
            shutil.rmtree(base, ignore_errors=True)


def stop_leftovers(environment: Env) -> None:
    """If `down` could not finish (interrupted, crashed), stop our QEMU by its PID file and remove
    our tap and namespace by name: never leave a machine running without its state."""
    from mirage_env.providers.qemu import QemuProvider
    from mirage_env.settings import load_settings
    from mirage_env.state import StateDir

    provider = QemuProvider(load_settings(None, {"name": "e2e"}), StateDir.for_env("e2e", environment.state))
    pid = provider.pid()
    if pid is not None:
        os.kill(pid, 15)
    provider.network.remove()


def stage_seconds(report: dict) -> dict:
    return {s["name"]: s["seconds"] for s in report["stages"]}


def test_up_from_a_fresh_image(env, measure):
    proc = env.run("up")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = env.report("up")
    assert report["ok"]
    failed = [c for c in report["checks"] if not c["ok"]]
    assert not failed and len(report["checks"]) >= 15
    m = report["measurements"]
    assert m["probe.ip"].startswith("192.168.56.")
    measure("up total s", report["seconds"])
    for name, seconds in stage_seconds(report).items():
        measure(f"up stage {name} s", seconds)
    assert m["unikernel.ip"].startswith("192.168.56.")
    names = {c["name"] for c in report["checks"]}
    assert "unikernel: auth answers 200 for a valid login" in names
    for key in ("provision.xen_dom0_s", "provision.reboot_into_xen_s", "provision.xen_bridge_s",
                "provision.dnsmasq_s", "provision.domu_probe_s", "provision.unikernel_s", "probe.xl_create_s",
                "probe.create_to_lease_s", "probe.destroy_s", "unikernel.xl_create_s",
                "unikernel.create_to_lease_s", "unikernel_vs_linux_lease_ratio"):
        measure(key, m.get(key))
    log = (env.state / "e2e" / "logs" / "image-build.log")
    assert log.exists()  # the image was built in this run, not taken from a cache


def test_the_host_only_namespace_reaches_the_dom0_bridge(env):
    status = env.status()
    assert status["running"] and status["host_only_namespace"]
    ping = subprocess.run(["ip", "netns", "exec", status["host_only_namespace"],
                           "ping", "-c", "2", "-W", "2", "192.168.56.5"], capture_output=True, text=True)
    assert ping.returncode == 0, ping.stdout


def test_unikernel_run_list_logs_stop(env, measure):
    """The user's own loop: build www on the dom0, boot it, find it, read its console, stop it."""
    proc = env.run("unikernel", "run", "--app", "www", "--name", "e2e-www")
    assert proc.returncode == 0, proc.stderr[-2000:]
    ip = proc.stdout.split(" is up at ")[1].split()[0]
    status = env.status()
    page = subprocess.run(["ip", "netns", "exec", status["host_only_namespace"], "curl", "-s", "-m", "10",
                           f"http://{ip}/"], capture_output=True, text=True)
    assert "Hello Mirage World!" in page.stdout
    listed = json.loads(env.run("unikernel", "list", "--json").stdout)
    assert [d for d in listed if d["name"] == "e2e-www" and d["ip"] == ip and d["memory_mb"] == 4]
    assert ip in env.run("unikernel", "logs", "e2e-www").stdout
    assert env.run("unikernel", "stop", "e2e-www").returncode == 0
    assert not [d for d in json.loads(env.run("unikernel", "list", "--json").stdout) if d["name"] == "e2e-www"]
    bad = env.run("unikernel", "logs", "no-such-domain")
    assert bad.returncode == 1 and "Fix:" in bad.stderr and "Traceback" not in bad.stderr


def test_vchan_echo_answers_dom0_through_libxenvchan(env, measure):
    """Our vchan server against Xen's own libxenvchan on the dom0; a second client reconnects."""
    proc = env.run("unikernel", "run", "--app", "echo", "--name", "e2e-echo")
    assert proc.returncode == 0, proc.stderr[-2000:]
    try:
        first = env.run("vchan", "e2e-echo", "--send", "hello from dom0")
        assert first.returncode == 0, first.stderr[-2000:]
        assert first.stdout.strip() == "HELLO FROM DOM0"
        second = env.run("vchan", "e2e-echo", "--send", "second client, after the first left")
        assert second.stdout.strip() == "SECOND CLIENT, AFTER THE FIRST LEFT"
        console = env.run("unikernel", "logs", "e2e-echo").stdout
        assert "client 2 connected" in console
    finally:
        env.run("unikernel", "stop", "e2e-echo")


def test_bridging_the_management_nic_is_refused(env):
    proc = env.run("-s", "network.bridged_nic=eth0", "-s", "network.uplink_nic=eth9", "provision")
    assert proc.returncode == 1
    assert "Refusing to bridge eth0" in proc.stderr and "carries this SSH connection" in proc.stderr
    # nothing was cut: the machine still answers and its bridge is untouched
    check = env.run("ssh", "ip -4 -o addr show dev br0")
    assert check.returncode == 0 and "192.168.56.5/24" in check.stdout


def test_second_provision_changes_nothing(env, measure):
    proc = env.run("provision")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = env.report("provision")
    assert report["measurements"]["provision.changed"] == 0
    measure("idempotent re-run s", stage_seconds(report)["provision"])


def test_down_then_up_resumes_from_the_overlay(env, measure):
    before = env.status()
    proc = env.run("down")
    assert proc.returncode == 0
    after = env.status()
    assert not after["running"] and after["host_only_namespace"] is None
    assert before["host_only_namespace"] not in subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True).stdout
    proc = env.run("up")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = env.report("up")
    assert report["measurements"]["provision.changed"] == 0
    assert all(c["ok"] for c in report["checks"])
    measure("resume: machine stage s (cold boot into Xen)", stage_seconds(report)["machine"])
    measure("resume: up total s", report["seconds"])
