"""The roles and playbooks pass yamllint and ansible-lint's `production` profile, for real.

Each linter also runs over a deliberately bad role, so a linter that silently checks nothing (a
wrong path, a config that ignores everything) fails here instead of passing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mirage_env.paths import project_root
from tests.support import require

ROOT = project_root()
BIN = Path(sys.executable).parent
# Named tasks, FQCN modules, no pipes without pipefail: the bad role breaks each of them once.
BAD_TASKS = """\
---
- shell: cat /etc/hostname | tr a-z A-Z
- command: echo hello    
"""


def linter(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    require(found is not None, f"needs {name} (pip install -e '.[test]')")
    return found


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # no colour, so the rule names can be matched; the venv's bin/ holds ansible-lint's helpers
    env = {**os.environ, "NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture
def bad_project(tmp_path: Path) -> Path:
    """A copy of our lint configuration with one role that violates it."""
    for config in (".ansible-lint", ".yamllint"):
        shutil.copy(ROOT / config, tmp_path / config)
    tasks = tmp_path / "roles/bad/tasks"
    tasks.mkdir(parents=True)
    (tasks / "main.yml").write_text(BAD_TASKS)
    return tmp_path


def test_yamllint_passes_on_roles_and_playbooks():
    paths = [p for p in ("roles", "playbooks", "molecule") if (ROOT / p).exists()]
    proc = run([linter("yamllint"), "-f", "parsable", *paths], ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_yamllint_fails_on_a_bad_file(bad_project):
    proc = run([linter("yamllint"), "-f", "parsable", "roles"], bad_project)
    assert proc.returncode != 0
    assert "trailing-spaces" in proc.stdout


def test_ansible_lint_production_profile_passes():
    proc = run([linter("ansible-lint"), "--offline", "--nocolor"], ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr


def test_ansible_lint_fails_on_a_bad_role(bad_project):
    proc = run([linter("ansible-lint"), "--offline", "--nocolor", "roles/bad"], bad_project)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    for rule in ("name[missing]", "fqcn[action-core]", "risky-shell-pipe"):
        assert rule in out, rule
