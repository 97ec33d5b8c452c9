"""`--disk PATH[:rw]`: a file attached as it is, a directory packed into an image first.

Directories are packed on this machine by ``unikernel/tools/mkdisk.py`` (FAT through mkfs.fat +
mcopy, which need no loop devices — what MirageOS's generated make-fat*-image.sh scripts build —
or tar, the format of Mirage's tar-backed key/value store). An image is rebuilt only when the
directory changed: a hash of every entry's relative name, size and mtime, kept beside the image
in the state directory. Disks are attached as xvdb, xvdc, ... read-only unless ``:rw``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .paths import UNIKERNEL_DIR
from .errors import EXIT_BAD_INPUT, MirageEnvError

FORMATS = ("fat", "tar")
MAX_DISKS = 25  # xvdb..xvdz
MKDISK = UNIKERNEL_DIR / "tools" / "mkdisk.py"


class DiskError(MirageEnvError, ValueError):
    """A --disk value that cannot work; the message names it and the fix."""

    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True)
class DiskSpec:
    source: Path
    writable: bool
    vdev: str

    @property
    def is_dir(self) -> bool:
        return self.source.is_dir()


@dataclass(frozen=True)
class DiskImage:
    spec: DiskSpec
    image: Path  # a file on this machine
    sha256: str
    rebuilt: bool = False


def parse(values: list[str] | tuple[str, ...]) -> list[DiskSpec]:
    """PATH, PATH:ro or PATH:rw for each --disk, checked before anything is made."""
    if len(values) > MAX_DISKS:
        raise DiskError(f"--disk: {len(values)} disks; at most {MAX_DISKS} (xvdb..xvdz)")
    specs = []
    for i, value in enumerate(values):
        path, mode = value, "ro"
        head, sep, tail = value.rpartition(":")
        if sep and tail in ("ro", "rw"):
            path, mode = head, tail
        source = Path(path).expanduser()
        if not path or not source.exists():
            raise DiskError(f"--disk {value}: {path or '(empty)'} does not exist. Fix: give an image file or a "
                            "directory to pack (add :rw for a writable disk)")
        if not (source.is_file() or source.is_dir()):
            raise DiskError(f"--disk {value}: {path} is neither a regular file nor a directory")
        if source.is_file() and source.stat().st_size == 0:
            raise DiskError(f"--disk {value}: {path} is empty; a block device needs at least one sector")
        if not os.access(source, os.R_OK):
            raise DiskError(f"--disk {value}: {path} is not readable")
        specs.append(DiskSpec(source.resolve(), mode == "rw", f"xvd{chr(ord('b') + i)}"))
    return specs


def tree_hash(directory: Path) -> str:
    """What the image depends on: every file's and directory's relative name, size and mtime."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files) + [d + "/" for d in dirs]:
            full = Path(root) / name.rstrip("/")
            st = full.lstat()
            rel = full.relative_to(directory).as_posix()
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{name.endswith('/')}\n".encode())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def pack(directory: Path, out: Path, fmt: str, app: str = "none") -> None:
    """Run the packer (its own messages name bad files)."""
    if not MKDISK.is_file():
        raise DiskError(f"--disk {directory}: packing directories needs {MKDISK}, which this checkout "
                        "lacks. Fix: update mirage-env, or give an image file instead of a directory")
    res = subprocess.run([sys.executable, str(MKDISK), "--format", fmt, "--app", app, "--data", str(directory),
                          "--out", str(out)], capture_output=True, text=True)
    if res.returncode != 0:
        raise DiskError(f"--disk {directory}: packing it as {fmt} failed: "
                        f"{(res.stderr or res.stdout).strip()[-800:]}")


def prepare(specs: list[DiskSpec], cache: Path, fmt: str = "fat", app: str = "none") -> list[DiskImage]:
    """An image file per disk: files as they are, directories packed into CACHE (re-packed only
    when the directory's tree hash or the format/app changed)."""
    if fmt not in FORMATS:
        raise DiskError(f"--disk-format {fmt!r}: use one of {', '.join(FORMATS)}")
    images = []
    for spec in specs:
        if not spec.is_dir:
            images.append(DiskImage(spec, spec.source, file_sha256(spec.source)))
            continue
        cache.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(str(spec.source).encode()).hexdigest()[:16]
        image, stamp_file = cache / f"{key}.{fmt}.img", cache / f"{key}.{fmt}.json"
        stamp = {"source": str(spec.source), "format": fmt, "app": app, "tree": tree_hash(spec.source)}
        try:
            old = json.loads(stamp_file.read_text())
        except (OSError, ValueError):
            old = {}
        if image.is_file() and {k: old.get(k) for k in stamp} == stamp and old.get("sha256"):
            images.append(DiskImage(spec, image, old["sha256"]))
            continue
        tmp = image.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        pack(spec.source, tmp, fmt, app)
        tmp.replace(image)
        stamp["sha256"] = file_sha256(image)
        stamp_file.write_text(json.dumps(stamp, indent=2))
        images.append(DiskImage(spec, image, stamp["sha256"], rebuilt=True))
    return images
