"""--disk: files attached as they are, directories packed (by unikernel/tools/mkdisk.py, with the
real mkfs.fat/mcopy or tar) only when they changed; bad paths refused before anything is made."""

from __future__ import annotations

import os
import shutil
import tarfile
import time

import pytest

from mirage_env import disks
from mirage_env.disks import DiskError
from tests.support import require

needs_packer = pytest.mark.skipif(not disks.MKDISK.is_file(), reason="unikernel/tools/mkdisk.py not in this tree")


def site(tmp_path):
    root = tmp_path / "site"
    (root / "css").mkdir(parents=True)
    (root / "index.html").write_text("<h1>hello from a disk</h1>\n")
    (root / "css" / "a.css").write_text("h1 { color: red }\n")
    return root


def test_parse_files_directories_modes_and_devices(tmp_path):
    image = tmp_path / "data.img"
    image.write_bytes(b"\0" * 1024)
    specs = disks.parse([str(site(tmp_path)), f"{image}:rw", f"{image}:ro"])
    assert [(s.vdev, s.writable, s.is_dir) for s in specs] == [("xvdb", False, True), ("xvdc", True, False),
                                                                 ("xvdd", False, False)]


@pytest.mark.parametrize("value, why", [("/nonexistent/dir", "does not exist"), ("", "does not exist"),
                                        ("/nonexistent:rw", "does not exist")])
def test_missing_paths_are_refused(value, why):
    with pytest.raises(DiskError, match=why):
        disks.parse([value])


def test_an_empty_file_and_too_many_disks_are_refused(tmp_path):
    empty = tmp_path / "empty.img"
    empty.touch()
    with pytest.raises(DiskError, match="empty"):
        disks.parse([str(empty)])
    image = tmp_path / "x.img"
    image.write_bytes(b"x")
    with pytest.raises(DiskError, match="at most 25"):
        disks.parse([str(image)] * 26)


def test_tree_hash_follows_names_sizes_and_mtimes(tmp_path):
    root = site(tmp_path)
    first = disks.tree_hash(root)
    assert disks.tree_hash(root) == first
    page = root / "index.html"
    os.utime(page, ns=(page.stat().st_atime_ns, page.stat().st_mtime_ns + 10**9))
    touched = disks.tree_hash(root)
    assert touched != first
    (root / "new.txt").write_text("x")
    assert disks.tree_hash(root) != touched


def test_a_file_is_attached_as_it_is(tmp_path):
    image = tmp_path / "kv.img"
    image.write_bytes(b"abc" * 1000)
    [prepared] = disks.prepare(disks.parse([str(image)]), tmp_path / "cache")
    assert prepared.image == image.resolve() and not prepared.rebuilt
    assert prepared.sha256 == disks.file_sha256(image)
    assert not (tmp_path / "cache").exists()


@needs_packer
def test_a_directory_becomes_a_fat_image_rebuilt_only_when_it_changed(tmp_path):
    require(shutil.which("mkfs.fat") is not None and shutil.which("mcopy") is not None,
            "needs dosfstools and mtools (apt-get install dosfstools mtools)")
    root = site(tmp_path)
    cache = tmp_path / "cache"
    [first] = disks.prepare(disks.parse([str(root)]), cache, "fat")
    assert first.rebuilt and first.image.parent == cache
    boot = first.image.read_bytes()[:512]
    assert boot[510:512] == b"\x55\xaa" and b"FAT" in boot  # a FAT boot sector
    [again] = disks.prepare(disks.parse([str(root)]), cache, "fat")
    assert not again.rebuilt and again.sha256 == first.sha256
    time.sleep(0.01)
    (root / "index.html").write_text("<h1>changed</h1>\n")
    [changed] = disks.prepare(disks.parse([str(root)]), cache, "fat")
    assert changed.rebuilt and changed.sha256 != first.sha256


@needs_packer
def test_tar_format_holds_the_tree(tmp_path):
    root = site(tmp_path)
    [image] = disks.prepare(disks.parse([str(root)]), tmp_path / "cache", "tar")
    with tarfile.open(image.image) as tar:
        names = tar.getnames()
    assert any(n.endswith("index.html") for n in names) and any(n.endswith("css/a.css") for n in names)
    # the same directory in the other format is another image, never the stale tar
    assert disks.prepare(disks.parse([str(root)]), tmp_path / "cache", "tar")[0].rebuilt is False


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(DiskError, match="--disk-format 'zip'"):
        disks.prepare(disks.parse([str(site(tmp_path))]), tmp_path / "cache", "zip")
