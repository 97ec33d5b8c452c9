"""The Vagrant providers: VirtualBox (the laptop path) and libvirt (Linux hosts), through python-vagrant
over the project's top-level Vagrantfile.

The Vagrantfile declares nothing of its own: it reads the values this module writes
(`vagrant_config()`, a JSON file named by MIRAGE_ENV_VAGRANT_JSON), or — for a plain `vagrant up` —
runs `python3 -m mirage_env.providers.vagrant settings-json`. `mirage-env up --provider
virtualbox|libvirt` brings the VM up with `vagrant up --no-provision` and then provisions and
verifies it with the project's own runner, over the SSH target `vagrant ssh-config` names.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from .. import registry
from ..settings import Settings, SettingsError, load_settings
from ..sshclient import SshTarget, connect, run
from ..paths import PLAYBOOKS_DIR, VAGRANTFILE_DIR
from ..hostcaps import VirtualBoxChecks, kvm_usable, vm_name
from ..state import StateDir
from .base import Host, Provider, ProviderError

VAGRANT_JSON_ENV = "MIRAGE_ENV_VAGRANT_JSON"
HOSTONLY_NETWORK = "mirage-env-hostonly"  # the libvirt network of the host-only segment


def hostonly_mac(settings: Settings, backend: str) -> str:
    """A fixed MAC for NIC 2, so the guest's name for it can be found by MAC (boxes differ in
    interface naming: eth1, ens6, enp0s8 …). VirtualBox wants its own OUI and no colons."""
    digest = hashlib.sha256(f"mirage-env/{settings.name}".encode()).hexdigest()
    if backend == "virtualbox":
        return "080027" + digest[:6].upper()
    return "52:54:00:" + ":".join(digest[i:i + 2] for i in (0, 2, 4))


def _virtualbox_dhcp_servers(settings: Settings) -> list[list[str]]:
    """VirtualBox's DHCP servers on the host-only interface that has our host address: they race
    dnsmasq for every domU's lease. VirtualBox ships one for vboxnet0 (192.168.56.100, .101–.254)."""
    from .. import vbox

    try:
        version = vbox.parse_version(vbox.run_vboxmanage("--version"))
        ifs = vbox.parse_hostonlyifs(vbox.run_vboxmanage("list", "hostonlyifs"))
        servers = vbox.parse_dhcpservers(vbox.run_vboxmanage("list", "dhcpservers"))
    except vbox.VBoxError:
        return []
    names = {i.network_name for i in ifs if i.ip == str(settings.network.host_address)}
    # VirtualBox keeps the default server even before vboxnet0 exists: when Vagrant is about to
    # create vboxnet0 for us, that one applies too.
    if not ifs:
        names.add("HostInterfaceNetworking-vboxnet0")
    return [vbox.dhcp_disable_args(version, s.network_name) for s in servers
            if s.network_name in names and s.enabled]


def _libvirt_cpu() -> dict:
    """KVM when it really runs a guest; otherwise QEMU's TCG with a CPU model Xen can run on:
    `qemu64` + `svm` (with `-cpu max` the PV dom0 crashes at its first instructions)."""

    if kvm_usable():
        return {"driver": "kvm", "cpu_mode": "host-passthrough"}
    return {"driver": "qemu", "cpu_mode": "custom", "cpu_model": "qemu64", "cpu_features": ["svm"]}


def vagrant_config(settings: Settings, state: StateDir, backend: str | None = None) -> dict:
    """Everything the Vagrantfile needs, from the one settings model. `backend` None: both
    provider sections (a plain `vagrant up` picks its provider only after reading the file)."""
    net, vag = settings.network, settings.vagrant
    extra_vars = {**settings.role_vars(), "mirage_env_probe": settings.probe.enabled,
                  "mirage_env_unikernel": settings.unikernel.enabled}
    if settings.unikernel.enabled:
        from ..sources import pack_unikernel_sources

        extra_vars["unikernel_source_archive"] = str(pack_unikernel_sources(state))
    config = {
        "name": settings.name,
        "vm_name": vm_name(settings),
        "box": vag.box,
        "box_url": vag.box_url,
        "memory": vag.memory,
        "cpus": vag.cpus,
        "hostonly": {"subnet": str(net.subnet), "netmask": net.netmask, "host_address": str(net.host_address),
                     "dom0_address": str(net.dom0_address)},
        "playbook": str(PLAYBOOKS_DIR / "site.yml"),
        "extra_vars": extra_vars,
    }
    if backend in (None, "virtualbox"):
        config["virtualbox"] = {"mac": hostonly_mac(settings, "virtualbox"),
                                "dhcp_disable": _virtualbox_dhcp_servers(settings)}
    if backend in (None, "libvirt"):
        config["libvirt"] = {"mac": hostonly_mac(settings, "libvirt"), "network_name": HOSTONLY_NETWORK,
                             "serial_log": str(state.logs / "console.log"), **_libvirt_cpu()}
    return config


