"""Talk to the bundled ``echo`` unikernel over vchan from the dom0, through Xen's real libxenvchan.

The dom0 side is a small C helper, ``unikernel/tools/vchan_client.c``, linked against Xen's
``libxenvchan`` (``-lxenvchan -lxenctrl``) the first time it is needed and kept under
``REMOTE_DIR`` with the source's hash in its name (a changed source is rebuilt). It is compiled on
this machine and copied when the dom0 has the same libxen sonames, else compiled on the dom0
(see ``ensure_client``). The helper runs as root (it maps grants and binds event channels).

    vchan_send(ssh, "vchan-echo", "hello from dom0")  -> "HELLO FROM DOM0"
    vchan_bench(ssh, "vchan-echo", 1 << 20)           -> {"throughput_mb_s": ..., "rtt_median_us": ...}
    client_command(ssh, "vchan-echo")                 -> "sudo /var/lib/.../vchan-client-... 7 /local/domain/7/data/vchan"
                                                         (for an interactive session: ssh -t HOST CMD)

``ssh`` is a connected ``paramiko.SSHClient`` (``mirage_env.sshclient.connect``). The server's xenstore directory defaults to
``/local/domain/<domid>/data/vchan`` (the echo kernel's default; ``vchan=PATH`` on its command line
changes it there, ``path=`` here).
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from .dom0.names import name_problem
from .dom0.paths import TOOLS_DIR
from .paths import UNIKERNEL_DIR
from . import sshclient
from .errors import MirageEnvError

CLIENT_SRC = UNIKERNEL_DIR / "tools" / "vchan_client.c"
REMOTE_DIR = TOOLS_DIR
DEFAULT_SUBPATH = "data/vchan"
_PATH = re.compile(r"^/[A-Za-z0-9_./-]{1,39}\Z")  # libxenvchan's 64-byte key buffer
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
            raise VchanError(f"domain id {domid}: a domU id is 1..32751 (0 is the dom0). "
                             "Fix: give the id or name `mirage-env unikernel list` shows")
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


# Installed on the dom0 only when the helper must be compiled there (the unikernel role no longer
# installs a compiler: the image is built on the controller).
DOM0_BUILD_PACKAGES = "gcc libc6-dev libxen-dev"
_LOADER_ERRORS = ("error while loading shared libraries", "not found (required by", "cannot execute")


def build_here(out_dir: Path) -> Path | None:
    """The helper compiled on this machine (gcc + libxen-dev here), or None when it cannot be."""
    if shutil.which("gcc") is None or not Path("/usr/include/libxenvchan.h").exists():
        return None
    exe = out_dir / "vchan-client"
    done = subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(CLIENT_SRC), "-lxenvchan", "-lxenctrl"],
                          capture_output=True, text=True)
    return exe if done.returncode == 0 else None


def needed_libraries(binary: Path) -> list[str]:
    """The shared libraries (sonames) a binary was linked against, from its dynamic section."""
    done = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", done.stdout)


def _dom0_has_libraries(ssh, sonames: list[str]) -> bool:
    # a soname names its Xen release (libxenvchan.so.4.17): the same soname is the same ABI
    wanted = [n for n in sonames if n.startswith("libxen")]
    if not wanted:
        return False
    # `ldconfig -p` lines: "<TAB>libxenvchan.so.4.17 (libc6,x86-64) => /lib/..."
    test = " && ".join(f"/sbin/ldconfig -p | awk '{{print $1}}' | grep -qxF {shlex.quote(n)}" for n in wanted)
    rc, _ = _run(ssh, test, timeout=60)
    return rc == 0


def _upload(ssh, binary: Path, exe: str) -> None:
    tmp = f"/tmp/vchan-client-upload-{exe.rsplit('-', 1)[1]}"
    sftp = ssh.open_sftp()
    try:
        sftp.put(str(binary), tmp)
    finally:
        sftp.close()
    # run it once before installing: a dom0 whose C library is older than this machine's says so here
    rc, out = _run(ssh, f"chmod 0755 {tmp} && {tmp} 2>&1; true", timeout=60)
    if any(e in out for e in _LOADER_ERRORS):
        _run(ssh, f"rm -f {tmp}", timeout=60)
        raise VchanError(f"the helper built on this machine does not run on the dom0: {out.strip()}")
    rc, out = _run(ssh, f"sudo mkdir -p {REMOTE_DIR} && sudo install -m 0755 {tmp} {exe}; rm -f {tmp}",
                   timeout=60)
    if rc != 0:
        raise VchanError(f"installing {binary} as {exe} on the dom0 failed: {out.strip()}")


def ensure_client(ssh, prebuilt: Path | None = None, timeout: float = 900) -> str:
    """Make sure the helper for this source version is on the dom0; its path there.

    In order: ``prebuilt`` (a binary built elsewhere from the same source) is uploaded; else it is
    compiled on this machine and uploaded when the dom0 has the same libxen sonames (the same Xen
    release, so the same ABI: seconds instead of installing a compiler into an emulated dom0);
    else it is compiled on the dom0, installing gcc, libc6-dev and libxen-dev there first if missing."""
    exe = remote_client_path()
    rc, _ = _run(ssh, f"test -x {exe}", timeout=60)
    if rc == 0:
        return exe
    if prebuilt is not None:
        _upload(ssh, prebuilt, exe)
        return exe
    with tempfile.TemporaryDirectory(prefix="mirage-env-vchan-") as tmp:
        built = build_here(Path(tmp))
        if built is not None and _dom0_has_libraries(ssh, needed_libraries(built)):
            try:
                _upload(ssh, built, exe)
                return exe
            except VchanError:
                pass  # e.g. an older C library on the dom0: compile it there instead
    _compile_on_dom0(ssh, exe, timeout)
    return exe


def _compile_on_dom0(ssh, exe: str, timeout: float) -> None:
    tools = ("command -v gcc >/dev/null && test -e /usr/include/libxenvchan.h || "
             f"{{ sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {DOM0_BUILD_PACKAGES} "
             f"|| {{ sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
             f"--no-install-recommends {DOM0_BUILD_PACKAGES}; }}; }}")
    rc, out = _run(ssh, f"sh -c {shlex.quote(tools)}", timeout=timeout)
    if rc != 0:
        raise VchanError(f"installing {DOM0_BUILD_PACKAGES} on the dom0 (to build the vchan helper there) "
                         f"failed:\n{out.strip()[-2000:]}")
    payload = base64.b64encode(CLIENT_SRC.read_bytes()).decode()
    script = (
        f"set -e; sudo mkdir -p {REMOTE_DIR}; t=$(mktemp -d); trap 'rm -rf $t' EXIT; "
        f"echo {payload} | base64 -d > $t/vchan_client.c; "
        f"gcc -O2 -Wall -o $t/vchan-client $t/vchan_client.c -lxenvchan -lxenctrl; "
        f"sudo install -m 0755 $t/vchan-client {exe}"
    )
    rc, out = _run(ssh, f"sh -c {shlex.quote(script)}", timeout=timeout)
    if rc != 0:
        raise VchanError(f"building vchan-client on the dom0 failed:\n{out.strip()}")


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
