"""Generic reads and writes: a polars frame as a table, rows as dicts, whether a table exists."""

import polars as pl


def write_table(con, schema: str, name: str, frame: pl.DataFrame) -> None:
    """Replace `schema.name` with `frame` (the tables written this way are rewritten whole)."""
    con.execute(f"create schema if not exists {schema}")
    con.register("_frame", frame.to_arrow())
    con.execute(f"create or replace table {schema}.{name} as select * from _frame")
    con.unregister("_frame")


def rows(con, sql: str, params=None) -> list[dict]:
    """The rows of a query as dicts, column name to value."""
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def table_exists(con, schema: str, table: str) -> bool:
    return con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
    ).fetchone()[0] > 0
