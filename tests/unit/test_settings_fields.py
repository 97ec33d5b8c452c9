"""Every setting, fed bad input of every kind, through the real CLI (from a settings file, and from
`-s KEY=VALUE` where the shell could give it): exit 2, one line per problem that names the field, the
value and the fix, no traceback, and nothing created. A field added to the model without bad-input
cases here fails `test_every_field_has_bad_input_cases`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel

from mirage_env.cli import cli
from mirage_env.settings import Settings, SettingsError, load_settings

NOT_BOOL = ["", "maybe", "tru", 2, -1, ["true"], {"a": 1}]
NOT_COUNT = ["", " ", "abc", "2.5", 2.5, True, False, "٣", ["2"], {"a": 1}, 10**20, -(10**20)]
NOT_SIZE = ["", " ", "x", "1.5G", 1.5, "512Q", "５１２M", True, ["512M"], {"a": 1}, -1, 0, "-512M", "10**9", "9" * 40]
NOT_IFNAME = ["", " ", "x" * 16, "a/b", "a b", "br0\n", "é", "lo", ".", "..", "eth0:1", 5, True, ["br0"]]
NOT_ADDRESS = ["", " ", "x", "192.168.56.256", "192.168.56", "::1", "192.168.56.5/24", 3232249861, True,
               ["192.168.56.5"], "192.168.56.0", "192.168.56.255", "10.0.0.1"]
NOT_MIRROR = ["", "https://deb.debian.org/debian", "ftp://x/debian", "http://", "http://a b/debian",
              "http://deb.debian.org/debian\n", "http://x:99999/debian", "http://x:0/", 5, True, ["http://x/"]]
SECTION = [5, "x", True, [], ["a"]]

# every field (sections too) → bad values; each must be refused on its own over the defaults
BAD: dict[str, list] = {
    "provider": ["", "QEMU", "xen", "qemu\n", 1, True, ["qemu"]],
    "name": ["", " ", "Default", "a" * 32, "-a", "a/b", "a b", "é", "abc\n", "x" * 500, 5, True, ["a"]],
    "network": SECTION,
    "network.subnet": ["", "10.0.0.0", "192.168.56.1/24", "192.168.56.0/30", "10.0.0.0/33", "127.0.0.0/24",
                       "224.0.0.0/24", "240.0.0.0/24", "0.0.0.0/8", "fe80::/64", "255.255.255.0", 5, True,
                       ["192.168.56.0/24"]],
    "network.host_address": NOT_ADDRESS + ["192.168.56.160", "192.168.56.5"],  # in the range; the dom0's
    "network.dom0_address": NOT_ADDRESS + ["192.168.56.150", "192.168.56.1"],  # in the range; the host's
    "network.bridge": NOT_IFNAME + ["eth1", "eth0"],  # the bridged NIC; the uplink
    "network.bridged_nic": NOT_IFNAME + ["eth0", "br0"],  # the uplink; the bridge
    "network.uplink_nic": NOT_IFNAME + ["eth1", "br0"],
    "network.dhcp_start": NOT_ADDRESS + ["192.168.56.201", "192.168.56.1", "192.168.56.4"],  # reversed; holds host, dom0
    "network.dhcp_end": NOT_ADDRESS + ["192.168.56.149"],  # below dhcp_start
    "network.lease_time": ["", " ", "1", "119", "1m", "1x", "１h", "-1h", "1.5h", "99999999999w", True,
                           ["1h"], {"a": 1}],
    "network.nat": NOT_BOOL,
    "network.force_dhcp": NOT_BOOL,
    "network.mdns": [x for x in NOT_BOOL if x != ""] + ["autos", "0.5"],
    "network.rollback_timeout": NOT_COUNT + [-1, 0, 29, 3601],
    "dom0": SECTION,
    "dom0.memory": NOT_SIZE + ["255M", "2T", "1537M"],  # 1537M leaves < 512M of the 2G machine
    "dom0.autoballoon": NOT_BOOL,
    "machine": SECTION,
    "machine.memory": NOT_SIZE + ["512M", "17G", "1023M"],
    "machine.cpus": NOT_COUNT + [0, 17, -2],
    "machine.accel": ["", "KVM", "xen", "kvm ", 1, True, ["kvm"]],
    "machine.suite": ["", "buster", "sid", "Bookworm", 12, True, ["bookworm"]],
    "machine.mirror": NOT_MIRROR,
    "machine.security_mirror": NOT_MIRROR,
    "machine.lan": ["", " ", "a b", "a/b", "x" * 65, "x\n", "é", 5, True, ["mev-lab"]],
    "probe": SECTION,
    "probe.enabled": NOT_BOOL,
    "probe.memory": NOT_SIZE + ["83M", "65537M", "1600M"],  # 1600M: more than the 2G machine leaves
    "probe.lease_timeout": NOT_COUNT + [-5, 0, 9, 3601],
    "unikernel": SECTION,
    "unikernel.enabled": NOT_BOOL,
    "unikernel.app": ["", "AUTH", "nope", "auth\n", 1, True, ["auth"]],
    "unikernel.memory": NOT_SIZE + ["3M", "1025M"],
    "unikernel.mac": ["", " ", "00:16:3e:6d:65", "00:16:3e:6d:65:10:11", "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff",
                      "00:00:00:00:00:00", "00-16-3e-6d-65-10", "00:16:3e:6d:65:10\n", "gg:16:3e:6d:65:10",
                      5, True, ["00:16:3e:6d:65:10"]],
    "vagrant": SECTION,
    "vagrant.box": ["", " ", "a b", "a/b/c", "box\n", "é/x", 5, True, ["debian/bookworm64"]],
    "vagrant.box_url": ["", " ", "/nonexistent/x.box", "no-such.box", "a\nb", 5, True, ["x.box"]],
    "vagrant.memory": NOT_SIZE + ["512M", "65537M"],
    "vagrant.cpus": NOT_COUNT + [0, 65],
    "lab": SECTION,
    "lab.inventory": ["", " ", "a\x00b", "a\nb", 5, True, ["lab.yml"]],
    "lab.parallel": NOT_COUNT + [0, 257, -1],
}

# conflicts between fields, each refused naming every field it involves
CROSS = [
    ({"network": {"dhcp_start": "192.168.56.200", "dhcp_end": "192.168.56.2"}}, ["dhcp_start", "dhcp_end"]),
    ({"network": {"subnet": "10.0.0.0/8", "host_address": "10.0.0.1", "dom0_address": "10.0.0.5",
                  "dhcp_start": "10.0.1.0", "dhcp_end": "10.0.254.255"}}, ["dhcp_start", "dhcp_end"]),
    ({"network": {"subnet": "10.0.0.0/24"}}, ["network.host_address", "10.0.0.0/24"]),
    ({"network": {"bridge": "eth5", "bridged_nic": "eth5"}}, ["network.bridge", "bridged_nic"]),
    ({"network": {"bridged_nic": "eth0", "uplink_nic": "eth0"}}, ["network.bridged_nic", "uplink"]),
    ({"dom0": {"memory": "1G"}, "machine": {"memory": "1G"}}, ["dom0.memory", "machine.memory"]),
    ({"provider": "virtualbox", "dom0": {"memory": "2G"}, "vagrant": {"memory": "2G"}}, ["dom0.memory", "vagrant.memory"]),
    ({"unikernel": {"memory": "1024M"}, "machine": {"memory": "1G"}}, ["unikernel.memory", "machine.memory"]),
    ({"provider": "ssh"}, ["lab.inventory"]),
]


def leaf_fields(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        yield prefix + name
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from leaf_fields(field.annotation, f"{prefix}{name}.")


def nested(dotted: str, value) -> dict:
    data: dict = {}
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return data


def refused_by_cli(tmp_path: Path, argv: list[str], names: list[str], value=None, settings: dict | None = None) -> str:
    state = tmp_path / "state"
    args = ["--state-dir", str(state)]
    if settings is not None:
        path = tmp_path / "mirage-env.yml"
        path.write_text(yaml.safe_dump(settings, allow_unicode=True))
        args += ["-c", str(path)]
    result = CliRunner().invoke(cli, [*args, *argv, "doctor"], env={"NO_COLOR": "1"})
    out = result.output
    assert result.exit_code == 2, out
    assert "Traceback" not in out, out
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert not state.exists(), f"{list(state.rglob('*'))} created before the refusal"
    header, *problems = out.rstrip("\n").split("\n")
    assert header.endswith("is not valid; nothing was changed."), out
    if settings is not None:
        assert header.startswith(str(tmp_path / "mirage-env.yml")), header  # the file is named
    assert problems and all(p.startswith("  - ") for p in problems), f"a problem over several lines:\n{out}"
    assert all("Fix:" in p for p in problems), out
    for name in names:
        assert name in out, f"{name!r} not named in:\n{out}"
    if value is not None and value != "":
        assert str(value) in out or repr(value)[:40] in out, f"the value {value!r} is not shown:\n{out}"
    return out


CASES = [(field, value) for field, values in BAD.items() for value in values]


def test_every_field_has_bad_input_cases():
    missing = [f for f in leaf_fields(Settings) if not BAD.get(f)]
    assert not missing, f"settings without bad-input cases in BAD: {missing}"
    assert set(BAD) <= set(leaf_fields(Settings)), set(BAD) - set(leaf_fields(Settings))


@pytest.mark.parametrize("field, value", CASES, ids=[f"{f}={v!r}"[:60] for f, v in CASES])
def test_a_bad_value_in_the_file_is_refused_naming_field_value_and_fix(tmp_path, field, value):
    section, _, leaf = field.rpartition(".")
    refused_by_cli(tmp_path, [], [section, leaf] if section else [field], value, nested(field, value))


SET_CASES = [(f, v) for f, v in CASES if isinstance(v, str) and v == v.strip() and v and "\x00" not in v]


@pytest.mark.parametrize("field, value", SET_CASES, ids=[f"{f}={v!r}"[:60] for f, v in SET_CASES])
def test_a_bad_value_given_with_set_is_refused_the_same_way(tmp_path, field, value):
    section, _, leaf = field.rpartition(".")
    out = refused_by_cli(tmp_path, ["-s", f"{field}={value}"], [section, leaf] if section else [field], value)
    assert out.startswith("the settings (no file: defaults and --set) is not valid"), out


@pytest.mark.parametrize("settings, names", CROSS, ids=[str(c[1]) for c in CROSS])
def test_conflicting_fields_are_refused_naming_them(tmp_path, settings, names):
    refused_by_cli(tmp_path, [], names, settings=settings)


@pytest.mark.parametrize("field", ["network.bridge", "machine.cpus", "dom0.memory"])
def test_set_on_an_unknown_or_empty_key_is_refused(tmp_path, field):
    refused_by_cli(tmp_path, ["-s", f"{field}.x=1"], [field])
    refused_by_cli(tmp_path, ["-s", f"{field.split('.')[0]}.nope=1"], ["unknown key"])


# -- a fix never suggests the refused value, nor another refused one -----------------------------
def suggested_settings(problem: str) -> dict:
    """The concrete values a problem's `Fix:` suggests, as settings to try."""
    fix = problem.split("Fix:", 1)[1]
    found: dict = {}
    for key, value in re.findall(r"(dhcp_start|dhcp_end): (\d+\.\d+\.\d+\.\d+)", fix):
        found.setdefault("network", {})[key] = value
    if m := re.search(r"end the range at (\S+)", fix):
        found.setdefault("network", {})["dhcp_end"] = m.group(1)
    if m := re.search(r"^(network\.(?:host|dom0)_address):.*e\.g\. (\d+\.\d+\.\d+\.\d+)", problem):
        found.setdefault("network", {})[m.group(1).split(".")[1]] = m.group(2)
    if m := re.search(r"^network\.(bridge|bridged_nic):.*e\.g\. ([A-Za-z0-9_.-]+)\)?", problem):
        found.setdefault("network", {})[m.group(1)] = m.group(2)
    if m := re.search(r"^(dom0|probe|unikernel)\.memory:.*Fix: \w+\.memory (?:at most )?(\d+)M", problem):
        found.setdefault(m.group(1), {})["memory"] = f"{m.group(2)}M"
    if m := re.search(r"^network\.subnet:.*write the network, (\S+)", problem):
        found.setdefault("network", {})["subnet"] = m.group(1)
    return found


