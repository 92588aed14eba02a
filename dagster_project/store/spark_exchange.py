"""The usage models on Spark (`--engine spark`): what goes to Spark and what comes back.

Spark reads the usage models' sources as Parquet files under `<spark dir>/sources/<schema>/<table>/`
(registered as tables at each dbt run, `macros/spark_sources.sql`), and writes its tables as Parquet
under `<spark dir>/tables/<schema>.db/<name>/` (the incremental ones partitioned by arrival date:
`arrival_date=YYYY-MM-DD/` folders). Both are kept between runs: a run writes the source files of
the arrival days it rebuilds only, and Spark replaces those days' partitions. Only the aggregates
come back into the DuckDB warehouse, where pricing, the billing marts and publishing read them.
"""

import datetime as dt
import hashlib
import re
import shutil
from pathlib import Path

# The warehouse tables the usage models read (their dbt sources).
SOURCE_SCHEMAS = ("raw", "catalog", "calendar")
# A table of arrival days is written one file per day, `<YYYY-MM-DD>.parquet`, beside an empty file
# of its columns (`_columns.parquet` would be skipped by Spark: its name must not start with `_`).
COLUMNS_FILE = "columns.parquet"
# The typed raw layer Spark reads is its own: the events as Spark typed them from the landing files,
# one folder per arrival day, `arrival_date=YYYY-MM-DD/` (the column in the folder's name only).
EVENTS = ("raw", "events")
# How the usage models' on-run-start check begins its error when Spark no longer knows the tables
# an incremental build adds to (`assert_spark_knows_incremental_models`, macros/spark_sources.sql).
TABLES_FORGOTTEN = "Spark no longer knows this warehouse's tables"
# Why a selection of the usage models (materialized from Dagster's UI) is refused on Spark before
# anything is written: it is built over Spark's tables of the other models, which must be those of
# the warehouse's last build of every model (`usage_state.tables_kept_by_last_build`).
SUBSET_WITHOUT_SPARK_TABLES = (
    "usage models on Spark: a selection of them is built over Spark's tables of the others, and {spark_dir}/tables "
    "holds none that this warehouse's last build of every usage model left there (never built there, deleted, "
    "built elsewhere since, or a build that started them afresh did not finish). Nothing was written: "
    "materialize every usage model (`meterhouse run` does), then the selection if it is still needed.")
# The day folder written when there are no events at all (Spark needs a file to read the columns from).
NO_EVENTS_DAY = dt.date(1, 1, 1)


def events_folder(spark_dir: Path) -> Path:
    return spark_dir / "sources" / EVENTS[0] / EVENTS[1]


def day_folder(root: Path, day: dt.date) -> Path:
    return root / f"arrival_date={day.isoformat()}"


def _day_signatures(con) -> dict[dt.date, str]:
    """What each loaded day's events were read from (its files' content and the catalog keys)."""
    return {day: f"{content}\n{keys}" for day, content, keys in con.execute(
        "select arrival_date, content_signature, property_keys from raw.day_loads").fetchall()}


SIGNATURE_FILE = "_loaded_from"  # (Spark skips files whose name starts with `_`)


def place_typed_events(con, spark_dir: Path, typed_dir: Path, loaded: list[dt.date],
                       as_spark_wrote: frozenset[dt.date]) -> None:
    """After a load of the days `loaded`: each day's folder of the raw layer becomes Spark's typed
    events as written under `typed_dir` (`as_spark_wrote`), or is removed, to be written from the
    warehouse by `export_sources` (a day DuckDB's loader read, or whose events Python changed).
    Each folder records what its day was loaded from (`SIGNATURE_FILE`)."""
    root, signatures = events_folder(spark_dir), _day_signatures(con)
    for day in loaded:
        target = day_folder(root, day)
        shutil.rmtree(target, ignore_errors=True)
        if day in as_spark_wrote and day in signatures and day_folder(typed_dir, day).is_dir():
            root.mkdir(parents=True, exist_ok=True)
            day_folder(typed_dir, day).rename(target)
            (target / SIGNATURE_FILE).write_text(signatures[day])
    shutil.rmtree(typed_dir, ignore_errors=True)


