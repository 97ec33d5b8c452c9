"""Every hint names what exists: a `mirage-env …` invocation in any message resolves to a real
command with options it accepts, in a place the parser accepts them (global options before the
command); and an option a failing command names is one that command has (or one the user typed)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mirage_env.cli import cli

PACKAGE = Path(__file__).resolve().parents[2] / "mirage_env"
INVOCATION = re.compile(r"`mirage-env ([^`]*)`")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z-]*|-[a-z])(?=[\s=,.;:)\]`'\"]|$)")


def option_names(command: click.Command) -> dict[str, click.Parameter]:
    names = {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    help_option = command.get_help_option(click.Context(command, help_option_names=["-h", "--help"]))
    return {**names, **{opt: help_option for opt in help_option.opts}}


def check_invocation(words: list[str]) -> None:
    """Parse WORDS as click would: global options, then subcommands, then that command's options.
    UPPERCASE words are placeholders (NAME, FILE, COMMAND: any command)."""
    command: click.Command = cli
    i = 0
    while i < len(words):
        word = words[i].strip("[]")
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            param = option_names(command).get(name)
            assert param is not None, f"`mirage-env {' '.join(words)}`: {name} is not an option of " \
                                      f"`{command.name}` here"
            i += 1 if param.is_flag or "=" in word else 2
        elif isinstance(command, click.Group) and not word.isupper():
            assert word in command.commands, f"`mirage-env {' '.join(words)}`: no command {word!r}"
            command = command.commands[word]
            i += 1
        else:
            i += 1  # an argument, or a placeholder (COMMAND stands for any command)
            if word == "COMMAND":
                return


def message_strings() -> list[tuple[str, str]]:
    """(where, text) of every string in the package, f-strings with their fields as X."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            else:
                continue
            found.append((f"{path.relative_to(PACKAGE.parent)}:{node.lineno}", text))
    return found


def test_every_mirage_env_invocation_in_the_code_parses():
    invocations = [(where, m.group(1)) for where, text in message_strings() for m in INVOCATION.finditer(text)]
    assert len(invocations) > 10  # the scan does find them
    for where, words in invocations:
        try:
            check_invocation(words.replace("…", " ").split())
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from None


def check_output(out: str, argv: list[str]) -> None:
    """Each option OUT names is an option of the command ARGV ran, or one the user typed, or sits
    in a `mirage-env …` invocation that the parser accepts."""
    command: click.Command = cli
    for word in argv:
        if isinstance(command, click.Group) and word in command.commands:
            command = command.commands[word]
    typed = {option_names(c).get(w.split("=", 1)[0]) for c in (cli, command) for w in argv if w.startswith("-")}
    for invocation in INVOCATION.findall(out):
        check_invocation(invocation.split())
    outside = INVOCATION.sub("", out)
    for name in OPTION.findall(outside):
        param = option_names(command).get(name)
        assert param is not None or option_names(cli).get(name) in typed, \
            f"`{' '.join(argv)}` names {name}, which `{command.name}` does not have:\n{out}"


def lab(tmp_path: Path, hosts: int) -> str:
    key = tmp_path / "id_test"
    key.write_text("not a real key\n")
    path = tmp_path / "lab.yml"
    path.write_text("hosts:\n" + "".join(f"  h{i}: {{address: 127.0.0.1, port: {i + 1}, user: u, key: {key}}}\n"
                                         for i in range(hosts)))
    return str(path)


# refusals that carry a hint; none connects anywhere
CASES = [
    ["-s", "provider=ssh", "doctor"],  # the ssh provider without an inventory
    ["--inventory", "LAB2", "unikernel", "list"],  # two lab hosts, a one-host command
    ["--inventory", "LAB2", "vchan", "h0", "--send", "hi"],
    ["-s", "provider=qemu", "--limit", "a", "status", "--no-topology"],  # --limit without a lab
    ["-s", "provider=qemu", "verify", "--limit", "a"],
    ["-s", "x", "doctor"],
    ["-v", "-q", "doctor"],
    ["-s", "provider=qemu", "status", "--graph", "x.txt"],
    ["-s", "provider=qemu", "unikernel", "run", "--name", "bad name"],
    ["-s", "provider=qemu", "unikernel", "run", "--kernel", "KERNEL", "--app", "www"],
    ["-s", "provider=qemu", "unikernel", "run", "--kernel", "/nonexistent/k.xen"],
    ["-s", "provider=qemu", "unikernel", "run", "--count", "2", "--kernel", "KERNEL"],
    ["-s", "provider=qemu", "unikernel", "run", "--app", "www", "-p", "18080:80", "-p", "18080:81"],
    ["-s", "provider=qemu", "unikernel", "run", "--app", "www", "--disk", "/nonexistent/d.img"],
    ["-s", "provider=qemu", "unikernel", "stop", "bad name"],
    ["-s", "provider=qemu", "vchan", "mirage-echo", "--path", "relative"],
    ["-s", "provider=qemu", "vchan", "0"],
    ["-s", "dom0.memory=1", "doctor"],
    ["-s", "network.bridge=eth0", "doctor"],
    ["-s", "dom0.memory=1G", "-s", "machine.memory=1G", "doctor"],
]


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c) for c in CASES])
def test_a_failing_command_names_only_options_it_has(tmp_path, argv):
    kernel = tmp_path / "k.xen"
    kernel.write_bytes(b"\x7fELF")
    argv = [w.replace("LAB2", lab(tmp_path, 2)).replace("KERNEL", str(kernel)) for w in argv]
    result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path / "state"), *argv], env={"NO_COLOR": "1"})
    assert result.exit_code in (1, 2) and "Traceback" not in result.output, result.output
    assert "Fix" in result.output or "fix" in result.output, result.output
    check_output(result.output, argv)


def test_the_checker_catches_an_option_the_command_lacks():
    with pytest.raises(AssertionError, match="does not have"):
        check_output("Fix: add --limit NAME", ["--inventory", "lab.yml", "unikernel", "list"])
    with pytest.raises(AssertionError, match="not an option"):
        check_invocation("doctor --inventory FILE".split())
    check_invocation("--inventory FILE --limit PATTERN COMMAND".split())
    check_output("Fix: e.g. --set dom0.memory=768M", ["-s", "x", "doctor"])  # typed by the user
