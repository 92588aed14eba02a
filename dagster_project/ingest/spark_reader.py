"""Spark reads the landing files (`--engine spark`): the Spark SQL that types one run's event files.

Each landing file is read whole as bytes (`binaryFile`, named by `_metadata.file_name`), split into
lines numbered from 1 (a `.json` file is one document, as in DuckDB's loader), each line parsed with
`try_parse_json` into a VARIANT, batches (`{"events": [...]}`, `[...]`) exploded into their items and
each event typed; the quarantine rules are `ingest/quarantine.py`'s, the same SQL as DuckDB's loader
renders. The typed rows are written as Parquet, one folder per arrival day
(`<out>/arrival_date=YYYY-MM-DD/`), with the columns and types of `raw.events` (the arrival date in
the folder's name only).

Why not the `text` source and `from_json`: the text source (and `split`, through a Java string)
turns bytes that are not UTF-8 into U+FFFD silently, so the `invalid_utf8` rule could not hold
(such a file is left to DuckDB's loader, `spark_load.by_spark`); and `from_json` with a schema reads any
JSON value into a string field, so it cannot tell `"12"` from `12` or `{"id": 5}`, which the rules
do. A VARIANT keeps each value's JSON type (`schema_of_variant`), mapped here to DuckDB's
`json_type` names, which the rules read.

What stays in Python (`ingest/events.py`, `spark_load`): which files are new (names, sizes, SHA-256,
a copy of bytes already loaded), the days' bookkeeping (`raw.day_loads`, `raw.landing_files`), the
text of rejected lines, and the values of expression metrics (`catalog/expressions.py`), evaluated
after Spark has typed the events.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from dagster_project.ingest.quarantine import load_error_detail_sql, load_error_sql

# The landing files Spark reads; any other event file (Parquet) is read by DuckDB's loader.
SPARK_SUFFIXES = (".jsonl", ".ndjson", ".json")


def typed_table(out_dir: Path) -> str:
    """The name of the table, in Spark's default database, through which one warehouse's typed
    events are written to `out_dir`: the folder's in it, since a Spark Connect server elsewhere may
    read for other warehouses too."""
    return f"meterhouse_landing_typed_{hashlib.sha256(str(out_dir).encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class LandingFile:
    """A landing file for Spark to read, and what its rows carry."""

    path: Path
    arrival_date: dt.date
    source_file: str  # `YYYY-MM-DD/<name>`
    ingested_at: dt.datetime  # the time of an event without one


GLOB_CHARACTERS = frozenset("{}[]*?,\\")


def spark_can_read(path: Path) -> bool:
    """Whether Spark reads this landing file: JSON text, a name Spark's file listing does not
    skip (Hadoop hides names that start with `_` or `.`), and a path without a character that
    Hadoop's globs read as a pattern (the files are named to Spark in one glob)."""
    return (path.suffix in SPARK_SUFFIXES and not path.name.startswith(("_", "."))
            and not GLOB_CHARACTERS & set(str(path)))


