"""A built wheel works from anywhere: installed into a fresh venv outside the checkout, it builds
the bundled unikernel and its playbooks pass Ansible's syntax check with the roles it carries.

The wheel is built from a copy of the checkout (setuptools writes build/ and *.egg-info into the
source tree). The venv gets no packages from the network: a .pth line makes this interpreter's
dependencies importable, and every command runs from an empty directory, so the checkout is never
on sys.path (asserted, not assumed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.support import require

ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(".git", ".venv", ".mirage-env", "build", "dist", "*.egg-info", "__pycache__",
                              "*.pyc", "obj-*", ".pytest_cache")


def _can_build_wheels() -> bool:
    try:
        import setuptools

        if tuple(int(x) for x in setuptools.__version__.split(".")[:2]) < (68, 0):
            return False  # older than pyproject's build requirement
        import wheel  # noqa: F401  (bdist_wheel before setuptools 70.1)
    except ImportError:
        return False
    return True


def run(*cmd, cwd: Path, env: dict | None = None, timeout: float = 600) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path, dict]:
    """(the venv, an empty working directory, the environment to run in)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    # without build isolation only when this interpreter can build wheels itself (setuptools with
    # bdist_wheel); otherwise pip fetches pyproject's build requirements from the configured index
    isolation = ["--no-build-isolation"] if _can_build_wheels() else []
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", ".", "-w", tmp / "dist", cwd=src)
    wheel = next((tmp / "dist").glob("mirage_env-*.whl"))
    shutil.rmtree(src)  # nothing of a source tree is left to fall back on
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps", "-q", wheel,
        cwd=tmp)
    site = Path(run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                    cwd=tmp).strip())
    # this interpreter's dependencies (click, pydantic, ansible, …) without a download; a .pth line
    # adds the directory only (its own .pth files, e.g. an editable mirage_env, are not run)
    (site / "deps-from-test.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ANSIBLE_CONFIG", "ANSIBLE_ROLES_PATH")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return venv, work, env


def installed_paths(venv: Path, work: Path, env: dict) -> dict[str, Path]:
    out = run(venv / "bin" / "python", "-c",
              "import mirage_env, mirage_env.paths as p\n"
              "for k, v in (('package', mirage_env.__file__), ('unikernel', p.UNIKERNEL_DIR), ('roles', p.ROLES_DIR),"
              " ('playbooks', p.PLAYBOOKS_DIR), ('cfg', p.ANSIBLE_CFG), ('vagrantfile', p.VAGRANTFILE_DIR / 'Vagrantfile')):"
              " print(k, v)", cwd=work, env=env)
    return {k: Path(v) for k, v in (line.split(" ", 1) for line in out.splitlines())}


def test_the_installed_package_is_used_and_carries_the_project(installed):
    venv, work, env = installed
    paths = installed_paths(venv, work, env)
    for name, path in paths.items():
        assert venv in path.parents, f"{name} resolves to {path}, not inside the installed wheel"
        assert ROOT not in path.parents
        assert path.exists(), f"{name}: {path} missing from the wheel"
    assert (paths["unikernel"] / "apps.mk").is_file() and (paths["roles"] / "unikernel" / "tasks").is_dir()


def test_the_installed_cli_builds_the_bundled_unikernel(installed):
    require(shutil.which("make") is not None and shutil.which("clang") is not None, "needs make and clang")
    venv, work, env = installed
    out = run(venv / "bin" / "mirage-env", "unikernel", "build", "--app", "auth", "--target", "host",
              "--out", work / "out", cwd=work, env=env)
    image = Path(out.strip().splitlines()[-1])
    assert image == work / "out" / "auth.host" and image.stat().st_size > 0 and os.access(image, os.X_OK)


def test_the_shipped_playbook_passes_the_syntax_check_with_the_shipped_roles(installed):
    venv, work, env = installed
    paths = installed_paths(venv, work, env)
    # the shipped ansible.cfg alone must find the shipped roles (roles_path is relative to it)
    check_env = {**env, "ANSIBLE_CONFIG": str(paths["cfg"])}
    out = run("ansible-playbook", "--syntax-check", "-i", "localhost,", paths["playbooks"] / "site.yml",
              cwd=work, env=check_env)
    assert "site.yml" in out