def merge(base: dict, over: dict) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in over.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


# each of these once got a fix that named the value given, or one refused in turn
COLLIDED = [
    # reversed, but the swap .5–.200 would hold the dom0 (.5) and was suggested anyway
    {"network": {"dhcp_start": "192.168.56.200", "dhcp_end": "192.168.56.5"}},
    # reversed, and the swap would hold 1001 addresses
    {"network": {"subnet": "10.0.0.0/16", "host_address": "10.0.0.1", "dom0_address": "10.0.0.2",
                 "dhcp_start": "10.0.4.0", "dhcp_end": "10.0.0.10"}},
    # dom0 = host = .5: "e.g. .5" suggested the value given
    {"network": {"host_address": "192.168.56.5", "dom0_address": "192.168.56.5"}},
    # the host inside the range: a fix must name an address outside it that is not the dom0's
    {"network": {"host_address": "192.168.56.160"}},
    # bridge = bridged NIC = br0: "e.g. br0" suggested the value given
    {"network": {"bridge": "br0", "bridged_nic": "br0"}},
    # bridge = uplink, and br0 is the bridged NIC: "e.g. br0" named another refused value
    {"network": {"bridge": "eth0", "bridged_nic": "br0"}},
    # bridged NIC = uplink = eth1: "eth1 on the built-in machine" named the value given
    {"network": {"bridged_nic": "eth1", "uplink_nic": "eth1"}},
    {"network": {"subnet": "10.0.0.0/16", "host_address": "10.0.0.1", "dom0_address": "10.0.0.5",
                 "dhcp_start": "10.0.1.0", "dhcp_end": "10.0.9.0"}},
    {"dom0": {"memory": "1G"}, "machine": {"memory": "1G"}},
    {"probe": {"memory": "4G"}},
    {"network": {"subnet": "192.168.56.77/24"}},
]


