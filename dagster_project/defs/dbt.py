"""The dbt project as Dagster assets: usage models before pricing, billing marts after it."""


import functools
import os
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from dagster_project.defs.resources import PROJECT_ROOT, MeterhouseSettings

DBT_DIR = PROJECT_ROOT / "dbt_project"
USAGE_MODELS = "path:seeds path:models/staging path:models/intermediate path:models/marts/usage path:tests"
BILLING_MARTS = "path:models/marts/billing"


@functools.cache
def dbt_project() -> DbtProject:
    """The project, with its manifest prepared on first use (`dbt parse`), so importing this module
    needs no manifest and tests and the CLI work outside `dagster dev`."""
    project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)
    if _manifest_is_stale(project.manifest_path):
        dbt_resource(project).cli(["parse", "--quiet"], target_path=project.target_path).wait()
    return project


def _manifest_is_stale(manifest: Path) -> bool:
    """Missing, or older than a file of the project (a model, seed, macro or test edited since)."""
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [DBT_DIR / "dbt_project.yml", *(p for d in ("models", "seeds", "macros", "tests")
                                             for p in (DBT_DIR / d).rglob("*") if p.is_file())]
    return any(p.stat().st_mtime > built for p in sources)


class Translator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props) -> str:
        path = dbt_resource_props.get("original_file_path", "")
        return "billing_marts" if "marts/billing" in path else "warehouse"

    def get_owners(self, dbt_resource_props):
        return ["team:billing-data"]


def dbt_args(command: str) -> list[str]:
    """The dbt command line: unit tests are left to the test suite, where their vars are fixed."""
    return [command, "--exclude", "resource_type:unit_test"]


def point_dbt_at(settings: MeterhouseSettings) -> None:
    """dbt's profile reads the warehouse path from METERHOUSE_WAREHOUSE: the same absolute path
    the Python assets open, set before each invocation."""
    os.environ["METERHOUSE_WAREHOUSE"] = str(settings.warehouse)


@functools.cache
def usage_models():
    @dbt_assets(
        manifest=dbt_project().manifest_path,
        select=USAGE_MODELS,
        dagster_dbt_translator=Translator(),
        project=dbt_project(),
        name="usage_models",
        pool="duckdb_writer",
    )
    def _usage_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: MeterhouseSettings):
        """Staging, intermediate and usage marts: dedupe, attach to periods, match filters, aggregate."""
        point_dbt_at(settings)
        yield from dbt.cli(dbt_args("build"), context=context).stream()

    return _usage_models


@functools.cache
def billing_marts():
    @dbt_assets(
        manifest=dbt_project().manifest_path,
        select=BILLING_MARTS,
        dagster_dbt_translator=Translator(),
        project=dbt_project(),
        name="billing_marts",
        pool="duckdb_writer",
    )
    def _billing_marts(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: MeterhouseSettings):
        """Analyst marts over the priced fees, invoices and wallet ledger."""
        point_dbt_at(settings)
        yield from dbt.cli(dbt_args("build"), context=context).stream()

    return _billing_marts


def dbt_resource(project: DbtProject | None = None) -> DbtCliResource:
    """dbt from this environment's own `bin/`, found without relying on PATH."""
    return DbtCliResource(
        project_dir=project or dbt_project(),
        profiles_dir=str(DBT_DIR),
        dbt_executable=str(Path(sys.executable).parent / "dbt"),
    )


def dbt_cli_path() -> Path:
    return DBT_DIR
