"""The usage models on Spark (`--engine spark`): what goes to Spark and what comes back.

Spark reads the usage models' sources as Parquet files under `<spark dir>/sources/<schema>/<table>/`
(registered as tables at each dbt run, `macros/spark_sources.sql`), and writes its tables as Parquet
under `<spark dir>/tables/<schema>.db/<name>/` (the incremental ones partitioned by arrival date:
`arrival_date=YYYY-MM-DD/` folders). Both are kept between runs: a run writes the source files of
the arrival days it rebuilds only, and Spark replaces those days' partitions. Only the aggregates
come back into the DuckDB warehouse, where pricing, the billing marts and publishing read them.
"""

import shutil
from pathlib import Path

# The warehouse tables the usage models read (their dbt sources).
SOURCE_SCHEMAS = ("raw", "catalog", "calendar")
# A table of arrival days is written one file per day, `<YYYY-MM-DD>.parquet`, beside an empty file
# of its columns (`_columns.parquet` would be skipped by Spark: its name must not start with `_`).
COLUMNS_FILE = "columns.parquet"


def spark_target(spark_remote: str | None, master: str) -> tuple[str, str]:
    """(dbt target, where Spark runs) of a run on Spark: through Spark Connect at `spark_remote`
    (the environment's SPARK_REMOTE) when it is set, else a Spark session of master `master`."""
    if spark_remote:
        return "spark_connect", f"Spark Connect {spark_remote}"
    return "spark", f"Spark {master}"


def keeps_metastore_here(spark_remote: str | None) -> bool:
    """Whether Spark's metastore is `<warehouse>.spark/metastore_db`: a Spark this run starts (a
    master, or SPARK_REMOTE=local[...], a Connect server in the run's own process); a Connect
    server at `sc://...` keeps its own."""
    return not (spark_remote or "").startswith("sc://")


def tables_kept_by(engine: str, spark_remote: str | None) -> str:
    """Where the usage models' tables are kept, as the usage fingerprint records it (a change
    rebuilds them whole): `duckdb`, `spark` (under `<warehouse>.spark/`, whatever the master, or a
    Connect server started in the run), or `spark <url>` (a Connect server that keeps its own)."""
    if engine != "spark" or keeps_metastore_here(spark_remote):
        return engine
    return f"spark {spark_remote}"


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


def clear(spark_dir: Path) -> None:
    """Forget what Spark holds for this warehouse (before a full build): its metastore, tables,
    source files and model schemas; the next build starts from nothing."""
    for name in ("metastore_db", "tables", "sources", "schemas"):
        shutil.rmtree(spark_dir / name, ignore_errors=True)


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
