"""The libvirt lab of the Vagrant end-to-end test: libvirtd inside a network namespace, the built-in
machine's base image packaged as a local libvirt box, and apt reaching the archive from inside.

Everything with an address lives in the namespace: libvirt's networks, their bridges, their
dnsmasq and NAT rules, the VM's management and host-only addresses, and `mirage-env` itself
(Vagrant, SSH, Ansible and the probes run there too). The only way out is apt's: the image asks
for an HTTP proxy at 10.0.2.100:3142, so the management network is 10.0.2.0/24, 10.0.2.100 sits
on its bridge, and a relay hands each connection through a unix socket to `aptproxy` in the root
namespace, which forwards GET/HEAD to the Debian archive hosts and nothing else.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

MGMT_NETWORK = "mirage-env-mgmt"
MGMT_SUBNET = "10.0.2.0/24"
APT_PROXY = ("10.0.2.100", 3142)

BOX_VAGRANTFILE = f"""\
# The built-in machine's base image as a libvirt box (made by tests/e2e/vagrant_lab.py).
Vagrant.configure("2") do |config|
  config.ssh.username = "vagrant"
  config.ssh.private_key_path = File.expand_path("../image_key", __FILE__)
  config.vm.provider :libvirt do |lv|
    # the image's apt goes through a proxy at {APT_PROXY[0]}:{APT_PROXY[1]}, on this network
    lv.management_network_name = "{MGMT_NETWORK}"
    lv.management_network_address = "{MGMT_SUBNET}"
    lv.disk_bus = "virtio"
  end
end
"""

# DHCP for the management NIC stops below the proxy's address.
MGMT_NETWORK_XML = f"""\
<network>
  <name>{MGMT_NETWORK}</name>
  <forward mode='nat'/>
  <bridge name='mevmgmt0' stp='on' delay='0'/>
  <ip address='10.0.2.1' netmask='255.255.255.0'>
    <dhcp><range start='10.0.2.10' end='10.0.2.99'/></dhcp>
  </ip>
