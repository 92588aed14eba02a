"""Loading a landing day into raw.events: nothing lost, bad lines kept with their reason, reruns idempotent."""

import datetime as dt
import json

import duckdb
import pytest

from dagster_project.ingest.events import load_arrival_day

DAY = dt.date(2026, 11, 1)
KEYS = ["model", "tokens", "type"]
NOW = dt.datetime(2026, 11, 1, 9, 30)


def event(tx, **extra):
    body = {"transaction_id": tx, "code": "mistral_tokens", "external_subscription_id": "sub_1",
            "timestamp": 1793509200, "properties": {"tokens": 10, "model": "mistral-small", "type": "input"}}
    body.update(extra)
    return body


@pytest.fixture
def con():
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    return connection


@pytest.fixture
def landing(tmp_path):
    (tmp_path / DAY.isoformat()).mkdir()
    return tmp_path


def write(landing, name, data: bytes, day=DAY):
    folder = landing / day.isoformat()
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)


def rows(con):
    return con.execute(
        "select source_file, line_number, item_index, transaction_id, load_error from raw.events order by all"
    ).fetchall()


def test_wrapped_bare_and_batch_events_each_become_a_row(con, landing):
    lines = [
        json.dumps({"event": event("t1")}),
        json.dumps(event("t2")),
        json.dumps({"events": [event("t3"), event("t4")]}),
        "",
    ]
    write(landing, "a.jsonl", "\n".join(lines).encode())
    load = load_arrival_day(con, landing, DAY, KEYS, NOW)
    assert load.events_raw == 4 and load.events_malformed == 0
    assert rows(con) == [
        ("2026-11-01/a.jsonl", 1, 0, "t1", None),
        ("2026-11-01/a.jsonl", 2, 0, "t2", None),
        ("2026-11-01/a.jsonl", 3, 1, "t3", None),
        ("2026-11-01/a.jsonl", 3, 2, "t4", None),
    ]


def test_a_line_that_is_not_utf8_is_quarantined_and_the_rest_of_the_file_loads(con, landing):
    data = json.dumps(event("t1")).encode() + b"\n" + b'{"transaction_id": "\xff\xfe"}\n' + json.dumps(event("t3")).encode()
    write(landing, "a.jsonl", data)
    load_arrival_day(con, landing, DAY, KEYS, NOW)
    assert rows(con) == [
        ("2026-11-01/a.jsonl", 1, 0, "t1", None),
        ("2026-11-01/a.jsonl", 2, 0, None, "invalid_utf8"),
        ("2026-11-01/a.jsonl", 3, 0, "t3", None),
    ]
    assert con.execute("select source_file, line_number, raw_line from raw.rejected_lines").fetchall() == [
        ("2026-11-01/a.jsonl", 2, '{"transaction_id": "\\xff\\xfe"}')]


def test_each_malformed_field_gets_its_own_reason(con, landing):
    lines = [
        '{"event": {"transaction_id": "t1", "code": "m"',  # truncated
        "42",
        json.dumps(event("")),
        json.dumps(event("t4", code=None)),
        json.dumps(event("t5", external_subscription_id={"a": 1})),
        json.dumps(event("t6", timestamp="yesterday")),
        json.dumps(event("t7", timestamp=99999999999)),
        json.dumps(event("t8", properties="tokens=5")),
        json.dumps(event("'; drop table raw.events; --")),
    ]
    write(landing, "a.jsonl", "\n".join(lines).encode())
    load_arrival_day(con, landing, DAY, KEYS, NOW)
    assert [r[4] for r in rows(con)] == [
        "invalid_json", "not_an_event_object", "missing_transaction_id", "missing_code",
        "invalid_external_subscription_id", "invalid_timestamp", "invalid_timestamp", "invalid_properties", None,
    ]
    assert con.execute("select count(*) from raw.events").fetchone()[0] == 9


