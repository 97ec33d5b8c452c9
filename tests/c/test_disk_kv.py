"""The key/value store on a disk (core/diskkv.c, fat.c, tar.c) on real images: FAT12/16/32 made
by mkfs.fat + mcopy (through tools/mkdisk.py and by hand), tar made by GNU tar and Python's
tarfile; long names, subdirectories, fragmented files, missing keys, and truncated or corrupt
images (which must give clean misses, never a crash or a hang: ASan + UBSan).

tests/c/disk_check.c reads an image through plat_block_read (pread, 512-byte sectors) and prints
what kv_get returns; every value is compared with the file it came from.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from mirage_env.bundled import pack_data
from tests.c.cbuild import compile_c, run_c

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORE = ROOT / "unikernel" / "core"
MKDISK = ROOT / "unikernel" / "tools" / "mkdisk.py"
MTOOLS_ENV = {**os.environ, "MTOOLSRC": "/dev/null", "MTOOLS_SKIP_CHECK": "1"}


def need(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        msg = f"{tool} is not installed (apt-get install clang dosfstools mtools)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def load_mkdisk():
    spec = importlib.util.spec_from_file_location("mkdisk_under_test", MKDISK)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


mkdisk = load_mkdisk()


@pytest.fixture(scope="module")
def disk_check(tmp_path_factory) -> Path:
    srcs = [HERE / "disk_check.c"] + [CORE / f"{n}.c" for n in ("kv", "diskkv", "fat", "tar", "rt", "sha256", "pbkdf2")]
    return compile_c(tmp_path_factory.mktemp("disk") / "disk_check", srcs)


def run(dc: Path, img: Path | str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    r = run_c(dc, str(img), *args, timeout=60, stdin=stdin)
    assert r.returncode == 0 and "runtime error" not in r.stderr and "Sanitizer" not in r.stderr, r.stderr
    return r


def get(dc: Path, img: Path, *keys: str) -> dict[str, tuple[bytes, str] | None]:
    out = {}
    for line in run(dc, img, "get", *keys).stdout.splitlines():
        assert not line.startswith("UNSTABLE"), line
        f = line.split("\t")
        out[f[0]] = None if f[1] == "missing" else (bytes.fromhex(f[3]), f[2])
    return out


def make_tree(d: Path) -> dict[str, bytes]:
    """A www tree: long names, subdirectories, a directory spanning many clusters, a file of
    many clusters, a non-ASCII name, every content type."""
    files = {
        "index.html": b"<h1>disk</h1>\n",
        "css/site.css": b"body { color: red }\n",
        "sub/deeper/A Very Long File Name With Spaces.txt": b"long\n",
        "sub/readme.txt": b"short 8.3 name\n",
        "big/blob.bin": os.urandom(70_000),
        "UPPER.TXT": b"upper\n",
    }
    for i in range(40):
        files[f"many/file-number-{i:03d}-with-a-long-name.html"] = f"<p>{i}</p>\n".encode()
    for ext in pack_data.CONTENT_TYPES:
        files[f"types/x{ext}"] = ext.encode()
    files["types/y.HTML"] = b"upper-case extension"
    files["types/noext"] = b"none"
    for odd in (".hidden", "..html", ".a.html", "a..html", "b.tar.gz"):
        files[f"types/{odd}"] = odd.encode()
    for rel, body in files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body)
    return files


def check_tree(dc: Path, img: Path, files: dict[str, bytes]) -> None:
    """Every file of the tree reads back with its bytes and content type; misses miss."""
    got = get(dc, img, *files)
    for rel, body in files.items():
        assert got[rel] is not None, f"{rel} missing from {img.name}"
        assert got[rel][0] == body, rel
        assert got[rel][1] == pack_data.content_type(rel), rel
    # the same keys with the www leading slash; misses
    lead = get(dc, img, "/index.html", "/nope.html", "sub", "sub/", "css//site.css", "Index.html",
               "sub/deeper/a very long file name with spaces.txt", "../index.html", "./index.html")
    assert lead["/index.html"][0] == files["index.html"]
    assert all(v is None for k, v in lead.items() if k != "/index.html"), lead
    count = run(dc, img, "count").stdout.strip()
    assert int(count) == len(files)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    d = tmp_path_factory.mktemp("tree") / "www"
    return d, make_tree(d)


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_fat_from_mkdisk(disk_check, tree, tmp_path, bits):
    need("mkfs.fat"), need("mcopy")
    img = mkdisk.make_disk("fat", "www", tree[0], tmp_path / f"w{bits}.img", fat_bits=bits)
    check_tree(disk_check, img, tree[1])
    assert f"FAT{bits} disk" in run(disk_check, img, "count").stderr


def test_tar_from_mkdisk(disk_check, tree, tmp_path):
    img = mkdisk.make_disk("tar", "www", tree[0], tmp_path / "w.tar")
    check_tree(disk_check, img, tree[1])


def test_non_ascii_names(disk_check, tmp_path):
    """tar keeps UTF-8 names (pax path=); FAT would keep a short one in a code page: refused."""
    d = tmp_path / "d"
    (d / "caf\u00e9").mkdir(parents=True)
    (d / "index.html").write_bytes(b"i")
    (d / "caf\u00e9" / "men\u00fc.json").write_bytes(b"{}")
    img = mkdisk.make_disk("tar", "www", d, tmp_path / "u.tar")
    assert get(disk_check, img, "caf\u00e9/men\u00fc.json")["caf\u00e9/men\u00fc.json"] == (b"{}", "application/json")
    with pytest.raises(mkdisk.DiskError, match="not ASCII"):
        mkdisk.make_disk("fat", "www", d, tmp_path / "u.img")


@pytest.mark.parametrize("fmt", ["gnu", "pax", "ustar", "oldgnu"])
def test_tar_from_gnu_tar(disk_check, tmp_path, fmt):
    tar = need("tar")
    d = tmp_path / "d"
    files = {"index.html": b"hi\n", "a/b.txt": b"b\n",
             # > 100 bytes: ustar splits it into prefix + name, gnu writes an 'L' record, pax a path=
             ("x" * 60 + "/" + "y" * 60 + "/file.css"): b"deep\n"}
    for rel, body in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(body)
    os.symlink("index.html", d / "link.html")  # a symlink entry: skipped, never followed
    img = tmp_path / "t.tar"
    subprocess.run([tar, f"--format={fmt}", "-cf", str(img), "-C", str(d), "."], check=True)
    got = get(disk_check, img, *files, "link.html", "a")
    for rel, body in files.items():
        assert got[rel] == (body, pack_data.content_type(rel)), (fmt, rel)
    assert got["link.html"] is None and got["a"] is None


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_tar_from_python_tarfile(disk_check, tmp_path, fmt):
    img = tmp_path / "p.tar"
    names = {"index.html": b"1", "dir/n\u00e4me.txt": b"2", "d" * 60 + "/" + "z" * 60 + ".txt": b"3"}
    if fmt == tarfile.USTAR_FORMAT:
        names = {k: v for k, v in names.items() if k.isascii()}
    with tarfile.open(img, "w", format=fmt) as t:
        for rel, body in names.items():
            info = tarfile.TarInfo(rel)
            info.size = len(body)
            t.addfile(info, io.BytesIO(body))
        # a later entry of the same name wins, as when extracting
        info = tarfile.TarInfo("index.html")
        info.size = 5
        t.addfile(info, io.BytesIO(b"later"))
    got = get(disk_check, img, *names)
    assert got["index.html"][0] == b"later"
    for rel, body in names.items():
        if rel != "index.html":
            assert got[rel][0] == body, rel


def test_fat_by_hand_with_fragmented_file(disk_check, tmp_path):
    """mkfs.fat + mcopy directly (as MirageOS's make-fat-images scripts do), with a file whose
    clusters are not contiguous: the reader must follow the chain."""
    mkfs, mcopy, mdel = need("mkfs.fat"), need("mcopy"), need("mdel")
    img = tmp_path / "h.img"
    subprocess.run([mkfs, "-C", "-s", "1", str(img), "400"], check=True, capture_output=True)
    a, b, c = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "Fragmented File.bin"
    a.write_bytes(os.urandom(3000))
    b.write_bytes(os.urandom(3000))
    c.write_bytes(os.urandom(9000))
    for f in (a, b):
        subprocess.run([mcopy, "-i", str(img), str(f), "::/"], check=True, env=MTOOLS_ENV)
    subprocess.run([mdel, "-i", str(img), "::/a.bin"], check=True, env=MTOOLS_ENV)
    subprocess.run([mcopy, "-i", str(img), "-s", str(c), "::/"], check=True, env=MTOOLS_ENV)
    got = get(disk_check, img, "Fragmented File.bin", "b.bin", "a.bin")
    assert got["Fragmented File.bin"][0] == c.read_bytes()
    assert got["b.bin"][0] == b.read_bytes()
    assert got["a.bin"] is None  # deleted


def test_fat_with_4096_byte_sectors(disk_check, tmp_path):
    """mkfs.fat -S 4096 (a logical sector of 4 KiB on a disk read in 512-byte sectors)."""
    mkfs, mcopy, mmd = need("mkfs.fat"), need("mcopy"), need("mmd")
    img = tmp_path / "s4k.img"
    subprocess.run([mkfs, "-S", "4096", "-s", "1", "-C", str(img), "2048"], check=True, capture_output=True)
    body = os.urandom(20_000)
    (tmp_path / "Some Long Name.bin").write_bytes(body)
    subprocess.run([mmd, "-i", str(img), "::/sub"], check=True, env=MTOOLS_ENV)
    subprocess.run([mcopy, "-i", str(img), str(tmp_path / "Some Long Name.bin"), "::/sub/"], check=True, env=MTOOLS_ENV)
    assert get(disk_check, img, "sub/Some Long Name.bin")["sub/Some Long Name.bin"][0] == body


@pytest.mark.parametrize("fmt", ["fat", "tar"])
def test_auth_records_on_disk(disk_check, tmp_path, monkeypatch, fmt):
    if fmt == "fat":
        need("mkfs.fat"), need("mcopy")
    monkeypatch.setenv(pack_data.ITERATIONS_ENV, "1000")
    secrets = {"ann": "correct horse battery", "bob": "s3cr3t-P4ss", "c.d_e-f": "xyzzy"}
    (tmp_path / "users").mkdir()
    for u, pw in secrets.items():
        (tmp_path / "users" / u).write_text(pw + "\n")
    img = mkdisk.make_disk(fmt, "auth", tmp_path, tmp_path / f"users.{fmt}")
    raw = img.read_bytes()
    for pw in secrets.values():
        assert pw.encode() not in raw  # only salted hashes
    for u, pw in secrets.items():
        assert run(disk_check, img, "auth", u, pw).stdout.strip() == "ok"
        assert run(disk_check, img, "auth", u, pw + "x").stdout.strip() == "bad"
    assert run(disk_check, img, "auth", "nobody", "x").stdout.strip() == "nouser"
    rec = get(disk_check, img, "user/ann")["user/ann"][0]
    it, salt, dk = struct.unpack(">I16s32s", rec)
    assert it == 1000 and dk == hashlib.pbkdf2_hmac("sha256", b"correct horse battery", salt, 1000)


def test_store_limits(disk_check, tmp_path):
    """The store keeps 256 files and 256 KiB (values and keys): past that a file is not served,
    said once on the console; what it kept stays served."""
    d = tmp_path / "d"
    (d / "f").mkdir(parents=True)
    for i in range(300):
        (d / "f" / f"{i:03d}.txt").write_text(str(i))
    (d / "big1.bin").write_bytes(b"1" * 200_000)
    (d / "big2.bin").write_bytes(b"2" * 100_000)
    img = mkdisk.make_disk("tar", "none", d, tmp_path / "d.tar")
    keys = [f"f/{i:03d}.txt" for i in range(300)]
    r = run(disk_check, img, "walk", stdin="\n".join(keys + keys[:3]) + "\n")
    lines = r.stdout.splitlines()[1:]
    assert sum(not line.endswith("missing") for line in lines) == 256 + 3
    assert lines[256].endswith("missing") and r.stderr.count("no room") == 1
    r = run(disk_check, img, "walk", stdin="big1.bin\nbig2.bin\nf/000.txt\nbig1.bin\n")
    got = r.stdout.splitlines()[1:]
    assert not got[0].endswith("missing") and got[1].endswith("missing")
    assert not got[2].endswith("missing") and not got[3].endswith("missing")


def test_no_disk_is_the_compiled_in_table(disk_check):
    r = run(disk_check, "-", "get", "/index.html")
    assert r.stdout.strip() == "/index.html\tmissing" and r.stderr == ""  # empty table, no disk message


# ---- hostile images: clean misses, no crash, no hang ----------------------------------------


@pytest.fixture(scope="module")
def small_fat(tmp_path_factory, tree) -> Path:
    need("mkfs.fat"), need("mcopy")
    return mkdisk.make_disk("fat", "www", tree[0], tmp_path_factory.mktemp("sf") / "s.img", fat_bits=12)


def test_truncated_images_serve_nothing(disk_check, small_fat, tree, tmp_path):
    tar_img = mkdisk.make_disk("tar", "www", tree[0], tmp_path / "w.tar")
    for src in (small_fat, tar_img):
        raw = src.read_bytes()
        for cut in (0, 100, 512, 513, len(raw) // 3, len(raw) // 2, len(raw) - 1024):
            img = tmp_path / "cut.img"
            img.write_bytes(raw[:cut])
            r = run(disk_check, img, "get", "index.html", "big/blob.bin")
            for line in r.stdout.splitlines():
                key, rest = line.split("\t", 1)
                if rest != "missing":  # what is read must be the real bytes
                    assert bytes.fromhex(rest.split("\t")[2]) == tree[1][key], (src.name, cut, key)
            if src == small_fat and cut < len(raw) - 1024:
                assert "serving nothing" in r.stderr, (cut, r.stderr)


def _fat12_geometry(raw: bytes) -> tuple[int, int]:
    bps, = struct.unpack_from("<H", raw, 11)
    rsvd, = struct.unpack_from("<H", raw, 14)
    return bps, rsvd * bps


def _set_fat12(raw: bytearray, fat_off: int, n: int, v: int) -> None:
    off = fat_off + n + n // 2
    cur, = struct.unpack_from("<H", raw, off)
    cur = (cur & 0x000F) | (v << 4) if n & 1 else (cur & 0xF000) | v
    struct.pack_into("<H", raw, off, cur)


def test_fat_chain_cycle_and_bad_clusters(disk_check, small_fat, tree, tmp_path):
    raw = bytearray(small_fat.read_bytes())
    _, fat_off = _fat12_geometry(raw)
    # every cluster points to itself or to cluster 2: chains loop, directories loop
    for target in ("self", 2, 0, 0xFF7, 0xFFF0 & 0xFFF, 4000):
        bad = bytearray(raw)
        for n in range(2, 300):
            _set_fat12(bad, fat_off, n, n if target == "self" else target)
        img = tmp_path / "loop.img"
        img.write_bytes(bad)
        r = run(disk_check, img, "get", "big/blob.bin", "many/file-number-039-with-a-long-name.html")
        got = {line.split("\t")[0]: line for line in r.stdout.splitlines()}
        assert got["big/blob.bin"].endswith("missing"), target  # 70 KB never fits one cluster


def test_corrupt_boot_sector_fields(disk_check, small_fat, tmp_path):
    raw = small_fat.read_bytes()
    for off, val in [(11, b"\x00\x00"), (11, b"\x01\x02"), (13, b"\x00"), (13, b"\x03"), (14, b"\x00\x00"),
                     (16, b"\x00"), (16, b"\xff"), (17, b"\x00\x00"), (19, b"\xff\xff"), (22, b"\x00\x00"),
                     (22, b"\xff\xff"), (510, b"\x00\x00")]:
        img = tmp_path / "bpb.img"
        img.write_bytes(raw[:off] + val + raw[off + len(val):])
        r = run(disk_check, img, "get", "index.html")
        assert "index.html\t" in r.stdout, (off, val)


def test_tar_bad_checksum_and_sizes(disk_check, tmp_path):
    img = tmp_path / "t.tar"
    with tarfile.open(img, "w", format=tarfile.USTAR_FORMAT) as t:
        for name, body in (("a.txt", b"A" * 600), ("b.txt", b"B")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            t.addfile(info, io.BytesIO(body))
    raw = img.read_bytes()
    assert get(disk_check, img, "b.txt")["b.txt"][0] == b"B"
    bad = bytearray(raw)
    bad[1536 + 0] ^= 1  # b.txt's header (after a's 512 + 1024 bytes): checksum no longer matches
    img.write_bytes(bad)
    assert get(disk_check, img, "b.txt", "a.txt") == {"b.txt": None, "a.txt": (b"A" * 600, "text/plain; charset=utf-8")}
    # a's size claims more than the disk holds (checksum fixed up)
    bad = bytearray(raw)
    bad[124:136] = b"77777777777\0"
    bad[148:156] = b"        "
    bad[148:156] = ("%06o\0 " % sum(bad[:512])).encode()
    img.write_bytes(bad)
    assert get(disk_check, img, "a.txt", "b.txt") == {"a.txt": None, "b.txt": None}


# ---- tools/mkdisk.py: bad input is refused before anything is written -----------------------


def test_mkdisk_refuses_bad_input(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    (d / "index.html").write_text("x")
    (tmp_path / "secret").write_text("outside")
    out = tmp_path / "o.img"
    os.symlink(tmp_path / "secret", d / "leak")
    assert mkdisk.main(["--format", "tar", "--app", "www", "--data", str(d), "--out", str(out)]) == 1
    assert "outside" in capsys.readouterr().err and not out.exists()
    (d / "leak").unlink()
    os.symlink("index.html", d / "inside.html")  # stays inside: copied
    (d / "Index.HTML").write_text("y")
    assert mkdisk.main(["--format", "fat", "--app", "www", "--data", str(d), "--out", str(out)]) == 1
    assert "differ only in case" in capsys.readouterr().err and not out.exists()
    assert mkdisk.main(["--format", "tar", "--app", "www", "--data", str(d), "--out", str(out)]) == 0
    with tarfile.open(out) as t:
        assert t.extractfile("inside.html").read() == b"x"
    for args, msg in [
        (["--format", "zip", "--app", "www", "--data", str(d)], "--format 'zip'"),
        (["--format", "tar", "--app", "db", "--data", str(d)], "--app 'db'"),
        (["--format", "tar", "--app", "www", "--data", str(tmp_path / "nope")], "not a directory"),
        (["--format", "tar", "--app", "auth", "--data", str(d)], "users"),
        (["--format", "tar", "--app", "www", "--data", str(d), "--fat-bits", "16"], "--fat-bits 16"),
    ]:
        assert mkdisk.main([*args, "--out", str(tmp_path / "x.img")]) == 1
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, err
        assert not (tmp_path / "x.img").exists()
    (d / "Index.HTML").unlink()
    (d / "www-less").mkdir()
    (d / "www-less" / "a.txt").write_text("a")
    assert mkdisk.main(["--format", "tar", "--app", "www", "--data", str(d / "www-less"), "--out", str(out)]) == 1
    assert "index.html" in capsys.readouterr().err