def _literal(text: str) -> str:
    """A Spark SQL string literal (backslash escapes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _path_literal(path: Path) -> str:
    """A path in backquotes, as `binaryFile.`<path>`` takes it."""
    return "`" + str(path).replace("`", "``") + "`"


def _field(variant: str, key: str) -> str:
    return f"try_variant_get({variant}, '$.{key}', 'variant')"


# Each VARIANT column `v` of the query has, in the next step, its `v_schema` (`schema_of_variant`) and
# `v_null` (a JSON null) computed once: the type and the text of `v` read those columns. (Spelled
# inline, each use repeated the expressions of the columns it came from, and Spark's code
# generation spent minutes compiling the result.)
def _schemas(*variants: str) -> str:
    return ", ".join(f"schema_of_variant({v}) as {v}_schema, is_variant_null({v}) as {v}_null" for v in variants)


def _json_type(v: str) -> str:
    """DuckDB's `json_type` of the VARIANT column `v`: NULL when absent; integers beyond BIGINT
    (Spark's DECIMAL(p,0)) are UBIGINT up to 2^64 - 1 and DOUBLE beyond, as DuckDB's JSON reader
    reads them."""
    schema = f"{v}_schema"
    return f"""case when {v} is null then null when {v}_null then 'NULL'
            when {schema} like 'OBJECT%' then 'OBJECT' when {schema} like 'ARRAY%' then 'ARRAY'
            when {schema} = 'STRING' then 'VARCHAR' when {schema} = 'BIGINT' then 'BIGINT'
            when {schema} like 'DECIMAL(%,0)' and try_variant_get({v}, '$', 'decimal(38,0)')
                between 0 and 18446744073709551615 then 'UBIGINT'
            when {schema} like 'DECIMAL%' or {schema} in ('DOUBLE', 'FLOAT') then 'DOUBLE'
            else {schema} end"""


def _text(v: str) -> str:
    """The VARIANT column `v`'s value as text, as DuckDB's `->>` gives it: a string as is, an
    object or array as JSON, a number or boolean as written."""
    schema = f"{v}_schema"
    return f"""case when {v} is null or {v}_null then null
            when {schema} like 'OBJECT%' or {schema} like 'ARRAY%' then to_json({v})
            else try_variant_get({v}, '$', 'string') end"""


ID_FIELDS = ("transaction_id", "code", "external_subscription_id")


def typed_events_sql(files: list[LandingFile], keys: list[str]) -> str:
    """The query of the typed events of `files`: the columns of `raw.events`, in order."""
    # One scan per landing folder (all the files of a run: one, in practice), of the listed files only:
    # `<root>/{<day>/<name>,...}`, a Hadoop glob (`spark_can_read`: no path with a glob's special
    # character); a scan per day folder cost a task and a listing each (the Mistral example's 45
    # days: 100 s more on a busy machine).
    roots: dict[Path, list[LandingFile]] = {}
    for f in sorted(files, key=lambda f: f.source_file):
        roots.setdefault(f.path.parent.parent, []).append(f)
    folders = "\n        union all\n        ".join(
        "select regexp_extract(_metadata.file_path, '([^/]+)/[^/]+$', 1) as day_folder, "
        "_metadata.file_name as file_name, content from binaryFile."
        + _path_literal(root / ("{" + ",".join(f"{f.path.parent.name}/{f.path.name}" for f in listed_here) + "}"))
        for root, listed_here in roots.items())
    listed = ",\n        ".join(
        f"({_literal(f.arrival_date.isoformat())}, {_literal(f.path.name)}, date'{f.arrival_date.isoformat()}', "
        f"{_literal(f.source_file)}, timestamp_ntz'{f.ingested_at.isoformat(sep=' ')}', {str(f.path.suffix == '.json').lower()})"
        for f in sorted(files, key=lambda f: f.source_file))
    keys = sorted(set(keys))
    key_values = [f"p{i}" for i in range(len(keys))]  # the columns of the catalog keys' values
    if keys:
        present = "map(" + ", ".join(f"{_literal(k)}, {_text(v)}" for k, v in zip(keys, key_values)) + ")"
        absent = "map(" + ", ".join(f"{_literal(k)}, cast(null as string)" for k in keys) + ")"
    else:
        present = absent = "cast(map() as map<string, string>)"
    fields = [*ID_FIELDS, "timestamp", "properties"]
    return f"""
with listed as (
    select * from values
        {listed}
        as listed(day_folder, file_name, arrival_date, source_file, ingested_at, whole_document)
),
files as (
    select l.arrival_date, l.source_file, l.ingested_at, l.whole_document, b.content
    from (
        {folders}
    ) b
    join listed l on l.day_folder = b.day_folder and l.file_name = b.file_name
),
split_lines as (
    select arrival_date, source_file, ingested_at, pos + 1 as line_number,
        case when whole_document then text else trim(trailing '\\r' from text) end as line
    from files lateral view posexplode(
        case when whole_document then array(cast(content as string)) else split(cast(content as string), '\\n') end
    ) numbered as pos, text
),
decoded as (
    select *, is_valid_utf8(line) as is_utf8, try_parse_json(case when is_valid_utf8(line) then line end) as doc
    from split_lines
    where not is_valid_utf8(line) or trim(line) <> ''
),
doc_fields as (
    select *, {_field('doc', 'events')} as events_v from decoded
),
doc_schemas as (
    select *, {_schemas('doc', 'events_v')} from doc_fields
),
batches as (
    select arrival_date, source_file, ingested_at, line_number, doc,
        case when not is_utf8 then 'invalid_utf8' when doc is null then 'invalid_json' end as line_error,
        case when {_json_type('doc')} = 'ARRAY' then doc
             when {_json_type('doc')} = 'OBJECT' and {_json_type('events_v')} = 'ARRAY' then events_v
        end as batch
    from doc_schemas
),
items as (
    select arrival_date, source_file, ingested_at, line_number,
        case when batch is not null then 'empty_batch' else line_error end as line_error, 0 as item_index, doc as item
    from batches
    where batch is null or size(try_variant_get(batch, '$', 'array<variant>')) = 0
    union all
    select arrival_date, source_file, ingested_at, line_number, cast(null as string), pos + 1, element
    from batches lateral view posexplode(try_variant_get(batch, '$', 'array<variant>')) exploded as pos, element
    where batch is not null
),
item_fields as (
    select *, {_field('item', 'event')} as event_v from items
),
item_schemas as (
    select *, {_schemas('event_v')} from item_fields
),
events as (
    select arrival_date, source_file, ingested_at, line_number, item_index, line_error,
        case when {_json_type('event_v')} = 'OBJECT' then event_v else item end as ev
    from item_schemas
),
event_fields as (
    select *, {", ".join(f"{_field('ev', f)} as {f}_v" for f in fields)} from events
),
event_schemas as (
    select *, {_schemas('ev', *(f"{f}_v" for f in fields))} from event_fields
),
fields as (
    select arrival_date, source_file, ingested_at, line_number, item_index, line_error,
        {_json_type('ev')} as ev_type,
        {"".join(f"{_text(f'{f}_v')} as {f}, {_json_type(f'{f}_v')} as {f}_type, " for f in ID_FIELDS)}
        {_json_type('timestamp_v')} as timestamp_type,
        {_text('timestamp_v')} as timestamp_text,
        {_json_type('properties_v')} as properties_type,
        properties_v as props
    from event_schemas
),
typed as (
    select *,
        case
            when timestamp_type in ('BIGINT', 'UBIGINT', 'DOUBLE')
                or (timestamp_type = 'VARCHAR' and trim(timestamp_text) rlike '^-?[0-9]+([.][0-9]+)?$')
                then cast(timestamp_micros(try_cast(try_multiply(try_cast(trim(timestamp_text) as decimal(38, 6)), 1000000)
                                                    as bigint)) as timestamp_ntz)
            -- (a whole date first: Spark's cast also reads '2026', '2026-10' and words such as 'yesterday')
            when timestamp_type = 'VARCHAR' and trim(timestamp_text) rlike '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}'
                then cast(try_cast(trim(timestamp_text) as timestamp) as timestamp_ntz)
        end as parsed_at
    from fields
),
checked as (
    select *,
        {load_error_sql()} as load_error,
        case when properties_type = 'OBJECT' then try_variant_get(props, '$', 'map<string, variant>') end as pm
    from typed
),
key_values as (
    select *{"".join(f", try_element_at(pm, {_literal(k)}) as {v}" for k, v in zip(keys, key_values))} from checked
),
key_schemas as (
    select *{", " + _schemas(*key_values) if keys else ""} from key_values
)
select
    arrival_date,
    source_file,
    cast(line_number as bigint) as line_number,
    cast(item_index as int) as item_index,
    transaction_id,
    code,
    external_subscription_id,
    timestamp_text as event_timestamp_text,
    case when load_error is null then coalesce(parsed_at, ingested_at) end as event_at,
    case when load_error is null then parsed_at is null end as is_timestamp_defaulted,
    case when load_error is null and properties_type = 'OBJECT' then {present}
        when load_error is null then {absent}
    end as properties,
    load_error,
    {load_error_detail_sql()} as load_error_detail
from key_schemas
"""


def read_statements(files: list[LandingFile], keys: list[str], out_dir: Path) -> list[str]:
    """The Spark SQL statements that read `files` and write their typed events as Parquet under
    `out_dir` (which must not exist), one folder per arrival day, `arrival_date=YYYY-MM-DD/`, in one
    job: a table over that folder is created from the query, then forgotten (its files stay)."""
    table = typed_table(out_dir)
    return [
        "set spark.sql.ansi.enabled = true",  # (dbt-spark turns it off: an overflow would be NULL)
        "set spark.sql.session.timeZone = UTC",
        # (one operator's generated code holding the whole typing took Janino minutes to compile)
        "set spark.sql.codegen.wholeStage = false",
        f"drop table if exists {table}",
        f"create table {table} using parquet partitioned by (arrival_date) location {_literal(str(out_dir))} "
        f"as {typed_events_sql(files, keys)}",
        f"drop table {table}",  # (a table at a location: its files stay)
        "set spark.sql.codegen.wholeStage = true",
    ]
