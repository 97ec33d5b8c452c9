"""Talk to the bundled ``echo`` unikernel over vchan from the dom0, through Xen's real libxenvchan.

The dom0 side is a small C helper, ``unikernel/tools/vchan_client.c``, compiled on the
dom0 against Debian's ``libxen-dev`` (``-lxenvchan -lxenctrl``) the first time it is needed and
kept under ``REMOTE_DIR`` with the source's hash in its name (a changed source is rebuilt). The
helper runs as root (it maps grants and binds event channels).

    vchan_send(ssh, "vchan-echo", "hello from dom0")  -> "HELLO FROM DOM0"
    vchan_bench(ssh, "vchan-echo", 1 << 20)           -> {"throughput_mb_s": ..., "rtt_median_us": ...}
    client_command(ssh, "vchan-echo")                 -> "sudo /var/lib/.../vchan-client-... 7 /local/domain/7/data/vchan"
                                                         (for an interactive session: ssh -t HOST CMD)

``ssh`` is a connected ``paramiko.SSHClient`` (``mirage_env.sshclient.connect``). The dom0 needs
gcc, libc6-dev and libxen-dev. The server's xenstore directory defaults to
``/local/domain/<domid>/data/vchan`` (the echo kernel's default; ``vchan=PATH`` on its command line
changes it there, ``path=`` here).
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from pathlib import Path

from .dom0.names import name_problem
from .dom0.paths import TOOLS_DIR
from .paths import UNIKERNEL_DIR
from . import sshclient
from .errors import MirageEnvError

CLIENT_SRC = UNIKERNEL_DIR / "tools" / "vchan_client.c"
REMOTE_DIR = TOOLS_DIR
DEFAULT_SUBPATH = "data/vchan"
_PATH = re.compile(r"^/[A-Za-z0-9_./-]{1,39}$")  # libxenvchan's 64-byte key buffer
MAX_TEXT = 4000


class VchanError(MirageEnvError, RuntimeError):
    """The helper could not be built, the domain or its vchan was not found, or the echo failed."""


def _run(ssh, command: str, timeout: float) -> tuple[int, str]:
    return sshclient.run(ssh, command, timeout=timeout)


def resolve_domid(ssh, domid_or_name: int | str) -> int:
    """The numeric domain id of a domU given by id or by name (``xl domid NAME`` on the dom0)."""
    if isinstance(domid_or_name, int) or str(domid_or_name).isdigit():
        domid = int(domid_or_name)
        if not 0 < domid < 0x7FF0:
            raise VchanError(f"domain id {domid}: a domU id is 1..32751")
        return domid
    name = str(domid_or_name)
    if name_problem(name):
        raise VchanError(f"domain {name!r}: not a domain id or a valid domain name")
    rc, out = _run(ssh, f"sudo xl domid {shlex.quote(name)}", timeout=60)
    if rc != 0 or not out.strip().isdigit():
        raise VchanError(f"domain {name!r} is not running on the dom0 (xl domid: {out.strip()})")
    return int(out.strip())


def remote_client_path() -> str:
    """Where the helper for this version of its source lives on the dom0."""
    tag = hashlib.sha256(CLIENT_SRC.read_bytes()).hexdigest()[:12]
    return f"{REMOTE_DIR}/vchan-client-{tag}"


def ensure_client(ssh, prebuilt: Path | None = None, timeout: float = 300) -> str:
    """Make sure the helper for this source version is on the dom0; its path there.

    Compiled on the dom0 (gcc, libc6-dev, libxen-dev), unless ``prebuilt`` gives a binary built
    elsewhere from the same source against the same libxen-dev (e.g. on the host: ``gcc -O2 -o
    vchan-client vchan_client.c -lxenvchan -lxenctrl``), which is then uploaded instead."""
    src = CLIENT_SRC.read_bytes()
    exe = remote_client_path()
    rc, _ = _run(ssh, f"test -x {exe}", timeout=60)
    if rc == 0:
        return exe
    if prebuilt is not None:
        tmp = f"/tmp/vchan-client-upload-{exe.rsplit('-', 1)[1]}"
        sftp = ssh.open_sftp()
        try:
            sftp.put(str(prebuilt), tmp)
        finally:
            sftp.close()
        rc, out = _run(ssh, f"sudo mkdir -p {REMOTE_DIR} && sudo install -m 0755 {tmp} {exe}; rm -f {tmp}",
                       timeout=60)
        if rc != 0:
            raise VchanError(f"installing {prebuilt} as {exe} on the dom0 failed: {out.strip()}")
        return exe
    payload = base64.b64encode(src).decode()
    script = (
        f"set -e; sudo mkdir -p {REMOTE_DIR}; t=$(mktemp -d); trap 'rm -rf $t' EXIT; "
        f"echo {payload} | base64 -d > $t/vchan_client.c; "
        f"gcc -O2 -Wall -o $t/vchan-client $t/vchan_client.c -lxenvchan -lxenctrl; "
        f"sudo install -m 0755 $t/vchan-client {exe}"
    )
    rc, out = _run(ssh, f"sh -c {shlex.quote(script)}", timeout=timeout)
    if rc != 0:
        hint = ""
        if "No such file" in out and (".h" in out):
            hint = " (install gcc, libc6-dev and libxen-dev on the dom0)"
        raise VchanError(f"building vchan-client on the dom0 failed{hint}:\n{out.strip()}")
    return exe


def _path_for(domid: int, path: str | None) -> str:
    p = path or f"/local/domain/{domid}/{DEFAULT_SUBPATH}"
    if not _PATH.match(p) or ".." in p:
        raise VchanError(f"vchan path {p!r}: an absolute xenstore path of letters, digits, '_.-/' (max 40). "
                          "Fix: e.g. --path /local/domain/ID/data/vchan")
    return p


def check_arguments(domid_or_name: int | str, text: str | None = None, path: str | None = None) -> None:
    """Refuse a bad domain, path or text before anything connects to the dom0 (exit 2)."""
    try:
        if str(domid_or_name).isdigit():
            resolve_domid(None, domid_or_name)  # a number is checked without the dom0
        elif name_problem(str(domid_or_name)):
            raise VchanError(f"domain {str(domid_or_name)!r}: not a domain id or a valid domain name. "
                             "Fix: give the id or name `mirage-env unikernel list` shows")
        if path is not None:
            _path_for(1, path)
        if text is not None:
            _check_text(text)
    except VchanError as exc:
        exc.exit_code = 2
        raise


def _check_text(text: str) -> None:
    if "\n" in text or "\r" in text or "\0" in text:
        raise VchanError("text must be one line (no newline, carriage return or NUL)")
    if len(text.encode()) > MAX_TEXT:
        raise VchanError(f"text longer than {MAX_TEXT} bytes")


def client_command(ssh, domid_or_name: int | str, path: str | None = None) -> str:
    """The dom0 command line of an interactive client (stdin lines in, replies out)."""
    domid = resolve_domid(ssh, domid_or_name)
    exe = ensure_client(ssh)
    return f"sudo {exe} {domid} {_path_for(domid, path)}"


def vchan_send(ssh, domid_or_name: int | str, text: str, path: str | None = None, timeout: float = 60) -> str:
    """Send one line to the echo unikernel over vchan; its reply line (without the newline).

    Connects as a libxenvchan client, writes ``text`` + newline, reads the reply, disconnects."""
    _check_text(text)
    cmd = client_command(ssh, domid_or_name, path)
    rc, out = _run(ssh, _with_args(cmd, ["--send", text], timeout), timeout=timeout + 30)
    if rc != 0:
        raise VchanError(f"vchan-client failed (exit {rc}): {out.strip()}")
    return out.rstrip("\n").split("\n")[-1]


def _with_args(cmd: str, args: list[str], timeout: float) -> str:
    # cmd is "sudo EXE DOMID PATH": options go before DOMID
    sudo, exe, domid, path = cmd.split(" ")
    opts = " ".join(shlex.quote(a) for a in args)
    return f"{sudo} timeout {int(timeout)} {exe} {opts} {domid} {path}"


def vchan_bench(ssh, domid_or_name: int | str, nbytes: int = 1 << 20, path: str | None = None,
                timeout: float = 300) -> dict:
    """Stream ``nbytes`` through the echo (checked) and time 16-byte round trips.

    Returns ``{"bytes", "seconds", "throughput_mb_s", "rtt_median_us", "rtt_mean_us",
    "rtt_min_us", "rtt_p99_us", "rounds"}``."""
    if not 0 < nbytes <= 1 << 30:
        raise VchanError("nbytes: 1 .. 1 GiB")
    cmd = client_command(ssh, domid_or_name, path)
    rc, out = _run(ssh, _with_args(cmd, ["--bench", str(nbytes)], timeout), timeout=timeout + 30)
    if rc != 0:
        raise VchanError(f"vchan-client --bench failed (exit {rc}): {out.strip()}")
    t = re.search(r"throughput: (\d+) bytes .* in ([\d.]+) s: ([\d.]+) MB/s", out)
    lat = re.search(r"over (\d+) rounds: median ([\d.]+) us, mean ([\d.]+) us, min ([\d.]+) us, p99 ([\d.]+) us", out)
    if not t or not lat:
        raise VchanError(f"unexpected vchan-client output: {out.strip()}")
    return {
        "bytes": int(t.group(1)), "seconds": float(t.group(2)), "throughput_mb_s": float(t.group(3)),
        "rounds": int(lat.group(1)), "rtt_median_us": float(lat.group(2)), "rtt_mean_us": float(lat.group(3)),
        "rtt_min_us": float(lat.group(4)), "rtt_p99_us": float(lat.group(5)),
    }
