"""The fast `read_json` path loads exactly what the line-by-line parser loads, bad lines included."""

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from dagster_project.ingest import events as ingest
from dagster_project.ingest.events import load_arrival_day

DAY = dt.date(2026, 11, 1)
KEYS = ["model", "tokens", "type", "Weird Key"]
NOW = dt.datetime(2026, 11, 1, 9, 30)
HOSTILE = Path(__file__).resolve().parents[1] / "hostile" / "events"

GOOD = {"transaction_id": "t1", "code": "mistral_tokens", "external_subscription_id": "sub_1",
        "timestamp": 1793509200, "properties": {"tokens": 10, "model": "mistral-small", "type": "input"}}

# Lines that are JSON objects but awkward, or not JSON at all: each must end as the parser says.
AWKWARD = [
    json.dumps({"event": GOOD}),
    json.dumps(GOOD),
    json.dumps({"event": "not an object", **GOOD}),
    json.dumps({"event": None, **GOOD}),
    json.dumps({"event": {}}),
    "{}",
    '{"other": 1}',
    "[1, 2]",
    "5",
    '"text"',
    "null",
    '{"transaction_id": "t2", "transaction_id": "t3", "code": "c", "external_subscription_id": "s"}',
    '{"event": {"transaction_id": "t4", "code": "c", "external_subscription_id": "s", "code": "d"}}',
    '{"transaction_id": "tr',
    '{"a": 1}{"b": 2}',
    '{"a": 1,}',
    '{"transaction_id": NaN, "code": "c", "external_subscription_id": "s"}',
    json.dumps({**GOOD, "transaction_id": 12345678901234567890}),
    json.dumps({**GOOD, "transaction_id": 1.5}),
    json.dumps({**GOOD, "transaction_id": ""}),
    json.dumps({**GOOD, "transaction_id": "   "}),
    json.dumps({**GOOD, "transaction_id": "x" * 256}),
    json.dumps({**GOOD, "code": None}),
    json.dumps({**GOOD, "code": ["a"]}),
    json.dumps({**GOOD, "external_subscription_id": {"a": 1}}),
    json.dumps({**GOOD, "external_subscription_id": True}),
    json.dumps({**GOOD, "timestamp": "2026-11-01T10:00:00+02:00"}),
    json.dumps({**GOOD, "timestamp": "1793509200.250"}),
    json.dumps({**GOOD, "timestamp": 1793509200.5}),
    json.dumps({**GOOD, "timestamp": -5}),
    json.dumps({**GOOD, "timestamp": "yesterday"}),
    json.dumps({**GOOD, "timestamp": None}),
    json.dumps({**GOOD, "timestamp": 1e400}) if False else '{"transaction_id": "t9", "code": "c", "external_subscription_id": "s", "timestamp": 1e400}',
    json.dumps({**GOOD, "timestamp": True}),
    json.dumps({k: v for k, v in GOOD.items() if k != "timestamp"}),
    json.dumps({**GOOD, "properties": "tokens=5"}),
    json.dumps({**GOOD, "properties": None}),
    json.dumps({**GOOD, "properties": []}),
    json.dumps({**GOOD, "properties": {"tokens": "12", "model": None, "Weird Key": {"n": [1, 2]}, "extra": 1}}),
    json.dumps({**GOOD, "properties": {"tokens": 1.50, "TOKENS": 3, "type": "x\u00e9\u4e2d"}}),
    '{"transaction_id": "t5", "code": "c", "external_subscription_id": "s", "properties": {"tokens": 1, "tokens": 2}}',
    json.dumps({"events": [GOOD, {**GOOD, "transaction_id": "t6"}]}),
    json.dumps({"events": []}),
    json.dumps({"events": 5, **GOOD}),
    json.dumps([GOOD]),
    json.dumps({**GOOD, "transaction_id": "a\"b\\c\u0001"}),
    '{"transaction_id": "t7", "code": "c", "external_subscription_id": "s"}   ',
    '{"Transaction_ID": "t8", "code": "c", "external_subscription_id": "s"}',
    # `event` is read as a STRUCT: its shapes that read_json cannot tell apart go to the line parser
    json.dumps({"event": [GOOD], **GOOD}),
    json.dumps({"event": {"other": 1}, **GOOD}),
    json.dumps({"event": {"transaction_id": None, "code": None}, **GOOD}),
    json.dumps({"event": {**GOOD, "transaction_id": None}}),
    '{"event": {"Transaction_ID": "t10", "code": "c", "external_subscription_id": "s"}}',
    json.dumps({"event": {**GOOD, "properties": {"tokens": 7}}, "properties": {"tokens": 8}}),
    # integer timestamps around the 18 digits of the cheap path, and beyond
    json.dumps({**GOOD, "timestamp": 0}),
    json.dumps({**GOOD, "timestamp": 999999999999999999}),
    json.dumps({**GOOD, "timestamp": -99999999999999999}),
    json.dumps({**GOOD, "timestamp": 1000000000000000000}),
    json.dumps({**GOOD, "timestamp": 18446744073709551615}),
    json.dumps({**GOOD, "timestamp": 7258118400}),
]


