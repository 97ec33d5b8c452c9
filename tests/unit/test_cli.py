"""The CLI: fast help without Ansible, version, bad input refused with exit 2 and nothing touched."""

import subprocess
import sys

from click.testing import CliRunner

from mirage_env import __version__
from mirage_env.cli import cli


def test_help_lists_the_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "provision", "verify", "status", "ssh", "down", "unikernel"):
        assert f"  {command}" in result.output


def test_help_does_not_import_ansible():
    code = ("import sys\nfrom mirage_env.cli import cli\n"
            "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('ansible', 'ansible_runner', 'paramiko', 'pytest', 'testinfra')]\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_bad_settings_exit_2_and_touch_nothing(tmp_path):
    bad = tmp_path / "mirage-env.yml"
    bad.write_text("network: {dhcp_start: 192.168.56.200, dhcp_end: 192.168.56.150}\n")
    state = tmp_path / "state"
    result = CliRunner().invoke(cli, ["-c", str(bad), "--state-dir", str(state), "up"])
    assert result.exit_code == 2
    assert "network.dhcp_start/dhcp_end" in result.output and "Fix:" in result.output
    assert "Traceback" not in result.output
    assert not state.exists()


def test_bad_override_is_refused(tmp_path):
    result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path / "s"), "-s", "dom0.memory", "status"])
    assert result.exit_code == 2 and "KEY=VALUE" in result.output


def test_status_of_a_machine_never_started(tmp_path):
    result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path), "status", "--json"])
    assert result.exit_code == 0
    assert '"running": false' in result.output


def test_ssh_before_up_says_what_to_do(tmp_path):
    result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path), "ssh"])
    assert result.exit_code == 1 and "mirage-env up" in result.output


def test_a_second_changing_command_on_a_busy_environment_is_refused(tmp_path):
    """Another process holds the environment (as a running `provision` does): `down` is refused
    with who holds it and the fix, and nothing is changed; once the holder exits, it goes ahead."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\nfrom mirage_env.state import StateDir\n"
         f"with StateDir.for_env('busy', Path({str(tmp_path)!r})).exclusive('provision'):\n"
         "    print('held', flush=True)\n    time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = subprocess.run([sys.executable, "-m", "mirage_env.cli", "--state-dir", str(tmp_path),
                                  "-s", "name=busy", "-s", "provider=qemu", "down"], capture_output=True, text=True)
        assert refused.returncode == 1
        assert f"environment busy is busy: `mirage-env provision (pid {holder.pid})` is running on it" in refused.stderr
        assert "Fix: wait for it to finish" in refused.stderr and "Traceback" not in refused.stderr
        assert not (tmp_path / "busy" / "report-down.json").exists()
    finally:
        holder.kill()
        holder.wait()
    after = subprocess.run([sys.executable, "-m", "mirage_env.cli", "--state-dir", str(tmp_path),
                            "-s", "name=busy", "-s", "provider=qemu", "down"], capture_output=True, text=True)
    assert "is busy" not in after.stderr and (tmp_path / "busy" / "report-down.json").exists(), after.stderr


def test_unusable_domu_names_are_refused_before_any_connection(tmp_path):
    state = tmp_path / "state"
    for args in (["unikernel", "stop", "ok-name", "../../etc/passwd"],
                 ["unikernel", "run", "--app", "auth", "--name", "a b"],
                 ["unikernel", "run", "--name", "x" * 58, "--count", "2"]):  # x…x-01 is 61 characters
        result = CliRunner().invoke(cli, ["--state-dir", str(state), *args])
        assert result.exit_code == 2, (args, result.output)
        assert "is not usable" in result.output and "Fix:" in result.output
        # each hint names an option the command has: `stop` has no --name
        assert ("--name" in result.output) == (args[1] == "run"), result.output
        assert "Traceback" not in result.output
    assert not state.exists()  # refused before the environment was opened
