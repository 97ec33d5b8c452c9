"""Shared fixtures: measurements, printed at the end of the run (reported, never asserted)."""

from __future__ import annotations

import pytest

MEASUREMENTS: list[tuple[str, str, object]] = []


@pytest.fixture
def measure(request):
    """Record a number for the end-of-run summary."""

    def record(name: str, value: object) -> None:
        MEASUREMENTS.append((request.node.nodeid, name, value))

    return record


def pytest_terminal_summary(terminalreporter):
    if not MEASUREMENTS:
        return
    terminalreporter.section("mirage-env measurements")
    for nodeid, name, value in MEASUREMENTS:
        terminalreporter.write_line(f"{name:>45}: {value}    ({nodeid.split('::')[-1]})")
