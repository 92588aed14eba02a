"""Load one arrival day of Lago event files into `raw.events`, idempotently, losing nothing.

A JSON Lines file is parsed once by DuckDB's `read_json`, every field the loader looks at kept as
JSON so that nothing is coerced; the fields are then typed, and only the property keys the catalog
prices are kept. The lines `read_json` cannot vouch for (a line that is not JSON becomes a row of
NULLs: the trap of `ignore_errors=true`) and batch lines are read again as text (`_lines_at`)
and go through the line parser; the lines of records rejected at load are read again for their
text, kept in `raw.rejected_lines` for the quarantine. A file with blank lines or bytes that are
not UTF-8 goes through the line parser whole (`_stage_file`). Parquet files take the same typing
and checks.

Reruns replace the day: each file is read into a temporary table, then one transaction deletes the
rows of that arrival date and inserts the typed events straight into `raw.events`; a day whose files and catalog keys are unchanged since its last load is skipped. A
file whose bytes were already seen (under another name or day) is loaded once: the copy with the
earliest (arrival date, path) wins.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mmap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from dagster_project.catalog.expressions import evaluate_events
from dagster_project.ingest.quarantine import load_error_detail_sql, load_error_sql

EVENT_FILE_PATTERNS = ("*.jsonl", "*.json", "*.ndjson", "*.parquet")
# The fields of a Lago event the loader reads; also the columns of a Parquet landing file (one row
# per event, other columns are ignored).
EVENT_FIELDS = ("transaction_id", "code", "external_subscription_id", "timestamp", "properties")

RAW_DDL = """
create schema if not exists raw;
create table if not exists raw.landing_files (
    arrival_date date not null,
    source_file varchar not null,
    content_sha256 varchar not null,
    size_bytes bigint not null,
    first_loaded_at timestamp not null,
    status varchar not null,  -- loaded | duplicate_file (bytes already loaded) | unrecognized (not an event file)
    primary key (arrival_date, source_file)
);
create table if not exists raw.events (
    arrival_date date not null,
    source_file varchar not null,
    line_number bigint not null,
    item_index integer not null,
    transaction_id varchar,
    code varchar,
    external_subscription_id varchar,
    event_timestamp_text varchar,
    event_at timestamp,
    is_timestamp_defaulted boolean,
    properties map(varchar, varchar),
    load_error varchar,
    load_error_detail varchar
);
-- The text of each line with a record rejected at load (`load_error`), for the quarantine: kept
-- apart so that the typed rows are inserted into `raw.events` once and never touched again.
create table if not exists raw.rejected_lines (
    arrival_date date not null,
    source_file varchar not null,
    line_number bigint not null,
    raw_line varchar not null  -- the line as read (a Parquet row as JSON)
);
-- One row per arrival day loaded: what was seen (to skip an unchanged day) and what it gave.
create table if not exists raw.day_loads (
    arrival_date date primary key,
    stat_signature varchar not null,   -- names, sizes and modification times of the day's files
    property_keys varchar not null,    -- the catalog keys kept in `properties`
    content_signature varchar not null,  -- names, SHA-256 and status of the day's files
    files_loaded integer not null,
    files_duplicate integer not null,
    lines_read bigint not null,
    events_raw bigint not null,
    events_malformed bigint not null,
    loaded_at timestamp not null
);
"""


@dataclass(frozen=True)
class DayLoad:
    arrival_date: dt.date
    files_loaded: int
    files_duplicate: int
    lines_read: int
    events_raw: int
    events_malformed: int
    skipped: bool = False  # the day's files and the catalog keys were as last loaded: not read again


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(RAW_DDL)
    # A warehouse loaded before the rejected lines had their own table: move their text there.
    if con.execute("""select count(*) from duckdb_columns()
                      where schema_name = 'raw' and table_name = 'events' and column_name = 'raw_line'""").fetchone()[0]:
        con.execute("begin transaction")
        con.execute("""insert into raw.rejected_lines
                       select distinct arrival_date, source_file, line_number, raw_line from raw.events
                       where raw_line is not null""")
        con.execute("alter table raw.events drop column raw_line")
        con.execute("commit")


def day_files(events_dir: Path, day: dt.date) -> list[Path]:
    folder = events_dir / day.isoformat()
    if not folder.is_dir():
        return []
    found = {p for pattern in EVENT_FILE_PATTERNS for p in folder.glob(pattern) if p.is_file()}
    return sorted(found)


def stat_signature(events_dir: Path, day: dt.date) -> str:
    """What the day folder holds, from file metadata alone: names, sizes, modification times."""
    entries = []
    for path in sorted(set(day_files(events_dir, day)) | set(unrecognized_files(events_dir, day))):
        stat = path.stat()
        entries.append(f"{path.name}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def unrecognized_files(events_dir: Path, day: dt.date) -> list[Path]:
    """Files in a day folder that are not event files (nor hidden or partial): reported, not read."""
    folder = events_dir / day.isoformat()
    if not folder.is_dir():
        return []
    known = set(day_files(events_dir, day))
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p not in known and not p.name.startswith(".") and not p.name.endswith(".partial")
    )


def arrival_dates(events_dir: Path) -> list[dt.date]:
    """The arrival-date folders present in the landing folder, in order."""
    dates = []
    for child in events_dir.iterdir() if events_dir.is_dir() else []:
        try:
            dates.append(dt.date.fromisoformat(child.name))
        except ValueError:
            continue
    return sorted(dates)


def _sha256(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and its number of lines (a last line without a newline counts)."""
    digest = hashlib.sha256()
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            lines += block.count(b"\n")
            last = block[-1:]
    return digest.hexdigest(), lines + (last != b"\n")


