"""`mirage-env verify`: the testinfra checks against the provider's host, then the domU probe."""

from __future__ import annotations

import json
import os

from .checks import CHECKS_DIR, EXPECTED_ENV
from .sshclient import SshTarget
from .state import StateDir


class _Collector:
    """A pytest plugin that turns each check's outcome into a line of the report."""

    def __init__(self, report):
        self.report = report

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or (report.when == "setup" and report.failed):
            name = report.nodeid.split("::")[-1].split("[")[0].removeprefix("test_").replace("_", " ")
            module = report.nodeid.split("::")[0].rsplit("/", 1)[-1].removeprefix("test_").removesuffix(".py")
            detail = ""
            if report.failed:
                detail = str(report.longrepr.reprcrash.message if hasattr(report.longrepr, "reprcrash")
                             else report.longrepr).splitlines()[0][:160]
            self.report.check(f"{module}: {name}", report.passed, detail)


def run_checks(state: StateDir, target: SshTarget, expected: dict, report) -> bool:
    import pytest  # imported here: `mirage-env --help` must stay fast

    ssh_config, alias = state.write_ssh_config(target)
    expected_file = state.path("expected.json")
    expected_file.write_text(json.dumps(expected))
    os.environ[EXPECTED_ENV] = str(expected_file)
    args = [
        str(CHECKS_DIR), "-c", str(CHECKS_DIR / "pytest.ini"), "--rootdir", str(CHECKS_DIR),
        "-q", "--no-header", "-p", "no:cacheprovider",
        f"--hosts=paramiko://{alias}", f"--ssh-config={ssh_config}", "--sudo",
        f"--junitxml={state.logs / 'checks.xml'}",
    ]
    with open(state.logs / "checks.log", "w") as log:
        import contextlib

        with contextlib.redirect_stdout(log):
            code = pytest.main(args, plugins=[_Collector(report)])
    return code == 0
