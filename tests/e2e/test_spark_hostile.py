"""`meterhouse run --engine spark` on a local master (`--spark-master local[2]`): the run starts its
own Spark (a Spark Connect server, `spark_server.py`) for its dbt commands and stops it, with its
metastore and tables under `<warehouse>.spark/`. The hostile events of tests/test_hostile_input.py
(every quarantine reason) are billed on it and on DuckDB: each line must get the reason
tests/hostile/expected_reasons.json gives it (which test_hostile_input.py checks DuckDB's run
against), and the two quarantines must be the same rows, details included, with the same run
summary. (test_spark_engine.py and test_spark_incremental.py bill the other scenarios on a Spark
Connect server that is not the run's.)

Skipped, with the reason, where Spark cannot run (no `spark` extra, no Java); `make test-spark` fails
there instead.
"""

import pathlib
import re
import shutil

import duckdb
import pytest

from dagster_project.cli import spark_missing
from tests.conftest import REPO, run_meterhouse
from tests.e2e.conftest import assert_read_by_spark
from tests.test_hostile_input import CATALOG as HOSTILE_CATALOG
from tests.test_hostile_input import HOSTILE, assert_each_line_got_its_expected_reason
from tests.test_hostile_input import THROUGH as HOSTILE_THROUGH

pytestmark = pytest.mark.skipif(bool(spark_missing()), reason=str(spark_missing()))

SPARK = ["--engine", "spark", "--spark-master", "local[2]"]


@pytest.fixture(scope="module")
def hostile_on_both(tmp_path_factory):
    """tests/test_hostile_input.py's landing folder billed on DuckDB and on Spark, on a local master
    (`local[2]`: a Spark the run starts and stops): the two work folders, by engine."""
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


def test_spark_read_the_hostile_files_but_the_one_that_is_not_utf8(hostile_on_spark):
    """hostile.jsonl by Spark, not-utf8.jsonl by DuckDB's loader, whose line parser keeps each bad
    line's bytes."""
    assert_read_by_spark(hostile_on_spark, not_utf8=1, where="Spark local[2]")


def test_a_run_starts_one_spark_for_its_dbt_commands_and_stops_it_after_the_usage_models(hostile_on_spark):
    """On a local master, the reading of the landing files and the usage models are served by one
    Spark Connect server the run started (`spark_server.py`), stopped and waited for before pricing."""
    log = (hostile_on_spark / "warehouse.duckdb.log").read_text(errors="replace")
    assert log.count("Spark local[2] started for this run") == 1
    before_stop, _, after_stop = log.partition("the run's Spark stopped")
    assert "landing files: " in before_stop and "usage models on Spark local[2]: full build" in before_stop
    assert "priced_billing" in after_stop and "started for this run" not in after_stop
    pid = int(re.search(r"started for this run in [0-9.]+ s: a Spark Connect server on 127\.0\.0\.1:\d+, pid (\d+)",
                        before_stop).group(1))
    assert not pathlib.Path(f"/proc/{pid}").exists()  # (exited, and waited for by the run)
    assert not (hostile_on_spark / "warehouse.duckdb.spark" / "connect" / "server.json").exists()


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
