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


def run_meterhouse(catalog, events, work, through, payments=None):
    """`meterhouse run` as a user types it, in a subprocess, into `work/warehouse.duckdb` and `work/out`."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "dagster_project.cli", "run", "--catalog", str(catalog), "--events", str(events),
         "--warehouse", str(work / "warehouse.duckdb"), "--out", str(work / "out"), "--through", through,
         *(["--payments", str(payments)] if payments else [])],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "out"


def bill_scenario(tmp_path_factory, name, through):
    """Copy a scenario's events to a fresh folder and bill it; the outputs folder."""
    import shutil

    scenario = REPO / "tests" / "scenarios" / name
    work = tmp_path_factory.mktemp(name)
    shutil.copytree(scenario / "events", work / "events")
    return run_meterhouse(scenario / "catalog", work / "events", work, through)


def assert_lago_schemas(out_dir, folders=(("invoices", "Invoice"), ("current_usage", "CustomerUsage"), ("wallets", "Wallet"))):
    """Every JSON output file validates against its schema in Lago's OpenAPI file, read in place."""
    import json

    import jsonschema
    import yaml

    spec = yaml.safe_load(OPENAPI.read_text())
    for folder, schema_name in folders:
        validator = jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]})
        files = sorted((out_dir / folder).glob("*.json"))
        assert files, f"no {folder} files"
        for path in files:
            errors = list(validator.iter_errors(json.loads(path.read_text())))
            assert not errors, f"{path.name}: {[e.message for e in errors[:3]]}"
