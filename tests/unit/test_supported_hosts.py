"""The playbooks' first task refuses a host the pinned ansible-core cannot manage, with a message
naming the host's release and the supported ones; a supported release passes. Run for real with
ansible-playbook on a local connection, the host's facts given as they would be gathered."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mirage_env.paths import PLAYBOOKS_DIR

TASKS = PLAYBOOKS_DIR / "tasks" / "refuse_unsupported_host.yml"


def run_check(tmp_path: Path, distribution: str, major: str, version: str, python: str):
    play = [{"name": "check", "hosts": "all", "gather_facts": False,
             "tasks": [{"name": "the refusal", "ansible.builtin.import_tasks": str(TASKS)}]}]
    playbook = tmp_path / "check.yml"
    playbook.write_text(yaml.safe_dump(play))
    facts = {"ansible_facts": {"distribution": distribution, "distribution_major_version": major,
                               "distribution_version": version, "python_version": python}}
    ansible = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")}
    return subprocess.run([ansible, "-i", "target,", "-c", "local", "-e", json.dumps(facts), str(playbook)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


@pytest.mark.parametrize("release", [("Ubuntu", "18", "18.04", "3.6.9"), ("Ubuntu", "20", "20.04", "3.8.10"),
                                     ("CentOS", "9", "9", "3.9.18")])
def test_an_unsupported_host_is_refused_naming_its_release(tmp_path, release):
    proc = run_check(tmp_path, *release)
    assert proc.returncode != 0, proc.stdout
    assert f"target runs {release[0]} {release[2]} (Python {release[3]})" in proc.stdout, proc.stdout
    assert "supports Debian 11/12/13 and Ubuntu 22.04/24.04" in proc.stdout


@pytest.mark.parametrize("release", [("Debian", "12", "12.7", "3.11.2"), ("Ubuntu", "24", "24.04", "3.12.3")])
def test_a_supported_host_passes(tmp_path, release):
    proc = run_check(tmp_path, *release)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok=1" in proc.stdout


def test_every_playbook_refuses_before_its_roles():
    for playbook in sorted(PLAYBOOKS_DIR.glob("*.yml")):
        for play in yaml.safe_load(playbook.read_text()):
            first = play["pre_tasks"][0]
            assert first["ansible.builtin.import_tasks"] == "tasks/refuse_unsupported_host.yml", playbook


def test_the_roles_meta_lists_only_supported_releases():
    supported = {"Debian": {"bullseye", "bookworm", "trixie"}, "Ubuntu": {"jammy", "noble"}}
    for meta in sorted(PLAYBOOKS_DIR.parent.glob("roles/*/meta/main.yml")):
        for platform in yaml.safe_load(meta.read_text())["galaxy_info"]["platforms"]:
            assert set(platform["versions"]) <= supported[platform["name"]], (meta, platform)
