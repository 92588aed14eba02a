"""What goes to Spark and what comes back (`store/spark_exchange.py`), without Spark: the raw layer
is written one Parquet file per arrival day, and only the days rebuilt; a table Spark partitioned by
arrival date comes back in the model's column order; where Spark runs (a master or SPARK_REMOTE)."""

import datetime as dt

import duckdb
import pytest

from dagster_project.store import spark_exchange, usage_state
from dagster_project.store.spark_exchange import COLUMNS_FILE, export_sources, import_tables


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create schema raw; create schema catalog; create schema calendar")
    con.execute("create table raw.rejected_lines (arrival_date date, source_file varchar, line_number bigint)")
    con.execute("""insert into raw.rejected_lines values ('2026-10-01', '2026-10-01/a.jsonl', 1),
                   ('2026-10-01', '2026-10-01/a.jsonl', 2), ('2026-10-02', '2026-10-02/a.jsonl', 1)""")
    con.execute("create table raw.events as select * from raw.rejected_lines")
    # (what each day was loaded from: its files' content and the catalog keys)
    con.execute("create table raw.day_loads (arrival_date date, content_signature varchar, property_keys varchar)")
    con.execute("insert into raw.day_loads values ('2026-10-01', 'c1', 'k'), ('2026-10-02', 'c2', 'k')")
    con.execute("create table catalog.plans (code varchar)")
    con.execute("insert into catalog.plans values ('starter')")
    return con


def _rows(folder):
    return duckdb.sql(f"select * from read_parquet('{folder}/*.parquet') order by all").fetchall()


def test_a_raw_table_is_written_one_file_per_arrival_day_beside_an_empty_file_of_its_columns(con, tmp_path):
    written = export_sources(con, tmp_path)
    rejected = tmp_path / "sources" / "raw" / "rejected_lines"
    assert written == ["catalog.plans", "raw.day_loads", "raw.events", "raw.rejected_lines"]
    assert sorted(p.name for p in rejected.iterdir()) == ["2026-10-01.parquet", "2026-10-02.parquet", COLUMNS_FILE]
    assert duckdb.sql(f"select count(*) from '{rejected / '2026-10-01.parquet'}'").fetchone() == (2,)
    assert duckdb.sql(f"select count(*) from '{rejected / COLUMNS_FILE}'").fetchone() == (0,)
    assert _rows(tmp_path / "sources" / "catalog" / "plans") == [("starter",)]


def test_only_the_days_from_the_first_rebuilt_day_are_written_again_and_a_day_no_longer_loaded_is_removed(con, tmp_path):
    export_sources(con, tmp_path)
    rejected = tmp_path / "sources" / "raw" / "rejected_lines"
    # The first day changes in the warehouse but is not rebuilt: its file stays as written before.
    con.execute("delete from raw.rejected_lines where arrival_date = '2026-10-01' and line_number = 2")
    # The second day is no longer loaded; a third arrives.
    con.execute("delete from raw.rejected_lines where arrival_date = '2026-10-02'")
    con.execute("insert into raw.rejected_lines values ('2026-10-03', '2026-10-03/a.jsonl', 1)")
    export_sources(con, tmp_path, rebuild_from="2026-10-02")
    assert sorted(p.name for p in rejected.iterdir()) == ["2026-10-01.parquet", "2026-10-03.parquet", COLUMNS_FILE]
    assert _rows(rejected) == [(dt.date(2026, 10, 1), "2026-10-01/a.jsonl", 1), (dt.date(2026, 10, 1), "2026-10-01/a.jsonl", 2),
                               (dt.date(2026, 10, 3), "2026-10-03/a.jsonl", 1)]


def test_an_empty_raw_table_is_still_written_with_its_columns(con, tmp_path):
    con.execute("delete from raw.rejected_lines")
    export_sources(con, tmp_path)
    folder = tmp_path / "sources" / "raw" / "rejected_lines"
    assert [p.name for p in folder.iterdir()] == [COLUMNS_FILE]
    assert duckdb.sql(f"describe select * from '{folder / COLUMNS_FILE}'").fetchall()[0][:2] == ("arrival_date", "DATE")


