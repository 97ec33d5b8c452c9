"""Size of each bundled unikernel app, per subsystem (binutils `size`).

    python benchmarks/size.py [--target host xen] [--opt -O2 -Os] [--apps ...] [--json]

Builds every app (no sanitizers) and reports text, data and bss of each
object: the core subsystems (core/*.o), the app, its generated key/value
data, and the platform (host/ or xen/). "own" is the unikernel's own
code+data (text+data of everything but the platform). For the Xen target
it also reports the linked PV kernel (`size`, and the stripped file's
bytes), whose target is <= 96 KiB. Numbers, not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mirage_env.bundled import APPS, XEN_ONLY_APPS, build  # noqa: E402


def size_of(path: Path) -> dict[str, int]:
    out = subprocess.run(["size", "-B", str(path)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(x) for x in out.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def measure(app: str, opt: str, target: str, work: Path) -> dict:
    out = work / f"{app}-{target}{opt}"
    image = build(app, target, out, opt=opt)
    objdir = next(out.glob(f"obj-{app}-{target}*"))
    parts: dict[str, dict[str, int]] = {}
    for obj in sorted(objdir.rglob("*.o")):
        rel = obj.relative_to(objdir)
        kind = rel.parts[0] if len(rel.parts) > 1 else ""
        name = {"core": obj.stem, "apps": f"app:{obj.stem}", "host": f"platform:{obj.stem}",
                "xen": f"platform:{obj.stem}"}.get(kind, obj.stem)
        parts[name] = size_of(obj)
    own = [v for k, v in parts.items() if not k.startswith("platform:")]
    return {
        "app": app,
        "opt": opt,
        "target": target,
        "image_bytes": image.stat().st_size,
        "parts": parts,
        "own_text": sum(p["text"] for p in own),
        "own_data": sum(p["data"] for p in own),
        "own_bss": sum(p["bss"] for p in own),
        "binary": size_of(image),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--apps", nargs="+", default=list(APPS), choices=APPS)
    ap.add_argument("--opt", nargs="+", default=["-O2", "-Os"], help="e.g. --opt=-Os")
    ap.add_argument("--target", nargs="+", default=["host", "xen"], choices=["host", "xen"])
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = ap.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory(prefix="mevt-size-") as tmp:
        for target in args.target:
            for opt in args.opt:
                for app in args.apps:
                    if target != "xen" and app in XEN_ONLY_APPS:
                        continue  # e.g. echo: a vchan server, Xen only
                    results.append(measure(app, opt, target, Path(tmp)))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(f"\n== {r['app']} {r['target']} ({r['opt']})")
        print(f"  {'subsystem':<24}{'text':>8}{'data':>8}{'bss':>8}")
        for name, s in sorted(r["parts"].items(), key=lambda kv: -kv[1]["text"] - kv[1]["data"]):
            print(f"  {name:<24}{s['text']:>8}{s['data']:>8}{s['bss']:>8}")
        own = r["own_text"] + r["own_data"]
        print(f"  {'own (no platform)':<24}{r['own_text']:>8}{r['own_data']:>8}{r['own_bss']:>8}"
              f"   code+data {own} B = {own / 1024:.1f} KiB")
        b = r["binary"]
        what = "host binary" if r["target"] == "host" else "xen kernel"
        note = "(with libc glue)" if r["target"] == "host" else f"file {r['image_bytes']} B stripped"
        print(f"  {what:<24}{b['text']:>8}{b['data']:>8}{b['bss']:>8}   {note}")
    print("\nsummary (bytes): own code+data per app; xen: stripped image file")
    cols = [(t, o) for t in args.target for o in args.opt]
    print(f"  {'app':<8}" + "".join(f"{t + ' ' + o:>12}" for t, o in cols)
          + "".join(f"{'xen file ' + o:>14}" for t, o in cols if t == "xen"))
    for app in dict.fromkeys(r["app"] for r in results):
        row = {(r["target"], r["opt"]): r for r in results if r["app"] == app}
        print(f"  {app:<8}" + "".join(f"{row[c]['own_text'] + row[c]['own_data'] if c in row else '-':>12}"
                                      for c in cols)
              + "".join(f"{row[c]['image_bytes'] if c in row else '-':>14}" for c in cols if c[0] == "xen"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
