"""Real DHCP servers nobody here wrote, run as plain processes in a lab
namespace (a Lab made with ``dnsmasq=False``), each with its own
configuration, lease file and log in the lab's directory:

- ``isc``: ISC dhcpd (isc-dhcp-server), ``dhcpd -f -d -cf -lf -pf IFACE``
- ``kea``: Kea (kea-dhcp4-server), memfile leases in a CSV file
- ``udhcpd``: busybox's udhcpd applet, read back with busybox dumpleases
- ``dnsmasq``: the lab's own dnsmasq (its shortest lease is 2 minutes)

Every server offers DHCP_FIRST..DHCP_LAST on the lab bridge with the
bridge address as router and server identifier. What the server recorded
is read back from its own files: ``lease_end(mac)`` is the end of the
newest lease it keeps for a MAC (seconds since the epoch), ``acks`` and
``naks`` count what its log shows, ``released`` says whether it took a
RELEASE; ``give_leases_to`` (ISC, Kea) edits its lease database so that
a client's address is another's. Processes are started with lab.popen,
so the lab stops them by PID.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from netlab import DHCP_FIRST, DHCP_LAST, Lab, _stop_process

# the package each server comes from (scripts/install-deps.sh installs them)
PACKAGES = {"isc": "isc-dhcp-server", "kea": "kea-dhcp4-server", "udhcpd": "busybox-static", "dnsmasq": "dnsmasq-base"}


def _apparmor_confines(binary: str) -> bool:
    """Is an AppArmor profile for this binary enforced? (Debian ships ones for
    dhcpd and kea-dhcp4 that allow only /etc and /var/lib paths.)"""
    try:
        profiles = Path("/sys/kernel/security/apparmor/profiles").read_text()
    except OSError:
        return False
    return any(line.startswith(binary + " ") and "(enforce)" in line for line in profiles.splitlines())


def _exec_unconfined(binary: str) -> list[str]:
    """The command that runs ``binary``: through the dynamic loader when an
    enforced AppArmor profile would refuse our temporary config and lease
    files (a profile attaches to the program's path, not to the loader's)."""
    loader = "/lib64/ld-linux-x86-64.so.2"
    if _apparmor_confines(binary) and os.path.exists(loader):
        return [loader, binary]
    return [binary]


def _wait_for(check, what: str, proc: subprocess.Popen | None, log, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the server exited ({proc.returncode}):\n{log()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {timeout}s:\n{log()}")
        time.sleep(0.05)


class DhcpServer:
    """One server on a lab's bridge; subclasses write the config and read the files."""

    name = ""
    binary = ""

    def __init__(self, lab: Lab, lease_s: int):
        self.lab = lab
        self.lease_s = lease_s
        self.first, self.last = DHCP_FIRST, DHCP_LAST
        self.proc: subprocess.Popen | None = None
        self.dir = lab.workdir / self.name
        self.dir.mkdir(exist_ok=True)
        self.generation = 0
        lab.dhcp_log_sources.append(lambda: f"--- {self.name} log ---\n{self.log()}")

    @classmethod
    def path(cls) -> str | None:
        return shutil.which(cls.binary) or shutil.which(cls.binary, path="/usr/sbin:/sbin")

    # -- life cycle --------------------------------------------------------
    def start(self) -> "DhcpServer":
        self._write_config()
        with open(self.dir / "stdout.log", "ab") as out:
            self.proc = self.lab.popen(self._command(), stdout=out, stderr=subprocess.STDOUT,
                                       env=self._env(), stdin=subprocess.DEVNULL)
        _wait_for(self._ready, f"{self.name} on {self.lab.bridge}", self.proc, self.log)
        return self

    def stop(self) -> None:
        """Stop the server (by PID); it answers nothing any more."""
        if self.proc is not None:
            _stop_process(self.proc)

    def give_leases_to(self, mac: str, other_mac: str) -> None:
        """Stop, edit the lease file so that mac's leases belong to
        other_mac (as after a database restore), start again: mac's next
        REQUEST asks for an address the server knows is someone else's."""
        self.stop()
        self._rewrite_leases(mac.lower(), other_mac.lower())
        self.generation += 1
        self.start()

    def _rewrite_leases(self, mac: str, other_mac: str) -> None:
        raise NotImplementedError(f"{self.name}: no lease file edit")

    # -- what the server recorded ------------------------------------------
    def log(self) -> str:
        p = self.dir / "stdout.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def lease_end(self, mac: str) -> float | None:
        raise NotImplementedError

    def acks(self, ip: str, mac: str) -> int:
        raise NotImplementedError

    def naks(self, ip: str, mac: str) -> int:
        raise NotImplementedError

    def released(self, ip: str, mac: str) -> bool:
        """Did the server take a DHCPRELEASE of ip from mac?"""
        raise NotImplementedError

    def wait_lease_end_after(self, mac: str, after: float, timeout: float = 5) -> float:
        """Wait until the server's lease file shows a lease for mac ending
        later than ``after``; return that end."""
        deadline = time.monotonic() + timeout
        while True:
            end = self.lease_end(mac)
            if end is not None and end > after:
                return end
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name}: no lease for {mac} ending after {after} (last: {end}):\n{self.log()}")
            time.sleep(0.1)

    # -- per server ----------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict:
        return dict(os.environ)

    def _write_config(self) -> None:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError


