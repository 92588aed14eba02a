"""`meterhouse run --engine spark`: Spark reads the landing files and dbt-spark builds the usage
models on a local Spark, and the bills are the same as on DuckDB, byte for byte.

Two scenarios are billed on each engine, in separate work folders: the bundled Mistral example
(seeds/mistral, through 2026-11-14, as `make demo` bills it: duplicates, malformed lines, unpriced
usage, wallets, taxes) and tests/scenarios/pricing_group_keys (group keys among the dimensions,
fct_usage_daily_by_dimensions; no other scenario has them). Every output file (invoices, documents,
current usage, wallets, the run summary with its counts) must be the same bytes, and the usage marts
the same rows. tests/scenarios/every_charge_model is billed on both engines by
test_spark_incremental.py (on Spark in two daily runs, against one DuckDB run), not here.

The hostile events of tests/test_hostile_input.py (every quarantine reason) are billed on both
engines too: each line must get the reason tests/hostile/expected_reasons.json gives it (which
test_hostile_input.py checks DuckDB's run against), and the two quarantines must be the same rows,
details included, with the same run summary.

Skipped, with the reason, where Spark cannot run (no `spark` extra, no Java); `make test-spark` fails
there instead.
"""

import pathlib
import re
import shutil

import duckdb
import pytest

from dagster_project.cli import spark_missing
from tests.conftest import REPO, run_meterhouse, snapshot
from tests.test_hostile_input import CATALOG as HOSTILE_CATALOG
from tests.test_hostile_input import HOSTILE, assert_each_line_got_its_expected_reason
from tests.test_hostile_input import THROUGH as HOSTILE_THROUGH

pytestmark = pytest.mark.skipif(bool(spark_missing()), reason=str(spark_missing()))

# name: (catalog folder, events folder, billed through): billed on both engines
SCENARIOS = {
    "mistral": (REPO / "seeds" / "mistral" / "catalog", REPO / "seeds" / "mistral" / "events", "2026-11-14"),
    # pricing group keys: group keys among the dimensions, fct_usage_daily_by_dimensions
    "pricing_group_keys": (REPO / "tests" / "scenarios" / "pricing_group_keys" / "catalog",
                           REPO / "tests" / "scenarios" / "pricing_group_keys" / "events", "2026-11-20"),
}
SPARK = ["--engine", "spark", "--spark-master", "local[2]"]
USAGE_MARTS = ("fct_usage_daily", "fct_unpriced_usage", "fct_events_rejected", "fct_late_events", "fct_event_loads",
               "fct_charge_events", "fct_usage_by_model_and_type", "fct_usage_daily_by_dimensions")


@pytest.fixture(scope="module", params=list(SCENARIOS))
def billed_twice(request, tmp_path_factory):
    """The scenario billed on DuckDB and on Spark (local[2]): the two work folders, by engine."""
    catalog, events, through = SCENARIOS[request.param]
    works = {}
    for engine in ("duckdb", "spark"):
        work = tmp_path_factory.mktemp(f"{request.param}-{engine}")
        shutil.copytree(events, work / "events")
        run_meterhouse(catalog, work / "events", work, through, extra=SPARK if engine == "spark" else ["--engine", engine])
        works[engine] = work
    return works


@pytest.fixture(scope="module")
def hostile_on_both(tmp_path_factory):
    """tests/test_hostile_input.py's landing folder billed on DuckDB and on Spark (local[2]): the
    two work folders, by engine."""
    works = {}
    for engine in ("duckdb", "spark"):
        work = tmp_path_factory.mktemp(f"hostile-{engine}")
        shutil.copytree(HOSTILE / "events", work / "events")
        run_meterhouse(HOSTILE_CATALOG, work / "events", work, HOSTILE_THROUGH,
                       extra=SPARK if engine == "spark" else ["--engine", engine])
        works[engine] = work
    return works


@pytest.fixture(scope="module")
def hostile_on_spark(hostile_on_both):
    return hostile_on_both["spark"]


def _read_by_spark(work, not_utf8):
    """The files the warehouse counts as loaded, as the run's log says Spark and DuckDB's loader read them."""
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        loaded = con.execute("select count(*) from raw.landing_files where status = 'loaded'").fetchone()[0]
    log = (work / "warehouse.duckdb.log").read_text(errors="replace")
    assert loaded > not_utf8
    assert f"landing files: {loaded - not_utf8} read by Spark local[2], {not_utf8} by DuckDB's loader" in log


def test_spark_read_every_landing_file(billed_twice):
    """The run's log says who read the landing files; the warehouse counts the files loaded."""
    _read_by_spark(billed_twice["spark"], not_utf8=0)
    assert "landing files:" not in (billed_twice["duckdb"] / "warehouse.duckdb.log").read_text(errors="replace")


def test_spark_read_the_hostile_files_but_the_one_that_is_not_utf8(hostile_on_spark):
    """hostile.jsonl by Spark, not-utf8.jsonl by DuckDB's loader, whose line parser keeps each bad
    line's bytes."""
    _read_by_spark(hostile_on_spark, not_utf8=1)


def test_a_run_starts_one_spark_for_its_dbt_commands_and_stops_it_after_the_usage_models(billed_twice):
    """The reading of the landing files and the usage models are served by one Spark Connect
    server the run started (`spark_server.py`), stopped and waited for before pricing."""
    log = (billed_twice["spark"] / "warehouse.duckdb.log").read_text(errors="replace")
    assert log.count("Spark local[2] started for this run") == 1
    before_stop, _, after_stop = log.partition("the run's Spark stopped")
    assert "landing files: " in before_stop and "usage models on Spark local[2]: full build" in before_stop
    assert "priced_billing" in after_stop and "started for this run" not in after_stop
    pid = int(re.search(r"started for this run in [0-9.]+ s: a Spark Connect server on 127\.0\.0\.1:\d+, pid (\d+)",
                        before_stop).group(1))
    assert not pathlib.Path(f"/proc/{pid}").exists()  # (exited, and waited for by the run)
    assert not (billed_twice["spark"] / "warehouse.duckdb.spark" / "connect" / "server.json").exists()


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


def test_spark_quarantines_each_hostile_line_for_the_reason_duckdb_gives_it(hostile_on_spark):
    assert_each_line_got_its_expected_reason(hostile_on_spark)


def test_the_hostile_lines_are_quarantined_alike_on_both_engines_row_by_row(hostile_on_both):
    """Each engine's quarantine, row by row (file, line, item, reason and its detail), and the run
    summary's counts, the same."""
    rejected, summaries = {}, {}
    for engine, work in hostile_on_both.items():
        with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
            rejected[engine] = con.execute(
                """select source_file, line_number, item_index, rejection_reason, rejection_detail
                   from marts.fct_events_rejected order by all""").fetchall()
        summaries[engine] = (work / "out" / "run_summary.json").read_bytes()
    assert len(rejected["duckdb"]) > 10
    assert rejected["spark"] == rejected["duckdb"]
    assert summaries["spark"] == summaries["duckdb"]


def test_spark_keeps_its_metastore_and_tables_beside_the_warehouse_not_in_the_working_directory(hostile_on_spark):
    spark_dir = hostile_on_spark / "warehouse.duckdb.spark"
    assert {"metastore_db", "tables", "sources", "derby.log"} <= {p.name for p in spark_dir.iterdir()}
    assert not any((folder / name).exists() for folder in (REPO, REPO / "dbt_project")
                   for name in ("metastore_db", "derby.log", "spark-warehouse"))
