import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
OPENAPI = SHARED / "reference" / "lago-openapi" / "openapi.yaml"


@pytest.fixture(scope="session", autouse=True)
def dagster_home(tmp_path_factory):
    """Dagster runs in tests use a throwaway instance directory."""
    home = tmp_path_factory.mktemp("dagster_home")
    os.environ["DAGSTER_HOME"] = str(home)
    return home