def _event_days(spark_dir):
    """{day folder: rows} of the raw layer of events as Spark reads it (the date in the folder's name)."""
    root = spark_exchange.events_folder(spark_dir)
    return {sub.name: duckdb.sql(f"select * from read_parquet('{sub}/*.parquet', hive_partitioning = false) order by all").fetchall()
            for sub in sorted(root.iterdir())}


def _typed_by_spark(typed_dir, day, rows):
    """A day of events as Spark's reader writes it: `arrival_date=<day>/`, without that column."""
    folder = typed_dir / f"arrival_date={day}"
    folder.mkdir(parents=True)
    values = ", ".join(f"('{f}', {n})" for f, n in rows)
    duckdb.sql(f"select * from (values {values}) t(source_file, line_number)").write_parquet(str(folder / "part-00000.parquet"))


def test_the_events_spark_typed_become_the_raw_layer_and_a_day_without_them_is_written_from_the_warehouse(con, tmp_path):
    # Spark read 2026-10-01 (its own rows, here told apart by their line numbers, 7); 2026-10-02 was
    # read by DuckDB's loader (or Python changed its events): written from the warehouse.
    _typed_by_spark(tmp_path / "landing", "2026-10-01", [("2026-10-01/a.jsonl", 7)])
    spark_exchange.place_typed_events(con, tmp_path, tmp_path / "landing",
                                      [dt.date(2026, 10, 1), dt.date(2026, 10, 2)], frozenset({dt.date(2026, 10, 1)}))
    assert not (tmp_path / "landing").exists()
    export_sources(con, tmp_path)
    assert _event_days(tmp_path) == {"arrival_date=2026-10-01": [("2026-10-01/a.jsonl", 7)],
                                     "arrival_date=2026-10-02": [("2026-10-02/a.jsonl", 1)]}


def test_a_day_loaded_again_since_its_folder_was_written_is_written_again_and_a_day_no_longer_loaded_is_removed(con, tmp_path):
    _typed_by_spark(tmp_path / "landing", "2026-10-01", [("2026-10-01/a.jsonl", 7)])
    spark_exchange.place_typed_events(con, tmp_path, tmp_path / "landing", [dt.date(2026, 10, 1)],
                                      frozenset({dt.date(2026, 10, 1)}))
    # A run on DuckDB loads 2026-10-01 again from changed files, and 2026-10-02 is no longer loaded.
    con.execute("update raw.day_loads set content_signature = 'c1 changed' where arrival_date = '2026-10-01'")
    con.execute("delete from raw.events where arrival_date = '2026-10-02'")
    export_sources(con, tmp_path)
    assert _event_days(tmp_path) == {"arrival_date=2026-10-01": [("2026-10-01/a.jsonl", 1), ("2026-10-01/a.jsonl", 2)]}


def test_the_flat_files_of_events_written_before_spark_read_the_landing_files_are_replaced_by_day_folders(con, tmp_path):
    events = spark_exchange.events_folder(tmp_path)
    events.mkdir(parents=True)
    duckdb.sql("select 1 as x").write_parquet(str(events / "2026-10-01.parquet"))
    duckdb.sql("select 1 as x limit 0").write_parquet(str(events / COLUMNS_FILE))
    export_sources(con, tmp_path)
    assert sorted(p.name for p in events.iterdir()) == ["arrival_date=2026-10-01", "arrival_date=2026-10-02"]


def test_without_any_event_the_raw_layer_still_has_a_folder_to_read_the_columns_from(con, tmp_path):
    con.execute("delete from raw.events")
    export_sources(con, tmp_path)
    assert _event_days(tmp_path) == {"arrival_date=0001-01-01": []}


