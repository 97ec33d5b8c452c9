"""testinfra checks shipped with the package: `mirage-env verify` and CI run these same files."""

from pathlib import Path

CHECKS_DIR = Path(__file__).resolve().parent
EXPECTED_ENV = "MIRAGE_ENV_EXPECTED"  # path of a JSON file with the role variables to expect