@pytest.fixture
def con():
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    return connection


def loaded(con, landing, monkeypatch=None, careful=False):
    if careful:
        monkeypatch.setattr(ingest, "_read_fast", lambda *args: False)
    load_arrival_day(con, landing, DAY, KEYS, NOW)
    # each row with the text of its line when a record of that line was rejected at load
    rows = con.execute("""select e.* exclude (arrival_date), r.raw_line from raw.events e
                          left join raw.rejected_lines r using (arrival_date, source_file, line_number)
                          order by source_file, line_number, item_index""").fetchall()
    assert con.execute("""select count(*) from raw.rejected_lines r where not exists (select 1 from raw.events e
                          where e.source_file = r.source_file and e.line_number = r.line_number
                            and e.load_error is not null)""").fetchone() == (0,)  # no text without a rejection
    con.execute("delete from raw.events")
    con.execute("delete from raw.rejected_lines")
    con.execute("delete from raw.landing_files")
    con.execute("delete from raw.day_loads")
    return rows


def write(landing: Path, name: str, data: bytes) -> None:
    folder = landing / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def both(con, landing, monkeypatch):
    fast = loaded(con, landing)
    careful = loaded(con, landing, monkeypatch, careful=True)
    return fast, careful


def test_awkward_lines_load_the_same_on_both_paths(con, tmp_path, monkeypatch):
    write(tmp_path, "awkward.jsonl", ("\n".join(AWKWARD) + "\n").encode())
    calls = []
    original = ingest._read_fast
    monkeypatch.setattr(ingest, "_read_fast", lambda *a: calls.append(original(*a)) or calls[-1])
    fast = loaded(con, tmp_path)
    assert calls == [True]  # the fast path handled the file
    careful = loaded(con, tmp_path, monkeypatch, careful=True)
    assert len(fast) >= len(AWKWARD)
    assert fast == careful


@pytest.mark.parametrize("ending", [b"", b"\n"])
def test_a_file_without_a_final_newline_or_with_one(con, tmp_path, monkeypatch, ending):
    write(tmp_path, "a.jsonl", "\n".join(AWKWARD[:20]).encode() + ending)
    fast, careful = both(con, tmp_path, monkeypatch)
    assert fast == careful and len(fast) == 21  # "[1, 2]" is a batch of two


@pytest.mark.parametrize("data", [
    b"\n".join(line.encode() for line in AWKWARD[:5]) + b"\n\n" + json.dumps(GOOD).encode() + b"\n",  # blank line
    json.dumps(GOOD).encode() + b"\n   \n" + json.dumps(GOOD).encode(),  # blank with spaces
    json.dumps(GOOD).encode() + b"\r\n" + json.dumps({**GOOD, "transaction_id": "t2"}).encode() + b"\r\n",
    json.dumps(GOOD).encode() + b"\n" + b'{"transaction_id": "\xff\xfe", "code": "c"}\n' + b"[1]\n",  # not UTF-8
    json.dumps(GOOD).encode() + b"\n" + b'{"transaction_id": "a\x01b", "code": "c"}\n',  # control character
    b"",
])
def test_files_the_fast_path_declines_load_the_same(con, tmp_path, monkeypatch, data):
    write(tmp_path, "a.jsonl", data)
    fast, careful = both(con, tmp_path, monkeypatch)
    assert fast == careful


def test_the_hostile_corpus_loads_the_same_on_both_paths(con, tmp_path, monkeypatch):
    for day in HOSTILE.iterdir():
        shutil.copytree(day, tmp_path / DAY.isoformat(), dirs_exist_ok=True)
    fast, careful = both(con, tmp_path, monkeypatch)
    assert len(fast) > 10 and fast == careful


def test_an_unchanged_day_is_not_read_again_and_a_changed_one_is(con, tmp_path):
    write(tmp_path, "a.jsonl", (json.dumps(GOOD) + "\n").encode())
    first = load_arrival_day(con, tmp_path, DAY, KEYS, NOW)
    again = load_arrival_day(con, tmp_path, DAY, KEYS, NOW)
    assert not first.skipped and again.skipped and again.events_raw == first.events_raw == 1
    assert load_arrival_day(con, tmp_path, DAY, KEYS[:2], NOW).skipped is False  # other catalog keys
    write(tmp_path, "b.jsonl", (json.dumps({**GOOD, "transaction_id": "t2"}) + "\n").encode())
    later = load_arrival_day(con, tmp_path, DAY, KEYS, NOW)
    assert not later.skipped and later.events_raw == 2
    assert con.execute("select count(*) from raw.events").fetchone()[0] == 2


