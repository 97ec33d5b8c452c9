"""`--publish HOSTPORT:GUESTPORT`: forward 127.0.0.1:HOSTPORT to a unikernel while it runs.

The listening socket is made by the caller in the user's own network namespace (so the user's
browser and curl reach 127.0.0.1:HOSTPORT) and handed to a detached forwarder process as an
inherited descriptor. That process connects to the unikernel from where it is reachable:

* built-in machine: it runs inside the host-only namespace (`ip netns exec NS python -m
  mirage_env.forward --fd N --to IP:PORT`), so it accepts on the root namespace's 127.0.0.1 and
  connects from inside the namespace (standard library only);
* Vagrant and lab hosts: `--ssh TARGET.json` opens one SSH connection to the dom0 and each
  accepted connection becomes a paramiko `direct-tcpip` channel to IP:PORT.

    python -m mirage_env.forward --fd 3 --to 192.168.56.150:8088 [--ssh target.json]
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import EXIT_BAD_INPUT, MirageEnvError

BUFFER = 65536


class PublishError(MirageEnvError, ValueError):
    """A --publish value that cannot work; the message names it and the fix."""

    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True)
class Publish:
    host_port: int
    guest_port: int

    def __str__(self) -> str:
        return f"127.0.0.1:{self.host_port}->{self.guest_port}"


def free_host_port(guest_port: int, avoid=frozenset()) -> int:
    """An unprivileged host port a fix may suggest for GUEST_PORT: 8000 + its last three digits
    when that is free, else the next free one — never one of AVOID (the ports this command already
    names or that unikernels hold) nor one that is in use here."""
    first = 8000 + guest_port % 1000
    for port in [*range(first, 10000), *range(10000, 65536)]:
        if port in avoid:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise PublishError("--publish: no free port on 127.0.0.1. Fix: stop forwarders you no longer need")


def parse_publish(value: str, avoid=frozenset()) -> Publish:
    """VALUE as a Publish; AVOID: host ports a suggested fix must not name (the others given)."""
    host, sep, guest = value.partition(":")
    try:
        ports = int(host), int(guest)
    except ValueError:
        ports = None
    if not sep or ports is None or not all(1 <= p <= 65535 for p in ports):
        raise PublishError(f"--publish {value!r}: give HOSTPORT:GUESTPORT, two ports 1-65535, e.g. "
                           "--publish 8080:80 (127.0.0.1:8080 here → port 80 of the unikernel)")
    if ports[0] < 1024 and os.geteuid() != 0:
        raise PublishError(f"--publish {value}: host port {ports[0]} needs root. Fix: a port >= 1024, "
                           f"e.g. --publish {free_host_port(ports[1], avoid)}:{ports[1]}")
    return Publish(*ports)


def listen(port: int) -> socket.socket:
    """Bind 127.0.0.1:PORT now, before anything boots: a port in use is refused with the fix."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PublishError(f"--publish: 127.0.0.1:{port} is already in use on this machine "
                               f"(`ss -ltnp 'sport = :{port}'` shows by what). Fix: pick another host "
                               "port, or stop what holds it (`mirage-env unikernel list` shows ports "
                               "published by unikernels)") from None
        raise PublishError(f"--publish: cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    sock.listen(64)
    return sock


def start(listener: socket.socket, ip: str, guest_port: int, log: Path, namespace: str | None = None,
          ssh_target_file: Path | None = None) -> int:
    """Start the detached forwarder on LISTENER (inherited as a descriptor); return its PID."""
    fd = listener.fileno()
    os.set_inheritable(fd, True)
    cmd = [sys.executable, "-m", "mirage_env.forward", "--fd", str(fd), "--to", f"{ip}:{guest_port}"]
    if ssh_target_file is not None:
        cmd += ["--ssh", str(ssh_target_file)]
    if namespace:
        cmd = ["ip", "netns", "exec", namespace, *cmd]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH")) if p)}
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, env=env)
    listener.close()  # the forwarder holds it now
    # `ip netns exec` enters the namespace, then execs Python in the same process
    deadline = time.monotonic() + 10
    while not is_forwarder(proc.pid):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise PublishError(f"the forwarder for port {guest_port} did not start; see {log}")
        time.sleep(0.02)
    return proc.pid


def is_forwarder(pid: int) -> bool:
    """PID is alive and is one of our forwarders (not a reused PID of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"mirage_env.forward" in cmdline


def _has_exited(pid: int) -> bool:
    """PID is gone, or a zombie whose every thread has ended. Only then are its descriptors (the
    listening socket) closed: the main thread turns zombie while its serving threads, sharing the
    descriptor table, may still be ending, and an exiting process drops its command line early."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return threads == [str(pid)] and stat[stat.rindex(")") + 2:][:1] in ("Z", "X")


def stop(pid: int, timeout: float = 5.0) -> bool:
    """End forwarder PID (only if it still is one) and wait until its port is free; True when it
    was running. One that ignores SIGTERM for TIMEOUT seconds is killed."""
    if not is_forwarder(pid):
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if _has_exited(pid):
                return True
            time.sleep(0.02)
    return True


def _pipe(src, dst) -> None:
    try:
        while data := src.recv(BUFFER):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except (OSError, AttributeError):
                pass


def _serve(conn: socket.socket, open_upstream) -> None:
    try:
        upstream = open_upstream()
    except Exception as exc:  # unikernel gone, or not answering: close this client only
        print(f"forward: cannot reach the unikernel: {exc}", file=sys.stderr, flush=True)
        conn.close()
        return
    back = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
    back.start()
    _pipe(conn, upstream)
    back.join()
    conn.close()
    upstream.close()


def serve(listener: socket.socket, open_upstream) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve, args=(conn, open_upstream), daemon=True).start()


def _ssh_upstream(target_file: Path, ip: str, port: int):
    """direct-tcpip channels over one SSH connection to the dom0 (re-opened if it drops)."""
    from .sshclient import SshTarget, connect

    raw = json.loads(target_file.read_text())
    target = SshTarget(raw["host"], int(raw["port"]), raw["user"], Path(raw["key"]),
                       Path(raw["known_hosts"]) if raw.get("known_hosts") else None)
    state = {"client": None}
    lock = threading.Lock()

    def open_channel():
        with lock:
            client = state["client"]
            if client is None or not client.get_transport() or not client.get_transport().is_active():
                client = state["client"] = connect(target)
        return client.get_transport().open_channel("direct-tcpip", (ip, port), ("127.0.0.1", 0), timeout=10)

    return open_channel


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mirage_env.forward", description=__doc__.splitlines()[0])
    p.add_argument("--fd", type=int, required=True, help="inherited listening socket")
    p.add_argument("--to", required=True, help="IP:PORT of the unikernel")
    p.add_argument("--ssh", type=Path, help="JSON SSH target of the dom0 (Vagrant/lab hosts)")
    args = p.parse_args(argv)
    ip, _, port = args.to.rpartition(":")
    listener = socket.socket(fileno=args.fd)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.ssh:
        upstream = _ssh_upstream(args.ssh, ip, int(port))
    else:
        def upstream():
            sock = socket.create_connection((ip, int(port)), timeout=10)
            sock.settimeout(None)  # the timeout was for connecting; a quiet connection stays open
            return sock
    print(f"forward: {listener.getsockname()} -> {ip}:{port} (pid {os.getpid()})", flush=True)
    serve(listener, upstream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
