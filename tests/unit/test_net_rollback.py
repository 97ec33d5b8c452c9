"""The xen_bridge role's rollback script, run for real in a private mount namespace whose
/etc/network and /var/lib are empty tmpfs (the host's own files are never touched). Only what needs
no interface change is run here; apply → watchdog → rollback runs in tests/e2e/test_network_safety.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import require_root_and_tools

SCRIPT = Path(__file__).resolve().parents[2] / "roles/xen_bridge/files/mirage-env-net-rollback"


def in_sandbox(steps: str) -> subprocess.CompletedProcess:
    script = f"""set -e
mount -t tmpfs mev-etc-network /etc/network
mount -t tmpfs mev-var-lib /var/lib
printf 'auto lo\\niface lo inet loopback\\n' > /etc/network/interfaces
mkdir /etc/network/interfaces.d
R={SCRIPT}
{steps}
"""
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)


def test_a_run_stopped_before_confirming_keeps_the_backup_from_before_it():
    require_root_and_tools("unshare", "flock")
    proc = in_sandbox("""
$R backup
echo 'auto br0' > /etc/network/interfaces.d/mirage-env-bridge   # the killed run's edit
$R backup                                                       # the next run
ls /var/lib/mirage-env/net-rollback/backup/interfaces.d | wc -l
cat /var/lib/mirage-env/net-rollback/log
""")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "backed up" and lines[1] == "kept the backup from before an unconfirmed change", lines
    assert lines[2] == "0", "the backup took the half-changed interfaces.d"


def test_bad_arguments_are_refused_before_anything_is_armed():
    require_root_and_tools("unshare", "flock")
    proc = in_sandbox("$R backup\n$R apply br0 soon")
    assert proc.returncode == 2 and "TIMEOUT must be a number of seconds, not 'soon'" in proc.stderr
    proc = in_sandbox("$R apply br0 30")
    assert proc.returncode == 2 and "no backup" in proc.stderr
