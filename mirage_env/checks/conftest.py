"""What the checks expect comes from the settings (the same role variables the playbooks got)."""

import json
import os

import pytest

from mirage_env.checks import EXPECTED_ENV
from mirage_env.settings import Settings


@pytest.fixture(scope="session")
def expected() -> dict:
    path = os.environ.get(EXPECTED_ENV)
    if path:
        with open(path) as f:
            return json.load(f)
    return Settings().role_vars()
