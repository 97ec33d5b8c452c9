"""The one rule for a domU's name. It is also a file name on the dom0 (/etc/xen/NAME.cfg,
/var/log/xen/console/guest-NAME.log) and a word in shell commands, so it is kept to what is safe
there. The CLI, the xl config writer and the settings all check it here."""

from __future__ import annotations

import re

MAX_NAME_LEN = 60
NAME_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME_LEN - 1}}}\Z")
NAME_RULE = (f"letters, digits, '.', '_' and '-' only, starting with a letter or digit, "
             f"at most {MAX_NAME_LEN} characters")


def name_problem(name: str) -> str | None:
    """Why NAME cannot be a domU's name, or None."""
    if isinstance(name, str) and NAME_RE.match(name) and ".." not in name:
        return None
    return f"domain name {name!r} is not usable: {NAME_RULE}"
