"""--publish: a real forwarder process inside a real network namespace made here, reached on
127.0.0.1 of this (root) namespace, connecting to a server that only exists inside the namespace."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mirage_env import forward
from mirage_env.forward import PublishError, parse_publish
from tests.support import require, require_root_and_tools

ECHO = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.213.0.1", 7007)); s.listen(8)
while True:
    c, _ = s.accept()
    data = c.recv(1024)
    c.sendall(b"from-ns:" + data); c.close()
"""


def ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@pytest.fixture
def namespace():
    require(os.geteuid() == 0, "creating a network namespace needs root")
    name = f"mevfw-{uuid.uuid4().hex[:6]}"
    ip("netns", "add", name)
    server = None
    try:
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "addr", "add", "10.213.0.1/32", "dev", "lo")  # exists only in there
        server = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", ECHO])
        for _ in range(100):
            if "10.213.0.1:7007" in subprocess.run(["ip", "netns", "exec", name, "ss", "-Hltn"],
                                                    capture_output=True, text=True).stdout:
                break
            time.sleep(0.05)
        yield name
    finally:
        if server:
            server.kill()
            server.wait()
        ip("netns", "del", name, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_forwards_localhost_into_the_namespace(namespace, tmp_path):
    port = free_port()
    listener = forward.listen(port)
    pid = forward.start(listener, "10.213.0.1", 7007, tmp_path / "fw.log", namespace=namespace)
    try:
        assert forward.is_forwarder(pid)
        for i in range(3):  # each connection its own upstream
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(f"hello{i}".encode())
                assert c.recv(1024) == f"from-ns:hello{i}".encode()
        # (the reply's prefix comes from the server that lives only inside the namespace)
    finally:
        assert forward.stop(pid)  # returns once the port is free again
    assert not forward.is_forwarder(pid)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert not forward.stop(pid)  # gone: nothing to end, and never another process


def test_a_port_in_use_is_refused_before_anything_starts():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        with pytest.raises(PublishError, match=f"127.0.0.1:{port} is already in use.*Fix"):
            forward.listen(port)


@pytest.mark.parametrize("value", ["8080", "8080:", "x:80", "0:80", "8080:70000", "80:80:80"])
def test_bad_publish_values_are_refused(value):
    if value == "80:80:80":
        value = "8080:80:80"
    with pytest.raises(PublishError, match="HOSTPORT:GUESTPORT"):
        parse_publish(value)


def test_publish_parses():
    assert parse_publish("8080:80") == forward.Publish(8080, 80)
    assert str(parse_publish("18088:8088")) == "127.0.0.1:18088->8088"


AS_NOBODY = """
import os, sys
import mirage_env.cli, mirage_env.launch, mirage_env.forward, mirage_env.workflow, mirage_env.providers.qemu
import mirage_env.disks, mirage_env.kernels, mirage_env.bundled, mirage_env.domus, mirage_env.report
os.setgroups([]); os.setgid(65534); os.setuid(65534)  # the modules are read; now an ordinary user
sys.argv = ["mirage-env", *sys.argv[1:]]
mirage_env.cli.main()
"""


def test_the_privileged_port_fix_names_a_port_no_other_publish_takes(tmp_path):
    """`-p 80:8080 -p 8080:80` as a user: the fix was `--publish 8080:8080` (8000 + 8080 % 1000),
    the host port the second --publish already takes. Now: a free port nobody named."""
    require_root_and_tools()  # to become an ordinary user below
    tmp_path.chmod(0o777)
    args = ["--state-dir", str(tmp_path / "state"), "-s", "provider=qemu", "unikernel", "run", "--app", "www",
            "-p", "80:8080", "-p", "8080:80"]
    proc = subprocess.run([sys.executable, "-c", AS_NOBODY, *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    found = re.search(r"host port 80 needs root\. Fix: .*--publish (\d+):8080", proc.stderr)
    assert found, proc.stderr
    assert int(found.group(1)) not in (80, 8080) and 1024 <= int(found.group(1)) <= 65535, proc.stderr
    assert not (tmp_path / "state").exists()


def test_free_host_port_skips_busy_and_named_ports():
    """The first candidate (8000 + guest % 1000) is in use here and the next is named by the command."""
    held = socket.socket()
    try:
        for guest in range(1000):
            try:
                held.bind(("127.0.0.1", 8000 + guest))
                break
            except OSError:
                continue
        else:
            pytest.skip("no free port in 8000-8999 to hold")
        port = forward.free_host_port(guest, avoid={8000 + guest + 1})
        assert port not in (8000 + guest, 8000 + guest + 1) and 1024 <= port <= 65535
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # and it is free
    finally:
        held.close()