# Lines of one file (the table `_source`: line_number, line, line_error) -> one row per event (a
# batch line `{"events": [...]}` gives several). Parameters: $keys (the property keys the catalog needs), $paths (their JSON paths), $ingested_at.
_LINES_SQL = """
with parsed as (
    select line_number, line,
        case when line_error is not null then line_error
             when not json_valid(line) then 'invalid_json' end as line_error,
        case when line_error is null and json_valid(line) then line::json end as doc
    from _source
    where line_error is not null or trim(coalesce(line, '')) <> ''
),
batches as (
    select *,
        case when json_type(doc) = 'ARRAY' then doc
             when json_type(doc) = 'OBJECT' and json_type(doc -> 'events') = 'ARRAY' then doc -> 'events'
        end as batch
    from parsed
),
items as (
    select line_number, line,
        case when batch is not null then 'empty_batch' else line_error end as line_error, 0 as item_index, doc as item
    from batches
    where batch is null or json_array_length(batch) = 0
    union all
    select line_number, line, null, unnest(range(json_array_length(batch)::bigint)) + 1,
        unnest(json_extract(batch, '$[*]'))
    from batches
    where batch is not null and json_array_length(batch) > 0
),
events as (
    select *,
        case when json_type(item -> 'event') = 'OBJECT' then item -> 'event' else item end as ev
    from items
),
fields as (
    select line_number, line, item_index, line_error, ev,
        json_type(ev) as ev_type,
        ev ->> 'transaction_id' as transaction_id,
        json_type(ev -> 'transaction_id') as transaction_id_type,
        ev ->> 'code' as code,
        json_type(ev -> 'code') as code_type,
        ev ->> 'external_subscription_id' as external_subscription_id,
        json_type(ev -> 'external_subscription_id') as external_subscription_id_type,
        json_type(ev -> 'timestamp') as timestamp_type,
        ev ->> 'timestamp' as timestamp_text,
        json_type(ev -> 'properties') as properties_type,
        ev -> 'properties' as props
    from events
),"""

# Rows of `fields` -> rows of raw.events. `fields` has, per event: line_number, line (its text when
# known), item_index, line_error, ev_type, each id field and its JSON type, timestamp_text and its
# type, properties_type and props (the properties object as JSON).
_TYPED_SQL = f"""
typed as (
    select *,
        case
            -- (an integer of at most 18 digits, the common case, is multiplied without the
            -- regular expressions below: they cost more than the rest of the typing together)
            when timestamp_type in ('BIGINT', 'UBIGINT') and length(timestamp_text) <= 18
                then make_timestamp(try_cast(timestamp_text::hugeint * 1000000 as bigint))
            when timestamp_type in ('BIGINT', 'UBIGINT', 'DOUBLE')
                or (timestamp_type = 'VARCHAR' and regexp_full_match(trim(timestamp_text), '-?[0-9]+(\\.[0-9]+)?'))
                then make_timestamp(try_cast(
                    -- (a whole number of seconds takes the integer cast: a VARCHAR -> DECIMAL(38, 6)
                    -- cast costs a hundred times more in DuckDB, and gives the same microseconds)
                    case when regexp_full_match(trim(timestamp_text), '-?[0-9]{{1,18}}')
                        then try_cast(trim(timestamp_text) as hugeint) * 1000000
                        else try_cast(trim(timestamp_text) as decimal(38, 6)) * 1000000
                    end as bigint))
            when timestamp_type = 'VARCHAR'
                then timezone('UTC', try_cast(trim(timestamp_text) as timestamptz))
        end as parsed_at
    from fields
),
checked as (
    select *,
        {load_error_sql()} as load_error,
        -- the values of the catalog's keys, in their order (one pass over the object)
        case when properties_type = 'OBJECT' then json_extract_string(props, $paths::varchar[]) end as property_values
    from typed
)
select
    $arrival_date::date as arrival_date,
    $source_file as source_file,
    line_number,
    item_index,
    transaction_id,
    code,
    external_subscription_id,
    timestamp_text as event_timestamp_text,
    case when load_error is null then coalesce(parsed_at, $ingested_at::timestamp) end as event_at,
    case when load_error is null then parsed_at is null end as is_timestamp_defaulted,
    case when load_error is null and properties_type = 'OBJECT' then /*PROPERTIES*/
        when load_error is null then /*NO_PROPERTIES*/
    end as properties,
    load_error,
    {load_error_detail_sql()} as load_error_detail
from checked
"""
_PARSE_SQL = _LINES_SQL + "\n" + _TYPED_SQL