def test_a_full_build_forgets_spark_s_tables_and_sources_but_keeps_the_events_it_read(con, tmp_path):
    _typed_by_spark(tmp_path / "landing", "2026-10-01", [("2026-10-01/a.jsonl", 7)])
    spark_exchange.place_typed_events(con, tmp_path, tmp_path / "landing", [dt.date(2026, 10, 1)],
                                      frozenset({dt.date(2026, 10, 1)}))
    export_sources(con, tmp_path)
    (tmp_path / "tables").mkdir()
    spark_exchange.clear(tmp_path)
    assert not (tmp_path / "tables").exists() and not (tmp_path / "sources" / "catalog" / "plans").exists()
    assert _event_days(tmp_path)["arrival_date=2026-10-01"] == [("2026-10-01/a.jsonl", 7)]


def _spark_table(tmp_path, days):
    """A table as Spark writes one partitioned by arrival date: the model's columns `usage_id,
    arrival_date, units` in an empty file under schemas/, the rows in `arrival_date=...` folders
    without that column."""
    (tmp_path / "schemas" / "marts.fct_x").mkdir(parents=True)
    duckdb.sql("select 'u'::varchar as usage_id, date '2026-10-01' as arrival_date, 1.5::decimal(38, 12) as units limit 0"
               ).write_parquet(str(tmp_path / "schemas" / "marts.fct_x" / "part-00000.parquet"))
    for day, rows in days.items():
        folder = tmp_path / "tables" / "marts.db" / "fct_x" / f"arrival_date={day}"
        folder.mkdir(parents=True)
        values = ", ".join(f"('{u}', {units}::decimal(38, 12))" for u, units in rows)
        duckdb.sql(f"select * from (values {values}) t(usage_id, units)").write_parquet(str(folder / "part-00000.parquet"))


def test_a_table_partitioned_by_arrival_date_comes_back_in_the_models_column_order(tmp_path):
    _spark_table(tmp_path, {"2026-10-01": [("a", "2.5")], "2026-10-02": [("b", "0.000000000001")]})
    con = duckdb.connect()
    import_tables(con, tmp_path, [("marts", "fct_x")])
    assert con.execute("select column_name, data_type from duckdb_columns() where table_name = 'fct_x'").fetchall() == [
        ("usage_id", "VARCHAR"), ("arrival_date", "DATE"), ("units", "DECIMAL(38,12)")]
    assert con.execute("select usage_id, arrival_date::varchar, units::varchar from marts.fct_x order by 1").fetchall() == [
        ("a", "2026-10-01", "2.500000000000"), ("b", "2026-10-02", "0.000000000001")]


def test_a_partitioned_table_with_no_rows_comes_back_empty_with_its_columns(tmp_path):
    _spark_table(tmp_path, {})
    con = duckdb.connect()
    import_tables(con, tmp_path, [("marts", "fct_x")])
    assert con.execute("select count(*) from marts.fct_x").fetchone() == (0,)
    assert [c[0] for c in con.execute("describe marts.fct_x").fetchall()] == ["usage_id", "arrival_date", "units"]


def test_spark_remote_runs_the_models_through_spark_connect_and_its_master_otherwise():
    assert spark_exchange.spark_target(None, "local[2]") == ("spark", "Spark local[2]")
    assert spark_exchange.spark_target("", "local[2]") == ("spark", "Spark local[2]")
    assert spark_exchange.spark_target("sc://spark.internal:15002", "local[2]") == (
        "spark_connect", "Spark Connect sc://spark.internal:15002")


def test_only_a_connect_server_elsewhere_keeps_its_own_metastore():
    assert spark_exchange.keeps_metastore_here(None)
    assert spark_exchange.keeps_metastore_here("local[2]")  # (a Connect server in the run's own process)
    assert not spark_exchange.keeps_metastore_here("sc://spark.internal:15002")


