"""`meterhouse run --engine spark`: Spark reads the landing files and dbt-spark builds the usage
models on a Spark Connect server that several warehouses share, and the bills are the same as on
DuckDB, byte for byte.

Two scenarios are billed on each engine, in separate work folders: the bundled Mistral example
(seeds/mistral, through 2026-11-14, as `make demo` bills it: duplicates, malformed lines, unpriced
usage, wallets, taxes) and tests/scenarios/pricing_group_keys (group keys among the dimensions,
fct_usage_daily_by_dimensions; no other scenario has them), both on Spark through the test
module's Spark Connect server (`SPARK_REMOTE=sc://...`, tests/e2e/conftest.py), one warehouse
after the other, each in its own databases. Every output file (invoices, documents, current usage,
wallets, the run summary with its counts) must be the same bytes, and the usage marts the same rows.
tests/scenarios/every_charge_model is billed on both engines by test_spark_incremental.py (on Spark
in two daily runs, each on its own Spark, against one DuckDB run), not here.

The hostile events of tests/test_hostile_input.py (every quarantine reason) are billed on both
engines too, on Spark on the same server: each line must get the reason
tests/hostile/expected_reasons.json gives it (which test_hostile_input.py checks DuckDB's run
against), and the two quarantines must be the same rows, details included, with the same run
summary. So four warehouses are billed on the server, one after the other, each in its own
databases (test_spark_incremental.py bills on the run's own Spark, a local master).

Skipped, with the reason, where Spark cannot run (no `spark` extra, no Java); `make test-spark` fails
there instead.
"""

import shutil

import duckdb
import pytest

from dagster_project.cli import spark_missing
from tests.conftest import REPO, materialize_usage_models, run_meterhouse, snapshot
from tests.e2e.conftest import assert_read_by_spark, run_on_spark_connect
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
USAGE_MARTS = ("fct_usage_daily", "fct_unpriced_usage", "fct_events_rejected", "fct_late_events", "fct_event_loads",
               "fct_charge_events", "fct_usage_by_model_and_type", "fct_usage_daily_by_dimensions")


def _on_both_engines(tmp_path_factory, name, catalog, events, through, server):
    """`events` (a landing folder, copied) billed on DuckDB and on Spark, the module's Spark
    Connect server `server`: the two work folders, by engine."""
    works = {}
    for engine in ("duckdb", "spark"):
        work = tmp_path_factory.mktemp(f"{name}-{engine}")
        shutil.copytree(events, work / "events")
        if engine == "spark":
            run_on_spark_connect(server.url, catalog, work / "events", work, through)
        else:
            run_meterhouse(catalog, work / "events", work, through, extra=["--engine", engine])
        works[engine] = work
    return works


@pytest.fixture(scope="module", params=list(SCENARIOS))
def billed_twice(request, tmp_path_factory, spark_connect_server):
    """The scenario billed on DuckDB and on Spark (the module's server, which bills each scenario's
    warehouse, and the hostile one, in its own databases)."""
    catalog, events, through = SCENARIOS[request.param]
    return _on_both_engines(tmp_path_factory, request.param, catalog, events, through, spark_connect_server)


@pytest.fixture(scope="module")
def hostile_on_both(tmp_path_factory, spark_connect_server):
    """tests/test_hostile_input.py's landing folder billed on DuckDB and on Spark."""
    return _on_both_engines(tmp_path_factory, "hostile", HOSTILE_CATALOG, HOSTILE / "events", HOSTILE_THROUGH,
                            spark_connect_server)


@pytest.fixture(scope="module")
def hostile_on_spark(hostile_on_both):
    return hostile_on_both["spark"]


def test_spark_read_every_landing_file(billed_twice, spark_connect_server):
    """The run's log says who read the landing files; the warehouse counts the files loaded."""
    assert_read_by_spark(billed_twice["spark"], not_utf8=0, where=f"Spark Connect {spark_connect_server.url}")
    assert "landing files:" not in (billed_twice["duckdb"] / "warehouse.duckdb.log").read_text(errors="replace")


