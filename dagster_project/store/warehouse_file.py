"""Opening the warehouse file: a connection for each step, on one database held open for a run.

DuckDB reads a database's catalog each time it opens the file (about 30 ms at 20,000
subscriptions) and checkpoints it when its last connection closes (about 25 ms after writes).
Each step and check of a `meterhouse run` opened its own: 19 times in one more day. Within
`held_open` (the steps of `pipeline._run`), one connection keeps the database open, and DuckDB
gives every other connection to the same file that database (its instance cache: 0.2 ms, not 30).
dbt runs in another process, and DuckDB lets one process at a time write a file: before each dbt
command (`defs/dbt.py`), `release` closes the connection that keeps it open, and the next
connection asked for opens the file again. Outside `held_open` (the Dagster UI, schedules and
sensors) each connection opens the file, as before.

Meanwhile no other process can open the file, except during a dbt command: an analyst's `duckdb`
reading the warehouse waits for the run's end (before, it could get in between two steps, and the
next step then failed to open the file). A fatal DuckDB error leaves the held database unusable
until the next dbt command or the run's end. One thread: Dagster's in-process executor runs the
steps one after the other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb

# warehouse path (resolved) -> the connection holding its database open, or None when released (opened again on demand)
_held: dict[str, duckdb.DuckDBPyConnection | None] = {}
# warehouse path (resolved) -> the statements run on the holding connection when it opens the file
_setup: dict[str, list[str]] = {}


def connect(warehouse: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse, to be closed by the caller: on the database held open for
    the run, if any (read-write then, whatever `read_only` asks: DuckDB refuses a read-only
    connection beside read-write ones in one process, and the run writes the file anyway), else on
    the file opened now."""
    key = str(Path(warehouse).resolve())
    if key not in _held:
        return duckdb.connect(key, read_only=read_only)
    if _held[key] is None:
        holder = duckdb.connect(key)
        try:
            for statement in _setup[key]:  # (the database's settings, whichever connection comes first)
                holder.execute(statement)
        except BaseException:  # (not left open, unrecorded, holding the file)
            holder.close()
            raise
        _held[key] = holder
    return duckdb.connect(key)  # (the held database, from DuckDB's instance cache)


@contextlib.contextmanager
def held_open(warehouse: Path, setup: Sequence[str] = ()) -> Iterator[None]:
    """Within it, `connect` serves the warehouse from one open database (opened at the first
    connection, closed by `release` and at the end); `setup`: the statements each opening runs
    first (`MeterhouseSettings.session_settings`)."""
    key = str(Path(warehouse).resolve())
    if key in _held:  # (already held by an enclosing block)
        yield
        return
    _held[key], _setup[key] = None, list(setup)
    try:
        yield
    finally:
        con = _held.pop(key)
        _setup.pop(key)
        if con is not None:
            con.close()


def release() -> None:
    """Close the connection that holds each database open, so that another process (dbt) may
    open its file; the next `connect` opens it again. A connection still open elsewhere stays
    usable, and keeps the database open until it is closed: the steps close theirs before a dbt
    command on DuckDB. (The Spark load, `defs/ingest.py`, keeps its own open across its dbt
    command, which runs on Spark and does not open the file.)"""
    for key, con in _held.items():
        if con is not None:
            con.close()
            _held[key] = None


def is_held(warehouse: Path) -> bool:
    """Whether the connection that holds the warehouse's database open for a run is open now
    (after `release`, a step's connection still open may keep the file open too)."""
    return _held.get(str(Path(warehouse).resolve())) is not None
