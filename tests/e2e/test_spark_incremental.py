"""`meterhouse run --engine spark` builds on what Spark built before: a run that finds one more
arrival day rebuilds that day only (its source files and its partitions, `insert_overwrite` by
arrival date) and bills exactly what one run over every day bills.

tests/scenarios/every_charge_model is billed on Spark twice, in one work folder, as daily runs would:
through 2026-10-24 with the arrival days 2026-09-20 and 2026-10-20 (`--spark-master local[2]`), then
through 2026-11-02 with 2026-10-25 too (`SPARK_REMOTE=local[2]`). Each run starts its own Spark (a
Spark Connect server of the run, `spark_server.py`), over the warehouse's own metastore and tables
under `<warehouse>.spark/`, which the second run builds on: the product's default path (a local
master), while the other Spark tests bill on a server that is not the run's (tests/e2e/conftest.py). That
last day continues what the kept days started: graduated and weighted charges (each event's order
within its charge), and, added here, an event re-sent from 2026-10-20 (`t13`, a duplicate whose
first arrival is a kept day) and a unique-count event for a user already counted on 2026-10-20
(`t40`, user "b": the unique count stays 2). The same landing folder, billed once on DuckDB,
is the reference. This is the only module that bills every_charge_model on Spark: its two runs
against one DuckDB run are the issue's "billed on both engines, the same bytes and counts" for it
(test_spark_engine.py bills the Mistral example and the group keys on both engines). Its landing
folder differs from the golden test's by those two lines, so tests/golden/outputs.json cannot stand
in for the DuckDB run.
"""

import pathlib
import re
import shutil

import duckdb
import pytest

from dagster_project.cli import spark_missing
from tests.conftest import REPO, run_meterhouse, snapshot
from tests.e2e.test_spark_engine import USAGE_MARTS

pytestmark = pytest.mark.skipif(bool(spark_missing()), reason=str(spark_missing()))

SCENARIO = REPO / "tests" / "scenarios" / "every_charge_model"
THROUGH = "2026-11-02"
LAST_DAY = "2026-10-25"
DAY_BEFORE = "2026-10-24"  # (the first run's billing date: nothing is finalized that the last day adds to)
# Sent again a day later (its first arrival, 2026-10-20, is kept), and a user already counted.
MORE_LINES = (
    '{"transaction_id": "t13", "code": "m_unique", "external_subscription_id": "sub_e", "timestamp": 1792231200, '
    '"properties": {"user": "a"}}\n'
    '{"transaction_id": "t40", "code": "m_unique", "external_subscription_id": "sub_e", "timestamp": 1792800000, '
    '"properties": {"user": "b"}}\n'
)


def _landing(folder):
    shutil.copytree(SCENARIO / "events", folder)
    with open(folder / LAST_DAY / "events.jsonl", "a") as f:
        f.write(MORE_LINES)
    return folder


@pytest.fixture(scope="module")
def billed_by_day(tmp_path_factory):
    """(work folder billed on Spark in two runs, work folder billed once on DuckDB)."""
    once = tmp_path_factory.mktemp("once-duckdb")
    run_meterhouse(SCENARIO / "catalog", _landing(once / "events"), once, THROUGH)
    twice = tmp_path_factory.mktemp("twice-spark")
    events = _landing(twice / "events")
    held_back = tmp_path_factory.mktemp("held") / LAST_DAY
    shutil.move(events / LAST_DAY, held_back)
    spark = ["--engine", "spark", "--spark-master", "local[2]"]
    with pytest.MonkeyPatch.context() as env:  # (the run's subprocess inherits it)
        run_meterhouse(SCENARIO / "catalog", events, twice, DAY_BEFORE, extra=spark)
        first_log = (twice / "warehouse.duckdb.log").read_text(errors="replace")
        shutil.move(held_back, events / LAST_DAY)
        env.setenv("SPARK_REMOTE", "local[2]")
        run_meterhouse(SCENARIO / "catalog", events, twice, THROUGH, extra=["--engine", "spark"])
    second_log = (twice / "warehouse.duckdb.log").read_text(errors="replace").removeprefix(first_log)
    return twice, once, second_log, first_log