def test_timestamps_in_seconds_numeric_strings_and_iso_are_typed_exactly(con, landing):
    lines = [
        json.dumps(event("t1", timestamp=1793509200)),
        json.dumps(event("t2", timestamp="1793509200.25")),
        json.dumps(event("t3", timestamp="2026-11-01T01:00:00-04:00")),
        json.dumps({k: v for k, v in event("t4").items() if k != "timestamp"}),
    ]
    write(landing, "a.jsonl", "\n".join(lines).encode())
    load_arrival_day(con, landing, DAY, KEYS, NOW)
    times = con.execute("select transaction_id, event_at, is_timestamp_defaulted from raw.events order by 1").fetchall()
    assert times == [
        ("t1", dt.datetime(2026, 11, 1, 5, 0), False),
        ("t2", dt.datetime(2026, 11, 1, 5, 0, 0, 250000), False),
        ("t3", dt.datetime(2026, 11, 1, 5, 0), False),
        ("t4", NOW, True),  # no timestamp: the time the file was first loaded
    ]


def test_properties_keep_only_the_catalog_keys_as_text(con, landing):
    write(landing, "a.jsonl", json.dumps(event("t1", properties={"tokens": 2000000, "model": "x", "secret": "y"})).encode())
    load_arrival_day(con, landing, DAY, KEYS, NOW)
    props = con.execute("select properties from raw.events").fetchone()[0]
    assert props == {"model": "x", "tokens": "2000000", "type": None}


def test_reloading_a_day_replaces_it_and_keeps_the_first_load_time(con, landing):
    write(landing, "a.jsonl", json.dumps({k: v for k, v in event("t1").items() if k != "timestamp"}).encode())
    load_arrival_day(con, landing, DAY, KEYS, NOW)
    load_arrival_day(con, landing, DAY, KEYS, NOW + dt.timedelta(hours=5))
    assert con.execute("select count(*), min(event_at) from raw.events").fetchone() == (1, NOW)


def test_a_file_copied_under_another_name_is_loaded_once(con, landing):
    data = json.dumps(event("t1")).encode()
    write(landing, "a.jsonl", data)
    write(landing, "b.jsonl", data)
    load = load_arrival_day(con, landing, DAY, KEYS, NOW)
    assert (load.files_loaded, load.files_duplicate, load.events_raw) == (1, 1, 1)


def test_a_copy_in_a_later_day_loaded_first_gives_way_to_the_earlier_day(con, landing):
    data = json.dumps(event("t1")).encode()
    later = DAY + dt.timedelta(days=1)
    write(landing, "a.jsonl", data, day=later)
    write(landing, "a.jsonl", data)
    load_arrival_day(con, landing, later, KEYS, NOW)
    load_arrival_day(con, landing, DAY, KEYS, NOW)
    assert con.execute("select arrival_date, count(*) from raw.events group by 1").fetchall() == [(DAY, 1)]


def test_a_pretty_printed_batch_json_file_is_one_document(con, landing):
    write(landing, "batch.json", json.dumps({"events": [event("t1"), event("t2")]}, indent=2).encode())
    load_arrival_day(con, landing, DAY, KEYS, NOW)
    assert rows(con) == [("2026-11-01/batch.json", 1, 1, "t1", None), ("2026-11-01/batch.json", 1, 2, "t2", None)]


def test_an_empty_batch_is_quarantined_not_dropped(con, landing):
    write(landing, "a.jsonl", b'{"events": []}\n')
    load_arrival_day(con, landing, DAY, KEYS, NOW)
    assert rows(con) == [("2026-11-01/a.jsonl", 1, 0, None, "empty_batch")]


def test_files_that_are_not_event_files_are_registered_as_unrecognized(con, landing):
    write(landing, "a.jsonl", json.dumps(event("t1")).encode())
    write(landing, "notes.txt", b"hello")
    write(landing, ".events-0001.jsonl.partial", b"half a line")
    load_arrival_day(con, landing, DAY, KEYS, NOW)
    files = con.execute("select source_file, status from raw.landing_files order by 1").fetchall()
    assert files == [("2026-11-01/a.jsonl", "loaded"), ("2026-11-01/notes.txt", "unrecognized")]


