"""The unikernel source tarball is deterministic (a converged dom0 stays at changed=0)."""

import tarfile

from mirage_env.sources import pack_unikernel_sources
from mirage_env.state import StateDir


def test_same_sources_same_bytes(tmp_path):
    first = pack_unikernel_sources(StateDir.for_env("a", tmp_path)).read_bytes()
    second = pack_unikernel_sources(StateDir.for_env("b", tmp_path)).read_bytes()
    assert first == second


def test_archive_holds_the_build_inputs_only(tmp_path):
    archive = pack_unikernel_sources(StateDir.for_env("a", tmp_path))
    names = tarfile.open(archive).getnames()
    for wanted in ("unikernel/Makefile", "unikernel/apps.mk", "unikernel/tools/pack_data.py",
                   "unikernel/core/tcp.c", "unikernel/xen/netfront.c", "unikernel/apps/auth.c"):
        assert wanted in names
    assert not [n for n in names if n.endswith((".o", ".pyc")) or "__pycache__" in n or "/obj-" in n]
