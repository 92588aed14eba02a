"""Load one arrival day of Lago event files into `raw.events`, idempotently, losing nothing.

Each line is read as text first (DuckDB's CSV reader with one column), so a line that is not JSON,
or not UTF-8, keeps its text and line number for the quarantine instead of becoming a row of NULLs
(the trap of `read_json(ignore_errors=true)`). Lines are then parsed once, with DuckDB's JSON
functions: the event fields are typed, and only the property keys the catalog prices are kept.

Reruns replace the day: the rows of that arrival date are deleted and inserted again in one
transaction. A file whose bytes were already seen (under another name or day) is loaded once: the
copy with the earliest (arrival date, path) wins.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

EVENT_FILE_PATTERNS = ("*.jsonl", "*.json", "*.ndjson")
MAX_ID_LENGTH = 255

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
    load_error_detail varchar,
    raw_line varchar
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


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(RAW_DDL)


def day_files(events_dir: Path, day: dt.date) -> list[Path]:
    folder = events_dir / day.isoformat()
    if not folder.is_dir():
        return []
    found = {p for pattern in EVENT_FILE_PATTERNS for p in folder.glob(pattern) if p.is_file()}
    return sorted(found)


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Lines of one file -> one row per event (a batch line `{"events": [...]}` gives several).
# Parameters: $keys (the property keys the catalog needs), $paths (their JSON paths), $ingested_at.
_PARSE_SQL = f"""
with parsed as (
    select line_number, line,
        case when line_error is not null then line_error
             when not json_valid(line) then 'invalid_json' end as line_error,
        case when line_error is null and json_valid(line) then line::json end as doc
    from _lines
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
        json_type(ev -> 'properties') as properties_type
    from events
),
typed as (
    select *,
        case
            when timestamp_type in ('BIGINT', 'UBIGINT', 'DOUBLE')
                or (timestamp_type = 'VARCHAR' and regexp_full_match(trim(timestamp_text), '-?[0-9]+(\\.[0-9]+)?'))
                then make_timestamp(try_cast(try_cast(trim(timestamp_text) as decimal(38, 6)) * 1000000 as bigint))
            when timestamp_type = 'VARCHAR'
                then timezone('UTC', try_cast(trim(timestamp_text) as timestamptz))
        end as parsed_at
    from fields
),
checked as (
    select *,
        case
            when line_error is not null then line_error
            when ev_type is distinct from 'OBJECT' then 'not_an_event_object'
            {''.join(
                f"when {f}_type is null or {f}_type = 'NULL' or trim({f}) = '' then 'missing_{f}' "
                f"when {f}_type not in ('VARCHAR', 'BIGINT', 'UBIGINT') then 'invalid_{f}' "
                f"when length({f}) > {MAX_ID_LENGTH} then 'invalid_{f}' "
                for f in ('transaction_id', 'code', 'external_subscription_id'))}
            when timestamp_type is not null and timestamp_type <> 'NULL'
                and (parsed_at is null or parsed_at < timestamp '1970-01-01'
                     or parsed_at >= timestamp '2200-01-01') then 'invalid_timestamp'
            when properties_type is not null and properties_type not in ('OBJECT', 'NULL')
                then 'invalid_properties'
        end as load_error
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
    case when load_error is null and properties_type = 'OBJECT'
        then map($keys::varchar[], json_extract_string(ev -> 'properties', $paths::varchar[]))
        when load_error is null then map($keys::varchar[], list_transform($keys::varchar[], k -> null::varchar))
    end as properties,
    load_error,
    case load_error
        when 'invalid_utf8' then 'the line is not valid UTF-8'
        when 'invalid_json' then 'the line is not valid JSON'
        when 'empty_batch' then 'field events: an empty batch'
        when 'not_an_event_object' then 'the event is not a JSON object'
        when 'invalid_timestamp' then 'field timestamp: ' || coalesce(timestamp_text, '') || ' is neither Unix seconds nor ISO-8601 between 1970 and 2200'
        when 'invalid_properties' then 'field properties: not a JSON object'
        else case when load_error like 'missing_%' then 'field ' || substr(load_error, 9) || ': missing or empty'
                  when load_error like 'invalid_%' then 'field ' || substr(load_error, 9) || ': not a string of at most {MAX_ID_LENGTH} characters' end
    end as load_error_detail,
    case when load_error is not null then coalesce(line, '') end as raw_line
from checked
"""


def _read_lines(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Fill the temp table `_lines(line_number, line, line_error)` with the file's lines.

    The fast path is DuckDB's CSV reader with one column; numbering by `row_number() over ()` keeps
    the scan order of one file. A file with any line the reader refuses (bytes that are not UTF-8,
    a stray control character) is read again line by line in Python, so each bad line is kept with
    its number and a readable rendering of its bytes.
    """
    con.execute("drop table if exists _lines")
    if path.suffix == ".json":  # one document (often pretty-printed): a single record
        raw = path.read_bytes()
        try:
            text, error = raw.decode("utf-8"), None
        except UnicodeDecodeError:
            text, error = raw.decode("utf-8", errors="backslashreplace"), "invalid_utf8"
        _register_lines(con, [1], [text], [error])
        return
    try:
        con.execute(
            """
            create temp table _lines as
            select row_number() over () as line_number, line, null::varchar as line_error
            from read_csv(?, columns = {'line': 'VARCHAR'}, header = false, delim = chr(1), quote = '',
                          escape = '', auto_detect = false, strict_mode = true, parallel = false)
            """,
            [str(path)],
        )
        return
    except duckdb.Error:
        con.execute("drop table if exists _lines")
    numbers, texts, errors = [], [], []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            raw = raw.rstrip(b"\r\n")
            try:
                text, error = raw.decode("utf-8"), None
            except UnicodeDecodeError:
                text, error = raw.decode("utf-8", errors="backslashreplace"), "invalid_utf8"
            numbers.append(number)
            texts.append(text)
            errors.append(error)
    _register_lines(con, numbers, texts, errors)


def _register_lines(
    con: duckdb.DuckDBPyConnection, numbers: list[int], texts: list[str], errors: list[str | None]
) -> None:
    lines = pa.table(
        {
            "line_number": pa.array(numbers, pa.int64()),
            "line": pa.array(texts, pa.string()),
            "line_error": pa.array(errors, pa.string()),
        }
    )
    con.register("_lines_arrow", lines)
    con.execute("create temp table _lines as select * from _lines_arrow")
    con.unregister("_lines_arrow")


def _json_path(key: str) -> str:
    return '$."' + key + '"'


def load_arrival_day(
    con: duckdb.DuckDBPyConnection,
    events_dir: Path,
    day: dt.date,
    property_keys: list[str],
    now: dt.datetime,
) -> DayLoad:
    """Replace the events of arrival date `day` with the contents of its landing files.

    Files are parsed into a temporary table first; the swap into `raw.events` (delete the day,
    insert it again) is one transaction, so a run killed mid-way leaves the previous load intact.
    """
    ensure_raw_schema(con)
    keys = sorted(set(property_keys))
    paths = [_json_path(k) for k in keys]
    registered = {
        row[0]: row[1]
        for row in con.execute(
            "select source_file, first_loaded_at from raw.landing_files where arrival_date = ?", [day]
        ).fetchall()
    }
    con.execute("drop table if exists _day_events")
    con.execute("create temp table _day_events as select * from raw.events limit 0")
    landing_rows, loaded, duplicates, lines = [], 0, 0, 0
    for path in day_files(events_dir, day):
        source_file = f"{day.isoformat()}/{path.name}"
        digest = _sha256(path)
        first_loaded_at = registered.get(source_file, now)
        earlier = con.execute(
            """select 1 from raw.landing_files
               where content_sha256 = ? and arrival_date < ? and status = 'loaded' limit 1""",
            [digest, day],
        ).fetchone()
        if earlier is not None or any(r[2] == digest for r in landing_rows):
            duplicates += 1  # these bytes were already loaded from an earlier file
            landing_rows.append((day, source_file, digest, path.stat().st_size, first_loaded_at, "duplicate_file"))
            continue
        landing_rows.append((day, source_file, digest, path.stat().st_size, first_loaded_at, "loaded"))
        _read_lines(con, path)
        lines += con.execute("select count(*) from _lines").fetchone()[0]
        # A missing timestamp is the ingestion time, recorded once per file and kept inside the
        # arrival day, so that a replay of old folders agrees with the first load.
        day_start = dt.datetime.combine(day, dt.time(0))
        ingested_at = min(max(first_loaded_at, day_start), day_start + dt.timedelta(days=1, microseconds=-1))
        con.execute(
            "insert into _day_events " + _PARSE_SQL,
            {"arrival_date": day, "source_file": source_file, "keys": keys, "paths": paths, "ingested_at": ingested_at},
        )
        loaded += 1
    for path in unrecognized_files(events_dir, day):
        source_file = f"{day.isoformat()}/{path.name}"
        landing_rows.append((day, source_file, "", path.stat().st_size, registered.get(source_file, now), "unrecognized"))
    con.execute("begin transaction")
    try:
        con.execute("delete from raw.events where arrival_date = ?", [day])
        con.execute("delete from raw.landing_files where arrival_date = ?", [day])
        if landing_rows:
            con.executemany("insert into raw.landing_files values (?, ?, ?, ?, ?, ?)", landing_rows)
        # A later day holding a copy of these bytes, loaded before this day was, loses its copy.
        con.execute(
            """delete from raw.events where arrival_date > ? and source_file in (
                   select later.source_file from raw.landing_files later
                   join raw.landing_files this on this.content_sha256 = later.content_sha256
                   where this.arrival_date = ? and later.arrival_date > ?)""",
            [day, day, day],
        )
        con.execute("insert into raw.events select * from _day_events")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    raw, malformed = con.execute(
        "select count(*), count(load_error) from raw.events where arrival_date = ?", [day]
    ).fetchone()
    con.execute("drop table if exists _day_events")
    return DayLoad(day, loaded, duplicates, lines, raw, malformed)
