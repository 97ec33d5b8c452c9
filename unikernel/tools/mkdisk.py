#!/usr/bin/env python3
"""Build a disk image for the unikernel's key/value store (core/diskkv.c).

    python3 tools/mkdisk.py --format fat|tar --app auth|www|none --data DIR --out IMG

Standard library plus, for FAT, the system's ``mkfs.fat`` (dosfstools) and ``mcopy``/``mmd``
(mtools): no loop devices, no root.  Tar images are written with Python's tarfile (pax).

What goes on the disk (a key is a path on the disk; core/diskkv.c drops the leading '/'):

* ``auth``: ``DIR/users/<name>`` holds a password, as for tools/pack_data.py.  The image holds
  the file ``user/<name>`` (the key auth looks up) with the 52-byte salted PBKDF2 record that
  pack_data.py writes (iterations BE32 || salt[16] || PBKDF2-HMAC-SHA256[32]); never a password.
* ``www`` and ``none``: the tree of DIR as it is (subdirectories included).  www serves each
  file at ``/<path>`` with the content type of its extension.

Symlinks are followed only while they stay inside DIR; one that leads out is refused.  Names are
case-sensitive in the unikernel (also on FAT), so names that differ only in case are refused for
FAT, and so are non-ASCII names (FAT keeps a short one in an OEM code page; tar takes any UTF-8).  Everything is checked before the image is written; the image is replaced atomically.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pack_data  # noqa: E402  (a sibling script: the hashing and the auth data rules)

FORMATS = ("fat", "tar")
APPS = ("auth", "www", "none")
FAT_BITS = (12, 16, 32)
PATH_MAX = 255  # core/disk.h DISK_NAME_MAX: longer keys never match
WWW_FILE_MAX = 256 * 1024  # core/diskkv.c DISKKV_ARENA: what the unikernel keeps in memory
FAT_BAD_CHARS = set('"*:<>?\\|')
# mkfs.fat needs at least this many clusters for a FAT32 (65525) or FAT16 (4085) file system
MIN_CLUSTERS = {12: 16, 16: 4085 + 16, 32: 65525 + 16}


class DiskError(ValueError):
    """Bad input for the image (names the file and the fix)."""


def _files(data_dir: Path) -> list[tuple[str, Path]]:
    """(relative posix path, real file) for every regular file under data_dir, sorted."""
    root = data_dir.resolve()
    out: list[tuple[str, Path]] = []
    seen_dirs = {root}
    for cur, dirs, names in os.walk(data_dir, followlinks=True):
        cur_path = Path(cur)
        for d in list(dirs):
            p = cur_path / d
            real = p.resolve()
            if not real.is_relative_to(root):
                raise DiskError(f"{p} is a symlink to {real}, outside {data_dir}; copy the files in instead")
            if real in seen_dirs:
                dirs.remove(d)  # a second way to the same directory (a loop): walk it once
            seen_dirs.add(real)
        dirs.sort()
        for name in sorted(names):
            p = cur_path / name
            real = p.resolve()
            if not real.is_relative_to(root):
                raise DiskError(f"{p} is a symlink to {real}, outside {data_dir}; copy the file in instead")
            if not real.is_file():
                raise DiskError(f"{p} is not a regular file (a device, socket or broken link); remove it")
            out.append((p.relative_to(data_dir).as_posix(), real))
    return out


def _check_name(rel: str, fmt: str) -> None:
    if len(rel.encode()) > PATH_MAX:
        raise DiskError(f"path {rel!r} is {len(rel.encode())} bytes; the unikernel reads keys of at most {PATH_MAX}")
    if fmt == "fat":
        for part in rel.split("/"):
            bad = sorted(c for c in set(part) if c in FAT_BAD_CHARS or ord(c) < 0x20)
            if bad or part.endswith((".", " ")):
                raise DiskError(f"name {part!r} in {rel!r} cannot be stored on FAT ({bad or 'trailing dot/space'}); "
                                f"rename it or use --format tar")
            if not part.isascii():
                # mtools stores a non-ASCII name that fits 8.3 as a short name in an OEM code page,
                # which the unikernel does not translate
                raise DiskError(f"name {part!r} in {rel!r} is not ASCII, which FAT keeps in a code page; "
                                f"rename it or use --format tar")


def collect(app: str, data_dir: Path, fmt: str, iterations: int | None = None) -> list[tuple[str, bytes | Path]]:
    """What the image holds: (path on the disk, bytes or the file to copy)."""
    if not data_dir.is_dir():
        raise DiskError(f"--data {data_dir} is not a directory; give the directory to pack")
    entries: list[tuple[str, bytes | Path]]
    if app == "auth":
        # pack_data checks the users/<name> files (names, lengths) and hashes them
        entries = [(key.decode(), rec) for key, rec, _ in pack_data.auth_entries(data_dir, iterations)]
    else:
        entries = list(_files(data_dir))
        if app == "www":
            if not any(rel == "index.html" for rel, _ in entries):
                raise DiskError(f"www data dir {data_dir} has no index.html; add one (served for /)")
            for rel, src in entries:
                size = src.stat().st_size
                if size > WWW_FILE_MAX:
                    raise DiskError(f"{src} is {size} bytes; www keeps at most {WWW_FILE_MAX} bytes of files "
                                    f"in memory: make it smaller")
    folded: dict[str, str] = {}
    for rel, _ in entries:
        _check_name(rel, fmt)
        if fmt == "fat":
            other = folded.setdefault(rel.lower(), rel)
            if other != rel:
                raise DiskError(f"{other!r} and {rel!r} differ only in case, which FAT cannot hold; "
                                f"rename one or use --format tar")
    return entries


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise DiskError(f"{name} is not installed; apt-get install dosfstools mtools (or use --format tar)")
    return path


def _run(cmd: list[str], env: dict[str, str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise DiskError(f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip()}")


def _payload(src: bytes | Path) -> bytes:
    return src if isinstance(src, bytes) else src.read_bytes()


def write_fat(entries: list[tuple[str, bytes | Path]], out: Path, bits: int | None) -> None:
    mkfs, mcopy, mmd = _tool("mkfs.fat"), _tool("mcopy"), _tool("mmd")
    # 512-byte clusters; room for every file rounded up to a cluster, directories and slack
    data = sum((len(_payload(s)) + 511) // 512 + 1 for _, s in entries)
    clusters = max(data * 5 // 4 + 64, MIN_CLUSTERS[bits or 12])
    kib = clusters // 2 + 128 + (2 * clusters * 4) // 1024  # + reserved sectors and two FATs
    env = {**os.environ, "MTOOLSRC": "/dev/null", "MTOOLS_SKIP_CHECK": "1", "LC_ALL": "C.UTF-8"}
    cmd = [mkfs, "-C", "-s", "1", "-n", "MIRAGEKV"]
    if bits:
        cmd += ["-F", str(bits)]
    _run(cmd + [str(out), str(kib)], env)
    made: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="mkdisk-") as tmp:
        for i, (rel, src) in enumerate(entries):
            parts = rel.split("/")
            for k in range(1, len(parts)):
                d = "/".join(parts[:k])
                if d not in made:
                    _run([mmd, "-i", str(out), "::/" + d], env)
                    made.add(d)
            if isinstance(src, bytes):
                staged = Path(tmp) / str(i)
                staged.write_bytes(src)
                src = staged
            _run([mcopy, "-i", str(out), "-Q", str(src), "::/" + rel], env)


def write_tar(entries: list[tuple[str, bytes | Path]], out: Path) -> None:
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for rel, src in entries:
            parts = rel.split("/")
            for k in range(1, len(parts)):
                d = "/".join(parts[:k])
                if d not in dirs:
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                    dirs.add(d)
            body = _payload(src)
            info = tarfile.TarInfo(rel)
            info.size, info.mode = len(body), 0o644
            tar.addfile(info, io.BytesIO(body))


def make_disk(fmt: str, app: str, data_dir: Path, out: Path, fat_bits: int | None = None,
              iterations: int | None = None) -> Path:
    """Check everything, then write the image to out (atomically)."""
    if fmt not in FORMATS:
        raise DiskError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if app not in APPS:
        raise DiskError(f"--app {app!r} is not one of {', '.join(APPS)}")
    if fat_bits is not None and (fmt != "fat" or fat_bits not in FAT_BITS):
        raise DiskError(f"--fat-bits {fat_bits} needs --format fat and one of 12, 16, 32")
    if out.is_dir():
        raise DiskError(f"--out {out} is a directory; give the image file to write")
    if not out.parent.is_dir():
        raise DiskError(f"--out {out}: directory {out.parent} does not exist; create it first")
    try:
        entries = collect(app, data_dir, fmt, iterations)
    except pack_data.AppDataError as e:
        raise DiskError(str(e)) from None
    if fmt == "fat":
        _tool("mkfs.fat"), _tool("mcopy"), _tool("mmd")
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        if fmt == "fat":
            write_fat(entries, tmp, fat_bits)
        else:
            write_tar(entries, tmp)
        os.chmod(tmp, 0o644 if app != "auth" else 0o600)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--format", required=True, help="fat or tar")
    p.add_argument("--app", required=True, help="auth (hashed user records), www or none (the tree as is)")
    p.add_argument("--data", type=Path, required=True, help="the directory to pack")
    p.add_argument("--out", type=Path, required=True, help="the image file to write")
    p.add_argument("--fat-bits", type=int, default=None, help="12, 16 or 32 (default: mkfs.fat picks by size)")
    args = p.parse_args(argv)
    try:
        make_disk(args.format, args.app, args.data, args.out, args.fat_bits)
    except DiskError as e:
        print(f"mkdisk: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
