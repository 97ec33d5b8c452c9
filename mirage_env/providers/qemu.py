"""The built-in machine: the base image on a copy-on-write overlay, booted with QEMU.

NIC 1 is user-mode NAT (VirtualBox's NAT adapter) with SSH forwarded from 127.0.0.1 and apt
reaching the archive through the host-side proxy only (`restrict=on`); NIC 2 is a tap whose host
end lives in a network namespace holding the host-only address (VirtualBox's `vboxnet0`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from ..procs import run_logged
from ..settings import Settings
from ..sshclient import SshTarget, connect, run, wait_for_ssh
from ..hostcaps import QEMU, kvm_usable
from ..state import StateDir
from .base import Provider, ProviderError
from .image import ImageRecipe, cache_root, ensure_base_image
from .netns import HostOnlyNetwork, LanPort

APT_PROXY_GUEST = "10.0.2.100:3142"
BOOT_DEADLINE_S = 900  # TCG boot of a Xen dom0 takes ~110 s on an idle 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuProvider(Provider):
    name = "qemu"

    def __init__(self, settings: Settings, state: StateDir, image_cache: Path | None = None):
        self.settings, self.state, self.image_cache = settings, state, image_cache
        net = settings.network
        self.network = HostOnlyNetwork(f"mev-{state.short_id}", f"mevtap{state.short_id}",
                                       f"{net.host_address}/{net.prefixlen}")
        self.overlay = state.path("disk.qcow2")
        self.pidfile = state.path("qemu.pid")
        self.qmp = state.path("qmp.sock")
        self.console_log = state.logs / "console.log"
        self.key = state.path("id_ed25519")
        lan = settings.machine.lan
        self.lan = LanPort(lan, f"mevlan{state.short_id}") if lan else None

    # -- state -----------------------------------------------------------------------------
    def _meta(self) -> dict:
        return self.state.read_json("machine.json")

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        # guard against PID reuse: it must be a QEMU running our overlay
        return pid if QEMU.encode() in cmdline and str(self.overlay).encode() in cmdline else None

    def running(self) -> bool:
        return self.pid() is not None

    def ssh_target(self) -> SshTarget:
        meta = self._meta()
        if "ssh_port" not in meta:
            raise ProviderError("the machine has never been started. Fix: run `mirage-env up`")
        return SshTarget("127.0.0.1", meta["ssh_port"], meta["user"], self.key)

    def host_exec(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.network.run(*cmd, timeout=timeout)

    def host_vars(self) -> dict:
        # Xen owns the first serial port: keep Xen's and dom0's console on it, logged by QEMU.
        extra = {"xen_dom0_console": "com1", "xen_dom0_serial": True}
        if self._meta().get("accel") == "tcg":
            # emulated, a reconnect alone took ~90 s on a loaded machine: give the bridge change's
            # confirmation more time before the host rolls it back
            extra["xen_bridge_rollback_timeout"] = max(300, self.settings.network.rollback_timeout)
        return extra

    def status(self) -> dict:
        meta = self._meta()
        return {
            "provider": self.name,
            "running": self.running(),
            "pid": self.pid(),
            "accel": meta.get("accel"),
            "ssh": f"{meta.get('user', '?')}@127.0.0.1:{meta.get('ssh_port', '?')}",
            "host_only_namespace": self.network.namespace if self.network.namespace_exists() else None,
            "host_address": self.network.host_cidr,
            "console_log": str(self.console_log),
            "overlay": str(self.overlay) if self.overlay.exists() else None,
        }

    # -- up --------------------------------------------------------------------------------
    def recipe(self) -> ImageRecipe:
        m = self.settings.machine
        return ImageRecipe(suite=m.suite, mirror=m.mirror, security_mirror=m.security_mirror,
                           apt_proxy=f"http://{APT_PROXY_GUEST}")

    def up(self, report) -> None:
        for tool in (QEMU, "qemu-img", "debootstrap", "ip", "ssh-keygen"):
            if not shutil.which(tool):
                raise ProviderError(f"`{tool}` is not installed. Fix: run `sudo scripts/install-deps.sh`")
        if os.geteuid() != 0:
            raise ProviderError("the built-in machine needs root (debootstrap, tap devices, namespaces). "
                                "Fix: run it with sudo")
        if self.running():
            report.step("machine already running")
            self._ensure_network()
            return
        with report.stage("image"):
            image = ensure_base_image(self.recipe(), cache=self.image_cache,
                                      log=self.state.logs / "image-build.log", progress=report.step)
        if not self.overlay.exists():
            run_logged(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image.disk,
                        self.overlay])
        if not self.key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                            f"mirage-env {self.settings.name}", "-f", str(self.key)], check=True)
        with report.stage("boot"):
            meta = self._meta()
            accel = self._choose_accel(meta)
            port = free_port()
            meta.update({"ssh_port": port, "user": image.user, "accel": accel,
                         "image": str(image.disk), "image_key": str(image.key)})
            self.state.write_json("machine.json", meta)
            report.step(f"starting QEMU ({accel}, {self.settings.machine.memory} MiB, "
                        f"{self.settings.machine.cpus} CPUs)")
            if self.lan and self.lan.namespace not in subprocess.run(
                    ["ip", "netns", "list"], capture_output=True, text=True).stdout.split():
                raise ProviderError(f"machine.lan: the namespace {self.lan.namespace!r} does not exist. "
                                    "Fix: create it with a bridge lan0 first, or unset machine.lan")
            self.network.create_tap()
            if self.lan:
                self.lan.create_tap()
            try:
                self._start_qemu(accel, port, image.disk)
                self.network.move_into_namespace()
                if self.lan:
                    self.lan.plug()
            except Exception:
                self.network.remove()
                if self.lan:
                    self.lan.remove()
                raise
            self._await_ssh(report, meta, image)

    def _choose_accel(self, meta: dict) -> str:
        wanted = self.settings.machine.accel
        if wanted != "auto":
            return wanted
        if "kvm_ok" not in meta:
            meta["kvm_ok"] = kvm_usable(self.state.logs / "qemu.log")
        return "kvm" if meta["kvm_ok"] else "tcg"

    def qemu_command(self, accel: str, port: int) -> list[str]:
        m, sid = self.settings.machine, self.state.short_id
        cpu = ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg", "-cpu", "qemu64,+svm,+npt"]
        archive_hosts = sorted({urlsplit(u).hostname for u in (m.mirror, m.security_mirror)})
        # package files land in the image cache too: a second environment or a re-run downloads none again
        apt_cache = (self.image_cache or cache_root()) / "apt"
        proxy = (f"{sys.executable} -m mirage_env.providers.aptproxy --allow {'+'.join(archive_hosts)} "
                 f"--log {self.state.logs / 'apt-proxy.log'} --cache {apt_cache}")
        hostonly_mac = "52:54:00:" + ":".join(sid[i:i + 2] for i in (0, 2, 4))
        return [
            QEMU, "-name", f"mirage-env-{self.settings.name}", "-machine", "q35", *cpu,
            "-smp", str(m.cpus), "-m", str(m.memory),
            "-drive", f"file={self.overlay},if=none,id=disk0,format=qcow2,discard=unmap",
            "-device", "virtio-blk-pci,drive=disk0,addr=0x5",
            # NIC 1: user-mode NAT; fixed PCI slots keep eth0 = NAT, eth1 = host-only
            "-netdev", f"user,id=nat,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22,"
                       f"guestfwd=tcp:{APT_PROXY_GUEST}-cmd:{proxy}",
            "-device", "virtio-net-pci,netdev=nat,mac=52:54:00:12:34:56,addr=0x3",
            # NIC 2: the host-only network
            "-netdev", f"tap,id=hostonly,ifname={self.network.tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=hostonly,mac={hostonly_mac},addr=0x4",
            # NIC 3 (optional): a shared "lab LAN" — eth2
            *(["-netdev", f"tap,id=lan,ifname={self.lan.tap},script=no,downscript=no",
               "-device", f"virtio-net-pci,netdev=lan,mac=52:54:01:{sid[0:2]}:{sid[2:4]}:{sid[4:6]},addr=0x6"]
              if self.lan else []),
            "-display", "none", "-serial", f"file:{self.console_log}",
            "-qmp", f"unix:{self.qmp},server=on,wait=off",
            "-pidfile", str(self.pidfile), "-daemonize",
        ]

    def _start_qemu(self, accel: str, port: int, base: Path) -> None:
        if self.console_log.exists():  # keep the previous boot's console for troubleshooting
            self.console_log.replace(self.console_log.with_suffix(".previous.log"))
        run_logged(self.qemu_command(accel, port), self.state.logs / "qemu.log")

    def _await_ssh(self, report, meta: dict, image) -> None:
        def tick(elapsed: float) -> None:
            report.step(f"waiting for SSH ({elapsed:.0f}s) — console: {self._console_tail()}")

        user = meta["user"]
        if not meta.get("key_installed"):
            # First boot: log in with the image's key, install this environment's own key,
            # and remove the image key (what Vagrant does with its insecure key).
            first = SshTarget("127.0.0.1", meta["ssh_port"], user, Path(meta["image_key"]))
            client = wait_for_ssh(first, BOOT_DEADLINE_S, self.running, tick)
            pub = Path(str(self.key) + ".pub").read_text().strip()
            code, out = run(client, f"umask 077; printf '%s\\n' '{pub}' > ~/.ssh/authorized_keys")
            client.close()
            if code != 0:
                raise ProviderError(f"could not install the environment's SSH key: {out}")
            meta["key_installed"] = True
            self.state.write_json("machine.json", meta)
        client = wait_for_ssh(self.ssh_target(), BOOT_DEADLINE_S, self.running, tick)
        client.close()

    def _ensure_network(self) -> None:
        if not self.network.namespace_exists():
            raise ProviderError(f"the machine runs but its host-only namespace {self.network.namespace} "
                                "is gone. Fix: `mirage-env down` then `mirage-env up`")

    def _console_tail(self) -> str:
        try:
            with open(self.console_log, "rb") as f:
                f.seek(max(0, os.path.getsize(self.console_log) - 400))
                lines = [l for l in f.read().decode(errors="replace").splitlines() if l.strip()]
            return (lines[-1].strip()[:70]) if lines else "(no output yet)"
        except OSError:
            return "(no console yet)"

    # -- down ------------------------------------------------------------------------------
    def _qmp(self, command: str) -> None:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.qmp))
            s.recv(4096)
            s.sendall(json.dumps({"execute": "qmp_capabilities"}).encode())
            s.recv(4096)
            s.sendall(json.dumps({"execute": command}).encode())
            s.recv(4096)

    def down(self, report, timeout_s: float = 120) -> None:
        pid = self.pid()
        if pid is not None:
            report.step("powering off the machine")
            try:
                client = connect(self.ssh_target(), timeout=10)
                run(client, "sudo systemctl poweroff", timeout=10)
                client.close()
            except Exception:  # no SSH: ask QEMU for an ACPI power-button press instead
                try:
                    self._qmp("system_powerdown")
                except OSError:
                    pass
            deadline = time.monotonic() + timeout_s
            while self.pid() == pid and time.monotonic() < deadline:
                time.sleep(1)
            if self.pid() == pid:
                report.step("machine did not power off in time: stopping QEMU")
                os.kill(pid, signal.SIGTERM)
                time.sleep(2)
        self.network.remove()
        if self.lan:
            self.lan.remove()
        for leftover in (self.pidfile, self.qmp):
            leftover.unlink(missing_ok=True)

    def destroy(self, report) -> None:
        self.down(report)
        for name in ("disk.qcow2", "id_ed25519", "id_ed25519.pub", "machine.json", "known_hosts"):
            self.state.path(name).unlink(missing_ok=True)
