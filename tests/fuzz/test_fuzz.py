"""Build the libFuzzer harnesses (clang, -fsanitize=fuzzer,address,undefined)
and run each for a bounded time from generated seeds.

    MIRAGE_FUZZ_SECONDS=20    seconds per fuzzer (default 20)
    MIRAGE_FUZZ_CORPUS=DIR    keep/grow corpora in DIR/<fuzzer> (default: a tmp dir)
    MIRAGE_FUZZ_JOBS=N        parallel fuzzing processes per fuzzer (default 1)

A crash, sanitizer report, leak, timeout (>10 s per input) or OOM fails the
test; the crashing input is left next to the output, and inputs checked into
tests/fuzz/regressions/<fuzzer>/ are replayed on every run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORE = ROOT / "unikernel" / "core"
TESTS_C = ROOT / "tests" / "c"
PLAT_TEST = TESTS_C / "plat_test.c"
STACK = ["rt", "csprng", "netif", "cksum", "eth", "arp", "ipv4", "icmp", "udp", "dhcp", "tcp", "http", "kv", "sha256", "pbkdf2",
         "diskkv", "fat", "tar"]
XEN = ROOT / "unikernel" / "xen"
STACK_FUZZERS = ["net", "tcp", "http", "dhcp", "disk"]
# Hostile peers of the Xen ring engines (host-built, as in tests/c/test_xen_rings.py).
RING_FUZZERS = {"netback": "netfront_ring", "vchan": "vchan_ring"}
# The real apps (apps/auth.c, apps/www.c with their packed data) behind the stack.
APP_FUZZERS = {"auth": 8088, "www": 80}
FUZZERS = STACK_FUZZERS + list(APP_FUZZERS) + list(RING_FUZZERS)

sys.path.insert(0, str(HERE))
import seeds  # noqa: E402


def fuzz_seconds() -> int:
    return int(os.environ.get("MIRAGE_FUZZ_SECONDS", "20"))


def need_libfuzzer(tmp: Path) -> str:
    """clang with libFuzzer (Debian: clang + libclang-rt-NN-dev)."""
    cc = shutil.which("clang")
    msg = None
    if cc is None:
        msg = "clang is not installed (apt-get install clang libclang-rt-14-dev)"
    else:
        probe = tmp / "probe.c"
        probe.write_text("#include <stdint.h>\n#include <stddef.h>\n"
                         "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
        r = subprocess.run([cc, "-fsanitize=fuzzer,address,undefined", str(probe), "-o", str(tmp / "probe")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            msg = f"clang cannot link libFuzzer (apt-get install libclang-rt-14-dev): {r.stderr[-500:]}"
    if msg:
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return cc


def app_data(app: str, tmp: Path) -> Path:
    """The app's packed data as C (PBKDF2 at 2 iterations: the fuzzer wants speed)."""
    from mirage_env.bundled import pack_data

    out = tmp / f"appdata-{app}.c"
    old = os.environ.get(pack_data.ITERATIONS_ENV)
    os.environ[pack_data.ITERATIONS_ENV] = "2"
    try:
        pack_data.generate(app, ROOT / "unikernel" / "data" / app, out)
    finally:
        if old is None:
            del os.environ[pack_data.ITERATIONS_ENV]
        else:
            os.environ[pack_data.ITERATIONS_ENV] = old
    return out