</network>
"""


def package_box(disk: Path, key: Path, out: Path) -> Path:
    """box.img + metadata.json + Vagrantfile (+ the image's SSH key) → an uncompressed .box."""
    virtual_gib = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(disk)], check=True,
                                            capture_output=True, text=True).stdout)["virtual-size"] // 1024**3
    meta = json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": virtual_gib}).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w") as tar:
        for name, data in (("metadata.json", meta), ("Vagrantfile", BOX_VAGRANTFILE.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(disk, arcname="box.img")
        tar.add(key, arcname="image_key")
    return out


def _wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")


class LibvirtLab:
    """A namespace with virtlogd + libvirtd, the management network and the apt relay.
    `stop()` removes all of it, by PID and by name, also after a failure."""

    def __init__(self, base: Path, namespace: str, archive_hosts: list[str]):
        self.base, self.namespace, self.archive_hosts = base, namespace, archive_hosts
        self.pids: dict[str, Path] = {}
        self.relays: list[subprocess.Popen] = []
        self.socket = base / "aptproxy.sock"
        self.pools_before: set[str] = set()

    def ns(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *cmd]

    def virsh(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True, text=True,
                              check=check, timeout=120)

    def start(self) -> None:
        if Path("/run/libvirt/libvirt-sock").exists():
            raise RuntimeError("a libvirtd already runs on this machine (/run/libvirt/libvirt-sock): "
                               "the test starts its own inside a namespace")
        subprocess.run(["ip", "netns", "add", self.namespace], check=True)
        subprocess.run(["ip", "-n", self.namespace, "link", "set", "lo", "up"], check=True)
        for daemon in ("virtlogd", "libvirtd"):
            pidfile = self.base / f"{daemon}.pid"
            subprocess.run(self.ns(daemon, "--daemon", "--pid-file", str(pidfile)), check=True)
            self.pids[daemon] = pidfile
        _wait_for(lambda: self.virsh("version", check=False).returncode == 0, 60, "libvirtd answering")
        self.pools_before = set(self.virsh("pool-list", "--all", "--name").stdout.split())
        (self.base / "mgmt.xml").write_text(MGMT_NETWORK_XML)
        # persistent: `vagrant destroy` undefines the management network and fails on a transient one
        self.virsh("net-define", str(self.base / "mgmt.xml"))
        self.virsh("net-start", MGMT_NETWORK)
        subprocess.run(self.ns("ip", "addr", "add", f"{APT_PROXY[0]}/24", "dev", "mevmgmt0"), check=True)
        self._start_relay()

    def _start_relay(self) -> None:
        log = self.base / "apt-proxy.log"
        proxy = [sys.executable, "-m", "mirage_env.providers.aptproxy", "--allow", "+".join(self.archive_hosts),
                 "--log", str(log)]
        here = [sys.executable, __file__]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        self.relays.append(subprocess.Popen([*here, "serve-unix", str(self.socket), "--", *proxy], env=env))
        _wait_for(self.socket.exists, 30, "the apt relay's unix socket")
        self.relays.append(subprocess.Popen(self.ns(*here, "tcp-to-unix", f"{APT_PROXY[0]}:{APT_PROXY[1]}",
                                                    str(self.socket)), env=env))
        _wait_for(self._port_open, 30, "the apt relay listening in the namespace")

    def _port_open(self) -> bool:
        return APT_PROXY[0] in subprocess.run(self.ns("ss", "-ltn"), capture_output=True, text=True).stdout

    def cleanup_libvirt(self, prefix: str) -> list[str]:
        """Domains, volumes and networks our VM left behind (normally `vagrant destroy` removed them)."""
        removed = []
        if self.virsh("version", check=False).returncode != 0:
            return removed
        for dom in self.virsh("list", "--all", "--name", check=False).stdout.split():
            if dom.startswith(prefix):
                self.virsh("destroy", dom, check=False)
                self.virsh("undefine", dom, "--remove-all-storage", "--nvram", check=False)
                removed.append(f"domain {dom}")
        for pool in self.virsh("pool-list", "--all", "--name", check=False).stdout.split():
            for line in self.virsh("vol-list", pool, check=False).stdout.splitlines()[2:]:
                vol = line.split()[0] if line.split() else ""
                if vol.startswith(prefix):  # the VM's disk and the box image Vagrant uploaded
                    self.virsh("vol-delete", vol, "--pool", pool, check=False)
                    removed.append(f"volume {vol}")
        for net in self.virsh("net-list", "--all", "--name", check=False).stdout.split():
            if net.startswith("mirage-env-"):
                self.virsh("net-destroy", net, check=False)
                self.virsh("net-undefine", net, check=False)
                removed.append(f"network {net}")
        # vagrant-libvirt defines the storage pool `default` when there is none: undefine what we added
        for pool in set(self.virsh("pool-list", "--all", "--name", check=False).stdout.split()) - self.pools_before:
            self.virsh("pool-destroy", pool, check=False)
            self.virsh("pool-undefine", pool, check=False)
            removed.append(f"pool {pool}")
        return removed

    def stop(self) -> None:
        for relay in self.relays:
            relay.terminate()
        for relay in self.relays:
            try:
                relay.wait(10)
            except subprocess.TimeoutExpired:
                relay.kill()
        for daemon in ("libvirtd", "virtlogd"):
            pidfile = self.pids.get(daemon)
            pid = _read_pid(pidfile) if pidfile else None
            if pid and _is(pid, daemon):
                os.kill(pid, signal.SIGTERM)
                _wait_for(lambda: not _is(pid, daemon), 30, f"{daemon} ({pid}) exiting")
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _is(pid: int, name: str) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except OSError:
        return False


# -- the relay: TCP in the namespace → unix socket → one aptproxy per connection in the root namespace
class _Threading(socketserver.ThreadingMixIn):
    daemon_threads = True
    allow_reuse_address = True


def serve_unix(path: str, command: list[str]) -> None:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            # aptproxy speaks HTTP on its stdin/stdout: give it the connection itself
            fd = self.request.fileno()
            subprocess.run(command, stdin=fd, stdout=fd, stderr=subprocess.DEVNULL)

    class Server(_Threading, socketserver.UnixStreamServer):
        pass

    Path(path).unlink(missing_ok=True)
    with Server(path, Handler) as server:
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
        server.serve_forever()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def tcp_to_unix(listen: str, path: str) -> None:
    host, port = listen.rsplit(":", 1)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            with socket.socket(socket.AF_UNIX) as upstream:
                upstream.connect(path)
                back = threading.Thread(target=_pump, args=(upstream, self.request))
                back.start()
                _pump(self.request, upstream)
                back.join()

    class Server(_Threading, socketserver.TCPServer):
        pass

    with Server((host, int(port)), Handler) as server:
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
        server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    unix = sub.add_parser("serve-unix")
    unix.add_argument("path")
    unix.add_argument("command", nargs=argparse.REMAINDER)
    tcp = sub.add_parser("tcp-to-unix")
    tcp.add_argument("listen")
    tcp.add_argument("path")
    args = parser.parse_args()
    if args.mode == "serve-unix":
        serve_unix(args.path, args.command[1:] if args.command[:1] == ["--"] else args.command)
    else:
        tcp_to_unix(args.listen, args.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
