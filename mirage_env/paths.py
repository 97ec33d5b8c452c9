"""Where the project's non-Python parts are: the C unikernel, the roles, the playbooks, the
Vagrantfile and ansible.cfg — the one place that knows.

In a checkout (or an editable install) they sit beside the package; an installed wheel carries
them as package data under ``mirage_env/share/`` (setup.py copies them there at build time).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SHARE_DIR = PACKAGE_DIR / "share"
# What setup.py ships into SHARE_DIR, relative to the checkout.
SHARED_TREES = ("unikernel", "roles", "playbooks")
SHARED_FILES = ("Vagrantfile", "ansible.cfg")


def project_root() -> Path:
    """The directory holding unikernel/, roles/, playbooks/, the Vagrantfile and ansible.cfg."""
    checkout = PACKAGE_DIR.parent
    if (checkout / "unikernel" / "apps.mk").is_file() and (checkout / "roles").is_dir():
        return checkout
    return SHARE_DIR


UNIKERNEL_DIR = project_root() / "unikernel"
ROLES_DIR = project_root() / "roles"
PLAYBOOKS_DIR = project_root() / "playbooks"
VAGRANTFILE_DIR = project_root()
ANSIBLE_CFG = project_root() / "ansible.cfg"