def test_the_first_run_s_spark_reads_every_landing_file(billed_by_day):
    assert "landing files: 2 read by Spark local[2], 0 by DuckDB's loader" in billed_by_day[3]


def test_each_run_starts_one_spark_for_its_dbt_commands_and_stops_it_after_the_usage_models(billed_by_day):
    """Each run's reading of the landing files and its usage models are served by one Spark Connect
    server the run started (SPARK_REMOTE=local[2]: a server of that master too), stopped and waited
    for before pricing; the next run starts its own."""
    for log in billed_by_day[3], billed_by_day[2]:
        assert log.count("Spark local[2] started for this run") == 1
        before_stop, _, after_stop = log.partition("the run's Spark stopped")
        assert "landing files: " in before_stop and "usage models on Spark" in before_stop
        assert "priced_billing" in after_stop and "started for this run" not in after_stop
        pid = int(re.search(r"started for this run in [0-9.]+ s: a Spark Connect server on 127\.0\.0\.1:\d+, pid (\d+)",
                            before_stop).group(1))
        assert not pathlib.Path(f"/proc/{pid}").exists()  # (exited, and waited for by the run)
    assert not (billed_by_day[0] / "warehouse.duckdb.spark" / "connect" / "server.json").exists()


def test_spark_keeps_its_metastore_and_tables_beside_the_warehouse_not_in_the_working_directory(billed_by_day):
    spark_dir = billed_by_day[0] / "warehouse.duckdb.spark"
    assert {"metastore_db", "tables", "sources", "derby.log"} <= {p.name for p in spark_dir.iterdir()}
    assert {"intermediate.db", "marts.db", "reference.db"} <= {p.name for p in (spark_dir / "tables").iterdir()}
    assert not any((folder / name).exists() for folder in (REPO, REPO / "dbt_project")
                   for name in ("metastore_db", "derby.log", "spark-warehouse"))


def test_the_second_run_rebuilds_only_the_new_arrival_day(billed_by_day):
    second_log = billed_by_day[2]
    assert f"arrival days from {LAST_DAY}" in second_log
    assert "full build" not in second_log


def test_the_second_run_s_spark_reads_only_the_new_day_s_file_through_spark_connect(billed_by_day):
    second_log = billed_by_day[2]
    assert "landing files: 1 read by Spark Connect local[2], 0 by DuckDB's loader" in second_log


def test_a_run_with_one_more_day_bills_the_same_bytes_as_one_run_over_every_day(billed_by_day):
    twice, once = billed_by_day[:2]
    by_day, in_one = snapshot(twice / "out"), snapshot(once / "out")
    assert sorted(by_day) == sorted(in_one)
    assert [name for name in in_one if by_day[name] != in_one[name]] == []


def test_the_usage_marts_hold_the_same_rows_as_one_run_over_every_day(billed_by_day):
    twice, once = billed_by_day[:2]
    con = duckdb.connect()
    con.execute(f"attach '{twice / 'warehouse.duckdb'}' as by_day (read_only)")
    con.execute(f"attach '{once / 'warehouse.duckdb'}' as in_one (read_only)")
    for mart in USAGE_MARTS:
        assert (con.execute(f"select * from by_day.marts.{mart} order by all").fetchall()
                == con.execute(f"select * from in_one.marts.{mart} order by all").fetchall()), mart


def test_the_retried_event_is_a_duplicate_of_its_first_arrival_on_a_kept_day(billed_by_day):
    twice = billed_by_day[0]
    with duckdb.connect(str(twice / "warehouse.duckdb"), read_only=True) as con:
        loads = dict(con.execute("select arrival_date::varchar, events_duplicate from marts.fct_event_loads").fetchall())
        # (2026-10-25: t23, g3, the re-sent t13 and t40; only t13 was seen before, on 2026-10-20)
        assert loads[LAST_DAY] == 1
        first = con.execute("""select first_event_record_id from intermediate.int_events_deduplicated
                               where transaction_id = 't13' and is_duplicate""").fetchall()
        assert len(first) == 1 and first[0][0].startswith("2026-10-20/")
