"""The usage models on Spark (`--engine spark`): what goes to Spark and what comes back.

Spark reads the usage models' sources as Parquet files under `<spark dir>/sources/<schema>/<table>/`
(registered as tables at each dbt run, `macros/spark_sources.sql`), and writes its tables as Parquet
under `<spark dir>/tables/<schema>.db/<name>/`. Only the aggregates come back into the DuckDB
warehouse, where pricing, the billing marts and publishing read them as before.
"""

from pathlib import Path

# The warehouse tables the usage models read (their dbt sources).
SOURCE_SCHEMAS = ("raw", "catalog", "calendar")


def export_sources(con, spark_dir: Path) -> list[str]:
    """Write every table of the source schemas as Parquet for Spark (each replaced whole); their
    names, `schema.table`."""
    written = []
    tables = con.execute(
        f"""select schema_name, table_name from duckdb_tables()
            where schema_name in ({', '.join('?' for _ in SOURCE_SCHEMAS)}) and not temporary
            order by schema_name, table_name""", list(SOURCE_SCHEMAS)).fetchall()
    for schema, table in tables:
        folder = spark_dir / "sources" / schema / table
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.parquet"):
            old.unlink()
        con.execute(f"copy {schema}.{table} to '{folder / 'part-0.parquet'}' (format parquet)")
        written.append(f"{schema}.{table}")
    return written


def import_tables(con, spark_dir: Path, relations: list[tuple[str, str]]) -> None:
    """Replace each (schema, name) table of the warehouse with Spark's table of that name."""
    for schema, name in relations:
        files = spark_dir / "tables" / f"{schema}.db" / name
        con.execute(f"create schema if not exists {schema}")
        con.execute(f"drop view if exists {schema}.{name}")
        con.execute(f"create or replace table {schema}.{name} as select * from read_parquet('{files}/*.parquet')")
