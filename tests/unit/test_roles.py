"""The roles: defaults equal the settings model's, templates render the documented files."""

from pathlib import Path

import jinja2
import pytest
import yaml

from mirage_env.settings import Settings, load_settings
from mirage_env.paths import project_root

ROLES = project_root() / "roles"


def role_defaults() -> dict:
    merged = {}
    for path in sorted(ROLES.glob("*/defaults/main.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


def render(role: str, template: str, variables: dict) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLES / role / "templates")),
                             trim_blocks=True, undefined=jinja2.StrictUndefined)  # Ansible's settings
    return env.get_template(template).render(ansible_managed="managed by mirage-env", **variables)


# A role used alone on an unknown host keeps the cautious default; mirage-env relaxes it only on a
# VM's host-only segment, which holds nothing but the domUs. On lab hosts the two agree.
CAUTIOUS_ALONE = {"dnsmasq_ping_check"}


def test_role_defaults_equal_the_settings_defaults(tmp_path):
    defaults, model = role_defaults(), Settings().role_vars()
    for name, value in model.items():
        role_default_name = name
        if name in defaults and name not in CAUTIOUS_ALONE:
            assert str(defaults[role_default_name]) == str(value), name
    lab = Settings.model_validate({"provider": "ssh", "lab": {"inventory": str(tmp_path / "lab.yml")}}).role_vars()
    for name in CAUTIOUS_ALONE:
        assert lab[name] == defaults[name] and model[name] != defaults[name], name
    # every variable the model hands out is declared by a role
    assert set(model) <= set(defaults), set(model) - set(defaults)


ALL_ROLES = ("xen_dom0", "xen_bridge", "dnsmasq", "domu_probe", "unikernel", "mirage_toolchain", "avahi")


def test_every_role_has_meta_with_platforms():
    assert sorted(p.name for p in ROLES.iterdir() if p.is_dir()) == sorted(ALL_ROLES)
    for role in ALL_ROLES:
        meta = yaml.safe_load((ROLES / role / "meta/main.yml").read_text())
        info = meta["galaxy_info"]
        assert info["role_name"] == role and info["namespace"] == "mirage_env", role
        assert info["author"] and info["description"] and info["license"] and info["min_ansible_version"]
        platforms = {p["name"]: p["versions"] for p in info["platforms"]}
        assert set(platforms["Debian"]) == {"bullseye", "bookworm", "trixie"}, role
        assert meta["dependencies"] == [], role


@pytest.mark.parametrize("role", ALL_ROLES)
def test_every_role_documents_every_default(role):
    """A role used alone: its README names every variable with its default, and shows a playbook."""
    readme = (ROLES / role / "README.md").read_text()
    defaults = yaml.safe_load((ROLES / role / "defaults/main.yml").read_text()) or {}
    rows = {line.split("|")[1].strip().strip("`"): line for line in readme.splitlines()
            if line.startswith("| `")}
    for name, value in defaults.items():
        assert name in rows, f"{role}/README.md does not document {name}"
        if not isinstance(value, (list, dict)):
            shown = '""' if value == "" else str(value).lower() if isinstance(value, bool) else str(value)
            assert f"`{shown}`" in rows[name].replace("\\|", "|"), (name, value)
    for section in ("## Requirements", "## Variables", "## Example playbook", "## Idempotence"):
        assert section in readme, (role, section)
    assert f"role: {role}" in readme


@pytest.mark.parametrize("release", ["Debian-11", "Debian-12", "Debian-13", "Ubuntu-22", "Ubuntu-24"])
def test_every_supported_release_has_packages_and_a_grub_entry(release):
    data = yaml.safe_load((ROLES / "xen_dom0/vars" / f"{release}.yml").read_text())
    assert data["xen_dom0_packages"] and "Xen hypervisor" in data["xen_dom0_grub_entry"]
    variables = {**role_defaults(), **data}
    out = render("xen_dom0", "etc/default/grub.d/zz-mirage-env-xen.cfg.j2", variables)
    assert f'GRUB_DEFAULT="{data["xen_dom0_grub_entry"]}"' in out


