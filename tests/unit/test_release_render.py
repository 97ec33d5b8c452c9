"""Every supported release's configuration, rendered: for each vars file of xen_dom0 (Debian 11–13,
Ubuntu 22.04/24.04) the role's templates and templated task lines render with Ansible's strictness,
and what comes out agrees with the release (package names, Xen version, GRUB entry name).

A vars file that lacks a variable the role's templates or tasks use fails here, before a real host
of that release ever sees it.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import jinja2.meta
import pytest
import yaml

from mirage_env.paths import project_root

ROLE = project_root() / "roles/xen_dom0"
# What the releases ship (packages.debian.org / packages.ubuntu.com): release → Xen version
XEN_OF_RELEASE = {
    "Debian-11": "4.14", "Debian-12": "4.17", "Debian-13": "4.20",
    "Ubuntu-22": "4.16", "Ubuntu-24": "4.17",
}
CODENAME = {"Debian-11": "bullseye", "Debian-12": "bookworm", "Debian-13": "trixie", "Ubuntu-22": "jammy",
            "Ubuntu-24": "noble"}
# Names Ansible itself provides (facts, magic variables) or the tasks define (register, set_fact, loops).
PROVIDED = {"ansible_facts", "inventory_hostname", "role_path", "ansible_managed", "item", "omit",
            "hostvars", "ansible_check_mode", "ansible_user", "playbook_dir", "groups", "group_names",
            "lookup", "query", "q", "range", "dict", "loop", "true", "false", "none", "True", "False", "None"}
EXPRESSION_KEYS = {"when", "that", "failed_when", "changed_when", "until"}


def ansible_env() -> jinja2.Environment:
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined,  # Ansible's settings
                             loader=jinja2.FileSystemLoader(str(ROLE / "templates")))
    env.filters.update({
        "bool": lambda v: v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on"),
        "quote": lambda v: "'" + str(v).replace("'", "'\"'\"'") + "'",
        "mandatory": lambda v: v,
        "to_json": __import__("json").dumps,
        "from_json": __import__("json").loads,
        "regex_replace": lambda v, pattern, repl="": re.sub(pattern, repl, str(v)),
    })
    env.tests.update({"changed": lambda r: bool(r.get("changed")), "failed": lambda r: bool(r.get("failed")),
                      "skipped": lambda r: bool(r.get("skipped"))})
    return env


def vars_files() -> dict[str, dict]:
    return {p.stem: yaml.safe_load(p.read_text()) or {} for p in sorted((ROLE / "vars").glob("*.yml"))}


def task_files() -> list[Path]:
    return sorted((ROLE / "tasks").glob("*.yml"))


def strings_of_tasks() -> tuple[list[str], set[str]]:
    """Every Jinja text in the role's tasks (expressions wrapped as {{ }}), and the names they define."""
    texts, defined = [], set()

    def walk(node, key=None):
        if isinstance(node, dict):
            if "register" in node:
                defined.add(node["register"])
            for fact_module in ("ansible.builtin.set_fact", "set_fact"):
                if isinstance(node.get(fact_module), dict):
                    defined.update(node[fact_module])
            if isinstance(node.get("vars"), dict):
                defined.update(node["vars"])
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str):
            if key in EXPRESSION_KEYS:
                texts.append("{{ " + node + " }}")
            elif "{{" in node or "{%" in node:
                texts.append(node)
        elif isinstance(node, bool) or node is None:
            return

    for path in task_files():
        walk(yaml.safe_load(path.read_text()))
    return texts, defined


def templates() -> list[str]:
    base = ROLE / "templates"
    return sorted(str(p.relative_to(base)) for p in base.rglob("*.j2"))


def variables_the_role_needs() -> set[str]:
    """Names the templates and tasks use that neither the defaults nor Ansible provide."""
    env = ansible_env()
    texts, defined = strings_of_tasks()
    texts += [(ROLE / "templates" / t).read_text() for t in templates()]
    used = set()
    for text in texts:
        used |= jinja2.meta.find_undeclared_variables(env.parse(text))
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text()) or {}
    # variables the provider hands in (e.g. xen_dom0_serial) are optional: used with default()
    return {name for name in used - PROVIDED - defined - set(defaults) if not _always_defaulted(name, texts)}


def _always_defaulted(name: str, texts: list[str]) -> bool:
    uses = [m for t in texts for m in re.finditer(rf"\b{re.escape(name)}\b(\s*\|\s*default\b)?", t)]
    return bool(uses) and all(m.group(1) for m in uses)


