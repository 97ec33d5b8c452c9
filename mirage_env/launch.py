"""`mirage-env unikernel run --kernel FILE`: boot any Xen kernel as a domU on the dom0's bridge.

Everything that can be wrong with the input is checked before anything is created or copied:
the kernel (kernels.py), the disks, the published ports (bound now, on 127.0.0.1), the name (not
running already), the memory (`xl info` free_memory) and the guest type (`xl info` virt_caps).
Then the kernel and disk images are copied to the dom0 by content (sha256-named files, skipped
when present), the xl config is written, the name goes into dnsmasq's hosts file, and the domU
boots. It is up when dnsmasq has leased its MAC an address; when that does not happen, the error
says why with evidence: its console and `xl dmesg` when it crashed, no DHCP request from its MAC
in dnsmasq's log, a full range, a vif that never connected.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import disks as diskmod
from . import forward, kernels
from .dom0.xlconfig import MIN_PVH_MEMORY_MB, render_xl_config
from .domus import XL_DIR, DomUError, mac_for
from .probe import (LEASE_FILE, _create, console_log, exhausted_message, fresh_lease, lease_expiry,
                    leased_in_range, parse_dhcp_range, refused_macs)

KERNELS = "/var/lib/mirage-env/kernels"
DISKS = "/var/lib/mirage-env/disks"
DNSMASQ_CONF = "/etc/dnsmasq.d/mirage-env.conf"
DEFAULT_MEMORY = {"pv": 16, "pvh": MIN_PVH_MEMORY_MB}
# a DNS label: what dnsmasq accepts as a DHCP host name
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass
class Dom0Facts:
    virt_caps: set[str] | None = None
    free_memory_mb: int | None = None
    running: bool = False
    present: set[str] = field(default_factory=set)  # which of the asked-for files exist
    domain: str | None = None  # dnsmasq's DNS domain, None: no DNS served (older provisioning)
    hosts_file: str | None = None
    bridge_ip: str | None = None


def _sections(out: str) -> dict[str, list[str]]:
    found, current = {}, None
    for line in out.splitlines():
        if line.startswith("@@"):
            current = found.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
    return found


def read_dom0(sh, name: str, files: list[str], bridge: str) -> Dom0Facts:
    """One round trip: virt_caps, free memory, whether NAME runs, which FILES exist, DNS setup."""
    tests = " ".join(shlex.quote(f) for f in files) or "/nonexistent"
    _, out = sh(f"echo @@info; sudo xl info 2>/dev/null | grep -E '^(virt_caps|free_memory)'; "
                f"echo @@running; sudo xl domid {shlex.quote(name)} 2>/dev/null; "
                f"echo @@present; for f in {tests}; do sudo test -f \"$f\" && echo \"$f\"; done; "
                f"echo @@dns; grep -E '^(domain|dhcp-hostsfile|port)=' {DNSMASQ_CONF} 2>/dev/null; "
                f"echo @@bridge; ip -4 -o addr show dev {shlex.quote(bridge)} 2>/dev/null; true")
    s = _sections(out)
    facts = Dom0Facts()
    for line in s.get("info", []):
        key, _, value = line.partition(":")
        if key.strip() == "virt_caps":
            facts.virt_caps = set(value.split())
        elif key.strip() == "free_memory" and value.strip().isdigit():
            facts.free_memory_mb = int(value.strip())
    facts.running = any(l.strip().isdigit() for l in s.get("running", []))
    facts.present = {l.strip() for l in s.get("present", []) if l.strip()}
    dns = dict(l.split("=", 1) for l in s.get("dns", []) if "=" in l)
    if dns.get("port") != "0" and dns.get("domain"):
        facts.domain, facts.hosts_file = dns["domain"].strip(), (dns.get("dhcp-hostsfile") or "").strip() or None
    for line in s.get("bridge", []):
        m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", line)
        if m:
            facts.bridge_ip = m.group(1)
    return facts


@dataclass
class Plan:
    """What `run` will do, decided from the validated input and the dom0's facts."""
    name: str
    mac: str
    guest_type: str
    memory_mb: int
    kernel_local: Path
    kernel_sha: str
    kernel_remote: str
    disks: list  # disks.DiskImage
    disk_remote: list  # (path on the dom0, vdev, writable)
    cmdline: str
    publish: list  # forward.Publish
    kernel_label: str


