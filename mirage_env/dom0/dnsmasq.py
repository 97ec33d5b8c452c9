"""dnsmasq on the dom0: its lease file, its DHCP range, its "no address available" log lines.
The one reader of each (pure functions on the text; the callers fetch it over SSH)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass
class Lease:
    expiry: int  # epoch seconds (dom0 clock), 0 = infinite
    mac: str  # lower case
    ip: str
    hostname: str  # "*" when the client sent none


def parse_leases(text: str) -> list[Lease]:
    """dnsmasq's lease file: `EXPIRY MAC IP HOSTNAME CLIENT-ID` per line; anything else (a
    truncated line, stderr mixed in) is skipped."""
    leases = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit() and parts[1].count(":") == 5:
            leases.append(Lease(int(parts[0]), parts[1].lower(), parts[2],
                                parts[3] if len(parts) >= 4 else "*"))
    return leases


def by_mac(leases: list[Lease]) -> dict[str, str]:
    """MAC → IP (the last line wins, as in dnsmasq's file order)."""
    return {lease.mac: lease.ip for lease in leases}


def lease_for(leases: list[Lease], mac: str) -> Lease | None:
    mac = mac.lower()
    return next((lease for lease in leases if lease.mac == mac), None)


def fresh_lease(lease_text: str, mac: str, not_before: int, lease_s: int) -> str | None:
    """The IP leased to `mac` by a lease granted at or after `not_before` (its expiry is at least
    `lease_s` after it, 5 s slack for clock rounding), or an infinite one."""
    for lease in parse_leases(lease_text):
        if lease.mac == mac.lower() and (lease.expiry == 0 or lease.expiry >= not_before + lease_s - 5):
            return lease.ip
    return None


def lease_expiry(lease_text: str, mac: str) -> int | None:
    """The expiry (epoch seconds, 0: infinite) of `mac`'s lease."""
    lease = lease_for(parse_leases(lease_text), mac)
    return lease.expiry if lease else None


@dataclass
class DhcpRange:
    start: ipaddress.IPv4Address
    end: ipaddress.IPv4Address

    @property
    def size(self) -> int:
        return int(self.end) - int(self.start) + 1

    def __contains__(self, ip: str) -> bool:
        try:
            return self.start <= ipaddress.IPv4Address(ip) <= self.end
        except ValueError:
            return False


def parse_dhcp_range(conf_text: str) -> DhcpRange | None:
    """The first IPv4 `dhcp-range=[tag,]START,END,…` in dnsmasq's configuration."""
    for line in conf_text.splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip() != "dhcp-range":
            continue
        addrs = []
        for word in value.split(","):
            try:
                addrs.append(ipaddress.IPv4Address(word.strip()))
            except ValueError:
                continue
        if len(addrs) >= 2:
            return DhcpRange(addrs[0], addrs[1])
    return None


def leased_in_range(lease_text: str, dhcp: DhcpRange) -> int:
    return len({lease.ip for lease in parse_leases(lease_text) if lease.ip in dhcp})


def refused_macs(journal_text: str) -> set[str]:
    """MACs dnsmasq logged `no address available` for (`DHCPDISCOVER(br0) MAC no address available`)."""
    macs = set()
    for line in journal_text.splitlines():
        if "no address available" in line:
            macs.update(w.lower() for w in line.split() if w.count(":") == 5)
    return macs


def ack_times(journal_text: str) -> dict[str, float]:
    """MAC → when dnsmasq first sent it a DHCPACK, from `journalctl -o short-unix` lines
    (`EPOCH.USEC HOST dnsmasq-dhcp[PID]: DHCPACK(br0) IP MAC [NAME]`): sub-second times on the
    dom0's clock, where the lease file has whole seconds."""
    acks: dict[str, float] = {}
    for line in journal_text.splitlines():
        words = line.split()
        at = next((i for i, w in enumerate(words) if w.startswith("DHCPACK(")), None)
        if at is None or at + 2 >= len(words) or words[at + 2].count(":") != 5:
            continue
        try:
            when = float(words[0])
        except ValueError:
            continue
        acks.setdefault(words[at + 2].lower(), when)
    return acks


def exhausted_message(name: str, dhcp: DhcpRange, leased: int, said_by_dnsmasq: bool) -> str:
    how = "dnsmasq logged 'no address available'" if said_by_dnsmasq else "the lease file is full"
    return (f"no lease for {name}: dnsmasq has no free address in {dhcp.start}–{dhcp.end} "
            f"({leased} of {dhcp.size} leased; {how}). Fix: stop unikernels you no longer need "
            "(`mirage-env unikernel list` / `mirage-env unikernel stop NAME`), or widen "
            "network.dhcp_start/dhcp_end and run `mirage-env provision`")