class IscDhcpd(DhcpServer):
    name, binary = "isc", "dhcpd"

    def _write_config(self) -> None:
        lab = self.lab
        # ping-check off: dhcpd would ping each address for a second before offering it
        (self.dir / "dhcpd.conf").write_text(f"""\
default-lease-time {self.lease_s};
max-lease-time {self.lease_s};
min-lease-time 1;
authoritative;
ping-check false;
ddns-update-style none;
subnet {lab.subnet}.0 netmask 255.255.255.0 {{
  range {self.first} {self.last};
  option routers {lab.host_ip};
  option subnet-mask 255.255.255.0;
}}
""")
        (self.dir / "dhcpd.leases").touch()

    def _command(self) -> list[str]:
        d = self.dir
        return [*_exec_unconfined(self.path()), "-f", "-d", "-4", "-cf", str(d / "dhcpd.conf"),
                "-lf", str(d / "dhcpd.leases"), "-pf", str(d / "dhcpd.pid"), self.lab.bridge]

    def _ready(self) -> bool:
        return self.log().count("Server starting service.") > self.generation

    def lease_end(self, mac: str) -> float | None:
        # dhcpd.leases(5): one "lease IP { ... }" block per update, the last one counts; times in UTC
        text = (self.dir / "dhcpd.leases").read_text(errors="replace")
        end = None
        for block in re.findall(r"lease \S+ \{(.*?)\n\}", text, re.S):
            if f"hardware ethernet {mac.lower()};" in block:
                m = re.search(r"ends \d (\d+/\d+/\d+ \d+:\d+:\d+);", block)
                if m:
                    end = calendar.timegm(time.strptime(m.group(1), "%Y/%m/%d %H:%M:%S"))
        return end

    def _rewrite_leases(self, mac: str, other_mac: str) -> None:
        p = self.dir / "dhcpd.leases"
        text = p.read_text().replace(f"hardware ethernet {mac};", f"hardware ethernet {other_mac};")
        p.write_text(re.sub(r"\n  uid [^\n]*;", "", text))  # the client identifier would still match us

    def acks(self, ip: str, mac: str) -> int:
        return len(re.findall(rf"DHCPACK on {re.escape(ip)} to {mac.lower()} ", self.log()))

    def naks(self, ip: str, mac: str) -> int:
        return len(re.findall(rf"DHCPNAK on {re.escape(ip)} to {mac.lower()} ", self.log()))

    def released(self, ip: str, mac: str) -> bool:
        found = rf"DHCPRELEASE of {re.escape(ip)} from {mac.lower()} via \S+ \(found\)"
        return re.search(found, self.log()) is not None


class Kea(DhcpServer):
    name, binary = "kea", "kea-dhcp4"

    def _write_config(self) -> None:
        lab = self.lab
        conf = {"Dhcp4": {
            "interfaces-config": {"interfaces": [lab.bridge], "dhcp-socket-type": "raw"},
            "lease-database": {"type": "memfile", "persist": True, "lfc-interval": 0,
                               "name": str(self.dir / "leases4.csv")},
            "valid-lifetime": self.lease_s,
            "authoritative": True,  # NAK requests for addresses it does not know (RFC 2131 4.3.2)
            "subnet4": [{"id": 1, "subnet": f"{lab.subnet}.0/24",
                         "pools": [{"pool": f"{self.first} - {self.last}"}],
                         "option-data": [{"name": "routers", "data": lab.host_ip}]}],
            "loggers": [{"name": "kea-dhcp4", "severity": "DEBUG", "debuglevel": 40,
                         "output_options": [{"output": str(self.dir / "kea.log")}]}],
        }}
        (self.dir / "kea.json").write_text(json.dumps(conf, indent=1))

    def _env(self) -> dict:
        # the PID and lock files go to our directory, not /run/kea
        return dict(os.environ, KEA_PIDFILE_DIR=str(self.dir), KEA_LOCKFILE_DIR=str(self.dir))

    def _command(self) -> list[str]:
        return [*_exec_unconfined(self.path()), "-c", str(self.dir / "kea.json")]

    def log(self) -> str:
        p = self.dir / "kea.log"
        return super().log() + (p.read_text(errors="replace") if p.exists() else "")

    def _ready(self) -> bool:
        return self.log().count("DHCP4_STARTED") > self.generation

    def lease_end(self, mac: str) -> float | None:
        # memfile CSV: address,hwaddr,client_id,valid_lifetime,expire,...; one row per update
        p = self.dir / "leases4.csv"
        end = None
        for line in p.read_text().splitlines()[1:] if p.exists() else []:
            cols = line.split(",")
            if len(cols) > 4 and cols[1].lower() == mac.lower() and cols[4].isdigit() and cols[3] != "0":
                end = int(cols[4])
        return end

    def _rewrite_leases(self, mac: str, other_mac: str) -> None:
        p = self.dir / "leases4.csv"
        lines = p.read_text().splitlines()
        for i, line in enumerate(lines[1:], 1):
            cols = line.split(",")
            if len(cols) > 2 and cols[1].lower() == mac:
                cols[1], cols[2] = other_mac, ""  # hwaddr, client_id
                lines[i] = ",".join(cols)
        p.write_text("\n".join(lines) + "\n")

    def acks(self, ip: str, mac: str) -> int:
        return len(re.findall(rf"DHCP4_LEASE_ALLOC \[hwtype=1 {mac.lower()}\].*: lease {re.escape(ip)} has been "
                              r"allocated", self.log()))

    def naks(self, ip: str, mac: str) -> int:
        return len(re.findall(rf"\[hwtype=1 {mac.lower()}\].* trying to send packet DHCPNAK", self.log()))

    def released(self, ip: str, mac: str) -> bool:
        return re.search(rf"DHCP4_RELEASE \[hwtype=1 {mac.lower()}\].*: address {re.escape(ip)} was released",
                         self.log()) is not None


