"""The Dagster definitions load, describe every asset, and a bad catalog stops the CLI before any write."""

import subprocess
import sys

import dagster as dg
import pytest

from tests.conftest import REPO


def test_definitions_load_with_the_whole_lineage():
    from dagster_project.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for expected in ("catalog/plans", "raw/events", "calendar/billing_periods", "staging/stg_raw__events",
                     "intermediate/int_events_deduplicated", "marts/fct_usage_daily", "billing/invoices",
                     "marts/fct_invoices", "published_outputs"):
        assert expected in keys
    # raw -> dbt -> pricing -> billing marts -> outputs, one way
    assert dg.AssetKey(["raw", "events"]) in graph.get(dg.AssetKey(["staging", "stg_raw__events"])).parent_keys
    assert dg.AssetKey(["marts", "fct_usage_daily"]) in graph.get(dg.AssetKey(["billing", "fees"])).parent_keys
    assert dg.AssetKey(["billing", "invoices"]) in graph.get(dg.AssetKey("published_outputs")).parent_keys


# Tables that are no asset of their own, and the asset that writes them.
WRITTEN_WITH = {"raw.landing_files": "raw/events", "raw.rejected_lines": "raw/events", "raw.day_loads": "raw/events",
                "billing.customer_sequences": "billing/invoices", "billing.run_state": "billing/invoices",
                "billing.finalized_invoices": "billing/invoices", "billing.issued_credit_notes": "billing/invoices",
                "billing.finalized_credit_note_applications": "billing/invoices",
                "billing.credit_note_voids": "billing/invoices", "billing.wallet_rule_top_ups": "billing/invoices",
                "billing.billed_through": "billing/invoices"}


def _tables_read(module) -> set[str]:
    """Every `schema.table` the module's SQL names (its reads; the writes of billing.* are the
    asset's own), as the asset key that writes it."""
    import inspect
    import re

    names = set(re.findall(r"\b(catalog|marts|raw|reference|billing)\.([a-z_]+)\b", inspect.getsource(module)))
    return {WRITTEN_WITH.get(f"{schema}.{table}", f"{schema}/{table}") for schema, table in names}


@pytest.mark.parametrize("asset, module", [("billing/fees", "billing_tables"), ("published_outputs", "publish_reads")])
def test_every_table_an_asset_reads_is_a_declared_dependency(asset, module):
    """The tables named in the SQL of its store module (pricing: `store/billing_tables.py`, the
    publisher: `store/publish_reads.py`) are each a parent of the asset, so that Dagster orders and
    shows them, rather than assumed to be there."""
    import importlib

    from dagster_project.definitions import defs

    graph = defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey.from_user_string(asset))
    declared = {k.to_user_string() for k in node.parent_keys}
    read = _tables_read(importlib.import_module(f"dagster_project.store.{module}"))
    # (the pricing step's own tables, billing.*, are what it writes and keeps, not its inputs)
    own = {k for k in read if k.startswith("billing/")} if asset.startswith("billing/") else set()
    undeclared = sorted(read - declared - own)
    assert not undeclared, f"{asset} reads {undeclared} without declaring them"


def test_every_asset_is_described_and_owned():
    from dagster_project.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_materializable:
            assert node.description, f"{key.to_user_string()} has no description"
            assert node.owners, f"{key.to_user_string()} has no owner"


def test_raw_events_are_partitioned_by_arrival_day_and_backfill_in_one_run():
    from dagster_project.definitions import defs

    node = defs.resolve_asset_graph().get(dg.AssetKey(["raw", "events"]))
    assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition)
    assert node.backfill_policy == dg.BackfillPolicy.single_run()


