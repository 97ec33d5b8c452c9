"""Build one app of the bundled unikernel (``unikernel/``) on this machine.

    python -m mirage_env.bundled --app auth --target host --out DIR [--data DIR]

``build()`` runs the unikernel's own Makefile (the one build path: it packs the app's data with
``tools/pack_data.py`` and decides what is up to date); it returns the path of the built image:
``DIR/<app>.host`` (a process on a TAP) or ``DIR/<app>.xen`` (a stripped Xen kernel;
``<app>.xen.dbg`` keeps the symbols).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import registry
from .paths import UNIKERNEL_DIR
from .errors import MirageEnvError

SRC_DIR = UNIKERNEL_DIR
APPS = registry.app_names()
XEN_ONLY_APPS = tuple(a.name for a in registry.apps().values() if a.xen_only)
TARGETS = ("host", "xen")  # host: a process on a TAP; xen: a PV kernel


def _load_pack_data():
    """unikernel/tools/pack_data.py is a standalone script (the Makefile runs it on any build
    machine); Python callers (the probe's demo users, tests, benchmarks) use it as a module."""
    spec = importlib.util.spec_from_file_location("mirage_env_pack_data", SRC_DIR / "tools" / "pack_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pack_data = _load_pack_data()


class BuildError(MirageEnvError, RuntimeError):
    """The build failed; the message says why and what to do."""


def build(
    app: str,
    target: str = "host",
    out_dir: Path | str = "build",
    data_dir: Path | str | None = None,
    sanitize: bool = False,
    make: str = "make",
    quiet: bool = True,
    opt: str | None = None,
) -> Path:
    """Build ``app`` for ``target`` into ``out_dir`` and return the image path.

    ``sanitize`` adds ASan/UBSan (host target only); ``opt`` overrides the
    optimisation flag (default -O2), e.g. "-Os" for size."""
    if app not in APPS:
        raise BuildError(f"unknown app {app!r}: choose one of {', '.join(APPS)}")
    if target not in TARGETS:
        raise BuildError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    if app in XEN_ONLY_APPS and target != "xen":
        raise BuildError(f"app {app!r} is a Xen-only app (it serves a vchan to dom0): use --target xen")
    if sanitize and target != "host":
        raise BuildError("sanitize=True needs target 'host'")
    if shutil.which(make) is None:
        raise BuildError(f"{make!r} not found: install it (apt-get install make)")
    cc = os.environ.get("CC", "clang")
    if shutil.which(cc) is None:
        raise BuildError(f"C compiler {cc!r} not found: install clang (apt-get install clang) or set CC")

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cmd = [make, "-C", str(SRC_DIR), f"APP={app}", f"TARGET={target}", f"OUT={out}", f"CC={cc}",
           f"PYTHON={sys.executable}"]
    if data_dir is not None:
        data = Path(data_dir).resolve()
        if not data.is_dir():
            raise BuildError(f"--data {data_dir}: not a directory; give the app's data directory")
        cmd.append(f"DATA={data}")
    if sanitize:
        cmd.append("SAN=1")
    if opt:
        if opt not in ("-O0", "-O1", "-O2", "-O3", "-Os", "-Oz"):
            raise BuildError(f"opt {opt!r}: use one of -O0 -O1 -O2 -O3 -Os -Oz")
        cmd.append(f"OPT={opt}")
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        packer = [line for line in res.stdout.splitlines() if line.startswith("pack_data: ")]
        if packer:  # bad app data: the packer's own message names the file and the fix
            raise BuildError(f"app data for {app}: {packer[-1].removeprefix('pack_data: ')}")
        raise BuildError(f"make failed for {app} ({target}):\n{res.stdout}")
    if not quiet:
        sys.stdout.write(res.stdout)
    image = out / f"{app}.{target}"
    if not image.is_file():
        raise BuildError(f"make succeeded but {image} is missing")
    return image


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mirage-env unikernel build", description=__doc__.splitlines()[0])
    p.add_argument("--app", required=True, choices=APPS)
    p.add_argument("--target", default="host", choices=TARGETS)
    p.add_argument("--out", default="build", type=Path, help="output directory (default: build)")
    p.add_argument("--data", type=Path, default=None, help="app data directory (default: the bundled one)")
    p.add_argument("--sanitize", action="store_true", help="build with ASan/UBSan (host only)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the make output")
    args = p.parse_args(argv)
    try:
        image = build(args.app, args.target, args.out, args.data, sanitize=args.sanitize, quiet=not args.verbose)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
