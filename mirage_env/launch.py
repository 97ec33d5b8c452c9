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
from .dom0 import xl
from .dom0.dnsmasq import (exhausted_message, fresh_lease, lease_expiry, leased_in_range, parse_dhcp_range,
                           refused_macs)
from .dom0.paths import AUTO_DIR, LEASE_FILE, autostart_link, console_log, xl_config
from .domus import DomUError, mac_for
from .errors import EXIT_BAD_INPUT

KERNELS = "/var/lib/mirage-env/kernels"
DISKS = "/var/lib/mirage-env/disks"
DNSMASQ_CONF = "/etc/dnsmasq.d/mirage-env.conf"
DNSMASQ_CONFS = "/etc/dnsmasq.d/*.conf /etc/dnsmasq.conf"
DEFAULT_MEMORY = {"pv": 16, "pvh": MIN_PVH_MEMORY_MB}
# a DNS label: what dnsmasq accepts as a DHCP host name
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")


class BadInput(DomUError):
    """A value of the command that cannot work here (exit 2); nothing was changed."""

    exit_code = EXIT_BAD_INPUT


@dataclass
class Dom0Facts:
    virt_caps: set[str] | None = None
    free_memory_mb: int | None = None
    running: bool = False
    present: set[str] = field(default_factory=set)  # which of the asked-for files exist
    domain: str | None = None  # dnsmasq's DNS domain, None: no DNS served (older provisioning)
    hosts_file: str | None = None
    bridge_ip: str | None = None
    dhcp: object = None  # dnsmasq.DhcpRange


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
    # the two xl calls run side by side: each takes seconds on an emulated dom0
    _, out = sh("sudo -n bash -c " + shlex.quote(
                f"t=$(mktemp -d); xl info > $t/info 2>/dev/null & "
                f"xl domid {shlex.quote(name)} > $t/domid 2>/dev/null & wait; "
                f"echo @@info; grep -E '^(virt_caps|free_memory)' $t/info; "
                f"echo @@running; cat $t/domid; rm -rf $t; "
                f"echo @@present; for f in {tests}; do test -f \"$f\" && echo \"$f\"; done; "
                f"echo @@dns; grep -E '^(domain|dhcp-hostsfile|port)=' {DNSMASQ_CONF} 2>/dev/null; "
                f"echo @@bridge; ip -4 -o addr show dev {shlex.quote(bridge)} 2>/dev/null; "
                f"echo @@conf; cat {DNSMASQ_CONFS} 2>/dev/null; true"))
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
    facts.dhcp = parse_dhcp_range("\n".join(s.get("conf", [])))
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
        raise BadInput(f"--memory {memory_mb}: a PVH guest needs >= {MIN_PVH_MEMORY_MB} MiB (libxl adds ACPI "
                        f"tables past its RAM; 16 failed in the domain builder). Fix: --memory {MIN_PVH_MEMORY_MB}")
    # PVH: a few pages more than `memory` for those tables
    need = memory_mb + (1 if guest_type == "pvh" else 0)
    if free_mb is not None and need > free_mb:
        raise BadInput(f"--memory {memory_mb}: the dom0 can give {free_mb} MiB now (xl info free_memory), "
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


def name_script(facts: Dom0Facts, name: str, mac: str) -> tuple[str, str | None]:
    """(shell lines putting MAC,NAME in dnsmasq's hosts file and making dnsmasq re-read it, the DNS
    name), or ("", None) where the dom0 serves no DNS or NAME is not a DNS label."""
    if not facts.domain or not facts.hosts_file or not HOSTNAME_RE.match(name):
        return "", None
    hosts = shlex.quote(facts.hosts_file)
    script = (f"mkdir -p $(dirname {hosts}) && touch {hosts} && "
              f"{{ grep -v -i -e '^{mac},' -e ',{name}$' {hosts}; echo {shlex.quote(f'{mac},{name}')}; }} "
              f"> /tmp/mev-hosts.$$ && install -m 0644 /tmp/mev-hosts.$$ {hosts}; rm -f /tmp/mev-hosts.$$; "
              "systemctl kill -s HUP dnsmasq\n")
    return script, f"{name}.{facts.domain}"


def config_script(plan: Plan, bridge: str, autostart: bool = False) -> tuple[str, str]:
    """(shell lines writing /etc/xen/NAME.cfg — with `autostart` also linked into /etc/xen/auto
    for xendomains — the config's path)."""
    config = render_xl_config(plan.name, plan.kernel_remote, plan.memory_mb, bridge=bridge, mac=plan.mac,
                              guest_type=plan.guest_type, disks=plan.disk_remote,
                              extra_cmdline=plan.cmdline, on_crash="preserve")
    path, link = xl_config(plan.name), autostart_link(plan.name)
    tail = f"mkdir -p {AUTO_DIR} && ln -sfn {path} {link}" if autostart else f"rm -f {link}"
    return f"printf %s {shlex.quote(config)} | tee {path} >/dev/null && {tail} || exit 90\n", path


def create(sh, name: str, setup: str, config: str, report, then: str = "") -> tuple[int, float, float, str | None, str]:
    """SETUP, `xl create`, then THEN (run only when the create worked; it sees $started) in one
    round trip — each costs a second or more on an emulated dom0: (dom0 epoch before the create,
    monotonic start, seconds the create took, error or None, THEN's output). A vif hotplug script
    that missed libxl's time is retried, as xl.create does."""
    report.step(f"xl create {config}, then waiting for its DHCP lease")
    t0 = time.monotonic()
    # one root shell for the whole script: each sudo costs the emulated dom0 a fraction of a second
    script = (f"{setup}rm -f {shlex.quote(console_log(name))}\nstarted=$(date +%s)\n"
              f"echo @@date; echo $started; echo @@create; s=$(date +%s%N); {xl.create_command(config)}; rc=$?\n"
              f"echo \"@@rc $rc $(( ($(date +%s%N) - s) / 1000000 ))\"\n"
              f"if [ $rc -eq 0 ]; then echo @@then; {then or 'true'}; fi")
    _, out = sh(f"sudo -n bash -c {shlex.quote(script)}", timeout=600)
    sections = _sections(out)
    rc_line = next((l.split() for l in out.splitlines() if l.startswith("@@rc ")), ["@@rc", "1", "0"])
    rc, create_ms = rc_line[1], int(rc_line[2]) if len(rc_line) > 2 and rc_line[2].isdigit() else None
    started = int((sections.get("date") or ["0"])[0].strip() or 0)
    create_out = "\n".join(sections.get("create", []))
    then_out = out.split("@@then", 1)[1] if "@@then" in out else ""
    if not sections.get("date"):
        return started, t0, round(time.monotonic() - t0, 1), f"could not write {config}: {out.strip()[-300:]}", ""
    for attempt in (2, 3):
        if rc == "0" or not any(sign in create_out for sign in xl.HOTPLUG_FAILURES):
            break
        report.step(f"xl create {config}: the vif's hotplug script was too slow, attempt {attempt}")
        retry = (f"started={started}; xl destroy {shlex.quote(name)} 2>/dev/null; "
                 f"{{ {xl.create_command(config)}; }} && {{ echo @@then; {then or 'true'}; }}")
        code, out = sh(f"sudo -n bash -c {shlex.quote(retry)}", timeout=600)
        rc = "0" if code == 0 else str(code)
        create_out, _, then_out = out.partition("@@then")
        create_ms = None
    error = None if rc == "0" else f"xl create failed: {create_out.strip()[-300:]}"
    create_s = round(create_ms / 1000, 1) if create_ms is not None else round(time.monotonic() - t0, 1)
    return started, t0, create_s, error, then_out


def wait_script(plan: "Plan", lease_s: int, timeout: float, ip_on_console: bool) -> str:
    """The dom0 side of waiting for the lease, one loop instead of a round trip per look: every
    0.2 s the lease file (a fresh lease for the MAC: its expiry at least lease_s - 5 after
    $started), every 2 s `xl list` (gone? crashed?) and dnsmasq's journal ("no address available"
    for the MAC). Prints @@result lease|gone|crashed|refused|timeout, then the lease file and the
    console's tail."""
    mac, name = plan.mac.lower(), shlex.quote(plan.name)
    console = shlex.quote(console_log(plan.name))
    need_console = (f' && grep -qF "$ip" {console}' if ip_on_console else "")
    # `xl list` and journalctl take seconds each on an emulated dom0: they run in the background
    # (at most one at a time, every 3 s; detached from the SSH channel, which would otherwise stay
    # open until they end) and the loop reads their last answer, so looking at the lease file is
    # never held up by them
    return f"""result=timeout; end=$((SECONDS + {int(timeout)})); next=0; t=$(mktemp -d)
while [ $SECONDS -lt $end ]; do
  line=$(awk -v m={mac} 'tolower($2) == m {{ print; exit }}' {LEASE_FILE} 2>/dev/null)
  exp=${{line%% *}}; ip=$(echo "$line" | awk '{{print $3}}')
  if [ -n "$line" ] && {{ [ "$exp" = 0 ] || [ "$exp" -ge $((started + {lease_s} - 5)) ]; }}{need_console}; then
    result=lease; break
  fi
  if [ -e $t/state ]; then
    case $(cat $t/state) in gone) result=gone; break ;; *c*) result=crashed; break ;; refused) result=refused; break ;; esac
  fi
  if [ $SECONDS -ge $next ] && [ ! -e $t/busy ]; then
    touch $t/busy; next=$((SECONDS + 3))
    ( row=$(xl list {name} 2>/dev/null | tail -n +2)
      if [ -z "$row" ]; then st=gone; else st=$(echo "$row" | awk '{{print $5}}'); fi
      journalctl -u dnsmasq --since @$started -o cat --no-pager 2>/dev/null \
        | grep -i 'no address available' | grep -qi {mac} && st=refused
      echo "$st" > $t/state.new; mv $t/state.new $t/state; rm -f $t/busy ) </dev/null >/dev/null 2>&1 &
  fi
  sleep 0.2
done
(sleep 30; rm -rf $t) </dev/null >/dev/null 2>&1 &  # after a probe still running has finished
# from the start of xl create ($s, create's) to the lease seen here: sub-second, where the lease
# file has whole seconds (late by at most one 0.2 s look)
[ "$result" = lease ] && [ -n "${{s:-}}" ] && echo "@@leased_ms $(( ($(date +%s%N) - s) / 1000000 ))"
echo "@@result $result"; echo @@leases; cat {LEASE_FILE} 2>/dev/null
echo @@console; tail -c 4000 {console} 2>/dev/null; true"""


@dataclass
class Outcome:
    ip: str | None
    create_s: float | None
    create_to_lease_s: float | None
    error: str | None = None


def _why_no_lease(sh, name: str, mac: str, since: int, state: str, console: str) -> str:
    """The evidence for a domU that got no lease."""
    _, out = sh(f"echo @@domid; xl domid {shlex.quote(name)} 2>/dev/null; "
                f"echo @@dmesg; xl dmesg 2>/dev/null | tail -n 300; "
                f"echo @@journal; journalctl -u dnsmasq --since @{since} -o cat --no-pager 2>/dev/null "
                f"| grep -i {shlex.quote(mac)}; "
                f"echo @@vif; xl network-list {shlex.quote(name)} 2>/dev/null | tail -n +2; "
                f"echo @@conf; cat {DNSMASQ_CONFS} 2>/dev/null; echo @@leases; cat {LEASE_FILE} 2>/dev/null")
    s = _sections(out)
    tail = "\n".join(console.strip().splitlines()[-15:]) or "(the console is empty)"
    domid = next((l.strip() for l in s.get("domid", []) if l.strip().isdigit()), None)
    # Xen names a domain dN (its vCPUs dNvM) in its log lines
    domid_lines = [l for l in s.get("dmesg", []) if domid and re.search(rf"\bd{domid}(v\d+)?\b", l)][-10:]
    if state == "crashed" or state == "gone":
        what = "crashed (kept for inspection: on_crash = \"preserve\"; `mirage-env unikernel stop " \
               f"{name}` removes it)" if state == "crashed" else "stopped by itself (shut down or crashed and was destroyed)"
        dmesg = "\n".join(domid_lines) or f"(no lines about d{domid or '?'} in xl dmesg)"
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


def boot(sh, plan: Plan, setup: str, config: str, facts: Dom0Facts, lease_s: int, timeout: float, report,
         ip_on_console: bool = False) -> Outcome:
    """SETUP + xl create + the wait for the lease (wait_script), in one round trip: a fresh lease
    for the MAC → up; a crashed or vanished domain, or dnsmasq saying it has no address for the
    MAC → fail at once with the evidence; the timeout → the evidence of why."""
    started, t0, create_s, error, out = create(sh, plan.name, setup, config, report,
                                                then=wait_script(plan, lease_s, timeout, ip_on_console))
    if error:
        if "neither hap nor shadow" in error.lower():  # never the raw libxl error for this
            error = kernels.pvh_refusal(plan.kernel_label, set())
        return Outcome(None, create_s, None, error)
    s = _sections(out)
    result = next((k.split()[1] for k in s if k.startswith("result ")), "timeout")
    leases, console = "\n".join(s.get("leases", [])), "\n".join(s.get("console", []))
    ip = fresh_lease(leases, plan.mac, started, lease_s)
    # the bundled apps print their address once their stack is configured; a user's kernel
    # may print nothing, so for it the lease alone says it is up
    if result == "lease" and ip and (not ip_on_console or ip in console):
        leased_ms = next((k.split()[1] for k in s if k.startswith("leased_ms ")), "")
        if leased_ms.isdigit():
            return Outcome(ip, create_s, round(int(leased_ms) / 1000, 2))
        expiry = lease_expiry(leases, plan.mac) or 0
        seen = round(time.monotonic() - t0, 1)
        granted = expiry - lease_s - started if expiry else None
        return Outcome(ip, create_s, float(granted) if granted is not None and 0 <= granted <= seen else seen)
    if result == "refused" and facts.dhcp:
        return Outcome(None, create_s, None,
                       exhausted_message(plan.name, facts.dhcp, leased_in_range(leases, facts.dhcp), True))
    state = result if result in ("gone", "crashed") else "running"
    return Outcome(None, create_s, None, _why_no_lease(sh, plan.name, plan.mac, started, state, console))


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


# -- the whole command --------------------------------------------------------------------------

@dataclass
class Request:
    """`unikernel run`'s input, as given."""
    name: str
    kernel: Path | None
    app: str | None
    guest_type: str | None
    memory_mb: int | None
    cmdline: str
    disks: tuple[str, ...]
    disk_format: str
    publish: tuple[str, ...]
    autostart: bool = False


@dataclass
class Checked:
    """The request after every local check: what only needs the dom0's facts now."""
    request: Request
    kernel: kernels.KernelInfo
    disk_specs: list
    publish: list
    listeners: dict  # host port → bound socket, held until the forwarders take them


def check_locally(req: Request, state, build_dir: Path, report) -> Checked:
    """Everything that needs no dom0, before anything is created (bound ports are released when
    the command fails)."""
    from .dom0.names import name_problem

    if problem := name_problem(req.name):
        raise BadInput(f"--name: {problem}. Fix: e.g. --name my-auth")
    if req.kernel is not None and req.app is not None:
        raise BadInput("--kernel and --app: give one. Fix: --kernel FILE for your own kernel, "
                        "--app NAME for a bundled one")
    disk_specs = diskmod.parse(req.disks)
    held = busy_ports(state)
    named = {int(v.partition(":")[0]) for v in req.publish if v.partition(":")[0].isdigit()}
    publish = [forward.parse_publish(v, avoid=named | set(held)) for v in req.publish]
    ports = [p.host_port for p in publish]
    if len(set(ports)) != len(ports):
        raise BadInput(f"--publish: host port given twice ({', '.join(map(str, ports))}). Fix: one "
                        "--publish per host port")
    for p in publish:
        if p.host_port in held:
            raise BadInput(f"--publish {p.host_port}:{p.guest_port}: 127.0.0.1:{p.host_port} is already "
                            f"published for {held[p.host_port]}. Fix: another host port, or "
                            f"`mirage-env unikernel stop {held[p.host_port]}`")
    if req.kernel is not None:
        info = kernels.inspect(req.kernel)
    else:
        from . import bundled

        report.step(f"building {req.app} for Xen on this machine")
        try:
            image = bundled.build(req.app, "xen", build_dir)
        except bundled.BuildError as exc:
            raise DomUError(f"building {req.app}: {exc}") from None
        info = kernels.inspect(image)
    if req.guest_type is not None or info.pvh and not info.pv:
        # --type names what the user wants; refuse a mismatch with the kernel now
        kernels.choose_type(info, req.guest_type, None)
    listeners = {}
    try:
        for p in publish:
            listeners[p.host_port] = forward.listen(p.host_port)
    except forward.PublishError:
        for sock in listeners.values():
            sock.close()
        raise
    return Checked(req, info, disk_specs, publish, listeners)


def plan_on(checked: Checked, facts: Dom0Facts) -> tuple[str, int]:
    """(guest type, memory) for this dom0, or DomUError/KernelError with the fix."""
    req = checked.request
    if facts.running:
        raise BadInput(f"--name {req.name}: a domain of that name is already running on the dom0. "
                        f"Fix: another --name, or `mirage-env unikernel stop {req.name}` first")
    guest_type = kernels.choose_type(checked.kernel, req.guest_type, facts.virt_caps)
    # the bundled apps serve in 4 MiB as PV; as PVH they need libxl's ACPI pages too
    memory = req.memory_mb or (4 if req.app and guest_type == "pv" else DEFAULT_MEMORY[guest_type])
    check_memory(memory, guest_type, facts.free_memory_mb, req.name)
    return guest_type, memory


def run(env, client, sh, checked: Checked, report, lease_s: int, timeout: float = 120) -> dict:
    """Copy, configure, boot, publish CHECKED (from check_locally); the result as a dict (the CLI
    prints it)."""
    t0 = time.monotonic()
    req = checked.request
    info = checked.kernel
    mac = mac_for(req.name)
    kernel_remote = f"{KERNELS}/{info.sha256}.xen"
    bridge = env.settings.network.bridge
    # disks: their remote names need the images' hashes; a directory's hash comes from packing,
    # which only touches this machine's state directory
    fmt_app = "auth" if req.app == "auth" else "none"
    images = diskmod.prepare(checked.disk_specs, env.state.path("disks"), req.disk_format, fmt_app)
    disk_remote = [(f"{DISKS}/{req.name}-{img.spec.vdev}-{img.sha256[:12]}.img" if img.spec.writable
                    else f"{DISKS}/{img.sha256}.img", img.spec.vdev, img.spec.writable) for img in images]
    wanted = [kernel_remote] + [f"{DISKS}/{img.sha256}.img" for img in images] + [r for r, _, w in disk_remote if w]
    phases = {"pack_s": round(time.monotonic() - t0, 1)}
    t = time.monotonic()
    facts = read_dom0(sh, req.name, wanted, bridge)
    phases["dom0_facts_s"] = round(time.monotonic() - t, 1)
    guest_type, memory = plan_on(checked, facts)
    label = str(req.kernel) if req.kernel else f"{req.app} (bundled)"
    plan = Plan(req.name, mac, guest_type, memory, info.path, info.sha256, kernel_remote, images, disk_remote,
                req.cmdline, checked.publish, label)
    t = time.monotonic()
    copied = copy_by_content(client, sh, plan, facts, report)
    phases["copy_s"] = round(time.monotonic() - t, 1)
    names, dns_name = name_script(facts, req.name, mac)
    write, config = config_script(plan, bridge, req.autostart)
    t = time.monotonic()
    outcome = boot(sh, plan, names + write, config, facts, lease_s, timeout, report,
                   ip_on_console=req.app is not None)
    phases["boot_to_lease_s"] = round(time.monotonic() - t, 1)
    result = {
        "name": req.name, "kernel": label, "sha256": info.sha256, "type": guest_type, "memory_mb": memory,
        "mac": mac, "ip": outcome.ip, "xl_create_s": outcome.create_s, "create_to_lease_s": outcome.create_to_lease_s,
        "error": outcome.error, "copied": copied, "dns_name": dns_name, "dns_server": facts.bridge_ip,
        "disks": [{"source": str(img.spec.source), "vdev": img.spec.vdev, "rw": img.spec.writable,
                   "rebuilt": img.rebuilt, "on_dom0": remote} for img, (remote, _, _) in zip(images, disk_remote)],
        "publish": [], "phases": phases,
    }
    if outcome.error:
        for sock in checked.listeners.values():
            sock.close()
        result["total_s"] = round(time.monotonic() - t0, 1)
        return result
    network = getattr(env.provider, "network", None)
    if dns_name and facts.bridge_ip and hasattr(network, "use_dns"):
        network.use_dns(facts.bridge_ip, facts.domain)  # `ip netns exec NS curl http://NAME.DOMAIN/`
    result["publish"] = start_forwarders(env, plan, outcome.ip, checked.listeners)
    save_record(env.state, req.name, {k: result[k] for k in ("kernel", "sha256", "type", "memory_mb", "mac", "ip",
                                                             "publish", "dns_name", "disks")}
                | {"started": time.time()})
    result["total_s"] = round(time.monotonic() - t0, 1)
    return result


def upload_image(client, sh, image: Path, report) -> str:
    """The bundled app's image on the dom0, copied by content; its path there."""
    info = kernels.inspect(image)
    remote = f"{KERNELS}/{info.sha256}.xen"
    code, _ = sh(f"sudo test -f {remote}")
    if code != 0:
        upload(client, sh, image, remote, report)
    return remote


# -- list and logs --------------------------------------------------------------------------------

def _parse_uptime(text: str) -> dict[str, int]:
    """`xl uptime` (Name ID Uptime, uptime as [D days,] H:MM:SS) → name → seconds."""
    out = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 3 or not parts[1].isdigit():
            continue
        days = int(parts[2]) if len(parts) >= 5 and parts[3].startswith("day") else 0
        clock = parts[-1].split(":")
        if all(c.isdigit() for c in clock):
            seconds = 0
            for c in clock:
                seconds = seconds * 60 + int(c)
            out[parts[0]] = days * 86400 + seconds
    return out


def _parse_types(long_json: str) -> dict[str, dict]:
    """`xl list -l` → name → {"type": "pv"/"pvh", "kernel": path on the dom0}."""
    start = long_json.find("[")
    try:
        domains, _ = json.JSONDecoder().raw_decode(long_json[start:]) if start >= 0 else ([], 0)
    except ValueError:
        return {}
    out = {}
    for d in domains if isinstance(domains, list) else []:
        config = (d or {}).get("config") or {}
        c_info, b_info = config.get("c_info") or {}, config.get("b_info") or {}
        if c_info.get("name"):
            out[c_info["name"]] = {"type": c_info.get("type"), "kernel": b_info.get("kernel")}
    return out


def list_unikernels(sh, state) -> list[dict]:
    """The running domUs (one round trip): name, id, memory, state, MAC, address, type, kernel
    (the file given to `run`, else the path on the dom0), published ports, uptime."""
    _, out = sh(f"sudo xl list; echo @@long; sudo xl list -l; echo @@leases; cat {LEASE_FILE} 2>/dev/null; "
                "echo @@uptime; sudo xl uptime")
    table, _, rest = out.partition("@@long")
    long_json, _, rest = rest.partition("@@leases")
    leases, _, uptime = rest.partition("@@uptime")
    domus = xl.with_addresses(xl.parse_xl_list(table), xl.parse_xl_list_long(long_json), leases)
    types, uptimes, recorded = _parse_types(long_json), _parse_uptime(uptime), records(state)
    rows = []
    for d in domus:
        record = recorded.get(d.name) or {}
        if record.get("mac") and d.mac and record["mac"] != d.mac:
            record = {}  # a different domain of the same name, started some other way
        rows.append({
            "name": d.name, "domid": d.domid, "memory_mb": d.memory_mb, "state": d.state, "mac": d.mac, "ip": d.ip,
            "type": (types.get(d.name) or {}).get("type"),
            "kernel": record.get("kernel") or (types.get(d.name) or {}).get("kernel"),
            "dns_name": record.get("dns_name"),
            "published": [f"127.0.0.1:{p['host_port']}->{p['guest_port']}" for p in record.get("publish", [])
                          if forward.is_forwarder(p["pid"])],
            "uptime_s": uptimes.get(d.name),
        })
    return rows


def follow_logs(client, name: str, write) -> int:
    """Stream NAME's console log (`tail -F`) until Ctrl-C; the exit status of tail."""
    channel = client.get_transport().open_session()
    channel.exec_command(f"sudo tail -n +1 -F {shlex.quote(console_log(name))} 2>&1")
    try:
        while True:
            data = channel.recv(4096)
            if not data:
                break
            write(data.decode(errors="replace"))
    except KeyboardInterrupt:
        pass
    finally:
        channel.close()
    return channel.exit_status if channel.exit_status_ready() else 0


def human_uptime(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return (f"{d}d" if d else "") + (f"{h}h" if h or d else "") + f"{m:02d}m{s:02d}s"
