"""The mDNS pieces read from the outside world: the checks' reading of the kernel's multicast table,
and the e2e query's reading of answers (compressed names, other records, hostile lengths)."""

from __future__ import annotations

import struct

import pytest

from mirage_env.checks.test_avahi import mdns_members
from tests.e2e.mdns_query import answers_a, question, read_name

MADDR = """1:\tlo
\tinet  224.0.0.1
2:\teth0
\tlink  01:00:5e:00:00:01
\tinet  224.0.0.1
3:\tbr0
\tlink  01:00:5e:00:00:fb
\tinet  224.0.0.251
\tinet  224.0.0.1
"""


def test_members_of_the_mdns_group_come_from_the_kernels_table():
    assert mdns_members(MADDR) == {"br0"}
    assert mdns_members(MADDR.replace("2:\teth0\n", "2:\teth0\n\tinet  224.0.0.251\n")) == {"br0", "eth0"}
    assert mdns_members("") == set()


def answer(ident: int, name: str, records: bytes, count: int) -> bytes:
    q = question(name, ident)[12:]
    return struct.pack("!HHHHHH", ident, 0x8400, 1, count, 0, 0) + q + records


def test_an_a_record_behind_a_compression_pointer_is_read():
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 0x8001, 120, 4) + bytes([192, 168, 56, 5])
    txt = b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 120, 3) + b"\x02hi"
    msg = answer(7, "dom0.local", txt + rr, 2)
    assert answers_a(msg, 7, "dom0.local") == ["192.168.56.5"]
    assert answers_a(msg, 8, "dom0.local") == []  # another question's answer
    assert answers_a(msg, 7, "other.local") == []


@pytest.mark.parametrize("msg, pos", [
    (b"\0" * 12 + b"\xc0\x0c", 12),   # a pointer to itself
    (b"\x03abc\xc0\x00", 0),         # a pointer back to the start: a loop
    (b"\0" * 12 + b"\x05ab", 12),     # a label longer than the message
    (b"\0" * 12 + b"\xc0", 12),       # a pointer cut in half
])
def test_a_hostile_name_is_refused_not_looped(msg, pos):
    with pytest.raises(ValueError):
        read_name(msg, pos)