@pytest.mark.parametrize("settings", COLLIDED, ids=[str(c) for c in COLLIDED])
def test_a_suggested_fix_differs_from_the_value_and_is_accepted(tmp_path, settings):
    path = tmp_path / "s.yml"
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(SettingsError) as refused:
        load_settings(path)
    [problem] = refused.value.problems
    fix = suggested_settings(problem)
    assert fix, f"no concrete suggestion in: {problem}"
    for section, values in fix.items():
        for key, value in values.items():
            assert str(settings.get(section, {}).get(key)) != value, f"the fix repeats {section}.{key}: {problem}"
    path.write_text(yaml.safe_dump(merge(settings, fix)))
    load_settings(path)  # the suggestion itself is accepted


@pytest.mark.parametrize("content", [b"\x7fELF\x02\x01\x01\x00\xff\xfe", b"name: caf\xe9\n"],
                         ids=["binary", "latin-1"])
def test_a_settings_file_that_is_not_text_is_refused_naming_it(tmp_path, content):
    path = tmp_path / "mirage-env.yml"
    path.write_bytes(content)
    result = CliRunner().invoke(cli, ["--state-dir", str(tmp_path / "state"), "-c", str(path), "doctor"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.startswith(f"{path} is not valid") and "not UTF-8 text" in result.output, result.output
    assert not (tmp_path / "state").exists()


# -- a lab inventory's host fields ---------------------------------------------------------------
LAB_BAD = {
    "address": ["a b", "-oProxyCommand=touch x", "300.1.1.1", "a;b", "x" * 300, 5, True, ["10.0.0.1"]],
    "user": ["a b", "-oX", "root;id", "x" * 40, 5, True, ["admin"]],
    "port": [0, -1, 70000, "x", "２２", True, 22.5, ["22"]],
    "key": ["/nonexistent/id_ed25519"],
    "network": [{"bridge": "a b"}, {"nope": 1}, 5],
    "dom0": [{"memory": "1M"}],
}
LAB_CASES = [(f, v) for f, values in LAB_BAD.items() for v in values]


@pytest.mark.parametrize("field, value", LAB_CASES, ids=[f"{f}={v!r}"[:50] for f, v in LAB_CASES])
def test_a_bad_lab_host_field_is_refused_naming_host_field_and_fix(tmp_path, field, value):
    key = tmp_path / "id_test"
    key.write_text("not a real key\n")
    host = {"address": "127.0.0.1", "port": 1, "user": "u", "key": str(key), field: value}
    inventory = tmp_path / "lab.yml"
    inventory.write_text(yaml.safe_dump({"hosts": {"a": host}}, allow_unicode=True))
    state = tmp_path / "state"
    result = CliRunner().invoke(cli, ["--state-dir", str(state), "provision", "--inventory", str(inventory)])
    out = result.output
    assert result.exit_code == 2 and "Traceback" not in out, out
    assert out.startswith(f"{inventory} is not valid"), out
    assert f"hosts.a.{field}" in out and "Fix:" in out, out
    problems = out.rstrip("\n").split("\n")[1:]
    assert all(p.startswith("  - ") for p in problems), out
    assert not state.exists(), list(state.rglob("*"))


@pytest.mark.parametrize("argv, expect", [
    (["-s", "name=a", "-s", "name=b"], "--set name is given twice ('a' and 'b')"),
    (["--provider", "qemu", "-s", "provider=ssh"], "contradict each other"),
    (["-s", " =1"], "is not KEY=VALUE"),
])
def test_set_given_twice_or_contradicting_is_refused(tmp_path, argv, expect):
    state = tmp_path / "state"
    result = CliRunner().invoke(cli, ["--state-dir", str(state), *argv, "doctor"])
    assert result.exit_code == 2 and expect in result.output and "Fix:" in result.output, result.output
    assert not state.exists()