def _export_event_days(con, folder: Path) -> None:
    """`raw.events` as Spark reads it, one folder per arrival day: a folder of the day's current load
    (Spark wrote it at load) is kept; a day without one (read by DuckDB's loader, loaded again by a
    run on DuckDB, or loaded before Spark read the landing files) is written from the warehouse;
    the folder of a day no longer loaded is removed."""
    for old in folder.glob("*.parquet"):  # (one file per day, written here before Spark read the files)
        old.unlink()
    days = {day for (day,) in con.execute("select distinct arrival_date from raw.events").fetchall()} or {NO_EVENTS_DAY}
    signatures = _day_signatures(con)
    for sub in folder.glob("arrival_date=*"):
        day = dt.date.fromisoformat(sub.name.removeprefix("arrival_date="))
        recorded = sub / SIGNATURE_FILE
        if day not in days or not recorded.is_file() or recorded.read_text() != signatures.get(day, ""):
            shutil.rmtree(sub)
    for day in sorted(days):
        sub = day_folder(folder, day)
        if not sub.is_dir():
            sub.mkdir(parents=True)
            con.execute(f"copy (select * exclude (arrival_date) from raw.events where arrival_date = ?) "
                        f"to '{sub / 'part-0.parquet'}' (format parquet)", [day])
            (sub / SIGNATURE_FILE).write_text(signatures.get(day, ""))


def spark_target(spark_remote: str | None, master: str) -> tuple[str, str]:
    """(dbt target, where Spark runs) of a run on Spark: through Spark Connect at `spark_remote`
    (the environment's SPARK_REMOTE) when it is set, else a Spark session of master `master`.
    (On a local master, or SPARK_REMOTE=local[...], the run's own Spark serves the commands
    instead, through target `spark_served`: `spark_server.py`; `where` stays the same.)"""
    if spark_remote:
        return "spark_connect", f"Spark Connect {spark_remote}"
    return "spark", f"Spark {master}"


def keeps_metastore_here(spark_remote: str | None) -> bool:
    """Whether Spark's metastore is `<warehouse>.spark/metastore_db`: a Spark this run starts (of a
    master, or SPARK_REMOTE=local[...]); a Connect server at `sc://...` keeps its own."""
    return not (spark_remote or "").startswith("sc://")


def spark_database(spark_remote: str | None, warehouse: Path) -> str:
    """The warehouse's name on Spark, which each layer's database takes as its prefix
    (`<name>_marts`: dbt's target schema, METERHOUSE_SPARK_DATABASE, `generate_schema_name`):
    `meterhouse` where the metastore is the warehouse's own; on a Connect server at `sc://...`,
    whose metastore may hold other warehouses' tables too, the warehouse file's name and a digest
    of its absolute path (`billing_3f9a0c12d4` for /srv/billing.duckdb)."""
    if keeps_metastore_here(spark_remote):
        return "meterhouse"
    stem = re.sub(r"[^a-z0-9]+", "_", warehouse.stem.lower()).strip("_")[:40] or "warehouse"  # (within Hive's 128)
    return f"{stem}_{hashlib.sha256(str(warehouse.resolve()).encode()).hexdigest()[:10]}"


def tables_kept_by(engine: str, spark_remote: str | None, spark_dir: Path, database: str) -> str:
    """Where the usage models' tables are kept, as the usage fingerprint records it (a change
    rebuilds them whole): `duckdb`; `spark <spark dir>` (a metastore under the warehouse's Spark
    folder, whatever the master, or a Connect server started in the run: it holds the tables'
    absolute locations, so a warehouse moved elsewhere builds them again); or `spark <url>
    <database>` (a Connect server that keeps its own metastore, in which the warehouse's tables are
    named by `spark_database`, itself of the warehouse's path)."""
    if engine != "spark":
        return engine
    if keeps_metastore_here(spark_remote):
        return f"spark {spark_dir}"
    return f"spark {spark_remote} {database}"


def forgotten(spark_dir: Path, spark_remote: str | None) -> bool:
    """Spark's tables, or the metastore here that names them, were deleted: they cannot be built on."""
    needed = ["tables", *(["metastore_db"] if keeps_metastore_here(spark_remote) else [])]
    return not all((spark_dir / name).is_dir() for name in needed)


def _tables(con) -> list[tuple[str, str, bool]]:
    """(schema, table, has an `arrival_date` column) of every table of the source schemas."""
    return con.execute(
        f"""select t.schema_name, t.table_name,
                   exists (select 1 from duckdb_columns() c where c.schema_name = t.schema_name
                           and c.table_name = t.table_name and c.column_name = 'arrival_date')
            from duckdb_tables() t
            where t.schema_name in ({', '.join('?' for _ in SOURCE_SCHEMAS)}) and not t.temporary
            order by 1, 2""", list(SOURCE_SCHEMAS)).fetchall()