def test_a_bad_catalog_exits_non_zero_naming_file_body_and_field(tmp_path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "plans.json").write_text(
        '{"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 0, "amount_currency": "USD",'
        ' "charges": [{"billable_metric_code": "nope", "charge_model": "package"}]}}'
    )
    warehouse = tmp_path / "w.duckdb"
    result = subprocess.run(
        [sys.executable, "-m", "dagster_project.cli", "run", "--catalog", str(catalog), "--events", str(tmp_path),
         "--warehouse", str(warehouse), "--out", str(tmp_path / "out"), "--through", "2026-11-01"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 2
    assert "plans.json, body 1 (plan 'p'), field charges.0.billable_metric_code: unknown billable metric 'nope'" in result.stderr
    assert not warehouse.exists()
    assert not (tmp_path / "out").exists()


def test_generate_events_writes_a_landing_folder_of_arrival_days(tmp_path):
    from click.testing import CliRunner

    from dagster_project.cli import main

    result = CliRunner().invoke(
        main, ["generate-events", "--out", str(tmp_path), "--subscriptions", "2", "--days", "3",
               "--start", "2026-10-30", "--events-per-day", "10"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-10-30", "2026-10-31", "2026-11-01"]
    lines = [line for p in tmp_path.rglob("*.jsonl") for line in p.read_text().splitlines()]
    assert len(lines) == 30


def test_the_dbt_version_read_from_metadata_is_the_executables():
    # the resource skips dagster-dbt's `dbt --version` subprocess: the version it reads instead
    # must be the one the executable it runs reports
    import re
    from pathlib import Path

    from dagster_project.defs.dbt import dbt_resource

    resource = dbt_resource()
    printed = subprocess.run([resource.dbt_executable, "--version"], capture_output=True, text=True, check=True).stdout
    assert Path(resource.dbt_executable).parent == Path(sys.executable).parent
    assert str(resource._cli_version) == re.search(r"installed: (\d+\.\d+\.\d+)", printed).group(1)


def test_the_dbt_resource_runs_dbt_without_building_an_adapter_in_the_dagster_process():
    # dagster-dbt would load the profile and dbt's macros here (0.7-1 s an invocation) for row
    # counts and column metadata, which no asset asks for; the command itself still runs
    from dagster_project.defs.dbt import dbt_resource

    invocation = dbt_resource().cli(["--version"], raise_on_error=True)
    assert invocation.adapter is None
    assert invocation.wait().process.returncode == 0


@pytest.fixture
def dbt_env(monkeypatch):
    """The variables `point_dbt_at` sets, restored after the test; DBT_LOG_LEVEL_FILE unset."""
    for name in ("METERHOUSE_WAREHOUSE", "METERHOUSE_DUCKDB_MEMORY_LIMIT", "DBT_LOG_LEVEL_FILE"):
        monkeypatch.setenv(name, "")
    monkeypatch.delenv("DBT_LOG_LEVEL_FILE")


def _point_dbt_at(warehouse):
    from dagster_project.defs.dbt import point_dbt_at
    from dagster_project.defs.resources import MeterhouseSettings

    point_dbt_at(MeterhouseSettings(catalog_dir="", events_dir="", out_dir="", warehouse_path=str(warehouse)))


def test_dbt_logs_to_its_file_at_level_info(tmp_path, dbt_env):
    # at dbt's default level (debug) the file gets every SQL statement: 1.5-2 s of a one-day run
    import json

    from dagster_project.defs.dbt import dbt_resource

    _point_dbt_at(tmp_path / "w.duckdb")
    dbt_resource().cli(["ls", "--resource-type", "seed"], target_path=tmp_path / "target").wait()
    lines = (tmp_path / "target" / "dbt.log").read_text().splitlines()
    assert lines and {json.loads(line)["info"]["level"] for line in lines} == {"info"}


def test_a_dbt_file_log_level_asked_for_is_kept(tmp_path, dbt_env, monkeypatch):
    import os

    monkeypatch.setenv("DBT_LOG_LEVEL_FILE", "debug")
    _point_dbt_at(tmp_path / "w.duckdb")
    assert os.environ["DBT_LOG_LEVEL_FILE"] == "debug"


def test_dbt_sends_no_usage_statistics(tmp_path, dbt_env, monkeypatch):
    # the project turns off dbt's anonymous usage tracking: with it on, dbt keeps a tracking id in
    # `.user.yml` beside profiles.yml and posts events to dbt Labs at every invocation
    import shutil

    from dagster_project.defs.dbt import DBT_DIR
    from dagster_project.warm_dbt import installed_dbt

    for name in ("DBT_SEND_ANONYMOUS_USAGE_STATS", "DO_NOT_TRACK"):
        monkeypatch.delenv(name, raising=False)
    shutil.copy(DBT_DIR / "profiles.yml", tmp_path / "profiles.yml")
    _point_dbt_at(tmp_path / "w.duckdb")
    subprocess.run([installed_dbt(), "ls", "--resource-type", "seed", "--project-dir", str(DBT_DIR),
                    "--profiles-dir", str(tmp_path), "--target-path", str(tmp_path / "target")],
                   check=True, capture_output=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profiles.yml", "target"]


def test_dbt_connects_to_the_warehouse_with_the_python_steps_storage_settings(tmp_path, dbt_env):
    # the setting lives in dbt's profile and in MeterhouseSettings.connect: both must say the same
    import json

    from dagster_project.defs.dbt import DBT_DIR
    from dagster_project.defs.resources import VACUUM_TASKS
    from dagster_project.warm_dbt import installed_dbt

    _point_dbt_at(tmp_path / "w.duckdb")
    shown = subprocess.run(
        [installed_dbt(), "show", "--inline", "select current_setting('max_vacuum_tasks') as tasks", "--output", "json",
         "--quiet", "--profiles-dir", str(DBT_DIR), "--target-path", str(tmp_path / "target")],
        check=True, capture_output=True, text=True, cwd=DBT_DIR,
    ).stdout
    assert json.loads(shown)["show"] == [{"tasks": VACUUM_TASKS}]


def test_a_catalog_parsed_before_the_run_is_written_without_reading_the_folder_again(tmp_path):
    """`meterhouse run` parses the catalog once, to check it before anything is written; the run's
    catalog asset writes that parse. Here the folder is gone by the time the asset runs: the tables
    still hold the checked catalog (the Mistral example: 3 customers, 2 plans)."""
    import shutil

    import duckdb

    from dagster_project.catalog import read_catalog
    from dagster_project.definitions import build_definitions
    from dagster_project.defs.resources import MeterhouseSettings

    folder = tmp_path / "catalog"
    shutil.copytree(REPO / "seeds" / "mistral" / "catalog", folder)
    parsed = read_catalog(folder)
    shutil.rmtree(folder)
    settings = MeterhouseSettings(catalog_dir=str(folder), events_dir=str(tmp_path / "events"),
                                  warehouse_path=str(tmp_path / "w.duckdb"), out_dir=str(tmp_path / "out"))
    defs = build_definitions(settings, parsed)
    result = dg.materialize(list(defs.assets), selection=dg.AssetSelection.assets(["catalog", "plans"]).required_multi_asset_neighbors(),
                            resources=dict(defs.resources), instance=dg.DagsterInstance.ephemeral())
    assert result.success
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from catalog.customers").fetchone()[0] == 3
        assert con.execute("select count(*) from catalog.plans").fetchone()[0] == 2