def _usage_state_con(tmp_path):
    """A warehouse with the tables the usage state reads, empty, and a dbt project of one file."""
    con = duckdb.connect()
    con.execute("create schema raw; create schema catalog; create schema calendar")
    for table in usage_state.FINGERPRINT_TABLES:
        con.execute(f"create table catalog.{table} (code varchar)")
    con.execute(f"create table calendar.billing_periods as select {', '.join('null::varchar as ' + c.strip() for c in usage_state.PERIOD_COLUMNS.split(','))}")
    con.execute("create table raw.day_loads (arrival_date date, content_signature varchar)")
    (tmp_path / "dbt_project.yml").write_text("name: x\n")
    return con


def test_building_the_usage_models_on_another_engine_rebuilds_them_whole(tmp_path):
    con = _usage_state_con(tmp_path)
    _, full, on_duckdb = usage_state.plan_usage_rebuild(con, tmp_path)
    assert full
    usage_state.record_usage_state(con, on_duckdb)
    assert usage_state.plan_usage_rebuild(con, tmp_path, "duckdb") == (usage_state.NOTHING_TO_REBUILD, False, on_duckdb)
    rebuild_from, full, on_spark = usage_state.plan_usage_rebuild(con, tmp_path, "spark")
    assert (rebuild_from, full) == ("0001-01-01", True) and on_spark != on_duckdb
    usage_state.record_usage_state(con, on_spark)
    assert usage_state.plan_usage_rebuild(con, tmp_path, "spark") == (usage_state.NOTHING_TO_REBUILD, False, on_spark)


def test_after_a_full_build_on_spark_that_did_not_finish_the_next_build_is_full_too(tmp_path):
    """`forget_usage_state`, before a full build on Spark clears Spark's tables: until that build
    records its state, the next one does not add days to the tables it left half built."""
    con = _usage_state_con(tmp_path)
    fingerprint = usage_state.plan_usage_rebuild(con, tmp_path, "spark")[2]
    usage_state.record_usage_state(con, fingerprint)
    assert usage_state.plan_usage_rebuild(con, tmp_path, "spark")[:2] == (usage_state.NOTHING_TO_REBUILD, False)
    usage_state.forget_usage_state(con)
    assert usage_state.plan_usage_rebuild(con, tmp_path, "spark") == ("0001-01-01", True, fingerprint)


def test_a_selection_of_the_models_is_built_over_the_tables_the_last_build_of_every_model_kept():
    """Where that build kept them (`tables_kept_by`), until a build that starts them afresh begins;
    none before the first."""
    con = duckdb.connect()
    con.execute("create schema calendar")
    con.execute(f"create table calendar.billing_periods as select {', '.join('null::varchar as ' + c.strip() for c in usage_state.PERIOD_COLUMNS.split(','))}")
    con.execute("create schema raw; create table raw.day_loads (arrival_date date, content_signature varchar)")
    assert usage_state.tables_kept_by_last_build(con) is None
    usage_state.record_usage_state(con, "f1", "spark sc://host:15002 billing_3f9a0c12d4")
    assert usage_state.tables_kept_by_last_build(con) == "spark sc://host:15002 billing_3f9a0c12d4"
    usage_state.record_usage_state(con, "f2")
    assert usage_state.tables_kept_by_last_build(con) == "duckdb"
    usage_state.forget_usage_state(con)
    assert usage_state.tables_kept_by_last_build(con) is None