def test_grub_dropin_fixes_dom0_memory():
    variables = {**role_defaults(), **load_settings(None, {"dom0.memory": "768M"}).role_vars(),
                 "xen_dom0_grub_entry": "Debian GNU/Linux, with Xen hypervisor"}
    out = render("xen_dom0", "etc/default/grub.d/zz-mirage-env-xen.cfg.j2", variables)
    assert 'GRUB_CMDLINE_XEN_DEFAULT="dom0_mem=768M,max:768M"' in out
    assert "LINUX_XEN_REPLACE" not in out
    serial = render("xen_dom0", "etc/default/grub.d/zz-mirage-env-xen.cfg.j2",
                    {**variables, "xen_dom0_console": "com1"})
    assert "console=com1,vga com1=115200,8n1" in serial
    assert 'GRUB_CMDLINE_LINUX_XEN_REPLACE="console=hvc0' in serial


def test_bridge_stanza():
    out = render("xen_bridge", "etc/network/interfaces.d/mirage-env-bridge.j2",
                 {**role_defaults(), **Settings().role_vars()})
    lines = [line.strip() for line in out.splitlines()]
    for want in ("iface eth1 inet manual", "auto br0", "iface br0 inet static",
                 "address 192.168.56.5/24", "bridge_ports eth1", "bridge_ageing 0",
                 "bridge_stp off", "bridge_fd 0"):
        assert want in lines, want


def test_dnsmasq_serves_the_bridge_only():
    out = render("dnsmasq", "etc/dnsmasq.d/mirage-env.conf.j2", {**role_defaults(), **Settings().role_vars()})
    lines = out.splitlines()
    for want in ("interface=br0", "bind-dynamic", "except-interface=lo", "no-resolv",
                 "domain=mirage.internal", "local=/mirage.internal/",
                 "dhcp-hostsfile=/var/lib/mirage-env/dhcp-hosts",
                 "dhcp-range=br0,192.168.56.150,192.168.56.200,255.255.255.0,1h",
                 "dhcp-option=br0,option:router"):
        assert want in lines, want
    nat = render("dnsmasq", "etc/dnsmasq.d/mirage-env.conf.j2",
                 {**role_defaults(), **load_settings(None, {"network.nat": True}).role_vars()})
    assert "dhcp-option=br0,option:router,192.168.56.5" in nat.splitlines()
    no_dns = render("dnsmasq", "etc/dnsmasq.d/mirage-env.conf.j2",
                    {**role_defaults(), **Settings().role_vars(), "dnsmasq_domain": ""}).splitlines()
    assert "port=0" in no_dns and not [l for l in no_dns if l.startswith(("domain=", "dhcp-hostsfile="))]
    # no ping before a first offer on a VM's host-only segment; the role alone (a lab) keeps it
    assert "no-ping" in lines
    assert "no-ping" not in render("dnsmasq", "etc/dnsmasq.d/mirage-env.conf.j2", role_defaults()).splitlines()


def test_probe_xl_config_is_bootable_by_hand():
    variables = {**role_defaults(), "ansible_facts": {"kernel": "6.1.0-1-amd64"}}
    out = render("domu_probe", "etc/xen/probe.cfg.j2", variables)
    assert 'type = "pv"' in out and 'kernel = "/boot/vmlinuz-6.1.0-1-amd64"' in out
    assert 'vif = [ "mac=00:16:3e:6d:65:01,bridge=br0,script=vif-mirage" ]' in out
    assert "memory = 128" in out


def test_playbooks_parse_and_name_existing_roles():
    for playbook in (project_root() / "playbooks").glob("*.yml"):
        plays = yaml.safe_load(playbook.read_text())
        for play in plays:
            for role in play.get("roles", []):
                assert (ROLES / role["role"] / "tasks/main.yml").exists(), (playbook, role)
