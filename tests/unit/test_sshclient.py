"""Host-key pinning of the project's own SSH connections, against real SSH servers (paramiko's
server side) on the loopback of a private network namespace: first contact records the key in
known_hosts, the same key logs in again, a changed key is refused with the fix, and parallel first
contacts (a lab's hosts in threads) all keep their line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support import require_root_and_tools

REPO = Path(__file__).resolve().parents[2]

# Runs inside `unshare --net`: 127.0.0.1 there is the new namespace's own loopback.
SCENARIO = textwrap.dedent('''
    import json, socket, subprocess, sys, threading
    from pathlib import Path
    import paramiko
    from mirage_env.sshclient import HostKeyChanged, SshTarget, connect

    work = Path(sys.argv[1])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

    def keygen(name):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / name)], check=True)
        return paramiko.Ed25519Key.from_private_key_file(str(work / name))

    class Server(paramiko.ServerInterface):
        def get_allowed_auths(self, username): return "publickey"
        def check_auth_publickey(self, username, key): return paramiko.AUTH_SUCCESSFUL

    def serve(host_key):
        """An SSH server on a free loopback port that serves every connection; returns the port.
        start_server is given an event, so it returns at once: without one it blocks polling every
        0.1 s and checks `active` before the event, so a client that logged in and closed before the
        poll woke (likely under load) made it raise "Negotiation failed" — which ended this accept
        loop, and the next connect waited for a banner that never came (the flaky banner timeout)."""
        listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen(8)
        def accept():
            while True:
                conn, _ = listener.accept()
                transport = paramiko.Transport(conn); transport.add_server_key(host_key)
                transport.start_server(event=threading.Event(), server=Server())
        threading.Thread(target=accept, daemon=True).start()
        return listener.getsockname()[1]

    keygen("client")
    known_hosts = work / "known_hosts"
    target = lambda port, known_hosts: SshTarget("127.0.0.1", port, "user", work / "client", known_hosts)
    out = {}

    port = serve(keygen("host-a"))
    client = connect(target(port, known_hosts))
    out["first"] = client.get_transport().is_authenticated(); client.close()
    out["lines_after_first"] = known_hosts.read_text().splitlines()
    client = connect(target(port, known_hosts)); client.close()
    out["lines_after_second"] = known_hosts.read_text().splitlines()

    # Same address and port, another host key: a reinstalled host, or someone in the middle.
    impostor = serve(keygen("host-b"))
    known_hosts.write_text(known_hosts.read_text().replace(f"]:{port} ", f"]:{impostor} "))
    try:
        connect(target(impostor, known_hosts))
        out["changed"] = "connected"
    except HostKeyChanged as exc:
        out["changed"] = str(exc)

    # Four first contacts at once, as a lab's hosts are reached in parallel.
    ports = [serve(keygen(f"lab-{i}")) for i in range(4)]
    parallel = work / "known_hosts.parallel"
    threads = [threading.Thread(target=lambda p=p: connect(target(p, parallel)).close())
               for p in ports]
    for t in threads: t.start()
    for t in threads: t.join()
    out["parallel_ports"] = ports
    out["parallel_lines"] = parallel.read_text().splitlines()
    print(json.dumps(out))
''')


def test_host_keys_are_recorded_kept_and_a_changed_one_is_refused(tmp_path):
    require_root_and_tools("unshare", "ip", "ssh-keygen")
    proc = subprocess.run(["unshare", "--net", sys.executable, "-c", SCENARIO, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["first"] is True
    [line] = out["lines_after_first"]
    assert line.startswith("[127.0.0.1]:") and " ssh-ed25519 " in line
    assert out["lines_after_second"] == out["lines_after_first"]  # a known key adds nothing

    changed = out["changed"]
    assert changed.startswith("the host key of 127.0.0.1:"), changed
    assert "ssh-ed25519 SHA256:" in changed and "ssh-keygen -f " in changed and " -R '[127.0.0.1]:" in changed

    recorded = sorted(int(line.split()[0].rsplit(":", 1)[1]) for line in out["parallel_lines"])
    assert recorded == sorted(out["parallel_ports"])