def test_an_incremental_build_brings_back_the_rebuilt_days_only_in_place_of_the_warehouses(tmp_path):
    _spark_table(tmp_path, {"2026-10-01": [("a", "2.5")], "2026-10-02": [("b", "1")]})
    con = duckdb.connect()
    import_tables(con, tmp_path, [("marts", "fct_x")])
    # Spark rebuilt 2026-10-02 (now two rows) and added 2026-10-03; the warehouse's 2026-10-01 row,
    # changed here, shows that the days before the rebuild are not read again.
    con.execute("update marts.fct_x set units = 9 where usage_id = 'a'")
    table = tmp_path / "tables" / "marts.db" / "fct_x"
    duckdb.sql("select * from (values ('b', 3::decimal(38, 12)), ('c', 4::decimal(38, 12))) t(usage_id, units)"
               ).write_parquet(str(table / "arrival_date=2026-10-02" / "part-00000.parquet"))
    (table / "arrival_date=2026-10-03").mkdir()
    duckdb.sql("select 'd' as usage_id, 5::decimal(38, 12) as units").write_parquet(str(table / "arrival_date=2026-10-03" / "p.parquet"))
    import_tables(con, tmp_path, [("marts", "fct_x")], rebuild_from="2026-10-02")
    assert con.execute("select usage_id, arrival_date::varchar, units::int from marts.fct_x order by 1").fetchall() == [
        ("a", "2026-10-01", 9), ("b", "2026-10-02", 3), ("c", "2026-10-02", 4), ("d", "2026-10-03", 5)]


def test_the_tables_are_kept_by_duckdb_by_spark_here_whatever_its_master_or_by_a_connect_server_elsewhere(tmp_path):
    """Where the usage fingerprint says they are: a change (another engine, another server, the
    warehouse moved) rebuilds them whole."""
    here = tmp_path / "w.duckdb.spark"
    assert spark_exchange.tables_kept_by("duckdb", "sc://spark.internal:15002", here, "x") == "duckdb"
    assert spark_exchange.tables_kept_by("spark", None, here, "meterhouse") == f"spark {here}"
    assert spark_exchange.tables_kept_by("spark", "local[2]", here, "meterhouse") == f"spark {here}"
    assert (spark_exchange.tables_kept_by("spark", "sc://spark.internal:15002", here, "billing_0123456789")
            == "spark sc://spark.internal:15002 billing_0123456789")


def test_a_warehouse_s_name_on_spark_is_its_own_where_a_connect_server_elsewhere_may_hold_others(tmp_path):
    """`meterhouse` where the metastore is the warehouse's; on an `sc://` server, the file's name
    (as a Spark identifier) and the first 10 hex digits of the SHA-256 of its absolute path."""
    import hashlib

    warehouse = tmp_path / "Billing-EU.duckdb"
    digest = hashlib.sha256(str(warehouse.resolve()).encode()).hexdigest()[:10]
    assert spark_exchange.spark_database(None, warehouse) == "meterhouse"
    assert spark_exchange.spark_database("local[2]", warehouse) == "meterhouse"
    assert spark_exchange.spark_database("sc://spark.internal:15002", warehouse) == f"billing_eu_{digest}"
    other = tmp_path / "other" / "Billing-EU.duckdb"
    assert spark_exchange.spark_database("sc://spark.internal:15002", other) != f"billing_eu_{digest}"
    assert spark_exchange.spark_database("sc://spark.internal:15002", tmp_path / "__.duckdb").startswith("warehouse_")
    long = spark_exchange.spark_database("sc://spark.internal:15002", tmp_path / ("w" * 200 + ".duckdb"))
    assert long == "w" * 40 + "_" + hashlib.sha256(str((tmp_path / ("w" * 200 + ".duckdb")).resolve()).encode()).hexdigest()[:10]


def test_spark_tables_or_a_metastore_here_deleted_are_forgotten_and_rebuilt(tmp_path):
    assert spark_exchange.forgotten(tmp_path, None)
    (tmp_path / "tables").mkdir()
    assert spark_exchange.forgotten(tmp_path, None)  # (the metastore that names them is gone)
    assert not spark_exchange.forgotten(tmp_path, "sc://spark.internal:15002")  # (the server keeps it)
    (tmp_path / "metastore_db").mkdir()
    assert not spark_exchange.forgotten(tmp_path, None)
    assert not spark_exchange.forgotten(tmp_path, "local[2]")