def test_files_read_by_each_reader_in_one_day_keep_their_rows_and_errors(con, landing):
    # one day, four files, four readers: read_json (fast path, with a bad line sent to the line
    # parser), the CSV line reader (a blank line), the Python line reader (a blank line, and bytes
    # that are not UTF-8, which the CSV reader refuses) and Parquet
    write(landing, "a.jsonl", (json.dumps(event("a1")) + "\nnot json\n" + json.dumps(event("a3")) + "\n").encode())
    write(landing, "b.jsonl", (json.dumps(event("b1")) + "\n\n" + json.dumps(event("b3")) + "\n").encode())
    write(landing, "c.jsonl", json.dumps(event("c1")).encode() + b"\n\n\xff\n")
    con.execute(f"copy (select 'p1' as transaction_id, 'mistral_tokens' as code, 'sub_1' as external_subscription_id, "
                f"1793509200 as \"timestamp\") to '{landing / DAY.isoformat() / 'd.parquet'}' (format parquet)")
    load = load_arrival_day(con, landing, DAY, KEYS, NOW)
    assert (load.files_loaded, load.lines_read, load.events_raw, load.events_malformed) == (4, 10, 8, 2)
    assert rows(con) == [
        ("2026-11-01/a.jsonl", 1, 0, "a1", None),
        ("2026-11-01/a.jsonl", 2, 0, None, "invalid_json"),
        ("2026-11-01/a.jsonl", 3, 0, "a3", None),
        ("2026-11-01/b.jsonl", 1, 0, "b1", None),
        ("2026-11-01/b.jsonl", 3, 0, "b3", None),
        ("2026-11-01/c.jsonl", 1, 0, "c1", None),
        ("2026-11-01/c.jsonl", 3, 0, None, "invalid_utf8"),
        ("2026-11-01/d.parquet", 1, 0, "p1", None),
    ]
    assert con.execute("select source_file, line_number, raw_line from raw.rejected_lines order by all").fetchall() == [
        ("2026-11-01/a.jsonl", 2, "not json"), ("2026-11-01/c.jsonl", 3, "\\xff")]
    assert con.execute("select count(*) from duckdb_tables() where temporary").fetchone() == (0,)


class FailingOn:
    """A connection whose statements starting with `prefix` fail (a full disk, say)."""

    def __init__(self, con, prefix):
        self.con, self.prefix = con, prefix

    def execute(self, sql, *args):
        if sql.lstrip().startswith(self.prefix):
            raise duckdb.IOException("disk full")
        return self.con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.con, name)


@pytest.mark.parametrize("failing", [
    "create temp table _staged_",  # while reading the files, before the day's transaction
    "insert into raw.events",  # inside the transaction, while typing the events
    "delete from raw.rejected_lines",  # inside the transaction, the day's rejected lines replaced
    "insert into raw.day_loads",  # inside the transaction, after the day's events were replaced
])
def test_a_failure_while_loading_a_day_leaves_its_previous_load_and_no_temporary_tables(con, landing, failing):
    write(landing, "a.jsonl", json.dumps(event("t1")).encode())
    load_arrival_day(con, landing, DAY, KEYS, NOW)
    before = (rows(con), con.execute("select * from raw.landing_files").fetchall(),
              con.execute("select * from raw.day_loads").fetchall())
    write(landing, "a.jsonl", (json.dumps(event("t1")) + "\n" + json.dumps(event("t2"))).encode())
    write(landing, "b.jsonl", json.dumps(event("t3")).encode())
    with pytest.raises(duckdb.IOException, match="disk full"):
        load_arrival_day(FailingOn(con, failing), landing, DAY, KEYS, NOW + dt.timedelta(hours=1))
    after = (rows(con), con.execute("select * from raw.landing_files").fetchall(),
             con.execute("select * from raw.day_loads").fetchall())
    assert after == before and rows(con) == [("2026-11-01/a.jsonl", 1, 0, "t1", None)]
    assert con.execute("select count(*) from duckdb_tables() where temporary").fetchone() == (0,)
    # and the next attempt loads the day whole
    load = load_arrival_day(con, landing, DAY, KEYS, NOW + dt.timedelta(hours=2))
    assert (load.files_loaded, load.events_raw) == (2, 3)


