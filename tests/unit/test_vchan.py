"""mirage_env.vchan's input checks: bad text, ids, names and paths are refused before anything
runs on the dom0 (ssh=None would fail loudly if they were not). The dom0 round trip itself runs in
benchmarks/vchan_echo.py and the e2e test against Xen's real libxenvchan."""

from __future__ import annotations

import pytest

from mirage_env import vchan


@pytest.mark.parametrize("text", ["two\nlines", "cr\r", "nul\0", "x" * (vchan.MAX_TEXT + 1)])
def test_send_refuses_text_that_is_not_one_line(text):
    with pytest.raises(vchan.VchanError):
        vchan.vchan_send(None, 5, text)


@pytest.mark.parametrize("dom", [0, -1, 0x7FF0, "0", "bad name", "-x", "a;b", "$(id)"])
def test_bad_domains_are_refused_before_ssh(dom):
    with pytest.raises(vchan.VchanError):
        vchan.resolve_domid(None, dom)


def test_numeric_domains_need_no_ssh():
    assert vchan.resolve_domid(None, 7) == 7
    assert vchan.resolve_domid(None, "12") == 12


@pytest.mark.parametrize("path", ["relative/path", "/a b", "/x/../y", "/" + "a" * 40, "/a;rm"])
def test_bad_paths_are_refused(path):
    with pytest.raises(vchan.VchanError):
        vchan._path_for(5, path)


def test_default_path_is_the_servers_data_vchan():
    assert vchan._path_for(5, None) == "/local/domain/5/data/vchan"


def test_remote_client_path_follows_the_source():
    p = vchan.remote_client_path()
    assert p.startswith(vchan.REMOTE_DIR + "/vchan-client-") and len(p.rsplit("-", 1)[1]) == 12


def test_bench_size_is_bounded():
    with pytest.raises(vchan.VchanError):
        vchan.vchan_bench(None, 5, 0)


def test_xl_config_carries_kernel_command_line_words():
    from mirage_env.dom0.xlconfig import XlConfigError, render_xl_config

    cfg = render_xl_config("vchan-echo", "/tmp/echo.xen", 4, cmdline=["echo=tcp", "vchan_order=16"])
    assert 'extra = "echo=tcp vchan_order=16"' in cfg
    cfg = render_xl_config("vchan-echo", "/tmp/echo.xen", 4, ip="192.168.56.50/24", cmdline=["ts"])
    assert 'extra = "ip=192.168.56.50/24 ts"' in cfg
    for bad in (["a b"], ['x"y'], [""], ["a\nb"]):
        with pytest.raises(XlConfigError):
            render_xl_config("vchan-echo", "/tmp/echo.xen", 4, cmdline=bad)


def test_the_helper_built_here_names_the_xen_release_it_needs(tmp_path):
    """Built with this machine's real gcc and libxen-dev: its libxenvchan soname carries the Xen
    release, which is what ensure_client compares with the dom0's before copying it there."""
    import shutil
    from pathlib import Path

    from tests.support import require

    require(shutil.which("gcc") is not None and Path("/usr/include/libxenvchan.h").exists(),
            "needs gcc and libxen-dev (apt-get install gcc libxen-dev)")
    exe = vchan.build_here(tmp_path)
    assert exe is not None and exe.is_file()
    sonames = vchan.needed_libraries(exe)
    assert any(n.startswith("libxenvchan.so.4.") for n in sonames), sonames