def export_sources(con, spark_dir: Path, rebuild_from: str = "0001-01-01") -> list[str]:
    """Write the source tables as Parquet for Spark; their names, `schema.table`.

    A table with an `arrival_date` column (the raw layer) has one file per arrival day: the files
    of the days from `rebuild_from` on (an ISO date) are replaced, or removed where the day is no
    longer loaded; earlier days keep the files of the run that wrote them. Every other table
    (catalog, calendar: small) is replaced whole."""
    written = []
    for schema, table, by_day in _tables(con):
        folder = spark_dir / "sources" / schema / table
        folder.mkdir(parents=True, exist_ok=True)
        if (schema, table) == EVENTS:
            _export_event_days(con, folder)
            written.append(f"{schema}.{table}")
            continue
        if not by_day:
            for old in folder.glob("*.parquet"):
                old.unlink()
            con.execute(f"copy {schema}.{table} to '{folder / 'part-0.parquet'}' (format parquet)")
            written.append(f"{schema}.{table}")
            continue
        for old in folder.glob("*.parquet"):
            if old.name == COLUMNS_FILE or old.stem >= rebuild_from or not old.stem[:1].isdigit():
                old.unlink()
        con.execute(f"copy (select * from {schema}.{table} limit 0) to '{folder / COLUMNS_FILE}' (format parquet)")
        days = con.execute(f"select distinct arrival_date from {schema}.{table} where arrival_date >= ? order by 1",
                           [rebuild_from]).fetchall()
        for (day,) in days:
            con.execute(f"copy (select * from {schema}.{table} where arrival_date = ?) "
                        f"to '{folder / f'{day.isoformat()}.parquet'}' (format parquet)", [day])
        written.append(f"{schema}.{table}")
    return written


def clear(spark_dir: Path, keep_metastore: bool = False) -> None:
    """Forget what Spark holds for this warehouse (before a full build of every model): its
    metastore, tables, source files and model schemas; the next build starts from nothing, but for
    the typed events Spark read from the landing files, which are the warehouse's `raw.events`. `keep_metastore`:
    the metastore stays (the run's Spark holds it open, and it names no table of an earlier run)."""
    for name in ("tables", "schemas", *([] if keep_metastore else ["metastore_db"])):
        shutil.rmtree(spark_dir / name, ignore_errors=True)
    for folder in (spark_dir / "sources").glob("*/*"):
        if folder != events_folder(spark_dir):
            shutil.rmtree(folder, ignore_errors=True)


def import_tables(con, spark_dir: Path, relations: list[tuple[str, str]], rebuild_from: str | None = None) -> None:
    """Replace each (schema, name) table of the warehouse with Spark's table of that name.

    A table partitioned by arrival date has that column in its folder names, not in its files, and
    Spark lists it last: its columns come in the model's order and types from the empty file the
    model's post-hook wrote (`<spark dir>/schemas/<schema>.<name>/`), and its rows by name. Given
    `rebuild_from` (an ISO date: an incremental build), only its partitions from that day on are
    read, in place of the warehouse's rows of those days; the earlier days are those of the build
    that wrote them."""
    for schema, name in relations:
        files = spark_dir / "tables" / f"{schema}.db" / name
        columns = spark_dir / "schemas" / f"{schema}.{name}"
        con.execute(f"create schema if not exists {schema}")
        if con.execute("select count(*) from duckdb_views() where schema_name = ? and view_name = ?", [schema, name]).fetchone()[0]:
            con.execute(f"drop view {schema}.{name}")  # (a DuckDB build made it a view; DuckDB drops a view only as a view)
        if not columns.is_dir():
            con.execute(f"create or replace table {schema}.{name} as select * from read_parquet('{files}/*.parquet')")
            continue
        days = "true"
        if rebuild_from is not None and con.execute(
                "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?", [schema, name]).fetchone()[0]:
            con.execute(f"delete from {schema}.{name} where arrival_date >= ?", [rebuild_from])
            days = f"arrival_date >= date '{rebuild_from}'"
        else:
            con.execute(f"create or replace table {schema}.{name} as select * from read_parquet('{columns}/*.parquet')")
        if any(files.glob("arrival_date=*/*.parquet")):
            con.execute(f"""insert into {schema}.{name} by name
                            select * from read_parquet('{files}/arrival_date=*/*.parquet', hive_partitioning = true)
                            where {days}""")
