"""Schema `state`: what each dbt command of a run (a selection) was last built from, and what the
catalog tables were last derived from (selection `catalog`, written in Python).

A dbt command whose inputs are exactly those of its last successful build, and whose relations
all still exist, would rebuild the same tables and views and run the same tests on the same rows:
the run leaves it out (a run with no new data then costs its start-up, not two dbt commands with
their tests). The inputs are the warehouse tables the selection reads, taken whole (a sum of row
hashes and a row count per table, and the tables' columns), the project files it is built from,
and, for a selection that reads another's models, that selection's inputs.
"""

import hashlib
from pathlib import Path

BUILDS_DDL = """
create schema if not exists state;
create table if not exists state.dbt_builds (selection varchar primary key, inputs_digest varchar not null);
"""


def inputs_digest(con, dbt_dir: Path, folders: tuple[str, ...], tables: tuple[str, ...],
                  upstream: tuple[str, ...] = ()) -> str:
    """The digest of what a selection is built from.

    `folders`: the project folders its nodes, macros and tests live in (with `dbt_project.yml`);
    `tables`: the warehouse tables it reads, as `schema.table`, or `schema.*` for every table of a
    schema; `upstream`: the selections whose models it reads (their recorded digests are taken in,
    so that a rebuild of theirs makes this one stale).
    """
    digest = hashlib.sha256()
    for path in sorted(p for d in folders for p in (dbt_dir / d).rglob("*") if p.is_file()):
        digest.update(path.relative_to(dbt_dir).as_posix().encode() + b"\0" + path.read_bytes())
    digest.update((dbt_dir / "dbt_project.yml").read_bytes())
    for schema, table in _expanded(con, tables):
        columns = con.execute(
            """select column_name, data_type from duckdb_columns()
               where schema_name = ? and table_name = ? order by column_index""", [schema, table]).fetchall()
        # (every row's hash, summed as a HUGEINT so that no two equal rows cancel out)
        rows = con.execute(f'select count(*), sum(hash(t)::hugeint) from "{schema}"."{table}" t').fetchone()
        digest.update(repr((schema, table, columns, rows)).encode())
    con.execute(BUILDS_DDL)
    for selection in upstream:
        digest.update(repr(last_built(con, selection)).encode())
    return digest.hexdigest()


def views_digest(con, project_digest: str, tables: list[tuple[str, str]]) -> str:
    """What a selection's views were made from: its project files and dbt's and DuckDB's versions
    (`project_digest`), the warehouse's database name (which each view's references spell out),
    and the columns of the `tables` ((schema, name)) they read (DuckDB binds a view to the column
    types it was made over, and refuses it once they change; a table not there has none). New
    rows, or tables rebuilt with the same columns, leave it unchanged: the views would be made
    again the same."""
    columns = con.execute(
        """select c.schema_name, c.table_name, c.column_name, c.data_type
           from duckdb_columns() c
           join duckdb_tables() t using (database_name, schema_name, table_name)
           join (select unnest(?::varchar[]) as schema_name, unnest(?::varchar[]) as table_name) read
             using (schema_name, table_name)
           where not t.temporary and c.database_name = current_database()
           order by c.schema_name, c.table_name, c.column_index""",
        [[schema for schema, _ in tables], [table for _, table in tables]]).fetchall()
    database = con.execute("select current_database()").fetchone()[0]
    return hashlib.sha256(repr((project_digest, database, sorted(set(tables)), columns)).encode()).hexdigest()


def _expanded(con, tables: tuple[str, ...]) -> list[tuple[str, str]]:
    found = []
    for name in tables:
        schema, table = name.split(".", 1)
        if table == "*":
            found += con.execute("""select schema_name, table_name from duckdb_tables()
                                    where schema_name = ? and not temporary order by table_name""", [schema]).fetchall()
        else:
            found += con.execute("""select schema_name, table_name from duckdb_tables()
                                    where schema_name = ? and table_name = ?""", [schema, table]).fetchall()
    return found


def last_built(con, selection: str) -> str | None:
    con.execute(BUILDS_DDL)
    row = con.execute("select inputs_digest from state.dbt_builds where selection = ?", [selection]).fetchone()
    return row[0] if row else None


def up_to_date(con, selection: str, digest: str, relations: list[tuple[str, str]]) -> bool:
    """True when `selection` was last built from inputs `digest` and every one of its `relations`
    ((schema, name) of its tables and views) is still in the warehouse: building it again would
    change nothing."""
    if last_built(con, selection) != digest:
        return False
    present = set(con.execute(
        """select schema_name, table_name from duckdb_tables() where not temporary
           union all select schema_name, view_name from duckdb_views() where not internal and not temporary"""
    ).fetchall())
    return all(relation in present for relation in relations)


def record_build(con, selection: str, digest: str | None) -> None:
    """After a successful build of `selection` from inputs `digest` (taken before the build); None
    forgets it (a partial build: the next run builds the selection again)."""
    con.execute(BUILDS_DDL)
    con.execute("begin transaction")
    con.execute("delete from state.dbt_builds where selection = ?", [selection])
    if digest is not None:
        con.execute("insert into state.dbt_builds values (?, ?)", [selection, digest])
    con.execute("commit")
