"""What the host side asks a booted unikernel app, with a real HTTP client (curl) from the
host-only namespace."""

from __future__ import annotations

from pathlib import Path

from . import registry
from .paths import UNIKERNEL_DIR

BUNDLED_USERS = UNIKERNEL_DIR / "data" / "auth" / "users"


def demo_user(users_dir: Path = BUNDLED_USERS) -> tuple[str, str]:
    """The first bundled demo user and its password (the demo data is public on purpose)."""
    first = sorted(p for p in users_dir.iterdir() if p.is_file())[0]
    return first.name, first.read_text().strip()


def try_path(app: str) -> str | None:
    """What to open on a running app to see it work (None: it serves no HTTP)."""
    if app == "auth":
        user, password = demo_user()
        return f"/login?user={user}&password={password}"
    return "/" if app == "www" else None


def curl(provider, url: str) -> tuple[int, str]:
    proc = provider.host_exec("curl", "-s", "-m", "10", "-w", "\n%{http_code}", url, timeout=30)
    body, _, code = proc.stdout.rpartition("\n")
    return (int(code) if code.isdigit() else 0), body


def http_checks(provider, app: str, ip: str) -> list[tuple[str, bool, str]]:
    if app == "auth":
        user, password = demo_user()
        base = registry.apps()["auth"].url(ip, "/login")
        good = curl(provider, f"{base}?user={user}&password={password}")
        bad = curl(provider, f"{base}?user={user}&password=wrong")
        return [
            ("auth answers 200 for a valid login", good == (200, f"hello {user}!\n"), f"got {good}"),
            ("auth answers 401 for a wrong password", bad == (401, "Invalid login\n"), f"got {bad}"),
        ]
    if app == "www":
        page = curl(provider, registry.apps()["www"].url(ip))
        return [("www serves its page", page[0] == 200 and "Hello Mirage World!" in page[1], f"got {page[0]}")]
    return []
