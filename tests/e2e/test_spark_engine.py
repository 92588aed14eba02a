"""`meterhouse run --engine spark`: Spark reads the landing files and dbt-spark builds the usage
models on a local Spark, and the bills are the same as on DuckDB, byte for byte.

Two scenarios are billed on each engine, in separate work folders: the bundled Mistral example
(seeds/mistral, through 2026-11-14, as `make demo` bills it: duplicates, malformed lines, unpriced
usage, wallets, taxes) and tests/scenarios/pricing_group_keys (group keys among the dimensions,
fct_usage_daily_by_dimensions; no other scenario has them), both on Spark through the test
session's Spark Connect server (`SPARK_REMOTE=sc://...`, tests/e2e/conftest.py), one warehouse
after the other, each in its own databases. Every output file (invoices, documents, current usage,
wallets, the run summary with its counts) must be the same bytes, and the usage marts the same rows.
tests/scenarios/every_charge_model is billed on both engines by test_spark_incremental.py (on Spark
in two daily runs on the same server, against one DuckDB run), not here.

The hostile events are billed on both engines by test_spark_hostile.py, on the run's own Spark.

Skipped, with the reason, where Spark cannot run (no `spark` extra, no Java); `make test-spark` fails
there instead.
"""

import shutil

import duckdb
import pytest

from dagster_project.cli import spark_missing
from tests.conftest import REPO, run_meterhouse, snapshot
from tests.e2e.conftest import assert_read_by_spark, run_on_spark_connect

pytestmark = pytest.mark.skipif(bool(spark_missing()), reason=str(spark_missing()))

# name: (catalog folder, events folder, billed through): billed on both engines
SCENARIOS = {
    "mistral": (REPO / "seeds" / "mistral" / "catalog", REPO / "seeds" / "mistral" / "events", "2026-11-14"),
    # pricing group keys: group keys among the dimensions, fct_usage_daily_by_dimensions
    "pricing_group_keys": (REPO / "tests" / "scenarios" / "pricing_group_keys" / "catalog",
                           REPO / "tests" / "scenarios" / "pricing_group_keys" / "events", "2026-11-20"),
}
USAGE_MARTS = ("fct_usage_daily", "fct_unpriced_usage", "fct_events_rejected", "fct_late_events", "fct_event_loads",
               "fct_charge_events", "fct_usage_by_model_and_type", "fct_usage_daily_by_dimensions")


@pytest.fixture(scope="module", params=list(SCENARIOS))
def billed_twice(request, tmp_path_factory, spark_connect_server):
    """The scenario billed on DuckDB and on Spark, the session's Spark Connect server (which bills
    both scenarios, and the every-charge-model one in test_spark_incremental.py, each warehouse in
    its own databases): the two work folders, by engine."""
    catalog, events, through = SCENARIOS[request.param]
    works = {}
    for engine in ("duckdb", "spark"):
        work = tmp_path_factory.mktemp(f"{request.param}-{engine}")
        shutil.copytree(events, work / "events")
        if engine == "spark":
            run_on_spark_connect(spark_connect_server.url, catalog, work / "events", work, through)
        else:
            run_meterhouse(catalog, work / "events", work, through, extra=["--engine", engine])
        works[engine] = work
    return works


def test_spark_read_every_landing_file(billed_twice, spark_connect_server):
    """The run's log says who read the landing files; the warehouse counts the files loaded."""
    assert_read_by_spark(billed_twice["spark"], not_utf8=0, where=f"Spark Connect {spark_connect_server.url}")
    assert "landing files:" not in (billed_twice["duckdb"] / "warehouse.duckdb.log").read_text(errors="replace")


def test_on_a_connect_server_each_warehouse_keeps_its_tables_under_its_own_folder(billed_twice, spark_connect_server):
    """A Spark Connect server that is not the run's keeps its own metastore, which names the tables
    of every warehouse billed on it (the two scenarios here, one after the other); each warehouse's
    tables are under its `<warehouse>.spark/tables/<layer>.db/`, none in the server's own folder."""
    spark_dir = billed_twice["spark"] / "warehouse.duckdb.spark"
    assert {"tables", "sources"} <= {p.name for p in spark_dir.iterdir()}
    assert not (spark_dir / "metastore_db").exists() and not (spark_dir / "connect").exists()
    assert {"intermediate.db", "marts.db", "reference.db"} <= {p.name for p in (spark_dir / "tables").iterdir()}
    assert (spark_connect_server.folder / "metastore_db").is_dir()
    assert not [p for p in spark_connect_server.folder.rglob("*.parquet")]


def test_every_output_file_is_the_same_bytes_on_both_engines(billed_twice):
    on_duckdb, on_spark = (snapshot(billed_twice[e] / "out") for e in ("duckdb", "spark"))
    assert "run_summary.json" in on_duckdb and any(name.startswith("invoices/") for name in on_duckdb)
    assert sorted(on_spark) == sorted(on_duckdb)
    assert [name for name in on_duckdb if on_spark[name] != on_duckdb[name]] == []


def test_the_usage_marts_hold_the_same_rows_on_both_engines(billed_twice):
    con = duckdb.connect()
    for engine in ("duckdb", "spark"):
        con.execute(f"attach '{billed_twice[engine] / 'warehouse.duckdb'}' as {engine} (read_only)")
    for mart in USAGE_MARTS:
        duckdb_rows = con.execute(f"select * from duckdb.marts.{mart} order by all").fetchall()
        spark_rows = con.execute(f"select * from spark.marts.{mart} order by all").fetchall()
        assert spark_rows == duckdb_rows, mart


def test_the_same_lines_are_quarantined_for_the_same_reasons_on_both_engines(billed_twice):
    reasons = {}
    for engine in ("duckdb", "spark"):
        with duckdb.connect(str(billed_twice[engine] / "warehouse.duckdb"), read_only=True) as con:
            reasons[engine] = con.execute(
                """select source_file, line_number, item_index, rejection_reason, rejection_detail
                   from marts.fct_events_rejected order by all""").fetchall()
    assert reasons["spark"] == reasons["duckdb"]
