"""C unit tests of TCP, HTTP, SHA-256/HMAC/PBKDF2 and the kv store, plus the
app data generator (tools/pack_data.py) checked from both Python and C.

The C tests live in tcp_http_units.c (one process per test, ASan + UBSan);
the IP layer there is a harness that records the segments TCP sends.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import subprocess
from pathlib import Path

import pytest

from mirage_env.bundled import pack_data as appdata
from tests.c.cbuild import CORE, compile_c, run_c

HERE = Path(__file__).resolve().parent
UNITS_C = HERE / "tcp_http_units.c"
KV_CHECK_C = HERE / "kv_check.c"


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return run_c(Path(cmd[0]), *cmd[1:])


@pytest.fixture(scope="module")
def units(tmp_path_factory) -> Path:
    srcs = [UNITS_C] + [CORE / f"{n}.c" for n in ("tcp", "http", "sha256", "pbkdf2", "kv", "rt", "csprng", "cksum")]
    return compile_c(tmp_path_factory.mktemp("units") / "tcp_http_units", srcs)


# Test names straight from the C source, so collection needs no compiler.
C_TESTS = re.findall(r"\bT\((test_\w+)\)", UNITS_C.read_text())


@pytest.mark.parametrize("name", C_TESTS)
def test_c_unit(units, name):
    r = run([str(units), name])
    assert r.returncode == 0, f"{name} failed:\n{r.stdout}\n{r.stderr}"
    assert f"{name}: ok" in r.stdout
    assert "runtime error" not in r.stderr, r.stderr


def test_c_unit_list_is_complete(units):
    listed = run([str(units), "--list"]).stdout.split()
    assert listed == C_TESTS and len(listed) >= 30


# ---- crypto against Python's hashlib (random inputs, all length classes) ----

LENGTHS = [0, 1, 31, 55, 56, 63, 64, 65, 119, 127, 128, 129, 1000]


@pytest.mark.parametrize("n", LENGTHS)
def test_sha256_matches_hashlib(units, n):
    data = os.urandom(n)
    out = run([str(units), "sha256", data.hex()]).stdout.strip()
    assert out == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("klen,mlen", [(0, 0), (1, 10), (32, 64), (64, 3), (65, 100), (200, 129)])
def test_hmac_matches_python(units, klen, mlen):
    k, m = os.urandom(klen), os.urandom(mlen)
    out = run([str(units), "hmac", k.hex(), m.hex()]).stdout.strip()
    assert out == hmac.new(k, m, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("plen,slen,it,dklen", [(0, 0, 1, 32), (8, 16, 2, 32), (70, 5, 1000, 33), (10, 16, 3, 100)])
def test_pbkdf2_matches_hashlib(units, plen, slen, it, dklen):
    p, s = os.urandom(plen), os.urandom(slen)
    out = run([str(units), "pbkdf2", p.hex(), s.hex(), str(it), str(dklen)]).stdout.strip()
    assert out == hashlib.pbkdf2_hmac("sha256", p, s, it, dklen).hex()


# ---- tools/pack_data.py: what the build bakes in ---------------------------------------


def make_users(d: Path, users: dict[str, bytes]) -> Path:
    (d / "users").mkdir(parents=True)
    for name, pw in users.items():
        (d / "users" / name).write_bytes(pw)
    return d


def kv_check(tmp: Path, gen: Path) -> Path:
    return compile_c(tmp / "kv_check", [KV_CHECK_C, gen, CORE / "kv.c", CORE / "sha256.c", CORE / "pbkdf2.c"])


def test_auth_data_stores_only_salted_hashes(tmp_path, monkeypatch):
    monkeypatch.setenv(appdata.ITERATIONS_ENV, "1000")
    secrets = {"ann": b"correct horse battery\n", "bob": b"s3cr3t-P4ss\r\n", "c.d_e-f": b"xyzzy-plugh"}
    data = make_users(tmp_path / "data", secrets)
    gen = tmp_path / "gen.c"
    appdata.generate("auth", data, gen)
    text = gen.read_text()
    raw = bytes(int(x, 16) for x in re.findall(r"0x([0-9a-f]{2})", text))
    for pw in secrets.values():
        pw = pw.rstrip(b"\r\n")
        assert pw not in text.encode() and pw not in raw
        assert pw.hex() not in text
    assert oct(gen.stat().st_mode & 0o777) == "0o600"
    # Verified from C with the same PBKDF2 the unikernel runs.
    chk = kv_check(tmp_path, gen)
    assert run([str(chk), "auth", "ann", "correct horse battery"]).stdout.strip() == "ok"
    assert run([str(chk), "auth", "bob", "s3cr3t-P4ss"]).stdout.strip() == "ok"
    assert run([str(chk), "auth", "c.d_e-f", "xyzzy-plugh"]).stdout.strip() == "ok"
    assert run([str(chk), "auth", "ann", "correct horse battery "]).stdout.strip() == "bad"
    assert run([str(chk), "auth", "nobody", "x"]).stdout.strip() == "nouser"
    dump = run([str(chk), "dump"]).stdout
    assert "UNSORTED" not in dump and "LOOKUP FAILED" not in dump
    assert [line.split("\t")[:2] for line in dump.splitlines()] == [
        ["user/ann", "52"], ["user/bob", "52"], ["user/c.d_e-f", "52"]]


def test_auth_salts_are_random_and_iterations_stored(tmp_path, monkeypatch):
    monkeypatch.setenv(appdata.ITERATIONS_ENV, "777")
    data = make_users(tmp_path / "d", {"u": b"same", "v": b"same"})
    entries = appdata.auth_entries(data)
    (_, r1, _), (_, r2, _) = entries
    assert r1[:4] == r2[:4] == (777).to_bytes(4, "big")
    assert r1[4:20] != r2[4:20], "salts must differ"
    assert r1[20:] != r2[20:]
    assert hashlib.pbkdf2_hmac("sha256", b"same", r1[4:20], 777, 32) == r1[20:]
    # default iteration count when the variable is unset
    monkeypatch.delenv(appdata.ITERATIONS_ENV)
    (_, r3, _), _ = appdata.auth_entries(data)
    assert int.from_bytes(r3[:4], "big") == appdata.DEFAULT_ITERATIONS


def test_bundled_auth_users_work(tmp_path, monkeypatch):
    monkeypatch.setenv(appdata.ITERATIONS_ENV, "10")
    gen = tmp_path / "gen.c"
    appdata.generate("auth", None, gen)
    chk = kv_check(tmp_path, gen)
    users = sorted((appdata.DATA_ROOT / "auth" / "users").iterdir())
    assert len(users) >= 2
    for u in users:
        pw = u.read_text().rstrip("\n")
        assert run([str(chk), "auth", u.name, pw]).stdout.strip() == "ok"
        assert run([str(chk), "auth", u.name, pw + "x"]).stdout.strip() == "bad"


@pytest.mark.parametrize(
    "name,content,fix",
    [
        ("bad name", b"pw", "rename"),
        ("empty", b"\n", "empty"),
        ("nul", b"pass\0word-SECRET", "NUL"),
        ("multi", b"line1-SECRET\nline2", "one line"),
        ("long", b"SECRET" * 100, "at most"),
    ],
)
def test_auth_data_errors_name_the_file_not_the_password(tmp_path, name, content, fix):
    data = make_users(tmp_path / "d", {name: content})
    with pytest.raises(appdata.AppDataError) as e:
        appdata.generate("auth", data, tmp_path / "gen.c")
    msg = str(e.value)
    assert name in msg and fix in msg
    assert "SECRET" not in msg and "pass" not in msg.replace("password", "")
    assert not (tmp_path / "gen.c").exists()


def test_auth_data_missing_dir(tmp_path):
    with pytest.raises(appdata.AppDataError, match="users"):
        appdata.generate("auth", tmp_path, tmp_path / "gen.c")


def test_www_data_content_types(tmp_path):
    d = tmp_path / "site"
    (d / "css").mkdir(parents=True)
    (d / "index.html").write_text("<h1>Hello Mirage World!</h1>")
    (d / "css" / "s.css").write_text("h1{}")
    (d / "logo.PNG").write_bytes(b"\x89PNG\0\xff")
    (d / "blob.bin").write_bytes(b"")
    (d / ".hidden").write_text("no")
    gen = tmp_path / "gen.c"
    appdata.generate("www", d, gen)
    chk = kv_check(tmp_path, gen)
    rows = [line.split("\t") for line in run([str(chk), "dump"]).stdout.splitlines()]
    assert rows == [
        ["/blob.bin", "0", "application/octet-stream"],
        ["/css/s.css", "4", "text/css; charset=utf-8"],
        ["/index.html", "28", "text/html; charset=utf-8"],
        ["/logo.PNG", "6", "image/png"],
    ]


def test_www_bundled_index(tmp_path):
    entries = dict((k, (v, m)) for k, v, m in appdata.www_entries(appdata.DATA_ROOT / "www"))
    body, ctype = entries[b"/index.html"]
    assert b"Hello Mirage World!" in body and ctype.startswith("text/html")


def test_www_requires_index(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(appdata.AppDataError, match="index.html"):
        appdata.generate("www", tmp_path, tmp_path / "gen.c")


def test_empty_table_for_other_apps(tmp_path):
    gen = tmp_path / "gen.c"
    appdata.generate("ping", None, gen)
    chk = kv_check(tmp_path, gen)
    assert run([str(chk), "dump"]).stdout == ""


# ---- randomness: the generator behind plat_random and the TCP ISNs ---------------------

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix_mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def splitmix_unmix(z: int) -> int:
    """The old generator's finalizer is a bijection: invert it (xorshift and odd multipliers)."""

    def unxorshift(v: int, s: int) -> int:
        out = v
        for _ in range(64 // s + 1):
            out = v ^ (out >> s)
        return out & MASK64

    z = unxorshift(z, 31)
    z = (z * pow(0x94D049BB133111EB, -1, 1 << 64)) & MASK64
    z = unxorshift(z, 27)
    z = (z * pow(0xBF58476D1CE4E5B9, -1, 1 << 64)) & MASK64
    return unxorshift(z, 30)


def recover_and_predict(outputs: list[int]) -> int:
    """The attack on the old plat_random: one 64-bit output gives the state, which predicts
    the next. Returns how many of outputs[1:] were predicted."""
    hits = 0
    for prev, nxt in zip(outputs, outputs[1:]):
        state = splitmix_unmix(prev)
        hits += splitmix_mix((state + GOLDEN) & MASK64) == nxt
    return hits


def test_splitmix_attack_works_on_the_old_generator():
    state, outs = 0x1234_5678_9ABC_DEF0, []
    for _ in range(50):
        state = (state + GOLDEN) & MASK64
        outs.append(splitmix_mix(state))
    assert recover_and_predict(outs) == 49


def test_plat_random_resists_state_recovery_and_looks_uniform(units):
    outs = [int(x, 16) for x in run([str(units), "random", "4000"]).stdout.split()]
    assert len(outs) == 4000
    assert recover_and_predict(outs) == 0
    # Monobit: 256000 bits, ones within 5 sigma of half.
    ones = sum(bin(v).count("1") for v in outs)
    assert abs(ones - 128000) < 5 * 253
    # Bytes: chi-square over 256 bins (32000 samples, 255 dof; 400 is p < 1e-8).
    counts = [0] * 256
    for v in outs:
        for k in range(8):
            counts[(v >> (8 * k)) & 0xFF] += 1
    chi2 = sum((c - 125) ** 2 / 125 for c in counts)
    assert chi2 < 400


def test_isns_are_unpredictable_across_tuples(units):
    isns = [int(x, 16) for x in run([str(units), "isn", "2000"]).stdout.split()]
    assert len(isns) == 2000 and len(set(isns)) > 1990
    deltas = [(b - a) & 0xFFFFFFFF for a, b in zip(isns, isns[1:])]
    assert len(set(deltas)) > 1990  # no constant or small step between neighbouring ports
    ones = sum(bin(v).count("1") for v in isns)
    assert abs(ones - 32000) < 5 * 179


# ---- the packer stays inside the data directory -----------------------------------------


def test_packer_refuses_symlinks_out_of_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(appdata.ITERATIONS_ENV, "1000")
    secret = tmp_path / "outside" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("PRIVATE KEY\n")
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("<p>hi</p>\n")
    (www / "key.txt").symlink_to(secret)
    with pytest.raises(appdata.AppDataError, match=r"key\.txt is a symlink to .*outside the data dir"):
        appdata.generate("www", www, tmp_path / "gen.c")
    (www / "key.txt").unlink()
    (www / "sub").symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(appdata.AppDataError, match="outside the data dir"):
        appdata.generate("www", www, tmp_path / "gen.c")
    (www / "sub").unlink()
    (www / "home.html").symlink_to(www / "index.html")  # inside: fine
    appdata.generate("www", www, tmp_path / "gen.c")
    assert "PRIVATE KEY" not in (tmp_path / "gen.c").read_text()
    auth = make_users(tmp_path / "auth", {"ann": b"pw"})
    (auth / "users" / "root").symlink_to(secret)
    with pytest.raises(appdata.AppDataError, match=r"users/root is a symlink"):
        appdata.generate("auth", auth, tmp_path / "gen2.c")