def check_memory(memory_mb: int, guest_type: str, free_mb: int | None, name: str) -> None:
    if guest_type == "pvh" and memory_mb < MIN_PVH_MEMORY_MB:
        raise DomUError(f"--memory {memory_mb}: a PVH guest needs >= {MIN_PVH_MEMORY_MB} MiB (libxl adds ACPI "
                        f"tables past its RAM; 16 failed in the domain builder). Fix: --memory {MIN_PVH_MEMORY_MB}")
    # PVH: a few pages more than `memory` for those tables
    need = memory_mb + (1 if guest_type == "pvh" else 0)
    if free_mb is not None and need > free_mb:
        raise DomUError(f"--memory {memory_mb}: the dom0 can give {free_mb} MiB now (xl info free_memory), "
                        f"{name} needs {need}. Fix: a smaller --memory, or stop unikernels you no longer "
                        "need (`mirage-env unikernel list` / `stop NAME`)")


def upload(client, sh, local: Path, remote: str, report) -> None:
    """Copy LOCAL to REMOTE on the dom0 (as root) through a temporary file."""
    tmp = f"/tmp/mirage-env-upload-{remote.rsplit('/', 1)[-1]}"
    report.step(f"copying {local.name} ({local.stat().st_size >> 10} KiB) to the dom0")
    sftp = client.open_sftp()
    try:
        sftp.put(str(local), tmp)
    finally:
        sftp.close()
    code, out = sh(f"sudo install -D -m 0644 {shlex.quote(tmp)} {shlex.quote(remote)}; rc=$?; "
                   f"rm -f {shlex.quote(tmp)}; exit $rc")
    if code != 0:
        raise DomUError(f"could not install {remote} on the dom0: {out.strip()[-300:]}")


def copy_by_content(client, sh, plan: Plan, facts: Dom0Facts, report) -> list[str]:
    """Copy the kernel and disk images the dom0 lacks; return what was copied."""
    copied = []
    if plan.kernel_remote not in facts.present:
        upload(client, sh, plan.kernel_local, plan.kernel_remote, report)
        copied.append(plan.kernel_remote)
    for image, (remote, _, writable) in zip(plan.disks, plan.disk_remote):
        shared = f"{DISKS}/{image.sha256}.img"
        if shared not in facts.present:
            upload(client, sh, image.image, shared, report)
            copied.append(shared)
        if writable and remote not in facts.present:  # a writable disk is the domU's own copy
            code, out = sh(f"sudo cp {shlex.quote(shared)} {shlex.quote(remote)}")
            if code != 0:
                raise DomUError(f"could not make {remote}: {out.strip()[-300:]}")
    return copied


def register_name(sh, facts: Dom0Facts, name: str, mac: str) -> str | None:
    """Put MAC,NAME in dnsmasq's hosts file (re-read on SIGHUP); the DNS name, or None."""
    if not facts.domain or not facts.hosts_file or not HOSTNAME_RE.match(name):
        return None
    hosts = shlex.quote(facts.hosts_file)
    line = f"{mac},{name}"
    sh(f"sudo mkdir -p $(dirname {hosts}) && sudo touch {hosts} && "
       f"{{ sudo grep -v -i -e '^{mac},' -e ',{name}$' {hosts}; echo {shlex.quote(line)}; }} > /tmp/mev-hosts.$$ && "
       f"sudo install -m 0644 /tmp/mev-hosts.$$ {hosts}; rm -f /tmp/mev-hosts.$$; "
       "sudo systemctl kill -s HUP dnsmasq")
    return f"{name}.{facts.domain}"


