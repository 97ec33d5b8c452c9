"""Ships the project's non-Python parts (paths.SHARED_TREES / SHARED_FILES) inside the wheel, under
mirage_env/share/, so a non-editable install (pip install ., pipx) finds them from any directory."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
TREES = ("unikernel", "roles", "playbooks")  # keep equal to mirage_env/paths.py
FILES = ("Vagrantfile", "ansible.cfg")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "obj-*", "*.o", ".*")


class BuildPyWithShare(build_py):
    def run(self):
        super().run()
        share = Path(self.build_lib) / "mirage_env" / "share"
        for tree in TREES:
            shutil.rmtree(share / tree, ignore_errors=True)
            shutil.copytree(HERE / tree, share / tree, ignore=SKIP)
        for name in FILES:
            shutil.copy2(HERE / name, share / name)


setup(cmdclass={"build_py": BuildPyWithShare})