@pytest.fixture(scope="module")
def fuzz_bins(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("fuzz-build")
    cc = need_libfuzzer(tmp)
    srcs = [str(CORE / f"{n}.c") for n in STACK] + [str(PLAT_TEST), str(HERE / "fuzz_common.c")]
    bins = {}
    for name in FUZZERS:
        out = tmp / f"fuzz_{name}"
        if name in RING_FUZZERS:
            if not Path("/usr/include/xen/io/netif.h").is_file():
                continue  # test_fuzz skips it: Xen public headers missing
            inputs = [f"-I{XEN}", f"-I{TESTS_C}", str(TESTS_C / "simpeer.c"), str(XEN / f"{RING_FUZZERS[name]}.c")]
        elif name in APP_FUZZERS:
            inputs = [f"-I{CORE}", f"-I{TESTS_C}", *srcs, f"-DAPP_PORT={APP_FUZZERS[name]}",
                      str(ROOT / "unikernel" / "apps" / f"{name}.c"),
                      str(app_data(name, tmp))]
        else:
            inputs = [f"-I{CORE}", f"-I{TESTS_C}", *srcs]
        main = HERE / ("fuzz_app.c" if name in APP_FUZZERS else f"fuzz_{name}.c")
        cmd = [cc, "-g", "-O1", "-std=gnu11", "-Wall", "-Wextra", "-Werror",
               "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=undefined",
               str(main), *inputs, "-o", str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, f"building fuzz_{name} failed:\n{r.stderr}"
        bins[name] = out
    return bins


def stat(output: str, key: str) -> int | None:
    m = re.search(rf"stat::{key}:\s+(\d+)", output)
    return int(m.group(1)) if m else None


@pytest.mark.parametrize("name", FUZZERS)
def test_fuzz(fuzz_bins, name, tmp_path):
    if name not in fuzz_bins:
        require(False, "Xen public headers missing (apt-get install libxen-dev)")
    seed_dir = seeds.write_seeds(name, tmp_path / "seeds")
    keep = os.environ.get("MIRAGE_FUZZ_CORPUS")
    corpus = Path(keep) / name if keep else tmp_path / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    secs = fuzz_seconds()
    jobs = int(os.environ.get("MIRAGE_FUZZ_JOBS", "1"))
    args = [str(fuzz_bins[name]), f"-max_total_time={secs}", "-timeout=10", "-rss_limit_mb=2048",
            "-print_final_stats=1", f"-artifact_prefix={tmp_path}/", str(corpus), str(seed_dir)]
    if jobs > 1:
        args[1:1] = [f"-jobs={jobs}", f"-workers={jobs}"]
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"}
    r = subprocess.run(args, capture_output=True, text=True, timeout=secs * 3 + 120, env=env, cwd=tmp_path)
    out = r.stdout + r.stderr
    crashes = [p.name for p in tmp_path.iterdir() if re.match(r"(crash|leak|timeout|oom|slow-unit)-", p.name)]
    execs = stat(out, "number_of_executed_units")
    print(f"fuzz_{name}: {execs} execs in {secs}s, corpus {len(list(corpus.iterdir()))} files")
    assert r.returncode == 0 and not [c for c in crashes if not c.startswith("slow-unit")], (
        f"fuzz_{name} found a problem (inputs in {tmp_path}: {crashes}):\n{out[-6000:]}")
    if jobs == 1:
        assert execs and execs > 100, f"fuzz_{name} barely ran:\n{out[-3000:]}"


@pytest.mark.parametrize("name", FUZZERS)
def test_fuzz_regressions_and_seeds(fuzz_bins, name, tmp_path):
    """Replay the seeds and every checked-in regression input."""
    if name not in fuzz_bins:
        require(False, "Xen public headers missing (apt-get install libxen-dev)")
    files = list(seeds.write_seeds(name, tmp_path / "seeds").iterdir())
    reg = HERE / "regressions" / name
    if reg.is_dir():
        files += sorted(reg.iterdir())
    r = subprocess.run([str(fuzz_bins[name]), *map(str, files)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-6000:]


# What each DHCP seed must take the client through (its console, printed with FUZZ_DEBUG=1),
# so that fuzzing starts from RENEWING, REBINDING, a NAK and a lease's end, not only BOUND.
DHCP_SEED_STATES = {
    "offer_ack": ["DHCP: bound to 10.0.0.50"],
    "renew": ["DHCP: renewing 10.0.0.50", "DHCP: renewed 10.0.0.50"],
    "rebind": ["DHCP: renewing", "DHCP: rebinding 10.0.0.50", "DHCP: renewed 10.0.0.50"],
    "renew_nak": ["DHCP: renewing", "DHCP: NAK from server, restarting", "DHCP: bound to 10.0.0.51"],
    "expire": ["DHCP: rebinding", "DHCP: lease expired, restarting", "IP address: none", "DHCP: bound to 10.0.0.50"],
    "short_lease": ["DHCP: bound to 10.0.0.50", "DHCP: renewing", "DHCP: lease expired"],
    "zero_lease": [],
}


def test_dhcp_seeds_reach_the_lease_states(fuzz_bins, tmp_path):
    if "dhcp" not in fuzz_bins:
        require(False, "the dhcp fuzzer was not built")
    seed_dir = seeds.write_seeds("dhcp", tmp_path / "seeds")
    done = tmp_path / "end"
    done.write_bytes(b"")  # the harness reports an input's console when the next one starts
    for name, states in DHCP_SEED_STATES.items():
        r = subprocess.run([str(fuzz_bins["dhcp"]), str(seed_dir / name), str(done)], capture_output=True,
                           text=True, timeout=60, env={**os.environ, "FUZZ_DEBUG": "1"})
        assert r.returncode == 0, r.stderr[-3000:]
        console = r.stderr.split("fuzz: console:\n")[2] if r.stderr.count("fuzz: console:\n") >= 2 else ""
        pos = 0
        for state in states:  # in this order
            i = console.find(state, pos)
            assert i >= 0, f"seed {name}: no {state!r} after offset {pos} in:\n{console}"
            pos = i + len(state)
        if name == "zero_lease":
            assert "DHCP: bound" not in console and "IP address: 10." not in console, console
