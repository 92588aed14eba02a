"""Arrival days loaded with Spark as the reader of the landing files (`--engine spark`).

The days are planned as DuckDB's loader plans them (`events.plan_day`: which days changed, which
files are new, which are copies of bytes already loaded), all the days' files are read and typed
by Spark in one job (`spark_reader.read_statements`, run by `read`), and each day is then written
into the warehouse in one transaction (`events.commit_day`) from Spark's Parquet, so that the steps
after the load (billing periods, checks, the run summary, the quarantine) read the same
`raw.events` as on DuckDB. Python still does, per day, what needs state or a file's bytes:

- the metrics with an expression take their values (`catalog/expressions.py`) after Spark has
  typed their events, as in DuckDB's loader;
- the text of each rejected line is read again from its file (`events.insert_rejected_lines`);
- a file Spark does not read (Parquet; a name Spark's listing skips or takes as a glob, see
  `spark_reader.spark_can_read`), or one that is not valid UTF-8 (Spark splits a file into lines
  as text, which would turn such bytes into U+FFFD), is read by DuckDB's loader, inside the same
  day's transaction.
"""

from __future__ import annotations

import codecs
import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from dagster_project.ingest.events import (
    DayLoad,
    DayPlan,
    commit_day,
    drop_staged,
    ensure_raw_schema,
    insert_rejected_lines,
    insert_staged,
    insert_typed_rows,
    load_arrival_day,
    plan_day,
    stage_files,
)
from dagster_project.ingest.spark_reader import LandingFile, read_statements, spark_can_read

_TYPED = "_spark_typed_events"  # a day's events as Spark typed them


@dataclass(frozen=True)
class SparkLoads:
    loads: list[DayLoad]  # one per day, in order
    files_by_spark: int  # landing files Spark read and typed
    files_by_duckdb: int  # landing files DuckDB's loader read (`by_spark` is false)
    # The days whose events are Spark's files as written (`<typed_dir>/arrival_date=<day>/`): read
    # by Spark alone and left as typed (no expression value set)
    as_spark_wrote: frozenset[dt.date]


def is_utf8(path: Path) -> bool:
    """Whether the file's bytes are UTF-8 throughout (read a block at a time)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def by_spark(path: Path) -> bool:
    """Whether Spark reads this landing file (else DuckDB's loader does)."""
    return spark_can_read(path) and is_utf8(path)


def load_days_with_spark(
    con: duckdb.DuckDBPyConnection,
    events_dir: Path,
    days: list[dt.date],
    property_keys: list[str],
    now: dt.datetime,
    *,
    expressions: dict[str, tuple[str, str]],
    typed_dir: Path,
    read: Callable[[list[str]], None],
) -> SparkLoads:
    """Load `days` (in order) as `events.load_arrival_day` would, the landing files read by Spark
    (`read` runs Spark SQL statements); Spark writes its typed events under `typed_dir` (replaced)."""
    ensure_raw_schema(con)
    loads: dict[dt.date, DayLoad] = {}
    plans: list[DayPlan] = []
    loaded: set[str] = set()
    for day in days:
        plan = plan_day(con, events_dir, day, property_keys, now, expressions=expressions,
                        loaded_earlier=frozenset(loaded))
        if isinstance(plan, DayLoad):
            loads[day] = plan
            continue
        loaded |= {row[2] for row in plan.landing_rows if row[5] == "loaded"}
        plans.append(plan)
    spark_files = {plan.day: [file for file in plan.files if by_spark(file[0])] for plan in plans}
    shutil.rmtree(typed_dir, ignore_errors=True)
    if any(spark_files.values()):
        read(read_statements([LandingFile(path, day, params["source_file"], params["ingested_at"])
                              for day, files in spark_files.items() for path, _, params in files],
                             property_keys, typed_dir))
    files_by_spark, files_by_duckdb, as_written = 0, 0, set()
    for plan in plans:
        mine = spark_files[plan.day]
        others = [file for file in plan.files if file not in mine]
        folder = typed_dir / f"arrival_date={plan.day.isoformat()}"

        def insert(mine: list = mine, folder: Path = folder, staged: list = ()) -> int:
            if any(folder.glob("*.parquet")):
                con.execute(f"""create or replace temp table {_TYPED} as select * from read_parquet(
                                    '{folder}/*.parquet', hive_partitioning = true, hive_types = {{'arrival_date': date}})""")
                insert_typed_rows(con, _TYPED, expressions)
                con.execute(f"drop table {_TYPED}")
            for path, _, params in mine:
                insert_rejected_lines(con, path, params)
            return sum(count for _, count, _ in mine) + insert_staged(con, list(staged))

        try:
            staged = stage_files(con, others)  # (DuckDB reads before the day's transaction)
            loads[plan.day] = commit_day(con, plan, lambda insert=insert, staged=staged: insert(staged=staged))
        finally:
            drop_staged(con)
        files_by_spark, files_by_duckdb = files_by_spark + len(mine), files_by_duckdb + len(others)
        if mine and not others and not _has_expression_events(con, plan.day, expressions):
            as_written.add(plan.day)
    # A day that a later commit of this load undid (it held a copy of bytes an earlier day now
    # loads) is read again: its files are duplicates now.
    for day in days:
        if (events_dir / day.isoformat()).is_dir() and not con.execute(
                "select count(*) from raw.day_loads where arrival_date = ?", [day]).fetchone()[0]:
            loads[day] = load_arrival_day(con, events_dir, day, property_keys, now, expressions=expressions)
            as_written.discard(day)
    return SparkLoads([loads[day] for day in days], files_by_spark, files_by_duckdb, frozenset(as_written))


def _has_expression_events(con: duckdb.DuckDBPyConnection, day: dt.date, expressions: dict) -> bool:
    """Whether the day holds events of a metric with an expression (their values were set in Python)."""
    return bool(expressions) and con.execute(
        "select count(*) from raw.events where arrival_date = ? and list_contains(?, code)",
        [day, sorted(expressions)]).fetchone()[0] > 0
