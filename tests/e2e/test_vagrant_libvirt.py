"""The Vagrant path for real, with libvirt: the built-in machine's base image packaged as a local
libvirt box → `mirage-env up --provider libvirt` (python-vagrant: `vagrant up --no-provision`, the
SSH target from `vagrant ssh-config`) → our playbooks → our checks and domU probes → destroy.

libvirtd runs inside a network namespace this test creates (see vagrant_lab.py), and so does
mirage-env: nothing gets an address outside the namespace and the VM. Opt-in (it takes as long as
the QEMU end-to-end test): set MIRAGE_E2E_VAGRANT=1. The Vagrantfile checks at the top run always.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support import require, require_root_and_tools

ROOT = Path(__file__).resolve().parents[2]
BOX = "mirage-env-e2e-box"


def vagrant_available() -> bool:
    if not shutil.which("vagrant"):
        return False
    plugins = subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True, timeout=120)
    return "vagrant-libvirt" in plugins.stdout


# -- the Vagrantfile reads mirage-env's settings (fast, no VM) ----------------------------------
def validate(cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["vagrant", "validate"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "VAGRANT_VAGRANTFILE": str(ROOT / "Vagrantfile"),
                               "VAGRANT_DEFAULT_PROVIDER": "libvirt", "VAGRANT_NO_COLOR": "1", **env})


def test_plain_vagrant_reads_the_settings_and_refuses_bad_ones(tmp_path):
    require(vagrant_available(), "needs vagrant with the vagrant-libvirt plugin (scripts/install-deps.sh)")
    home = {"VAGRANT_HOME": str(tmp_path / "vagrant.d"), "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot")}
    (tmp_path / "mirage-env.yml").write_text("vagrant: {memory: 3G, cpus: 1}\n")
    good = validate(tmp_path, home)
    assert good.returncode == 0, good.stdout + good.stderr
    # the values Vagrant gets are the ones mirage-env computes from that file
    out = subprocess.run([sys.executable, "-m", "mirage_env.providers.vagrant", "settings-json"], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    config = json.loads(out)
    assert (config["memory"], config["cpus"]) == (3072, 1)
    assert config["extra_vars"]["xen_bridge_address"] == "192.168.56.5"
    (tmp_path / "mirage-env.yml").write_text("vagrant: {memory: 100M}\n")
    bad = validate(tmp_path, home)
    assert bad.returncode != 0
    assert "vagrant.memory" in bad.stderr and "Fix:" in bad.stderr


# -- the whole path ---------------------------------------------------------------------------
class Lab:
    def __init__(self, base: Path, namespace: str, cache: Path):
        self.base, self.namespace, self.cache = base, namespace, cache
        self.state = base / "state"
        self.env = {**os.environ, "VAGRANT_HOME": str(base / "vagrant.d"), "XDG_CACHE_HOME": str(cache),
                    "VAGRANT_NO_COLOR": "1"}

    def run(self, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
        cmd = ["ip", "netns", "exec", self.namespace, sys.executable, "-m", "mirage_env.cli",
               "--state-dir", str(self.state), "-s", "name=e2e", "-s", "provider=libvirt",
               "-s", f"vagrant.box={BOX}", "-s", "vagrant.cpus=1", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self.env, cwd=ROOT)
        print(f"$ mirage-env {' '.join(args)} → {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc

    def in_ns(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.namespace, *cmd], capture_output=True, text=True,
                              timeout=120)

    def report(self, command: str) -> dict:
        return json.loads((self.state / "e2e" / f"report-{command}.json").read_text())


@pytest.fixture(scope="module")
def lab(image_cache_home):
    if os.environ.get("MIRAGE_E2E_VAGRANT") != "1":
        pytest.skip("opt-in: set MIRAGE_E2E_VAGRANT=1 to run the Vagrant + libvirt end-to-end test "
                    "(~25–35 min under TCG: box packaging, vagrant up, a full provisioning and verify)")
    require_root_and_tools("vagrant", "virsh", "libvirtd", "virtlogd", "qemu-system-x86_64", "qemu-img",
                           "debootstrap", "ip", "ss")
    require(vagrant_available(), "needs the vagrant-libvirt plugin (scripts/install-deps.sh)")
    from mirage_env.providers.image import ImageRecipe, ensure_base_image
    from mirage_env.settings import MachineSettings
    from tests.e2e.vagrant_lab import LibvirtLab, package_box

    base = Path(tempfile.mkdtemp(prefix="mev-vagrant-", dir="/var/tmp"))
    environment = Lab(base, f"mev-vl-{os.getpid() % 100000}", image_cache_home)
    machine = MachineSettings()
    hosts = sorted({urlsplit(u).hostname for u in (machine.mirror, machine.security_mirror)})
    libvirt = LibvirtLab(base, environment.namespace, hosts)
    started = time.monotonic()
    try:
        image = ensure_base_image(ImageRecipe(suite=machine.suite, mirror=machine.mirror,
                                              security_mirror=machine.security_mirror),
                                  cache=image_cache_home / "mirage-env" / "images", log=base / "image-build.log")
        box = package_box(image.disk, image.key, base / f"{BOX}.box")
        subprocess.run(["vagrant", "box", "add", "--name", BOX, str(box)], check=True, env=environment.env,
                       capture_output=True, timeout=900)
        box.unlink()
        environment.prepared_s = round(time.monotonic() - started, 1)
        libvirt.start()
        environment.libvirt = libvirt
        yield environment
    finally:
        try:
            if libvirt.pids:
                environment.run("down", "--destroy", timeout=900)
        finally:
            leftovers = libvirt.cleanup_libvirt("mirage-env-e2e")
            if leftovers:
                print(f"removed what `down --destroy` left: {leftovers}")
            libvirt.stop()
            shutil.rmtree(base, ignore_errors=True)


def test_doctor_sees_vagrant_and_libvirt(lab):
    proc = lab.run("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    for name in ("vagrant", "vagrant-libvirt", "libvirt", "qemu", "disk", "memory"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["kvm"]["status"] in ("ok", "warn")


def test_up_through_vagrant_libvirt(lab, measure):
    measure("vagrant e2e: image + box packaging + box add s", lab.prepared_s)
    proc = lab.run("up")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = lab.report("up")
    assert report["ok"]
    failed = [c for c in report["checks"] if not c["ok"]]
    assert not failed and len(report["checks"]) >= 15
    m = report["measurements"]
    assert m["probe.ip"].startswith("192.168.56.") and m["unikernel.ip"].startswith("192.168.56.")
    measure("vagrant e2e: up total s", report["seconds"])
    for stage in report["stages"]:
        measure(f"vagrant e2e: up stage {stage['name']} s", stage["seconds"])
    log = (lab.state / "e2e" / "logs" / "vagrant.log").read_text()
    assert "Machine not provisioned because `--no-provision` is specified" in log


def test_the_vm_is_what_the_vagrantfile_asked_for(lab):
    from mirage_env.providers.qemu import kvm_usable

    domain = lab.libvirt.virsh("dumpxml", "mirage-env-e2e-default").stdout
    if not kvm_usable():  # TCG: a CPU model Xen runs on
        assert "<model fallback='forbid'>qemu64</model>" in domain
        assert "<feature policy='require' name='svm'/>" in domain
    network = lab.libvirt.virsh("net-dumpxml", "mirage-env-hostonly").stdout
    assert "<dhcp>" not in network and "<forward" not in network  # isolated, libvirt's DHCP off
    assert "address='192.168.56.1'" in network
    status = json.loads(lab.run("status", "--json").stdout)
    assert status["running"] and status["provider"] == "libvirt" and status["host_only_nic"] == "eth1"


def test_the_host_side_reaches_the_dom0_bridge(lab):
    ping = lab.in_ns("ping", "-c", "2", "-W", "3", "192.168.56.5")
    assert ping.returncode == 0, ping.stdout
    br0 = lab.run("ssh", "ip -4 -o addr show dev br0")
    assert "192.168.56.5/24" in br0.stdout


def test_destroy_removes_the_domain(lab):
    assert lab.run("down", "--destroy", timeout=900).returncode == 0
    assert "mirage-env-e2e-default" not in lab.libvirt.virsh("list", "--all", "--name").stdout