def _insert_typed(con: duckdb.DuckDBPyConnection, sql: str, params: dict, source: str) -> None:
    """Insert into `raw.events` the rows of a typing query (`_PARSE_SQL` or `_FAST_SQL`) over the
    table or subquery `source`. With metric expressions (`params["expressions"]`), the rows are
    typed into a temporary table first and each event of an expression metric takes its value
    (`_with_expression_values`)."""
    sql = _with_properties(sql, params["keys"]).replace("from _source\n", f"from {source}\n")
    values = {k: v for k, v in params.items() if f"${k}" in sql}
    if not params.get("expressions"):
        con.execute("insert into raw.events " + sql, values)
        return
    con.execute("create or replace temp table _typed_events as " + sql, values)
    _with_expression_values(con, params["expressions"])
    con.execute("drop table _typed_events")


# The columns of raw.events, in order, as `_with_expression_values` inserts them.
_RAW_EVENT_COLUMNS = ("arrival_date", "source_file", "line_number", "item_index", "transaction_id", "code",
                      "external_subscription_id", "event_timestamp_text", "event_at", "is_timestamp_defaulted",
                      "properties", "load_error", "load_error_detail")


def _with_expression_values(con: duckdb.DuckDBPyConnection, metric_expressions: dict[str, tuple[str, str]]) -> None:
    """Insert the rows of `_typed_events` into `raw.events`, each event of a metric with an
    expression carrying the expression's value as its `field_name` property (as lago-api stores
    it), or, when the expression cannot be evaluated on it, rejected at load as
    `expression_evaluation_failed` with the field and what is wrong (see
    `catalog.expressions.evaluate_events`)."""
    codes = sorted(metric_expressions)
    rows = con.execute(
        """select rowid, code, event_at, map_keys(properties), map_values(properties) from _typed_events
           where load_error is null and list_contains($codes, code)""", {"codes": codes}).fetchall()
    results = evaluate_events(
        [(code, at, dict(zip(keys, vals, strict=True))) for _, code, at, keys, vals in rows], metric_expressions)
    con.register("_expression_values", pa.table({
        "row_id": pa.array([r[0] for r in rows], pa.int64()),
        "field_name": pa.array([metric_expressions[r[1]][0] for r in rows], pa.string()),
        "value": pa.array([r[0] for r in results], pa.string()),
        "load_error": pa.array([r[1] for r in results], pa.string()),
        "load_error_detail": pa.array([r[2] for r in results], pa.string()),
    }))
    try:
        plain = [c for c in _RAW_EVENT_COLUMNS if c not in ("properties", "load_error", "load_error_detail")]
        con.execute(f"""
            insert into raw.events ({", ".join(_RAW_EVENT_COLUMNS)})
            select {", ".join(f"t.{c}" for c in plain)},
                case when v.row_id is null then t.properties
                     when v.load_error is null then map_concat(t.properties, map([v.field_name], [v.value])) end,
                coalesce(t.load_error, v.load_error), coalesce(t.load_error_detail, v.load_error_detail)
            from _typed_events t left join _expression_values v on v.row_id = t.rowid
            order by t.rowid""")
    finally:
        con.unregister("_expression_values")


def _insert_rejected_lines(con: duckdb.DuckDBPyConnection, params: dict, lines: str) -> None:
    """Keep in `raw.rejected_lines` the text of this file's lines with a record rejected at load,
    from `lines` (a table or subquery of line_number, line)."""
    con.execute(
        f"""insert into raw.rejected_lines
            select $arrival_date, $source_file, l.line_number, coalesce(any_value(l.line), '') from {lines} l
            where l.line_number in (select line_number from raw.events where arrival_date = $arrival_date
                                    and source_file = $source_file and load_error is not null)
            group by l.line_number""",
        {"arrival_date": params["arrival_date"], "source_file": params["source_file"]},
    )