def test_on_a_connect_server_each_warehouse_keeps_its_tables_under_its_own_folder(billed_twice, spark_connect_server):
    """A Spark Connect server that is not the run's keeps its own catalog, which names the tables
    of every warehouse billed on it (the two scenarios here, one after the other); each warehouse's
    tables are under its `<warehouse>.spark/tables/<layer>.db/`, none in the server's own folder,
    and the run starts no Spark and makes no metastore of its own."""
    spark_dir = billed_twice["spark"] / "warehouse.duckdb.spark"
    assert {"tables", "sources"} <= {p.name for p in spark_dir.iterdir()}
    assert not (spark_dir / "metastore_db").exists() and not (spark_dir / "connect").exists()
    assert {"intermediate.db", "marts.db", "reference.db"} <= {p.name for p in (spark_dir / "tables").iterdir()}
    assert not [p for p in spark_connect_server.folder.rglob("*.parquet")]


def test_the_server_names_each_warehouse_s_databases_apart_and_places_them_in_its_folder(
        billed_twice, hostile_on_spark, spark_connect_server):
    """Asked directly (a Spark Connect client): the server's catalog (Spark's default, in memory)
    holds each warehouse's layers as databases of its own name (`spark_exchange.spark_database`), located under that
    warehouse's Spark folder."""
    from pyspark.sql import SparkSession

    from dagster_project.store.spark_exchange import spark_database

    spark = SparkSession.builder.remote(spark_connect_server.url).getOrCreate()
    try:
        assert spark.conf.get("spark.sql.catalogImplementation") == "in-memory"
        names = {row[0] for row in spark.sql("show databases").collect()}
        for work in billed_twice["spark"], hostile_on_spark:
            name = spark_database(spark_connect_server.url, work / "warehouse.duckdb")
            assert {f"{name}_{layer}" for layer in ("raw", "catalog", "calendar", "staging", "intermediate",
                                                    "marts", "reference")} <= names
            info = dict(spark.sql(f"describe database {name}_marts").collect())
            assert info["Location"].removeprefix("file:") == str(work.resolve() / "warehouse.duckdb.spark" / "tables" / "marts.db")
        assert spark_database(spark_connect_server.url, billed_twice["spark"] / "warehouse.duckdb") != spark_database(
            spark_connect_server.url, hostile_on_spark / "warehouse.duckdb")
    finally:
        spark.stop()


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


def test_spark_read_the_hostile_files_but_the_one_that_is_not_utf8(hostile_on_spark, spark_connect_server):
    """hostile.jsonl by Spark, not-utf8.jsonl by DuckDB's loader, whose line parser keeps each bad
    line's bytes."""
    assert_read_by_spark(hostile_on_spark, not_utf8=1, where=f"Spark Connect {spark_connect_server.url}")


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



def test_a_selection_of_the_usage_models_is_built_over_the_server_s_tables_of_the_others(hostile_on_spark, spark_connect_server):
    """Some usage models materialized alone (as from Dagster's UI) on the server. A view they read
    and do not build is missing from the server's catalog (as after a restart): the command ends
    before any model, naming it. With that view in the selection, the selection is built whole over
    the server's tables of the others, which stay, and only its own tables come back: the rows taken
    out of the warehouse's selected tables come back, those of an unselected table stay out."""
    from pyspark.sql import SparkSession

    from dagster_project.store.spark_exchange import spark_database

    work = hostile_on_spark
    name = spark_database(spark_connect_server.url, work / "warehouse.duckdb")
    selection = ["intermediate/int_usage_by_model_and_type_daily", "marts/fct_usage_daily"]
    tables, unselected = ("intermediate.int_usage_by_model_and_type_daily", "marts.fct_usage_daily"), \
        "intermediate.int_events_deduplicated"
    folders = sorted(p.relative_to(work) for p in (work / "warehouse.duckdb.spark" / "tables").glob("*.db/*"))
    with duckdb.connect(str(work / "warehouse.duckdb")) as con:
        before = {t: con.execute(f"select * from {t} order by all").fetchall() for t in tables}
        kept = con.execute(f"select * from {unselected}").fetchall()
        for table in (*tables, unselected):
            con.execute(f"delete from {table}")
    spark = SparkSession.builder.remote(spark_connect_server.url).getOrCreate()
    try:
        spark.sql(f"drop view {name}_staging.stg_catalog__filter_keys")
    finally:
        spark.stop()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SPARK_REMOTE", spark_connect_server.url)
        refused = materialize_usage_models(HOSTILE_CATALOG, work, HOSTILE_THROUGH, selection, engine="spark")
        built = materialize_usage_models(HOSTILE_CATALOG, work, HOSTILE_THROUGH,
                                         [*selection, "staging/stg_catalog__filter_keys"], engine="spark")
    with duckdb.connect(str(work / "warehouse.duckdb")) as con:
        after = {t: con.execute(f"select * from {t} order by all").fetchall() for t in tables}
        left_out = con.execute(f"select count(*) from {unselected}").fetchone()[0]
        con.executemany(f"insert into {unselected} values ({', '.join('?' for _ in kept[0])})", kept)
    assert refused[0] is False
    assert [e for e in refused[1] if f"Spark does not know the tables this selection reads or replaces "
            f"({name}_staging.stg_catalog__filter_keys missing from its catalog" in e] != []
    assert built == (True, [])
    assert [len(before[t]) > 0 for t in tables] == [True, True]
    assert after == before
    assert (len(kept) > 0, left_out) == (True, 0)
    assert sorted(p.relative_to(work) for p in (work / "warehouse.duckdb.spark" / "tables").glob("*.db/*")) == folders