def test_a_warehouse_loaded_before_rejected_lines_had_their_table_moves_their_text_there(con, landing):
    from dagster_project.ingest.events import ensure_raw_schema

    con.execute("create schema raw")
    con.execute("""create table raw.events as select date '2026-11-01' as arrival_date, * from (values
                   ('2026-11-01/a.jsonl', 1, 0, 't1', null, null),
                   ('2026-11-01/a.jsonl', 2, 1, null, 'not_an_event_object', '[1, {"x": 2}]'),
                   ('2026-11-01/a.jsonl', 2, 2, null, 'not_an_event_object', '[1, {"x": 2}]'))
                   t(source_file, line_number, item_index, transaction_id, load_error, raw_line)""")
    ensure_raw_schema(con)
    assert "raw_line" not in [r[0] for r in con.execute("describe raw.events").fetchall()]
    assert con.execute("select * from raw.rejected_lines").fetchall() == [
        (DAY, "2026-11-01/a.jsonl", 2, '[1, {"x": 2}]')]  # one row per line
    ensure_raw_schema(con)  # and once only
    assert con.execute("select count(*) from raw.rejected_lines").fetchone() == (1,)


EXPRESSIONS = {"llm_tokens": ("tokens", "event.properties.input_tokens + event.properties.cached_tokens * 0.1")}
EXPRESSION_KEYS = ["cached_tokens", "input_tokens", "tokens"]


def llm_event(tx, **properties):
    return json.dumps({"transaction_id": tx, "code": "llm_tokens", "external_subscription_id": "sub_1",
                       "timestamp": 1793509200, "properties": properties})


@pytest.mark.parametrize("blank_line", [False, True], ids=["fast_path", "line_parser"])
def test_an_expression_metric_event_carries_the_value_and_one_it_cannot_take_is_rejected(con, landing, blank_line):
    lines = [
        llm_event("t1", input_tokens=1000, cached_tokens=250),        # 1000 + 25 = 1025
        llm_event("t2", input_tokens="1000", cached_tokens="x"),      # not a number
        llm_event("t3", input_tokens=10, cached_tokens=5, tokens=99),  # 10 + 0.5: the expression wins over 99
        json.dumps(event("t4")),                                      # another metric: its tokens as sent
    ]
    write(landing, "a.jsonl", ("\n".join(lines) + ("\n\n" if blank_line else "")).encode())
    load = load_arrival_day(con, landing, DAY, EXPRESSION_KEYS, NOW, expressions=EXPRESSIONS)
    assert (load.events_raw, load.events_malformed) == (4, 1)
    got = con.execute("""select transaction_id, properties['tokens'], load_error, load_error_detail
                         from raw.events order by transaction_id""").fetchall()
    assert got == [
        ("t1", "1025", None, None),
        ("t2", None, "expression_evaluation_failed",
         "field properties.cached_tokens: 'x' is not a number (expression of metric 'llm_tokens': "
         "event.properties.input_tokens + event.properties.cached_tokens * 0.1)"),
        ("t3", "10.5", None, None),
        ("t4", "10", None, None),
    ]
    # the rejected line keeps its text for the quarantine
    assert con.execute("select line_number from raw.rejected_lines").fetchall() == [(2,)]


def test_a_changed_expression_reloads_the_day_and_the_same_one_does_not(con, landing):
    write(landing, "a.jsonl", llm_event("t1", input_tokens=1000, cached_tokens=250).encode())
    load_arrival_day(con, landing, DAY, EXPRESSION_KEYS, NOW, expressions=EXPRESSIONS)
    assert load_arrival_day(con, landing, DAY, EXPRESSION_KEYS, NOW, expressions=EXPRESSIONS).skipped
    doubled = {"llm_tokens": ("tokens", "event.properties.input_tokens * 2")}
    assert not load_arrival_day(con, landing, DAY, EXPRESSION_KEYS, NOW, expressions=doubled).skipped
    assert con.execute("select properties['tokens'] from raw.events").fetchall() == [("2000",)]