def _with_properties(sql: str, keys: list[str]) -> str:
    """The typing SQL with the `properties` MAP built for these catalog keys.

    A STRUCT literal cast to MAP costs about a third of `map(keys, values)` in DuckDB 1.5 (a second
    a day at 20M events a month). STRUCT field names are case-insensitive, so keys that differ
    only in case, and an empty key list, take `map()`.
    """
    if keys and len({k.lower() for k in keys}) == len(keys):
        def literal(value) -> str:
            fields = ", ".join("'" + k.replace("'", "''") + "': " + value(i) for i, k in enumerate(keys, start=1))
            return "cast({" + fields + "} as map(varchar, varchar))"
        present, absent = literal(lambda i: f"property_values[{i}]"), literal(lambda i: "null::varchar")
    else:
        present = "map($keys::varchar[], property_values)"
        absent = "map($keys::varchar[], list_transform($keys::varchar[], k -> null::varchar))"
    return sql.replace("/*PROPERTIES*/", present).replace("/*NO_PROPERTIES*/", absent)


# The fast path: `_source` holds one row per line as read by `read_json` (with its line_number): each top-level field the
# loader looks at as JSON, and `event` as a STRUCT of those fields (as JSON), so that no value is
# coerced and no object is parsed twice. A line whose whole row is NULL (not JSON, not an object,
# or an object with none of these fields), that holds a batch (`events`), or whose `event` has none
# of the fields (`read_json` gives the same STRUCT of NULLs for `{}`, a string or an array, which
# the line parser tells apart) is left to the line parser (`needs_lines`). Every other line is an
# event object: `event` when present, else the line itself, exactly as in `_LINES_SQL`.
_EVENT_STRUCT = "STRUCT(" + ", ".join(f'"{f}" JSON' for f in EVENT_FIELDS) + ")"
_FAST_COLUMNS = {"event": _EVENT_STRUCT, "events": "JSON", **{f: "JSON" for f in EVENT_FIELDS}}
_NEEDS_LINES = (
    " and ".join(f'"{f}" is null' for f in ("event", "events", *EVENT_FIELDS))
    + " or events is not null or event is not null and "
    + " and ".join(f'event."{f}" is null' for f in EVENT_FIELDS)
)
_FAST_FIELDS_SQL = """
with sourced as (
    select line_number,
        {fields}
    from _source
    where not needs_lines
),
fields as (
    select line_number, null::varchar as line, 0 as item_index, null::varchar as line_error, 'OBJECT' as ev_type,
        transaction_id ->> '$' as transaction_id, json_type(transaction_id) as transaction_id_type,
        code ->> '$' as code, json_type(code) as code_type,
        external_subscription_id ->> '$' as external_subscription_id,
        json_type(external_subscription_id) as external_subscription_id_type,
        json_type("timestamp") as timestamp_type, "timestamp" ->> '$' as timestamp_text,
        json_type(properties) as properties_type, properties as props
    from sourced
),""".replace("{fields}", ",\n        ".join(
    f'case when event is not null then event."{f}" else "{f}" end as "{f}"' for f in EVENT_FIELDS))
_FAST_SQL = _FAST_FIELDS_SQL + "\n" + _TYPED_SQL


_STAGED = "_staged_"  # the temp tables of a day's files: _staged_0, _staged_0_lines, ...