class VagrantProvider(Provider):
    def __init__(self, settings: Settings, state: StateDir, backend: str = "virtualbox"):
        if backend not in registry.VAGRANT_PROVIDERS:
            raise ProviderError(f"unknown Vagrant backend {backend!r}. Fix: use virtualbox or libvirt")
        self.settings, self.state, self.backend = settings, state, backend
        self.name = backend
        self.config_path = state.path("vagrant.json")
        self.log = state.logs / "vagrant.log"

    # -- python-vagrant --------------------------------------------------------------------
    def _env(self) -> dict:
        return {**os.environ, VAGRANT_JSON_ENV: str(self.config_path),
                "VAGRANT_DOTFILE_PATH": str(self.state.path("vagrant")),  # state, not the project tree
                "VAGRANT_DEFAULT_PROVIDER": self.backend,
                "VAGRANT_NO_COLOR": "1"}

    def _vagrant(self):
        import vagrant

        return vagrant.Vagrant(root=str(VAGRANTFILE_DIR), env=self._env(),
                               out_cm=vagrant.make_file_cm(str(self.log)),
                               err_cm=vagrant.make_file_cm(str(self.log)))

    def _meta(self) -> dict:
        return self.state.read_json("machine.json")

    # -- up --------------------------------------------------------------------------------
    def _require_tools(self) -> None:
        import shutil

        tools = ["vagrant"] + (["VBoxManage"] if self.backend == "virtualbox" else ["virsh"])
        missing = [t for t in tools if not shutil.which(t)]
        if missing:
            raise ProviderError(f"{', '.join(missing)} not found: the {self.backend} provider needs Vagrant"
                                f"{' and VirtualBox' if self.backend == 'virtualbox' else ' and libvirt'}. "
                                "Fix: run `mirage-env doctor` for what to install, or use --provider qemu")

    def up(self, report) -> None:
        self._require_tools()
        report.step("writing the Vagrantfile's settings")
        self.state.write_json("vagrant.json", vagrant_config(self.settings, self.state, self.backend))
        report.step(f"vagrant up --no-provision --provider={self.backend} (log: {self.log})")
        machine = self._vagrant()
        try:
            for line in machine.up(provider=self.backend, provision=False, stream_output=True):
                with open(self.log, "a") as log:
                    log.write(line)
                if line.strip():
                    report.step("vagrant: " + line.strip()[:100])
        except subprocess.CalledProcessError as exc:
            raise ProviderError(f"`vagrant up` failed with exit code {exc.returncode}: "
                                f"{self._log_tail()} (log: {self.log})") from None
        if self.backend == "virtualbox":
            self._check_virtualbox(report)
        target = self._read_ssh_config(machine)
        nic = self._find_hostonly_nic(target)
        meta = {"ssh": {"host": target.host, "port": target.port, "user": target.user, "key": str(target.key)},
                "bridged_nic": nic, "backend": self.backend}
        self.state.write_json("machine.json", meta)
        if nic != self.settings.network.bridged_nic:
            report.info(f"the box names the host-only NIC {nic} (not {self.settings.network.bridged_nic}): "
                        "bridging that one")

    def _check_virtualbox(self, report) -> None:
        """The newcomer traps, checked on the VM Vagrant made: host-only address, VirtualBox's DHCP
        server off, NIC 2 promiscuous allow-all. Provisioning would only fail later, less clearly."""

        checks = VirtualBoxChecks(self.settings).all()
        for check in checks:
            report.check(f"virtualbox: {check.name}", check.passed, check.detail)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise ProviderError("; ".join(f"{c.name}: {c.detail}. Fix: {c.fix}" for c in failed))

    def _log_tail(self, lines: int = 6) -> str:
        try:
            return " | ".join(l.strip() for l in self.log.read_text().splitlines()[-lines:] if l.strip())
        except OSError:
            return ""

    def _read_ssh_config(self, machine) -> SshTarget:
        try:
            conf = machine.conf()
        except subprocess.CalledProcessError:
            raise ProviderError(f"`vagrant ssh-config` failed (log: {self.log}). Fix: `mirage-env up` again") from None
        return SshTarget(conf["HostName"], int(conf.get("Port", 22)), conf["User"],
                         Path(conf["IdentityFile"].strip('"')))

    def _find_hostonly_nic(self, target: SshTarget) -> str:
        """The guest's name for NIC 2, found by the MAC we gave it."""
        mac = hostonly_mac(self.settings, self.backend).lower()
        mac = mac if ":" in mac else ":".join(mac[i:i + 2] for i in range(0, 12, 2))
        client = connect(target)
        try:
            code, out = run(client, "ip -o link show")
        finally:
            client.close()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) > 2 and "link/ether" in parts and parts[parts.index("link/ether") + 1].lower() == mac:
                return parts[1].rstrip(":").split("@")[0]
        raise ProviderError(f"no NIC with the host-only MAC {mac} in the VM (`ip -o link` said: {out.strip()[:300]}). "
                            "Fix: `mirage-env down --destroy` and `mirage-env up` again")

    # -- the running machine ---------------------------------------------------------------
    def ssh_target(self) -> SshTarget:
        ssh = self._meta().get("ssh")
        if not ssh:
            raise ProviderError("the VM has never been started. Fix: run `mirage-env up`")
        return SshTarget(ssh["host"], ssh["port"], ssh["user"], Path(ssh["key"]))

    def hosts(self) -> list[Host]:
        nic = self._meta().get("bridged_nic") or self.settings.network.bridged_nic
        settings = self.settings.model_copy(
            update={"network": self.settings.network.model_copy(update={"bridged_nic": nic})})
        return [Host("dom0", self.ssh_target(), settings, self.host_vars(), self.host_exec)]

    def host_vars(self) -> dict:
        # libvirt: the domain's first serial port goes to a log file; Xen owns it, as in the QEMU machine
        return {"xen_dom0_console": "com1", "xen_dom0_serial": True} if self.backend == "libvirt" else {}

    def host_exec(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """The host side of the host-only network is this machine (vboxnetN / libvirt's bridge)."""
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)

    def status(self) -> dict:
        meta = self._meta()
        state = None
        if meta:
            try:
                state = self._vagrant().status()[0].state
            except (subprocess.CalledProcessError, IndexError, OSError):
                state = "unknown"
        ssh = meta.get("ssh", {})
        return {"provider": self.backend, "running": state == "running", "vagrant_state": state,
                "vm": vm_name(self.settings),
                "ssh": f"{ssh.get('user', '?')}@{ssh.get('host', '?')}:{ssh.get('port', '?')}",
                "host_only_nic": meta.get("bridged_nic"), "host_address": str(self.settings.network.host_address),
                "log": str(self.log)}

    # -- down ------------------------------------------------------------------------------
    def down(self, report) -> None:
        if not self._meta() and not self.state.path("vagrant").exists():
            return
        if not self.config_path.exists():
            self.state.write_json("vagrant.json", vagrant_config(self.settings, self.state, self.backend))
        report.step("vagrant halt")
        try:
            self._vagrant().halt()
        except subprocess.CalledProcessError:
            report.step("vagrant halt failed: forcing it off")
            self._vagrant().halt(force=True)

    def destroy(self, report) -> None:
        if not self.config_path.exists():
            self.state.write_json("vagrant.json", vagrant_config(self.settings, self.state, self.backend))
        report.step("vagrant destroy")
        try:
            self._vagrant().destroy()
        except subprocess.CalledProcessError as exc:
            raise ProviderError(f"`vagrant destroy` failed ({exc.returncode}): {self._log_tail()} "
                                f"(log: {self.log})") from None
        for name in ("machine.json", "known_hosts"):
            self.state.path(name).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """`settings-json`: what the Vagrantfile reads on a plain `vagrant up` (settings from
    ./mirage-env.yml or MIRAGE_ENV_CONFIG, state in ./.mirage-env)."""
    parser = argparse.ArgumentParser(prog="python3 -m mirage_env.providers.vagrant")
    parser.add_argument("command", choices=["settings-json"])
    parser.add_argument("-c", "--config", type=Path, default=os.environ.get("MIRAGE_ENV_CONFIG") or None)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    print(json.dumps(vagrant_config(settings, StateDir.for_env(settings.name)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
