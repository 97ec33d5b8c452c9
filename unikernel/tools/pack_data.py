#!/usr/bin/env python3
"""Pack an app's data into the read-only key/value table baked into it (core/kv.h).

    python3 tools/pack_data.py --app auth --data data/auth --out build/appdata-auth.c

Standard library only: the Makefile runs it wherever the unikernel is built (the controller, a
dom0 with only python3).

``generate(app, data_dir, out_c)`` writes a C file defining ``kv_table`` and
``kv_count``, sorted bytewise by key so ``kv_get`` can binary-search it.

* ``auth``: ``<data>/users/<name>`` holds a password.  Only a salted
  PBKDF2-HMAC-SHA256 record is stored, under the key ``user/<name>``:
  4-byte big-endian iteration count, 16-byte random salt, 32-byte derived key.
  Passwords never appear in the output, in messages or in exceptions.
* ``www``: every regular file under ``<data>``, key ``/<relative path>``,
  value the file's bytes, meta its content type.
* any other app: an empty table.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from pathlib import Path

DATA_ROOT = Path(__file__).resolve().parent.parent / "data"  # unikernel/data

# PBKDF2 cost.  The unikernel derives a key on every auth request, so the
# count is a trade-off between brute-force cost of a leaked image and
# requests/s: 4096 iterations are 8192 SHA-256 compressions, a few ms on
# one core (see benchmarks/http_wrk.py for the measured cost).
DEFAULT_ITERATIONS = 4096
ITERATIONS_ENV = "MIRAGE_AUTH_PBKDF2_ITERATIONS"
SALT_LEN = 16
DK_LEN = 32

USER_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_PASSWORD = 256
MAX_WWW_BYTES = 4 * 1024 * 1024

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "application/javascript",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".xml": "application/xml",
    ".pdf": "application/pdf",
    ".wasm": "application/wasm",
}
DEFAULT_TYPE = "application/octet-stream"


class AppDataError(ValueError):
    """Bad app data (names the file and the fix, never a password)."""


def default_data_dir(app: str) -> Path | None:
    d = DATA_ROOT / app
    return d if d.is_dir() else None


def iterations_from_env() -> int:
    raw = os.environ.get(ITERATIONS_ENV)
    if raw is None:
        return DEFAULT_ITERATIONS
    try:
        n = int(raw)
    except ValueError:
        raise AppDataError(f"{ITERATIONS_ENV}={raw!r} is not an integer; use e.g. 4096") from None
    if not 1 <= n <= 10_000_000:
        raise AppDataError(f"{ITERATIONS_ENV}={n} is out of range; use 1..10000000")
    return n


def hash_password(password: bytes, iterations: int, salt: bytes | None = None) -> bytes:
    """The stored record: iterations (BE32) || salt || PBKDF2-HMAC-SHA256."""
    if salt is None:
        salt = os.urandom(SALT_LEN)
    dk = hashlib.pbkdf2_hmac("sha256", password, salt, iterations, DK_LEN)
    return struct.pack(">I", iterations) + salt + dk


def _inside(p: Path, data_dir: Path) -> Path:
    """A data file must stay in its directory: a symlink that leads out of it (to a key, to
    /etc/shadow) would be baked into the image. Symlinks within the directory are fine."""
    if not p.resolve().is_relative_to(data_dir.resolve()):
        raise AppDataError(
            f"{p} is a symlink to {p.resolve()}, outside the data dir {data_dir}; copy the file into the data dir instead"
        )
    return p


def auth_entries(data_dir: Path, iterations: int | None = None) -> list[tuple[bytes, bytes, str | None]]:
    if iterations is None:
        iterations = iterations_from_env()
    users = data_dir / "users"
    if not users.is_dir():
        raise AppDataError(f"{users} is missing: the auth data dir needs users/<name> files holding passwords")
    entries = []
    for f in sorted(users.iterdir()):
        if f.name.startswith(".") or not _inside(f, data_dir).is_file():
            continue
        if not USER_RE.match(f.name):
            raise AppDataError(f"user file {f}: name must match [A-Za-z0-9._-]{{1,64}}; rename it")
        pw = f.read_bytes()
        if pw.endswith(b"\r\n"):
            pw = pw[:-2]
        elif pw.endswith(b"\n"):
            pw = pw[:-1]
        if not pw:
            raise AppDataError(f"user file {f} is empty: write the user's password into it")
        if len(pw) > MAX_PASSWORD or b"\n" in pw or b"\0" in pw:
            raise AppDataError(
                f"user file {f}: the password must be one line of at most {MAX_PASSWORD} bytes without NUL"
            )
        entries.append((b"user/" + f.name.encode(), hash_password(pw, iterations), None))
    if not entries:
        raise AppDataError(f"{users} holds no user files; add one file per user containing the password")
    return entries


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(name)[1].lower(), DEFAULT_TYPE)


def www_entries(data_dir: Path) -> list[tuple[bytes, bytes, str | None]]:
    if not data_dir.is_dir():
        raise AppDataError(f"www data dir {data_dir} is missing; create it with an index.html")
    entries = []
    total = 0
    for root, dirs, files in os.walk(data_dir):
        # os.walk does not descend into symlinked directories; they must still not lead out
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and _inside(Path(root) / d, data_dir))
        for name in sorted(files):
            if name.startswith("."):
                continue
            p = _inside(Path(root) / name, data_dir)
            if not p.is_file():
                continue
            rel = p.relative_to(data_dir).as_posix()
            body = p.read_bytes()
            total += len(body)
            if total > MAX_WWW_BYTES:
                raise AppDataError(f"www data dir {data_dir} exceeds {MAX_WWW_BYTES} bytes; remove large files")
            entries.append((("/" + rel).encode(), body, content_type(name)))
    if not any(k == b"/index.html" for k, _, _ in entries):
        raise AppDataError(f"www data dir {data_dir} has no index.html; add one (served for /)")
    return entries


def _c_bytes(b: bytes) -> str:
    if not b:
        return "0"
    lines = []
    for i in range(0, len(b), 16):
        lines.append("\t" + ", ".join(f"0x{x:02x}" for x in b[i : i + 16]) + ",")
    return "\n".join(lines)


def _c_string(s: str) -> str:
    out = []
    for ch in s.encode():
        if 0x20 <= ch < 0x7F and ch not in (ord('"'), ord("\\"), ord("?")):
            out.append(chr(ch))
        else:
            out.append(f"\\{ch:03o}")
    return '"' + "".join(out) + '"'


def render(app: str, entries: list[tuple[bytes, bytes, str | None]]) -> str:
    entries = sorted(entries, key=lambda e: e[0])
    keys = [e[0] for e in entries]
    if len(set(keys)) != len(keys):
        raise AppDataError(f"duplicate keys in the {app} data")
    out = [
        f"/* Generated by unikernel/tools/pack_data.py for app '{app}'. Do not edit. */",
        '#include "kv.h"',
        "",
    ]
    for i, (k, v, _) in enumerate(entries):
        out.append(f"static const char k{i}[] = {{\n{_c_bytes(k)}\n}};")
        out.append(f"static const uint8_t v{i}[] = {{\n{_c_bytes(v)}\n}};")
    out.append("")
    n = len(entries)
    out.append(f"const struct kv_entry kv_table[{max(n, 1)}] = {{")
    for i, (k, v, meta) in enumerate(entries):
        m = _c_string(meta) if meta is not None else "NULL"
        out.append(f"\t{{ k{i}, {len(k)}, v{i}, {len(v)}, {m} }},")
    if n == 0:
        out.append("\t{ NULL, 0, NULL, 0, NULL },")
    out.append("};")
    out.append(f"const size_t kv_count = {n};")
    return "\n".join(out) + "\n"


def generate(app: str, data_dir: Path | None, out_c: Path, iterations: int | None = None) -> None:
    """Write the C key/value table for ``app`` to ``out_c``.

    ``data_dir`` None means the bundled default (``data/<app>``) if any."""
    if data_dir is None:
        data_dir = default_data_dir(app)
    data_dir = Path(data_dir) if data_dir is not None else None
    if app == "auth":
        if data_dir is None:
            raise AppDataError("auth needs a data dir with users/<name> files")
        entries = auth_entries(data_dir, iterations)
    elif app == "www":
        if data_dir is None:
            raise AppDataError("www needs a data dir with an index.html")
        entries = www_entries(data_dir)
    else:
        entries = []
    out_c = Path(out_c)
    out_c.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_c.with_name(out_c.name + ".tmp")
    tmp.write_text(render(app, entries))
    os.chmod(tmp, 0o600)
    tmp.replace(out_c)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--app", required=True)
    p.add_argument("--data", type=Path, default=None, help="data directory (default: data/APP)")
    p.add_argument("--out", type=Path, required=True, help="the C file to write")
    args = p.parse_args(argv)
    try:
        generate(args.app, args.data, args.out)
    except AppDataError as e:
        print(f"pack_data: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