def _read_lines(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> None:
    """Fill the temp table `table` (line_number, line, line_error) with the file's lines.

    The fast path is DuckDB's CSV reader with one column; numbering by `row_number() over ()` keeps
    the scan order of one file. A file with any line the reader refuses (bytes that are not UTF-8,
    a stray control character) is read again line by line in Python, so each bad line is kept with
    its number and a readable rendering of its bytes.
    """
    con.execute(f"drop table if exists {table}")
    if path.suffix == ".json":  # one document (often pretty-printed): a single record
        raw = path.read_bytes()
        try:
            text, error = raw.decode("utf-8"), None
        except UnicodeDecodeError:
            text, error = raw.decode("utf-8", errors="backslashreplace"), "invalid_utf8"
        _register_lines(con, table, [1], [text], [error])
        return
    try:
        con.execute(
            f"""
            create temp table {table} as
            select row_number() over () as line_number, line, null::varchar as line_error
            from read_csv(?, columns = {{'line': 'VARCHAR'}}, header = false, delim = chr(1), quote = '',
                          escape = '', auto_detect = false, strict_mode = true, parallel = false)
            """,
            [str(path)],
        )
        return
    except duckdb.Error:
        con.execute(f"drop table if exists {table}")
    numbers, texts, errors = [], [], []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            text, error = _decoded(raw.rstrip(b"\r\n"))
            numbers.append(number)
            texts.append(text)
            errors.append(error)
    _register_lines(con, table, numbers, texts, errors)


@dataclass(frozen=True)
class _Staged:
    """A landing file read into the temp table `table` before the day's transaction: `read_json`
    rows (`fast`), `read_parquet` rows (`parquet`) or the file's lines as text (`lines`)."""

    path: Path
    kind: str
    table: str
    line_count: int
    params: dict


def _stage_file(con: duckdb.DuckDBPyConnection, path: Path, table: str, line_count: int, params: dict) -> _Staged:
    """Read a landing file into the temp table `table`.

    JSON Lines files take the fast path: one `read_json` pass parses each line once into the
    fields the loader needs, kept as JSON so that no value is coerced. A file with blank lines (its
    rows would not be its line numbers), or one `read_json` refuses, is read as lines of text for
    the line parser. The reads that can fail happen here, outside the day's transaction: in DuckDB
    a failed statement aborts its transaction, and each of these failures has a fallback.
    """
    if path.suffix == ".parquet":
        _read_parquet(con, path, table)
        return _Staged(path, "parquet", table, line_count, params)
    if path.suffix != ".json" and _read_fast(con, path, table, line_count):
        return _Staged(path, "fast", table, line_count, params)
    _read_lines(con, path, table)
    return _Staged(path, "lines", table, line_count, params)


def _insert_staged(con: duckdb.DuckDBPyConnection, staged: _Staged) -> int:
    """Insert the events of a staged file into `raw.events`, and the text of its rejected lines
    into `raw.rejected_lines` (inside the day's transaction), then drop its table; the number of
    lines read. Rows are only inserted: an UPDATE or DELETE of rows inserted in the same
    transaction would make DuckDB write them again at commit (0.65 s for a 666,666-event day)."""
    if staged.kind == "fast":
        _insert_fast(con, staged)
    elif staged.kind == "parquet":
        _insert_typed(con, _FAST_SQL, staged.params, staged.table)
        _insert_rejected_lines(con, staged.params, f"(select line_number, row_text as line from {staged.table})")
    else:
        _insert_typed(con, _PARSE_SQL, staged.params, staged.table)
        _insert_rejected_lines(con, staged.params, staged.table)
    # (a fast-path table has one row per line, counted when it was read)
    lines = staged.line_count if staged.kind == "fast" else con.execute(f"select count(*) from {staged.table}").fetchone()[0]
    con.execute(f"drop table {staged.table}")
    return lines


def _read_fast(con: duckdb.DuckDBPyConnection, path: Path, table: str, line_count: int) -> bool:
    """`read_json` of the file into `table`, one row per line; False (and no table) if it refuses
    the file or the rows are not the lines."""
    con.execute(f"drop table if exists {table}")
    try:
        # Rows keep the file's order (insertion order is preserved), so rowid + 1 is the line.
        con.execute(
            f"""create temp table {table} as
               select *, $needs_lines as needs_lines
               from read_json(?, columns = $columns, format = 'newline_delimited', records = true,
                              ignore_errors = true, auto_detect = false, maximum_object_size = 16777216)""".replace(
                "$columns", "{" + ", ".join(f"'{k}': '{v}'" for k, v in _FAST_COLUMNS.items()) + "}").replace(
                "$needs_lines", _NEEDS_LINES),
            [str(path)],
        )
    except duckdb.Error:
        con.execute(f"drop table if exists {table}")
        return False
    rows = con.execute(f"select count(*) from {table}").fetchone()[0]
    if rows != line_count:  # blank lines: row numbers are not line numbers
        con.execute(f"drop table if exists {table}")
        return False
    return True


def _insert_fast(con: duckdb.DuckDBPyConnection, staged: _Staged) -> None:
    """The events of a `read_json` table. The few lines it cannot vouch for (not JSON, not an
    object, batches) are read again as text and go through the line parser, and the lines of
    records rejected at load are read again for their text, so the result is the line parser's
    for every line."""
    params, numbered = staged.params, f"(select rowid + 1 as line_number, * from {staged.table})"
    _insert_typed(con, _FAST_SQL, params, numbered)
    this_file = {"arrival_date": params["arrival_date"], "source_file": params["source_file"]}
    wanted = [r[0] for r in con.execute(
        f"""select line_number from {numbered} where needs_lines
            union select line_number from raw.events
            where arrival_date = $arrival_date and source_file = $source_file and load_error is not null
            order by 1""",
        this_file,
    ).fetchall()]
    if not wanted:
        return
    lines = staged.table + "_lines"
    _register_lines_at(con, lines, staged.path, wanted)
    _insert_typed(con, _PARSE_SQL, params,
                  f"(select * from {lines} where line_number in (select line_number from {numbered} where needs_lines))")
    _insert_rejected_lines(con, params, lines)
    con.execute(f"drop table {lines}")


def _read_parquet(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> None:
    """A Parquet file (columns `EVENT_FIELDS`, any missing one is absent) as the fast path's rows:
    each value turned into JSON and typed by the fast path's SQL, so an integer id, a text timestamp
    or a `properties` STRUCT or MAP are read as the same value in a JSON line would be. A VARCHAR
    `properties` holds JSON text. The line number is the row number (from 1), and `row_text` the
    row as JSON, kept for the rows rejected at load."""
    columns = {r[0]: r[1] for r in con.execute("describe select * from read_parquet(?)", [str(path)]).fetchall()}

    def as_json(name: str) -> str:
        if name not in columns:
            return "null::json"
        column = f'"{name}"'
        if name == "properties" and columns[name] == "VARCHAR":
            return f"case when json_valid({column}) then {column}::json else to_json({column}) end"
        return f"to_json({column})"

    present = ", ".join(f'"{n}"' for n in EVENT_FIELDS if n in columns)
    con.execute(f"drop table if exists {table}")
    con.execute(
        f"""create temp table {table} as
            select file_row_number + 1 as line_number, null::{_EVENT_STRUCT} as event, null::json as events,
                {", ".join(f'{as_json(n)} as "{n}"' for n in EVENT_FIELDS)},
                false as needs_lines,
                {f"to_json(struct_pack({present}))::varchar" if present else "'{{}}'"} as row_text
            from read_parquet(?, file_row_number = true)""",
        [str(path)],
    )


def _decoded(raw: bytes) -> tuple[str, str | None]:
    """A line's text and its error: bytes that are not UTF-8 keep a readable rendering."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="backslashreplace"), "invalid_utf8"


_BLOCK = 1 << 16


def _lines_at(path: Path, numbers: list[int]) -> dict[int, bytes]:
    """The bytes of the given lines of a file (numbered from 1, without their line ending), in
    one pass that counts newlines a block at a time and splits only the blocks holding a wanted
    line: the few lines the fast path needs again cost a scan of the file, not a parse of it."""
    found: dict[int, bytes] = {}
    if not numbers or path.stat().st_size == 0:
        return found
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        size, line, start = len(data), 1, 0  # line `line` begins at offset `start`
        for number in sorted(set(numbers)):
            while line < number:
                block = data[start:start + _BLOCK]
                newlines = block.count(b"\n")
                if newlines and line + newlines <= number:  # skip to the block's last line start
                    start, line = start + block.rfind(b"\n") + 1, line + newlines
                    continue
                if not newlines:  # a line longer than a block: to its end
                    end = data.find(b"\n", start)
                    if end < 0:
                        return found
                    start, line = end + 1, line + 1
                    continue
                for _ in range(number - line):  # the wanted line begins in this block
                    start = data.find(b"\n", start) + 1
                line = number
            end = data.find(b"\n", start)
            found[number] = data[start:end if end >= 0 else size].rstrip(b"\r\n")
    return found


def _register_lines_at(con: duckdb.DuckDBPyConnection, table: str, path: Path, numbers: list[int]) -> None:
    """The temp table `table` (line_number, line, line_error) of the given lines of a file; a
    `.json` file is one document, its line 1."""
    found = {1: path.read_bytes()} if path.suffix == ".json" else _lines_at(path, numbers)
    decoded = {number: _decoded(raw) for number, raw in found.items()}
    _register_lines(con, table, list(decoded), [d[0] for d in decoded.values()], [d[1] for d in decoded.values()])


def _register_lines(
    con: duckdb.DuckDBPyConnection, table: str, numbers: list[int], texts: list[str], errors: list[str | None]
) -> None:
    lines = pa.table(
        {
            "line_number": pa.array(numbers, pa.int64()),
            "line": pa.array(texts, pa.string()),
            "line_error": pa.array(errors, pa.string()),
        }
    )
    con.register("_lines_arrow", lines)
    con.execute(f"create temp table {table} as select * from _lines_arrow")
    con.unregister("_lines_arrow")


def _json_path(key: str) -> str:
    return '$."' + key + '"'


def load_arrival_day(
    con: duckdb.DuckDBPyConnection,
    events_dir: Path,
    day: dt.date,
    property_keys: list[str],
    now: dt.datetime,
    *,
    force: bool = False,
    expressions: dict[str, tuple[str, str]] | None = None,
) -> DayLoad:
    """Replace the events of arrival date `day` with the contents of its landing files.

    Each file is read into a temporary table first (`_stage_file`); then one transaction deletes
    the day and inserts the typed events of every file straight into `raw.events`, so a run killed
    mid-way leaves the previous load intact, and each event is written once.
    A day whose files (names, sizes, modification times) and catalog keys are those of its last
    load is not read again (unless `force`): a daily run reads only the new day.
    `expressions`: the metrics with an expression, code -> (field_name, expression text); a change
    of them reloads the day, as a change of keys does.
    """
    ensure_raw_schema(con)
    plan = plan_day(con, events_dir, day, property_keys, now, force=force, expressions=expressions)
    return plan if isinstance(plan, DayLoad) else load_planned_day(con, plan)


def load_planned_day(con: duckdb.DuckDBPyConnection, plan: DayPlan) -> DayLoad:
    """Read the files of a planned day with DuckDB and replace the day (`load_arrival_day`)."""
    try:
        staged = stage_files(con, plan.files)
        return commit_day(con, plan, lambda: insert_staged(con, staged))
    finally:  # (also after a failure: the connection may load other days)
        drop_staged(con)


def stage_files(con: duckdb.DuckDBPyConnection, files: list[tuple[Path, int, dict]]) -> list[_Staged]:
    """Read files of a plan (path, number of lines, typing parameters) into temporary tables, before
    the day's transaction (`_stage_file`)."""
    return [_stage_file(con, path, f"{_STAGED}{index}", line_count, params)
            for index, (path, line_count, params) in enumerate(files)]


def insert_staged(con: duckdb.DuckDBPyConnection, staged: list[_Staged]) -> int:
    """Insert the events of staged files (inside the day's transaction); the number of lines read."""
    return sum(_insert_staged(con, file) for file in staged)


def drop_staged(con: duckdb.DuckDBPyConnection) -> None:
    for (table,) in con.execute(
        f"select table_name from duckdb_tables() where temporary and starts_with(table_name, '{_STAGED}')"
    ).fetchall():
        con.execute(f"drop table if exists {table}")


def insert_typed_rows(con: duckdb.DuckDBPyConnection, table: str, expressions: dict[str, tuple[str, str]]) -> None:
    """Insert into `raw.events` the rows of `table`, typed events with the columns of `raw.events`
    (read by another reader, Spark's), the events of expression metrics taking their values
    (`_with_expression_values`)."""
    columns = ", ".join(_RAW_EVENT_COLUMNS)
    if not expressions:
        con.execute(f"insert into raw.events ({columns}) select {columns} from {table}")
        return
    con.execute(f"create or replace temp table _typed_events as select {columns} from {table}")
    _with_expression_values(con, expressions)
    con.execute("drop table _typed_events")


def insert_rejected_lines(con: duckdb.DuckDBPyConnection, path: Path, params: dict) -> None:
    """Keep in `raw.rejected_lines` the text of the lines of this file (already in `raw.events`)
    with a record rejected at load, read again from the file."""
    wanted = [r[0] for r in con.execute(
        """select distinct line_number from raw.events
           where arrival_date = ? and source_file = ? and load_error is not null order by 1""",
        [params["arrival_date"], params["source_file"]]).fetchall()]
    if not wanted:
        return
    table = f"{_STAGED}rejected"
    _register_lines_at(con, table, path, wanted)
    _insert_rejected_lines(con, params, table)
    con.execute(f"drop table {table}")


@dataclass(frozen=True)
class DayPlan:
    """What a load of an arrival day will write, before any file is read: its landing files, and
    the files to read, each (path, number of lines, typing parameters)."""

    day: dt.date
    signature: str
    keys_signature: str
    landing_rows: list[tuple]
    files: list[tuple[Path, int, dict]]
    duplicates: int
    now: dt.datetime


def plan_day(con: duckdb.DuckDBPyConnection, events_dir: Path, day: dt.date, property_keys: list[str],
             now: dt.datetime, *, force: bool = False, expressions: dict[str, tuple[str, str]] | None = None,
             loaded_earlier: frozenset[str] = frozenset()) -> DayPlan | DayLoad:
    """The day's plan, or its last load (`skipped`) when its files and keys are unchanged since.
    A file whose bytes were loaded on an earlier day is a duplicate: an earlier day of the
    warehouse, or one whose plan (not yet written) loads a file of SHA-256 in `loaded_earlier`."""
    keys = sorted(set(property_keys))
    paths = [_json_path(k) for k in keys]
    signature = stat_signature(events_dir, day)
    keys_signature = "\t".join(keys) + "".join(
        f"\texpression {code}: {field} = {text}" for code, (field, text) in sorted((expressions or {}).items()))
    previous = con.execute(
        """select files_loaded, files_duplicate, lines_read, events_raw, events_malformed from raw.day_loads
           where arrival_date = ? and stat_signature = ? and property_keys = ?""",
        [day, signature, keys_signature],
    ).fetchone()
    if previous is not None and not force:
        return DayLoad(day, *previous, skipped=True)
    registered = {
        row[0]: row[1]
        for row in con.execute(
            "select source_file, first_loaded_at from raw.landing_files where arrival_date = ?", [day]
        ).fetchall()
    }
    landing_rows, files, duplicates = [], [], 0
    for path in day_files(events_dir, day):
        source_file = f"{day.isoformat()}/{path.name}"
        digest, line_count = _sha256(path)
        first_loaded_at = registered.get(source_file, now)
        earlier = con.execute(
            """select 1 from raw.landing_files
               where content_sha256 = ? and arrival_date < ? and status = 'loaded' limit 1""",
            [digest, day],
        ).fetchone()
        if earlier is not None or digest in loaded_earlier or any(r[2] == digest for r in landing_rows):
            duplicates += 1  # these bytes were already loaded from an earlier file
            landing_rows.append((day, source_file, digest, path.stat().st_size, first_loaded_at, "duplicate_file"))
            continue
        landing_rows.append((day, source_file, digest, path.stat().st_size, first_loaded_at, "loaded"))
        # A missing timestamp is the ingestion time, recorded once per file and kept inside the
        # arrival day, so that a replay of old folders agrees with the first load.
        day_start = dt.datetime.combine(day, dt.time(0))
        ingested_at = min(max(first_loaded_at, day_start), day_start + dt.timedelta(days=1, microseconds=-1))
        params = {"arrival_date": day, "source_file": source_file, "keys": keys, "paths": paths,
                  "ingested_at": ingested_at, "expressions": expressions or {}}
        files.append((path, line_count, params))
    for path in unrecognized_files(events_dir, day):
        source_file = f"{day.isoformat()}/{path.name}"
        landing_rows.append((day, source_file, "", path.stat().st_size, registered.get(source_file, now), "unrecognized"))
    return DayPlan(day, signature, keys_signature, landing_rows, files, duplicates, now)


def commit_day(con: duckdb.DuckDBPyConnection, plan: DayPlan, insert_files: Callable[[], int]) -> DayLoad:
    """Replace the day in one transaction: its landing files, its events (`insert_files` inserts
    those of `plan.files` into `raw.events` and `raw.rejected_lines`, and gives the number of lines
    read) and its `raw.day_loads` row."""
    day, landing_rows, now = plan.day, plan.landing_rows, plan.now
    con.execute("begin transaction")
    try:
        con.execute("delete from raw.events where arrival_date = ?", [day])
        con.execute("delete from raw.rejected_lines where arrival_date = ?", [day])
        con.execute("delete from raw.landing_files where arrival_date = ?", [day])
        if landing_rows:
            con.executemany("insert into raw.landing_files values (?, ?, ?, ?, ?, ?)", landing_rows)
        # A later day holding a copy of these bytes, loaded before this day was, loses its copy.
        for table in ("raw.events", "raw.rejected_lines"):
            con.execute(
                f"""delete from {table} where arrival_date > ? and source_file in (
                        select later.source_file from raw.landing_files later
                        join raw.landing_files this on this.content_sha256 = later.content_sha256
                        where this.arrival_date = ? and later.arrival_date > ?)""",
                [day, day, day],
            )
        # ... and that later day is read again when its turn comes (its files are now duplicates).
        con.execute(
            """delete from raw.day_loads where arrival_date in (
                   select later.arrival_date from raw.landing_files later
                   join raw.landing_files this on this.content_sha256 = later.content_sha256
                   where this.arrival_date = ? and later.arrival_date > ? and later.status = 'loaded')""",
            [day, day],
        )
        lines = insert_files()
        raw, malformed = con.execute(
            "select count(*), count(load_error) from raw.events where arrival_date = ?", [day]).fetchone()
        content = hashlib.sha256("\n".join(f"{r[1]}\t{r[2]}\t{r[5]}" for r in sorted(landing_rows)).encode()).hexdigest()
        con.execute("delete from raw.day_loads where arrival_date = ?", [day])
        con.execute(
            "insert into raw.day_loads values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [day, plan.signature, plan.keys_signature, content, len(plan.files), plan.duplicates, lines, raw, malformed, now],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return DayLoad(day, len(plan.files), plan.duplicates, lines, raw, malformed)
