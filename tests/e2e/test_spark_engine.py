"""`meterhouse run --engine spark`: Spark reads the landing files and dbt-spark builds the usage
models on a local Spark, and the bills are the same as on DuckDB, byte for byte.

Three scenarios are billed on each engine, in separate work folders: the bundled Mistral example
(seeds/mistral, through 2026-11-14, as `make demo` bills it: duplicates, malformed lines, unpriced
usage, wallets, taxes), tests/scenarios/every_charge_model (through 2026-11-02: every charge model,
aggregation and period rule, pay in advance, filters) and the hostile events of
tests/test_hostile_input.py (every quarantine reason: the same lines quarantined for the same reasons
whether Spark or DuckDB read them). Every output file (invoices, documents,
current usage, wallets, the run summary with its counts) must be the same bytes, and the usage
marts the same rows. Skipped, with the reason, where Spark cannot run (no `spark` extra, no Java);
`make test-spark` fails there instead.
"""

import shutil

import duckdb
import pytest

from dagster_project.cli import spark_missing
from tests.conftest import REPO, run_meterhouse, snapshot

pytestmark = pytest.mark.skipif(bool(spark_missing()), reason=str(spark_missing()))

# name: (catalog folder, events folder, billed through)
SCENARIOS = {
    "mistral": (REPO / "seeds" / "mistral" / "catalog", REPO / "seeds" / "mistral" / "events", "2026-11-14"),
    "every_charge_model": (REPO / "tests" / "scenarios" / "every_charge_model" / "catalog",
                           REPO / "tests" / "scenarios" / "every_charge_model" / "events", "2026-11-02"),
    # tests/test_hostile_input.py's lines: each quarantined with its reason, at load or in the one pass
    "hostile": (REPO / "tests" / "scenarios" / "new_york_month_end" / "catalog", REPO / "tests" / "hostile" / "events",
                "2026-10-12"),
    # pricing group keys: group keys among the dimensions, fct_usage_daily_by_dimensions
    "pricing_group_keys": (REPO / "tests" / "scenarios" / "pricing_group_keys" / "catalog",
                           REPO / "tests" / "scenarios" / "pricing_group_keys" / "events", "2026-11-20"),
}
USAGE_MARTS = ("fct_usage_daily", "fct_unpriced_usage", "fct_events_rejected", "fct_late_events", "fct_event_loads",
               "fct_charge_events", "fct_usage_by_model_and_type", "fct_usage_daily_by_dimensions")


@pytest.fixture(scope="module", params=list(SCENARIOS))
def billed_twice(request, tmp_path_factory):
    """The scenario billed on DuckDB and on Spark (local[2]): the two work folders (and the
    scenario's name, under "name")."""
    catalog, events, through = SCENARIOS[request.param]
    works = {"name": request.param}
    for engine in ("duckdb", "spark"):
        work = tmp_path_factory.mktemp(f"{request.param}-{engine}")
        shutil.copytree(events, work / "events")
        run_meterhouse(catalog, work / "events", work, through,
                       extra=["--engine", engine, *(["--spark-master", "local[2]"] if engine == "spark" else [])])
        works[engine] = work
    return works


def test_spark_read_the_landing_files_but_those_that_are_not_utf8(billed_twice):
    """The run's log says who read the landing files; the warehouse counts the files loaded
    (mistral and every_charge_model: all of them by Spark; hostile: hostile.jsonl by Spark,
    not-utf8.jsonl by DuckDB's loader, whose line parser keeps each bad line's bytes)."""
    with duckdb.connect(str(billed_twice["spark"] / "warehouse.duckdb"), read_only=True) as con:
        loaded = con.execute("select count(*) from raw.landing_files where status = 'loaded'").fetchone()[0]
    not_utf8 = 1 if billed_twice["name"] == "hostile" else 0
    log = (billed_twice["spark"] / "warehouse.duckdb.log").read_text(errors="replace")
    assert loaded > not_utf8
    assert (f"landing files: {loaded - not_utf8} read by Spark local[2], {not_utf8} by DuckDB's loader"
            in log)
    assert "landing files:" not in (billed_twice["duckdb"] / "warehouse.duckdb.log").read_text(errors="replace")


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


def test_spark_keeps_its_metastore_and_tables_beside_the_warehouse_not_in_the_working_directory(billed_twice):
    spark_dir = billed_twice["spark"] / "warehouse.duckdb.spark"
    assert {"metastore_db", "tables", "sources", "derby.log"} <= {p.name for p in spark_dir.iterdir()}
    assert not any((folder / name).exists() for folder in (REPO, REPO / "dbt_project")
                   for name in ("metastore_db", "derby.log", "spark-warehouse"))