def write_config(sh, plan: Plan, bridge: str) -> str:
    config = render_xl_config(plan.name, plan.kernel_remote, plan.memory_mb, bridge=bridge, mac=plan.mac,
                              guest_type=plan.guest_type, disks=plan.disk_remote,
                              extra_cmdline=plan.cmdline, on_crash="preserve")
    path = f"{XL_DIR}/{plan.name}.cfg"
    code, out = sh(f"printf %s {shlex.quote(config)} | sudo tee {path} >/dev/null && sudo rm -f /etc/xen/auto/{plan.name}.cfg")
    if code != 0:
        raise DomUError(f"could not write {path}: {out}")
    return path


@dataclass
class Outcome:
    ip: str | None
    create_s: float | None
    create_to_lease_s: float | None
    error: str | None = None


def _why_no_lease(sh, name: str, mac: str, since: int, state: str, console: str) -> str:
    """The evidence for a domU that got no lease."""
    _, out = sh(f"echo @@dmesg; sudo xl dmesg 2>/dev/null | tail -n 200; "
                f"echo @@journal; sudo journalctl -u dnsmasq --since @{since} -o cat --no-pager 2>/dev/null "
                f"| grep -i {shlex.quote(mac)}; "
                f"echo @@vif; sudo xl network-list {shlex.quote(name)} 2>/dev/null | tail -n +2; "
                f"echo @@conf; sudo cat /etc/dnsmasq.d/*.conf 2>/dev/null; echo @@leases; cat {LEASE_FILE} 2>/dev/null")
    s = _sections(out)
    tail = "\n".join(console.strip().splitlines()[-15:]) or "(the console is empty)"
    domid_lines = [l for l in s.get("dmesg", []) if re.search(r"\bd\d+v?\d*\b", l)][-10:]
    if state == "crashed" or state == "gone":
        what = "crashed (kept for inspection: on_crash = \"preserve\"; `mirage-env unikernel stop " \
               f"{name}` removes it)" if state == "crashed" else "stopped by itself (shut down or crashed and was destroyed)"
        dmesg = "\n".join(domid_lines) or "(no lines about guests in xl dmesg)"
        return f"no lease for {name}: it {what}.\nits console:\n{tail}\nxl dmesg:\n{dmesg}"
    journal = s.get("journal", [])
    dhcp = parse_dhcp_range("\n".join(s.get("conf", [])))
    leases = "\n".join(s.get("leases", []))
    if dhcp and (refused_macs("\n".join(journal)) or leased_in_range(leases, dhcp) >= dhcp.size):
        return exhausted_message(name, dhcp, leased_in_range(leases, dhcp), bool(refused_macs("\n".join(journal))))
    vifs = [l.split() for l in s.get("vif", [])]
    # xl network-list: Idx BE Mac-Addr. handle state evt-ch tx-/rx-ring-ref BE-path; 4 = connected
    if vifs and not any(len(v) > 4 and v[4] == "4" for v in vifs):
        states = ", ".join(v[4] for v in vifs if len(v) > 4)
        return (f"no lease for {name}: its vif never connected (xenbus state {states}; 4 is connected): the "
                f"kernel's netfront did not come up. Its console:\n{tail}\nFix: check the kernel has a Xen "
                "network driver (MirageOS: `mirage configure -t xen` with a network device; Unikraft: netfront)")
    if not journal:
        return (f"no lease for {name}: it never asked — no DHCP request from its MAC {mac} in dnsmasq's log "
                f"(journalctl -u dnsmasq) since it booted, though its vif is connected. Its console:\n{tail}\n"
                "Fix: make the kernel use DHCP (MirageOS: --ipv4=... on --cmdline sets a static address, "
                "which this does not wait for)")
    return (f"no lease for {name}: dnsmasq saw its MAC {mac} but granted nothing in time. dnsmasq's log:\n"
            + "\n".join(journal[-8:]) + f"\nits console:\n{tail}")