def missing_variables(release_vars: dict) -> set[str]:
    return variables_the_role_needs() - set(release_vars)


def facts(release: str) -> dict:
    distribution, major = release.split("-")
    return {"distribution": distribution, "distribution_major_version": major, "os_family": "Debian",
            "distribution_release": CODENAME[release], "kernel": "6.1.0-1-amd64", "interfaces": ["lo", "eth0"]}


def render_all(release: str, release_vars: dict) -> dict[str, str]:
    """Every template and every templated lineinfile line of the role, for this release."""
    env = ansible_env()
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    context = {**defaults, **release_vars, "ansible_facts": facts(release), "ansible_managed": "managed",
               "inventory_hostname": "dom0", "role_path": str(ROLE), "xen_dom0_console": "com1"}
    out = {t: env.get_template(t).render(**context) for t in templates()}
    for path in task_files():
        for task in yaml.safe_load(path.read_text()) or []:
            line = (task.get("ansible.builtin.lineinfile") or {}).get("line")
            if line is None:
                continue
            items = task.get("loop") or [None]
            for item in items:
                rendered = env.from_string(line).render(**context, item=item)
                dest = task["ansible.builtin.lineinfile"]["path"]
                out[f"{dest}: {task['name']}" + (f" [{item}]" if item is not None else "")] = rendered
    return out


RELEASES = sorted(XEN_OF_RELEASE)


def test_every_vars_file_is_a_supported_release():
    assert sorted(vars_files()) == RELEASES
    meta = yaml.safe_load((ROLE / "meta/main.yml").read_text())["galaxy_info"]["platforms"]
    codenames = {p["name"]: set(p["versions"]) for p in meta}
    for release in RELEASES:
        assert CODENAME[release] in codenames[release.split("-")[0]], release


@pytest.mark.parametrize("release", RELEASES)
def test_release_renders_consistently(release):
    data = vars_files()[release]
    assert not missing_variables(data), f"{release}.yml lacks {sorted(missing_variables(data))}"
    rendered = render_all(release, data)

    # packages: the hypervisor and tools of this release's Xen, and nothing of another version
    xen = XEN_OF_RELEASE[release]
    packages = data["xen_dom0_packages"]
    assert f"xen-utils-{xen}" in packages, packages
    assert "xen-system-amd64" in packages or f"xen-hypervisor-{xen}-amd64" in packages, packages
    versions = {m.group(1) for p in packages for m in [re.search(r"-(\d+\.\d+)(-amd64)?$", p)] if m}
    assert versions == {xen}, packages
    for key, value in data.items():  # any version-bearing path in the vars agrees too
        for found in re.findall(r"xen-(\d+\.\d+)", str(value)):
            assert found == xen, (key, value)

    # GRUB: 20_linux_xen names the entry "<GRUB_DISTRIBUTOR> GNU/Linux, with Xen hypervisor"
    distribution = release.split("-")[0]
    entry = data["xen_dom0_grub_entry"]
    assert entry == f"{distribution} GNU/Linux, with Xen hypervisor"
    grub = rendered["etc/default/grub.d/zz-mirage-env-xen.cfg.j2"]
    assert f'GRUB_DEFAULT="{entry}"' in grub.splitlines()
    assert 'GRUB_CMDLINE_XEN_DEFAULT="dom0_mem=512M,max:512M console=com1,vga com1=115200,8n1"' in grub
    assert 'GRUB_CMDLINE_LINUX_XEN_REPLACE="console=hvc0 earlyprintk=xen net.ifnames=0"' in grub

    # xl.conf, /etc/default/xen and the modules: the same on every release
    lines = {k: v for k, v in rendered.items() if ": " in k}
    assert 'autoballoon="off"' in lines.values()
    assert 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"' in lines.values()
    modules = rendered["etc/modules-load.d/mirage-env-xen.conf.j2"].split()
    assert {"xen-netback", "xen-evtchn", "bridge"} <= set(modules)
    for text in rendered.values():
        assert "{{" not in text and "{%" not in text


def test_a_vars_file_without_a_variable_the_templates_use_is_caught():
    data = dict(vars_files()["Debian-12"])
    del data["xen_dom0_grub_entry"]
    assert missing_variables(data) == {"xen_dom0_grub_entry"}
    with pytest.raises(jinja2.UndefinedError):
        render_all("Debian-12", data)
    assert "xen_dom0_packages" in variables_the_role_needs()