def test_a_parquet_landing_file_loads_like_the_same_events_in_json_lines(con, tmp_path):
    events = [
        GOOD,
        {**GOOD, "transaction_id": "t2", "timestamp": "2026-11-01T10:00:00Z"},
        {**GOOD, "transaction_id": "t3", "properties": {"tokens": 7, "model": None, "type": "output"}},
        {**GOOD, "transaction_id": None},  # missing_transaction_id
        {**GOOD, "transaction_id": "t5", "timestamp": "yesterday"},  # invalid_timestamp
    ]
    json_landing, parquet_landing = tmp_path / "json", tmp_path / "parquet"
    write(json_landing, "a.jsonl", ("\n".join(json.dumps(e) for e in events) + "\n").encode())
    json_rows = loaded(con, json_landing)
    # The same events as Parquet: properties a STRUCT, timestamps text (a column has one type).
    con.execute("create table t (transaction_id varchar, code varchar, external_subscription_id varchar, "
                "\"timestamp\" varchar, properties struct(tokens bigint, model varchar, type varchar))")
    for e in events:
        p = e["properties"]
        con.execute("insert into t values (?, ?, ?, ?, {'tokens': ?, 'model': ?, 'type': ?})",
                    [e["transaction_id"], e["code"], e["external_subscription_id"], str(e["timestamp"]),
                     p["tokens"], p["model"], p["type"]])
    (parquet_landing / DAY.isoformat()).mkdir(parents=True)
    con.execute(f"copy t to '{parquet_landing / DAY.isoformat() / 'a.parquet'}' (format parquet)")
    parquet_rows = loaded(con, parquet_landing)

    def comparable(rows):  # source file and the text of rejected lines differ by format
        return [(r[1], r[2:7], r[7:12]) for r in rows]

    assert [r[0] for r in parquet_rows] == ["2026-11-01/a.parquet"] * 5
    assert comparable(parquet_rows) == comparable(json_rows)
    assert [r[10] for r in parquet_rows] == [None, None, None, "missing_transaction_id", "invalid_timestamp"]
    assert json.loads(parquet_rows[3][-1])["code"] == "mistral_tokens"  # the rejected row, as JSON


def test_a_later_day_that_loses_its_copy_to_an_earlier_day_is_read_again(con, tmp_path):
    later = DAY + dt.timedelta(days=1)
    data = (json.dumps(GOOD) + "\n").encode()
    (tmp_path / later.isoformat()).mkdir()
    (tmp_path / later.isoformat() / "a.jsonl").write_bytes(data)
    load_arrival_day(con, tmp_path, later, KEYS, NOW)
    write(tmp_path, "a.jsonl", data)  # the same bytes dropped into the earlier folder afterwards
    load_arrival_day(con, tmp_path, DAY, KEYS, NOW)
    again = load_arrival_day(con, tmp_path, later, KEYS, NOW)
    assert not again.skipped and again.files_duplicate == 1
    assert con.execute("select arrival_date, status from raw.landing_files order by 1").fetchall() == [
        (DAY, "loaded"), (later, "duplicate_file")]


@pytest.mark.parametrize("timestamp, expected", [
    (0, dt.datetime(1970, 1, 1)),
    (1793509200, dt.datetime(2026, 11, 1, 5, 0)),  # 20758 days and 5 hours after the epoch
    (7258118399, dt.datetime(2199, 12, 31, 23, 59, 59)),  # the last second before 2200
    (7258118400, None),  # 2200-01-01: out of range
    (-5, None),
    (999999999999999999, None),  # 18 digits: taken by the integer path, out of range
    (18446744073709551615, None),  # UBIGINT, 20 digits: the decimal path
])
def test_integer_timestamps_are_unix_seconds(con, tmp_path, timestamp, expected):
    write(tmp_path, "t.jsonl", json.dumps({**GOOD, "timestamp": timestamp}).encode() + b"\n")
    [(event_at, load_error)] = con.execute(
        "select event_at, load_error from raw.events"
    ).fetchall() if load_arrival_day(con, tmp_path, DAY, KEYS, NOW) else []
    assert (event_at, load_error) == ((expected, None) if expected else (None, "invalid_timestamp"))


@pytest.mark.parametrize("block", [1, 3, 7, 1 << 20])
def test_lines_at_finds_lines_across_blocks(tmp_path, monkeypatch, block):
    # lines of 0 to 11 bytes, one with \r\n, the last without a newline: found by number, whatever
    # the block size the scan counts newlines in
    monkeypatch.setattr(ingest, "_BLOCK", block)
    lines = [b"", b"a", b"bb\r", b"", b"ccccccccccc", b"d\xffe", b"", b"f"]
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n".join(lines))
    assert ingest._lines_at(path, [8, 1, 3, 6, 5, 3]) == {1: b"", 3: b"bb", 5: b"ccccccccccc", 6: b"d\xffe", 8: b"f"}
    assert ingest._lines_at(path, list(range(1, 9))) == {i: line.rstrip(b"\r") for i, line in enumerate(lines, 1)}
    assert ingest._lines_at(path, [9]) == {}
    assert ingest._lines_at(path, []) == {}