def boot(sh, plan: Plan, config: str, lease_s: int, timeout: float, report) -> Outcome:
    """xl create, then poll: a fresh lease for the MAC → up; a crashed or vanished domain → fail
    at once with the evidence; the timeout → the evidence of why."""
    started, t0, create_s, error = _create(sh, plan.name, config, report)
    if error:
        if "hap" in error.lower() or "neither hap nor shadow" in error.lower():
            error = kernels.pvh_refusal(plan.kernel_label, set())
        return Outcome(None, create_s, None, error)
    deadline = time.monotonic() + timeout
    state, console = "running", ""
    q = shlex.quote(plan.name)
    while time.monotonic() < deadline:
        _, out = sh(f"echo @@leases; cat {LEASE_FILE} 2>/dev/null; echo @@state; sudo xl list {q} 2>/dev/null "
                    f"| tail -n +2; echo @@console; sudo cat {console_log(plan.name)} 2>/dev/null")
        s = _sections(out)
        leases = "\n".join(s.get("leases", []))
        console = "\n".join(s.get("console", []))
        ip = fresh_lease(leases, plan.mac, started, lease_s)
        if ip:
            expiry = lease_expiry(leases, plan.mac) or 0
            seen = round(time.monotonic() - t0, 1)
            granted = expiry - lease_s - started if expiry else None
            return Outcome(ip, create_s, float(granted) if granted is not None and 0 <= granted <= seen else seen)
        row = (s.get("state") or [""])[0].split()
        if not row:
            state = "gone"
            break
        if len(row) >= 5 and "c" in row[4]:
            state = "crashed"
            break
        report.step(f"waiting for {plan.name}'s DHCP lease ({time.monotonic() - t0:.0f}s)")
        time.sleep(0.5)
    return Outcome(None, create_s, None, _why_no_lease(sh, plan.name, plan.mac, started, state, console))


def wait_for_http(ip: str, port: int, host_side_exec, timeout: float = 20) -> bool:
    """Not used for the decision; kept for callers that want to know the service answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = host_side_exec("curl", "-s", "-o", "/dev/null", "-m", "2", f"http://{ip}:{port}/", timeout=5)
        if res.returncode == 0:
            return True
        time.sleep(0.5)
    return False


def start_forwarders(env, plan: Plan, ip: str, listeners: dict[int, socket.socket]) -> list[dict]:
    """One detached forwarder per --publish; their PIDs go into the state record."""
    namespace = getattr(getattr(env.provider, "network", None), "namespace", None)
    ssh_file = None
    if not namespace:  # Vagrant / lab: through the dom0 over SSH
        target = env.provider.ssh_target()
        ssh_file = env.state.path(f"forward-{plan.name}.ssh.json")
        ssh_file.write_text(json.dumps({"host": target.host, "port": target.port, "user": target.user,
                                        "key": str(target.key),
                                        "known_hosts": str(target.known_hosts) if target.known_hosts else None}))
    published = []
    for p in plan.publish:
        pid = forward.start(listeners.pop(p.host_port), ip, p.guest_port,
                            env.state.logs / f"forward-{plan.name}-{p.host_port}.log",
                            namespace=namespace, ssh_target_file=ssh_file)
        published.append({"host_port": p.host_port, "guest_port": p.guest_port, "pid": pid})
    return published


# -- the state records of unikernels started by `run` ------------------------------------------

RECORDS = "unikernels.json"


def records(state) -> dict:
    return state.read_json(RECORDS)


def save_record(state, name: str, record: dict) -> None:
    all_ = records(state)
    all_[name] = record
    state.write_json(RECORDS, all_)


def forget(state, names) -> list[str]:
    """End NAMES' forwarders (by their recorded PIDs) and drop their records; lines saying what."""
    all_ = records(state)
    said = []
    for name in names:
        record = all_.pop(name, None) or {}
        for p in record.get("publish", []):
            if forward.stop(p["pid"]):
                said.append(f"{name}: stopped forwarding 127.0.0.1:{p['host_port']} (pid {p['pid']})")
    state.write_json(RECORDS, all_)
    return said


def busy_ports(state) -> dict[int, str]:
    """Host ports held by forwarders that still run: port → unikernel name."""
    return {p["host_port"]: name for name, r in records(state).items() for p in r.get("publish", [])
            if forward.is_forwarder(p["pid"])}


def uptime_s(record: dict) -> int | None:
    return int(time.time() - record["started"]) if record.get("started") else None