def test_a_server_that_no_longer_knows_the_warehouse_s_tables_gets_them_built_whole(hostile_on_both, spark_connect_server):
    """A Spark Connect server restarted since a warehouse's last run (its catalog in memory) knows
    none of the warehouse's tables, though their files are still there. Here the server forgets the
    incremental ones of one layer (its database `<name>_intermediate` dropped, their files put back;
    a restart would lose the other layers too), and a day arrives. dbt's build stops before any model (Spark would refuse to create a table where its
    files are), the run says why in its log and builds the usage models whole, and it bills the
    same bytes as DuckDB given the same day. (Last in the module: it changes the hostile
    warehouses' work folders.)"""
    from pyspark.sql import SparkSession

    from dagster_project.store.spark_exchange import spark_database

    work = hostile_on_both["spark"]
    name = spark_database(spark_connect_server.url, work / "warehouse.duckdb")
    files = work / "warehouse.duckdb.spark" / "tables" / "intermediate.db"
    kept = shutil.copytree(files, work / "intermediate.db.kept")
    spark = SparkSession.builder.remote(spark_connect_server.url).getOrCreate()
    try:
        spark.sql(f"drop database {name}_intermediate cascade")  # (which deletes its tables' files too)
    finally:
        spark.stop()
    shutil.rmtree(files, ignore_errors=True)
    kept.rename(files)  # (forgotten by the server, as by a restart; the files still there)
    for engine, folder in hostile_on_both.items():
        (folder / "events" / "2026-10-11").mkdir()
        (folder / "events" / "2026-10-11" / "late.jsonl").write_text(
            '{"transaction_id": "r1", "code": "mistral_tokens", "external_subscription_id": "sub_ny", '
            '"timestamp": 1791720000, "properties": {"tokens": 10, "model": "mistral-small", "type": "input"}}\n')
    before = (work / "warehouse.duckdb.log").read_text(errors="replace")
    run_on_spark_connect(spark_connect_server.url, HOSTILE_CATALOG, work / "events", work, HOSTILE_THROUGH)
    run_meterhouse(HOSTILE_CATALOG, hostile_on_both["duckdb"] / "events", hostile_on_both["duckdb"], HOSTILE_THROUGH)

    log = (work / "warehouse.duckdb.log").read_text(errors="replace").removeprefix(before)
    builds = [line.partition("usage models on Spark Connect")[2] for line in log.splitlines()
              if "usage models on Spark Connect" in line]
    assert [b.partition(";")[0].partition(": ")[2] for b in builds] == ["arrival days from 2026-10-11", "full build"]
    spark_dir = work.resolve() / "warehouse.duckdb.spark"
    assert (f"Spark no longer knows this warehouse's tables ({name}_intermediate.int_events_checked_daily, "
            f"{name}_intermediate.int_events_deduplicated, {name}_intermediate.int_usage_by_model_and_type_daily "
            f"missing from its catalog) although an earlier build made them, under {spark_dir}/tables") in log
    assert "LOCATION_ALREADY_EXISTS" not in log  # (no model was tried: dbt ends at the hook's error)
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("""select arrival_date::varchar, is_duplicate from intermediate.int_events_deduplicated
                              where transaction_id = 'r1'""").fetchall() == [("2026-10-11", False)]
    on_duckdb, on_spark = (snapshot(hostile_on_both[e] / "out") for e in ("duckdb", "spark"))
    assert sorted(on_spark) == sorted(on_duckdb)
    assert [name for name in on_duckdb if on_spark[name] != on_duckdb[name]] == []
