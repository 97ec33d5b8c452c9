"""auth and www on the host target reading their data from a disk image (``--disk``), built by
tools/mkdisk.py (FAT through mkfs.fat + mcopy, tar through tarfile), answering real curl inside
the lab namespace.

The disk's users and pages differ from the compiled-in ones, so every answer proves which store
served it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import shutil
from pathlib import Path

import pytest

from netlab import need_tool

ROOT = Path(__file__).resolve().parents[2]
MKDISK = ROOT / "unikernel" / "tools" / "mkdisk.py"
DISK_USERS = {"diskann": "disk-only pass 1", "diskbob": "b0b's other secret"}


def load_mkdisk():
    spec = importlib.util.spec_from_file_location("mkdisk_net", MKDISK)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def need_fat_tools() -> None:
    for tool in ("mkfs.fat", "mcopy", "mmd"):
        if not (shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")):
            need_tool(tool)  # skips (or fails under CI) with the name


def curl(uk, path: str, port: int, *args: str) -> tuple[int, str, str]:
    """(status, body, content type) from curl inside the namespace."""
    r = uk.exec_in_ns(["curl", "-sS", "-m", "20", "-o", "-", "-w", "\n%{http_code} %{content_type}", *args,
                       f"http://{uk.ip}:{port}{path}"])
    body, _, tail = r.stdout.rpartition("\n")
    code, _, ctype = tail.partition(" ")
    return int(code or 0), body, ctype


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    need_tool("curl")
    need_fat_tools()
    mkdisk = load_mkdisk()
    tmp = tmp_path_factory.mktemp("disks")
    users = tmp / "authdata"
    (users / "users").mkdir(parents=True)
    for name, pw in DISK_USERS.items():
        (users / "users" / name).write_text(pw + "\n")
    site = tmp / "site"
    (site / "docs" / "deeper").mkdir(parents=True)
    (site / "index.html").write_text("<h1>served from the disk</h1>\n")
    (site / "style.css").write_text("h1 { color: teal }\n")
    (site / "docs" / "deeper" / "A Long Page Name.html").write_text("<p>long name</p>\n")
    (site / "docs" / "data.bin").write_bytes(os.urandom(150_000))
    old = os.environ.get("MIRAGE_AUTH_PBKDF2_ITERATIONS")
    os.environ["MIRAGE_AUTH_PBKDF2_ITERATIONS"] = "1000"  # quicker logins; the record says its count
    try:
        out = {
            "users.img": mkdisk.make_disk("fat", "auth", users, tmp / "users.img"),
            "users.tar": mkdisk.make_disk("tar", "auth", users, tmp / "users.tar"),
            "site.img": mkdisk.make_disk("fat", "www", site, tmp / "site.img", fat_bits=16),
            "site.tar": mkdisk.make_disk("tar", "www", site, tmp / "site.tar"),
        }
    finally:
        if old is None:
            os.environ.pop("MIRAGE_AUTH_PBKDF2_ITERATIONS")
        else:
            os.environ["MIRAGE_AUTH_PBKDF2_ITERATIONS"] = old
    garbage = tmp / "garbage.img"
    garbage.write_bytes(os.urandom(64 * 1024))
    out["garbage.img"] = garbage
    out["site"] = site
    return out


@pytest.mark.parametrize("image", ["users.img", "users.tar"])
def test_auth_users_from_disk(module_lab, images, image):
    uk = module_lab.start("auth", disk=images[image])
    kind = "FAT12" if image.endswith(".img") else "tar"
    uk.wait_console(rf"kv: {kind} disk, \d+ bytes, 2 files")
    uk.wait_console(r"auth: 2 users, HTTP on port 8088")
    for name, pw in DISK_USERS.items():
        q = f"/?user={name}&password={pw.replace(' ', '%20').replace(chr(39), '%27')}"
        assert curl(uk, q, 8088)[:2] == (200, f"hello {name}!\n")
        assert curl(uk, q + "x", 8088)[:2] == (401, "Invalid login\n")
    # the compiled-in users are not the store while a disk is attached
    compiled = (ROOT / "unikernel" / "data" / "auth" / "users" / "mirage").read_text().strip()
    assert curl(uk, f"/?user=mirage&password={compiled}", 8088)[:2] == (401, "Invalid login\n")
    assert curl(uk, "/?user=diskann", 8088)[:2] == (401, "No user given\n")
    assert uk.stop(signal.SIGTERM) == 0
    uk.assert_no_sanitizer_report()
    for pw in DISK_USERS.values():
        assert pw not in uk.console_text()


@pytest.mark.parametrize("image", ["site.img", "site.tar"])
def test_www_files_from_disk(module_lab, images, image):
    uk = module_lab.start("www", disk=images[image])
    uk.wait_console(r"www: 4 files, HTTP on port 80")
    site = images["site"]
    assert curl(uk, "/", 80) == (200, "<h1>served from the disk</h1>\n", "text/html; charset=utf-8")
    assert curl(uk, "/style.css", 80) == (200, "h1 { color: teal }\n", "text/css; charset=utf-8")
    assert curl(uk, "/docs/deeper/A%20Long%20Page%20Name.html", 80) == (
        200, "<p>long name</p>\n", "text/html; charset=utf-8")
    assert curl(uk, "/missing.html", 80)[:2] == (404, "Not Found\n")
    assert curl(uk, "/docs/", 80)[:2] == (404, "Not Found\n")  # no docs/index.html
    # a 150 KB file, streamed by TCP from the pointer the store keeps, byte for byte
    got = uk.exec_in_ns(["sh", "-c", f"curl -sS -m 30 http://{uk.ip}/docs/data.bin | sha256sum"])
    assert got.stdout.split()[0] == hashlib.sha256((site / "docs" / "data.bin").read_bytes()).hexdigest()
    assert uk.stop(signal.SIGTERM) == 0
    uk.assert_no_sanitizer_report()


def test_www_with_a_disk_that_is_no_file_system(module_lab, images):
    uk = module_lab.start("www", disk=images["garbage.img"])
    uk.wait_console(r"holds no readable FAT or tar: serving nothing")
    assert curl(uk, "/", 80)[:2] == (404, "Not Found\n")
    assert uk.stop(signal.SIGTERM) == 0
    uk.assert_no_sanitizer_report()


def test_missing_disk_file_is_refused(module_lab, tmp_path):
    uk = module_lab.start("www", disk=tmp_path / "nope.img", wait=False)
    assert uk.proc.wait(timeout=10) == 2
    assert "--disk" in uk.stderr_text() and "No such file" in uk.stderr_text()
