"""Bad input changes nothing: every refusal below is a real CLI run against an empty state
directory, ends with exit 2 and a one-line reason naming the field, and leaves that directory
absent (nothing is created before the input is known to be good)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mirage_env.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def run(tmp_path: Path, *args: str, settings: str | None = None, env: dict | None = None):
    """`mirage-env --state-dir STATE ARGS` in tmp_path; (result, state dir)."""
    state = tmp_path / "state"
    argv = ["--state-dir", str(state)]
    if settings is not None:
        (tmp_path / "mirage-env.yml").write_text(settings)
        argv += ["-c", str(tmp_path / "mirage-env.yml")]
    result = CliRunner().invoke(cli, [*argv, *args], env=env or {})
    return result, state


def refused(tmp_path, *args, settings=None, expect=()):
    result, state = run(tmp_path, *args, settings=settings)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (KeyError, TypeError, AttributeError))
    for text in expect:
        assert text in result.output, result.output
    assert not state.exists(), f"{list(state.rglob('*'))} created before the refusal"
    return result.output


def lab(tmp_path: Path, body: str) -> Path:
    key = tmp_path / "id_test"
    key.write_text("not a real key\n")
    path = tmp_path / "lab.yml"
    path.write_text(body.replace("KEY", str(key)))
    return path


# -- nothing created ------------------------------------------------------------------------
@pytest.mark.parametrize("body, expect", [
    ("hosts:\n  a: {address: 127.0.0.1, port: 1, user: u, key: KEY, network: {bridge: 'a b'}}\n", "hosts.a.network.bridge"),
    ("hosts:\n  a: {address: 127.0.0.1, port: 1, key: KEY}\n", "hosts.a.user"),
    ("hosts: []\n", "no `hosts:`"),
])
def test_lab_inventory_errors_create_nothing(tmp_path, body, expect):
    inventory = lab(tmp_path, body)
    refused(tmp_path, "provision", "--inventory", str(inventory), expect=[expect])


def test_limit_matching_no_host_creates_nothing(tmp_path):
    inventory = lab(tmp_path, "hosts:\n  a: {address: 127.0.0.1, port: 1, user: u, key: KEY}\n")
    refused(tmp_path, "verify", "--inventory", str(inventory), "--limit", "zzz", expect=["matches no host"])


def test_limit_without_a_lab_creates_nothing(tmp_path):
    refused(tmp_path, "-s", "provider=qemu", "verify", "--limit", "a", expect=["--limit"])


def test_read_commands_create_nothing(tmp_path):
    result, state = run(tmp_path, "-s", "provider=qemu", "status", "--no-topology")
    assert "Traceback" not in result.output, result.output
    assert not state.exists(), list(state.rglob("*"))
    result, state = run(tmp_path, "-s", "provider=qemu", "doctor", "--json")
    assert '"checks"' in result.output, result.output
    assert not state.exists(), list(state.rglob("*"))


# -- accepted silently before ---------------------------------------------------------------
def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path):
    out = refused(tmp_path, "doctor", settings="dom0:\n  memory: 512M\nname: a\ndom0:\n  memory: 1G\n",
                  expect=["'dom0' is given twice", "first on line 1", "mirage-env.yml:4:1"])
    assert "\n" not in out.split("  - ", 1)[1].strip()  # one clean line


def test_the_same_lab_host_twice_is_refused(tmp_path):
    inventory = lab(tmp_path, "hosts:\n  a: {address: 127.0.0.1, port: 1, user: u, key: KEY}\n"
                              "  a: {address: 127.0.0.1, port: 2, user: u, key: KEY}\n")
    refused(tmp_path, "provision", "--inventory", str(inventory), expect=["'a' is given twice", "first on line 2"])


def test_two_lab_hosts_with_one_address_are_refused(tmp_path):
    inventory = lab(tmp_path, "hosts:\n  a: {address: 127.0.0.1, port: 1, user: u, key: KEY}\n"
                              "  b: {address: 127.0.0.1, port: 1, user: v, key: KEY}\n")
    refused(tmp_path, "provision", "--inventory", str(inventory), expect=["hosts.b.address", "hosts.a"])


@pytest.mark.parametrize("setting, expect", [
    ("network: {subnet: 10.0.0.0/8, host_address: 10.0.0.1, dom0_address: 10.0.0.5, "
     "dhcp_start: 10.0.1.0, dhcp_end: 10.0.254.255}", "1000 leases"),
    ("network: {bridge: eth0}", "network.bridge: 'eth0' is also network.uplink_nic"),
    ("probe: {lease_timeout: -5}", "probe.lease_timeout: -5 seconds is outside"),
    ("probe: {memory: 100G}", "probe.memory"),
])
def test_out_of_range_and_conflicting_fields_are_refused(tmp_path, setting, expect):
    # doctor refuses bad settings as `up` does and does nothing else: a regression cannot boot a machine
    refused(tmp_path, "-s", "provider=qemu", "doctor", settings=setting + "\n", expect=[expect])


def test_a_dhcp_range_of_exactly_1000_is_accepted(tmp_path):
    from mirage_env.settings import load_settings

    (tmp_path / "s.yml").write_text("network: {subnet: 10.0.0.0/16, host_address: 10.0.0.1, dom0_address: 10.0.0.5, "
                                    "dhcp_start: 10.0.1.0, dhcp_end: 10.0.4.231}\n")
    assert str(load_settings(tmp_path / "s.yml").network.dhcp_end) == "10.0.4.231"


# -- a traceback before ---------------------------------------------------------------------
@pytest.mark.parametrize("override", ["name.x=1", "name.x.y=1"])
def test_set_through_a_scalar_is_a_clear_error(tmp_path, override):
    refused(tmp_path, "-s", override, "doctor", settings="name: foo\n",
            expect=[f"--set {override}", "name is a single value", "Fix: --set name=VALUE"])


# -- checked too late before ----------------------------------------------------------------
@pytest.mark.parametrize("args, expect", [
    (["vchan", "../x", "--send", "hi"], "not a domain id or a valid domain name"),
    (["vchan", "0"], "a domU id is 1..32751"),
    (["vchan", "mirage-echo", "--path", "relative/path"], "vchan path"),
    (["vchan", "mirage-echo", "--send", "a\nb"], "one line"),
    (["unikernel", "stop", "bad name"], "is not usable"),
])
def test_arguments_are_checked_before_connecting(tmp_path, args, expect):
    out = refused(tmp_path, "-s", "provider=qemu", *args, expect=[expect])
    assert "never been started" not in out


# -- wording --------------------------------------------------------------------------------
def test_yaml_error_on_line_1_is_reported_on_line_1(tmp_path):
    out = refused(tmp_path, "doctor", settings="name: 'unclosed\nprovider: qemu\nmachine: {}\n",
                  expect=["began on line 1, column 7"])
    problem = out.split("  - ", 1)[1]
    assert problem.count("\n") == 1, problem  # one line: PyYAML's multi-line text is folded


def test_lab_yaml_error_is_one_line_with_file_line_column(tmp_path):
    inventory = lab(tmp_path, "hosts:\n  a: {address: 127.0.0.1\n")
    out = refused(tmp_path, "provision", "--inventory", str(inventory), expect=["lab.yml:"])
    assert out.split("  - ", 1)[1].count("\n") == 1, out


def test_settings_without_a_file_say_so(tmp_path):
    out = refused(tmp_path, "-s", "dom0.memory=1", "doctor")
    assert not out.startswith("defaults is not valid"), out
    assert "no file" in out and "dom0.memory" in out


# -- conventions ----------------------------------------------------------------------------
def test_errors_have_no_colour_with_no_color(tmp_path):
    """A real process on a pseudo-terminal (where colour would be on): NO_COLOR turns it off."""
    import pty

    def stderr_on_tty(extra_env: dict) -> bytes:
        master, slave = pty.openpty()
        env = {**os.environ, **extra_env}
        env.pop("NO_COLOR", None) if "NO_COLOR" not in extra_env else None
        proc = subprocess.run([sys.executable, "-m", "mirage_env.cli", "--state-dir", str(tmp_path / "s"),
                               "-s", "dom0.memory=1", "doctor"], stdout=slave, stderr=slave, cwd=ROOT, env=env)
        os.close(slave)
        out = b""
        try:
            while chunk := os.read(master, 4096):
                out += chunk
        except OSError:
            pass
        os.close(master)
        assert proc.returncode == 2, out
        return out

    assert b"\x1b[" in stderr_on_tty({})  # coloured on a terminal …
    assert b"\x1b[" not in stderr_on_tty({"NO_COLOR": "1"})  # … and plain with NO_COLOR


def _walk(command, path=()):
    import click

    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, (*path, name))


def test_every_option_has_help():
    import click

    missing = [f"{' '.join(path) or 'mirage-env'} {param.opts[0]}" for path, command in _walk(cli)
               for param in command.params
               if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip()
               and param.name not in ("help", "version")]
    assert not missing, f"options without help: {missing}"
    assert all((c.help or "").strip() for _, c in _walk(cli)), "a command without help"


@pytest.mark.parametrize("flag", ["-v", "--verbose", "-q", "--quiet"])
def test_verbose_and_quiet_are_global_options(tmp_path, flag):
    result, _ = run(tmp_path, flag, "--help")
    assert result.exit_code == 0, result.output


def test_verbose_and_quiet_together_are_refused(tmp_path):
    refused(tmp_path, "-v", "-q", "doctor", expect=["--verbose", "--quiet"])


@pytest.mark.parametrize("command", ["up", "provision", "verify"])
def test_changing_commands_have_json(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert "--json" in result.output


def test_readme_documents_shell_completion():
    assert "_MIRAGE_ENV_COMPLETE=bash_source mirage-env" in (ROOT / "README.md").read_text()


def test_doctor_checks_what_up_needs_on_this_host(tmp_path):
    """A real `doctor` with an empty PATH: every tool the built-in machine runs is missing, and
    each failure names the package and another provider to use instead."""
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "mirage_env.cli", "--state-dir", str(tmp_path / "state"),
                           "-s", "provider=qemu", "doctor", "--json"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PATH": str(empty)})
    import json

    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert proc.returncode == 1
    tools = checks["host tools"]
    assert tools["status"] == "fail"
    for tool in ("debootstrap", "ssh-keygen", "ip"):
        assert tool in tools["detail"]
    assert "apt-get install debootstrap" in tools["fix"] and "provider=" in tools["fix"]
    assert checks["qemu"]["status"] == "fail" and "qemu-system-x86_64" in checks["qemu"]["detail"]
    assert checks["root"]["status"] == ("ok" if os.geteuid() == 0 else "fail")
    assert not (tmp_path / "state").exists()


def test_doctor_refuses_the_built_in_machine_without_root():
    from mirage_env.hostcaps import check_host_tools

    root = next(c for c in check_host_tools("qemu", euid=1000) if c.name == "root")
    assert root.status == "fail" and "sudo mirage-env up" in root.fix and "provider=" in root.fix
