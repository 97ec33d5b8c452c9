#!/usr/bin/env python3
"""The echo unikernel on a provisioned dom0: vchan through Xen's real libxenvchan, against the same
kernel's TCP echo over br0, in the same run:

    python3 benchmarks/vchan_echo.py --state-dir /tmp/mev-state [--env default] [--bytes 1048576]
                                     [--repeat 3] [--no-tcp] [--prebuilt-client] [--json]

  vchan  build echo for Xen here, copy it to the dom0, `xl create` it (name vchan-echo, 4 MiB, a
         vif on br0 for the same config shape; the vchan mode does not use it), then from the dom0:
         `vchan-client --send "hello from dom0"` must print HELLO FROM DOM0, a second client after
         the first disconnected must be answered too, then --bench BYTES (1 MiB streamed through
         the echo and checked, then 2000 16-byte round trips); `xl destroy`.
  tcp    the same kernel with `echo=tcp` (name vchan-echo-tcp): DHCP lease on br0, then
         `vchan-client --tcp-bench BYTES IP 7` from the dom0 (dom0 -> br0 -> netback -> our
         netfront and TCP -> back); `xl destroy`.

The client helper is unikernel/tools/vchan_client.c, compiled on the dom0 by
mirage_env.vchan (needs gcc, libc6-dev, libxen-dev there) or, with --prebuilt-client, compiled here
against this host's libxen-dev (must be the dom0's version) and uploaded. Only the dom0 is touched
(over the environment's SSH); the domains this creates are destroyed by name, also on errors.
Exit status 1 when an echo answer is wrong; numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paramiko

from mirage_env import sshclient, vchan
from mirage_env.bundled import build
from mirage_env.dom0.xlconfig import render_xl_config

REMOTE = "/tmp/mirage-vchan"
NAME = "vchan-echo"
NAME_TCP = "vchan-echo-tcp"
MAC_TCP = "00:16:3e:76:63:01"


def connect(state_dir: Path, env: str) -> paramiko.SSHClient:
    cfg_file = state_dir / env / "ssh_config"
    if not cfg_file.is_file():
        sys.exit(f"{cfg_file} missing: is the environment up?")
    cfg = paramiko.SSHConfig.from_path(str(cfg_file)).lookup(f"mirage-{env}")
    target = sshclient.SshTarget(host=cfg["hostname"], port=int(cfg.get("port", 22)), user=cfg["user"],
                                 key=Path(cfg["identityfile"][0]))
    return sshclient.connect(target)


def sh(ssh: paramiko.SSHClient, command: str, timeout: float = 120) -> str:
    rc, out = sshclient.run(ssh, command, timeout=timeout)
    if rc != 0:
        raise RuntimeError(f"`{command}` failed ({rc}): {out.strip()}")
    return out


def boot(ssh: paramiko.SSHClient, name: str, cfg_text: str, ready: str, timeout: float = 120) -> str:
    """xl create; wait until the console log matches `ready`; the console text."""
    cfg = f"{REMOTE}/{name}.cfg"
    sftp = ssh.open_sftp()
    with sftp.open(cfg, "w") as f:
        f.write(cfg_text)
    sftp.close()
    log = f"/var/log/xen/console/guest-{name}.log"
    sshclient.run(ssh, f"sudo xl destroy {name} 2>/dev/null; sudo rm -f {log}")
    t0 = time.monotonic()
    sh(ssh, f"sudo xl create {cfg}")
    while time.monotonic() - t0 < timeout:
        _, out = sshclient.run(ssh, f"sudo cat {log} 2>/dev/null")
        if re.search(ready, out):
            return out
        time.sleep(0.5)
    raise RuntimeError(f"{name}: no {ready!r} on the console within {timeout:.0f}s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--env", default="default")
    ap.add_argument("--bytes", type=int, default=1 << 20)
    ap.add_argument("--repeat", type=int, default=3, help="bench runs per path (default 3)")
    ap.add_argument("--no-tcp", action="store_true", help="skip the TCP comparison")
    ap.add_argument("--prebuilt-client", action="store_true",
                    help="compile vchan-client here and upload it (for a dom0 without libc6-dev)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    result: dict = {}
    ok = True
    with tempfile.TemporaryDirectory(prefix="mev-vchan-") as tmp:
        image = build("echo", "xen", tmp)
        result["echo_xen_bytes"] = image.stat().st_size
        prebuilt = None
        if args.prebuilt_client:
            prebuilt = Path(tmp) / "vchan-client"
            subprocess.run(["gcc", "-O2", "-Wall", "-o", str(prebuilt), str(vchan.CLIENT_SRC),
                            "-lxenvchan", "-lxenctrl"], check=True)
        ssh = connect(args.state_dir, args.env)
        try:
            sh(ssh, f"mkdir -p {REMOTE}")
            sftp = ssh.open_sftp()
            sftp.put(str(image), f"{REMOTE}/echo.xen")
            sftp.close()
            exe = vchan.ensure_client(ssh, prebuilt=prebuilt)
            result["client"] = exe

            # vchan
            console = boot(ssh, NAME, render_xl_config(NAME, f"{REMOTE}/echo.xen", 4), r"vchan: server on")
            result["vchan_path"] = re.search(r"vchan: server on (\S+)", console).group(1)
            t0 = time.monotonic()
            first = vchan.vchan_send(ssh, NAME, "hello from dom0")
            result["send_seconds_over_ssh"] = round(time.monotonic() - t0, 2)
            second = vchan.vchan_send(ssh, NAME, "second client after a disconnect")
            result["replies"] = [first, second]
            if first != "HELLO FROM DOM0" or second != "SECOND CLIENT AFTER A DISCONNECT":
                ok = False
            result["vchan"] = [vchan.vchan_bench(ssh, NAME, args.bytes) for _ in range(args.repeat)]
            _, console = sshclient.run(ssh, f"sudo cat /var/log/xen/console/guest-{NAME}.log")
            result["vchan_console_tail"] = console.strip().splitlines()[-2:]
            sshclient.run(ssh, f"sudo xl destroy {NAME}")

            # tcp, same kernel
            if not args.no_tcp:
                cfg = render_xl_config(NAME_TCP, f"{REMOTE}/echo.xen", 4, mac=MAC_TCP, cmdline=["echo=tcp"])
                console = boot(ssh, NAME_TCP, cfg, r"DHCP: bound to \d+\.\d+\.\d+\.\d+")
                ip = re.search(r"DHCP: bound to (\d+\.\d+\.\d+\.\d+)", console).group(1)
                result["tcp_ip"] = ip
                result["tcp"] = []
                for _ in range(args.repeat):
                    rc, out = sshclient.run(ssh, f"timeout 300 {exe} --tcp-bench {args.bytes} {ip} 7", timeout=330)
                    t = re.search(r"in ([\d.]+) s: ([\d.]+) MB/s", out)
                    lat = re.search(r"median ([\d.]+) us, mean ([\d.]+) us, min ([\d.]+) us, p99 ([\d.]+) us", out)
                    if rc != 0 or not t or not lat:
                        ok = False
                        result["tcp_error"] = out.strip()
                        break
                    result["tcp"].append({"seconds": float(t.group(1)), "throughput_mb_s": float(t.group(2)),
                                          "rtt_median_us": float(lat.group(1)), "rtt_mean_us": float(lat.group(2)),
                                          "rtt_min_us": float(lat.group(3)), "rtt_p99_us": float(lat.group(4))})
        finally:
            for name in (NAME, NAME_TCP):
                sshclient.run(ssh, f"sudo xl destroy {name} 2>/dev/null")
            sshclient.run(ssh, f"rm -rf {REMOTE}")
            ssh.close()

    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