class Udhcpd(DhcpServer):
    name, binary = "udhcpd", "busybox"

    def _write_config(self) -> None:
        # auto_time 1: the lease file is written every second
        (self.dir / "udhcpd.conf").write_text(f"""\
start {self.first}
end {self.last}
interface {self.lab.bridge}
lease_file {self.dir / 'udhcpd.leases'}
pidfile {self.dir / 'udhcpd.pid'}
auto_time 1
max_leases 100
option subnet 255.255.255.0
option router {self.lab.host_ip}
option lease {self.lease_s}
""")
        (self.dir / "udhcpd.pid").unlink(missing_ok=True)

    def _command(self) -> list[str]:
        # -a 100: wait 100 ms (not 2 s) for an answer to its ARP check of an address
        return [self.path(), "udhcpd", "-f", "-a", "100", str(self.dir / "udhcpd.conf")]

    def _ready(self) -> bool:
        return (self.dir / "udhcpd.pid").exists()

    def lease_end(self, mac: str) -> float | None:
        # udhcpd writes the file every auto_time (1 s): wait for a write
        # newer than this call, or it may still show an OFFER's reservation
        p = self.dir / "udhcpd.leases"
        asked = time.time()
        _wait_for(lambda: p.exists() and p.stat().st_mtime > asked, "udhcpd lease file", self.proc, self.log, 3)
        res = subprocess.run([self.path(), "dumpleases", "-a", "-d", "-f", str(p)], capture_output=True,
                             text=True, timeout=10)
        for line in res.stdout.splitlines()[1:]:
            cols = line.split()
            if cols and cols[0].lower() == mac.lower():
                # "expired" (e.g. after a RELEASE): an end in the past
                return int(cols[-1]) if cols[-1].isdigit() else 0
        return None

    def acks(self, ip: str, mac: str) -> int:
        return len(re.findall(rf"sending ACK to {re.escape(ip)}\b", self.log()))

    def naks(self, ip: str, mac: str) -> int:
        return len(re.findall(r"sending NAK", self.log()))

    def released(self, ip: str, mac: str) -> bool:
        # udhcpd logs nothing for a RELEASE; it ends the lease in its file
        end = self.lease_end(mac)
        return end is not None and end <= time.time()


class Dnsmasq(DhcpServer):
    """The lab's dnsmasq (netlab.Lab), seen through the same interface; its
    lease is at least 2 minutes, so short tests set T1 with an option."""

    name, binary = "dnsmasq", "dnsmasq"

    def __init__(self, lab: Lab, lease_s: int, options: tuple[str, ...] = ()):
        super().__init__(lab, max(lease_s, 120))
        lab.lease = str(self.lease_s)
        lab.dhcp_options = options

    def start(self) -> "DhcpServer":
        self.lab.start_dnsmasq()
        self.proc = self.lab.dnsmasq
        return self

    def log(self) -> str:
        return self.lab.dnsmasq_log()

    def lease_end(self, mac: str) -> float | None:
        lease = self.lab.lease_for(mac)
        return lease["expiry"] if lease else None

    def acks(self, ip: str, mac: str) -> int:
        return len(re.findall(rf"DHCPACK\({self.lab.bridge}\) {re.escape(ip)} {mac.lower()}", self.log()))

    def naks(self, ip: str, mac: str) -> int:
        return len(re.findall(rf"DHCPNAK\({self.lab.bridge}\) {re.escape(ip)} {mac.lower()}", self.log()))

    def released(self, ip: str, mac: str) -> bool:
        return f"DHCPRELEASE({self.lab.bridge}) {ip} {mac.lower()}" in self.log()


SERVERS = {cls.name: cls for cls in (IscDhcpd, Kea, Udhcpd, Dnsmasq)}
