"""Fixtures for the net tier (see netlab.py for the lab itself).

    def test_x(lab, unikernel):
        uk = unikernel("ping")                    # DHCP, waits for the lease
        uk.exec_in_ns(["ping", "-c1", uk.ip])     # clients run in the namespace

``module_lab`` shares one lab among a module's tests: ``module_lab.start("auth")``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # netlab, also under --import-mode=importlib
from netlab import BuildCache, Lab, check_prereqs, need_tool, sweep_stale_namespaces


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.net)


@pytest.fixture(scope="session")
def unikernel_builds(tmp_path_factory) -> BuildCache:
    need_tool("clang")
    need_tool("make")
    return BuildCache(tmp_path_factory.mktemp("unikernel-builds"))


@pytest.fixture(scope="session")
def net_prereqs():
    check_prereqs()
    sweep_stale_namespaces()


def _make_lab(builds: BuildCache, **kw):
    workdir = Path(tempfile.mkdtemp(prefix="mevt-lab-"))
    lab = Lab(workdir, builds, **kw)
    try:
        lab.setup()
        yield lab
    finally:
        lab.close()
        # keep the logs of a failed run for a look; they are small
        if os.environ.get("MEVT_KEEP_LOGS") is None:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def lab(net_prereqs, unikernel_builds, request):
    """A fresh namespace + bridge + dnsmasq for one test. Parametrize the
    DHCP server with ``@pytest.mark.lab(lease="2m", dhcp_options=("58,5",))``."""
    marker = request.node.get_closest_marker("lab")
    kw = dict(marker.kwargs) if marker else {}
    yield from _make_lab(unikernel_builds, **kw)


@pytest.fixture(scope="module")
def module_lab(net_prereqs, unikernel_builds):
    """Like ``lab``, shared by the tests of one module."""
    yield from _make_lab(unikernel_builds)


@pytest.fixture
def unikernel(lab):
    """Factory: ``unikernel(app, static=None, gw=None, data_dir=None, ...)``
    builds and starts an app in ``lab`` (see Lab.start)."""
    return lab.start


def pytest_configure(config):
    config.addinivalue_line("markers", "lab(**kw): options of the lab fixture's dnsmasq (lease, dhcp_options)")
