"""The Python side of Spark reading the landing files (`ingest/spark_load.py`), without Spark: which
files go to Spark and which to DuckDB's loader, copies of bytes already loaded, and what Python
adds to the events Spark typed (expression values, the text of rejected lines). Spark is stood in
for by `read`, which records the statements and writes, as Spark's reader does, the typed rows of
each day under `arrival_date=<day>/` (rows written by hand here; the SQL itself is tested against
DuckDB's loader by tests/e2e/test_spark_engine.py, on Spark)."""

import datetime as dt
import json

import duckdb
import pytest

from dagster_project.ingest.spark_load import by_spark, load_days_with_spark

DAY1, DAY2 = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
NOW = dt.datetime(2026, 11, 2, 9, 30)
KEYS = ["cached_tokens", "input_tokens", "tokens"]


def _line(tx, **properties):
    return json.dumps({"transaction_id": tx, "code": "llm_tokens", "external_subscription_id": "sub_1",
                       "timestamp": 1793509200, "properties": properties})


# What Spark's reader gives for the lines of DAY1/a.jsonl below: (line, transaction_id, input_tokens,
# cached_tokens, load_error, load_error_detail)
SPARK_ROWS = [
    (1, "t1", "10", "5", None, None),
    (2, None, None, None, "invalid_json", "the line is not valid JSON"),
]


def _sql(value):
    return "null" if value is None else "'" + value + "'"


def _row(line, tx, input_tokens, cached_tokens, error, detail):
    """A row of Spark's typed events, as SQL (a rejected record has no event fields)."""
    if error:
        return f"('{DAY1}/a.jsonl', {line}::bigint, 0, {_sql(tx)}, null, null, null, null, null, null, '{error}', '{detail}')"
    properties = f"map {{'cached_tokens': '{cached_tokens}', 'input_tokens': '{input_tokens}', 'tokens': null}}"
    return (f"('{DAY1}/a.jsonl', {line}::bigint, 0, {_sql(tx)}, 'llm_tokens', 'sub_1', '1793509200', "
            f"timestamp '2026-11-01 03:00:00', false, {properties}, null, null)")


class StandIn:
    """Records the statements Spark is given and writes SPARK_ROWS as Spark's typed events of DAY1."""

    def __init__(self, typed_dir):
        self.typed_dir, self.statements = typed_dir, []

    def __call__(self, statements):
        self.statements.append("\n".join(statements))
        folder = self.typed_dir / f"arrival_date={DAY1.isoformat()}"
        folder.mkdir(parents=True)
        values = ", ".join(_row(*row) for row in SPARK_ROWS)
        duckdb.execute(f"""copy (select * from (values {values}) t(source_file, line_number, item_index, transaction_id,
                           code, external_subscription_id, event_timestamp_text, event_at, is_timestamp_defaulted,
                           properties, load_error, load_error_detail))
                           to '{folder / 'part-00000.parquet'}' (format parquet)""")


@pytest.fixture
def landing(tmp_path):
    for day in (DAY1, DAY2):
        (tmp_path / "events" / day.isoformat()).mkdir(parents=True)
    a = (_line("t1", input_tokens=10, cached_tokens=5) + "\n{not json\n").encode()
    (tmp_path / "events" / DAY1.isoformat() / "a.jsonl").write_bytes(a)
    (tmp_path / "events" / DAY2.isoformat() / "copy.jsonl").write_bytes(a)  # the same bytes a day later
    (tmp_path / "events" / DAY2.isoformat() / "latin1.jsonl").write_bytes(
        _line("t9", input_tokens=1).encode() + b"\n" + '{"transaction_id": "caf\xe9"}'.encode("latin-1") + b"\n")
    return tmp_path


def _load(landing, expressions=None):
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    spark = StandIn(landing / "typed")
    result = load_days_with_spark(con, landing / "events", [DAY1, DAY2], KEYS, NOW, expressions=expressions or {},
                                  typed_dir=landing / "typed", read=spark)
    return con, spark, result


def test_spark_reads_the_new_utf8_files_once_and_duckdb_s_loader_the_others(landing):
    con, spark, result = _load(landing)
    # one Spark job for the run, given a.jsonl only: copy.jsonl holds bytes DAY1 loads, and
    # latin1.jsonl is not UTF-8 (read by DuckDB's loader, which keeps the bad line's bytes)
    assert len(spark.statements) == 1
    assert "'a.jsonl'" in spark.statements[0]
    assert "copy.jsonl" not in spark.statements[0] and "latin1.jsonl" not in spark.statements[0]
    assert (result.files_by_spark, result.files_by_duckdb) == (1, 1)
    assert result.as_spark_wrote == {DAY1}
    assert con.execute("select source_file, status from raw.landing_files order by 1").fetchall() == [
        ("2026-11-01/a.jsonl", "loaded"), ("2026-11-02/copy.jsonl", "duplicate_file"), ("2026-11-02/latin1.jsonl", "loaded")]
    assert con.execute("select source_file, line_number, transaction_id, load_error from raw.events order by 1, 2").fetchall() == [
        ("2026-11-01/a.jsonl", 1, "t1", None), ("2026-11-01/a.jsonl", 2, None, "invalid_json"),
        ("2026-11-02/latin1.jsonl", 1, "t9", None), ("2026-11-02/latin1.jsonl", 2, None, "invalid_utf8")]
    # (events_raw, events_malformed, files_loaded, files_duplicate) per day, in raw.day_loads too
    assert [(d.events_raw, d.events_malformed, d.files_loaded, d.files_duplicate) for d in result.loads] == [
        (2, 1, 1, 0), (2, 1, 1, 1)]
    assert con.execute("select arrival_date, events_raw from raw.day_loads order by 1").fetchall() == [(DAY1, 2), (DAY2, 2)]


def test_the_text_of_a_line_spark_rejected_is_read_again_from_its_file(landing):
    con, _, _ = _load(landing)
    assert con.execute("select source_file, line_number, raw_line from raw.rejected_lines order by 1, 2").fetchall() == [
        ("2026-11-01/a.jsonl", 2, "{not json"), ("2026-11-02/latin1.jsonl", 2, '{"transaction_id": "caf\\xe9"}')]


def test_an_expression_metric_takes_its_value_from_the_events_spark_typed(landing):
    # t1: input_tokens 10 + cached_tokens 5 * 0.1 = 10.5
    expressions = {"llm_tokens": ("tokens", "event.properties.input_tokens + event.properties.cached_tokens * 0.1")}
    con, _, result = _load(landing, expressions)
    assert con.execute("select properties['tokens'] from raw.events where transaction_id = 't1'").fetchone() == ("10.5",)
    # Python changed DAY1's events: Spark's files of that day are not the raw layer as they are
    assert result.as_spark_wrote == frozenset()


def test_an_unchanged_day_is_not_read_again(landing):
    con, spark, _ = _load(landing)
    result = load_days_with_spark(con, landing / "events", [DAY1, DAY2], KEYS, NOW, expressions={},
                                  typed_dir=landing / "typed", read=spark)
    assert len(spark.statements) == 1  # (no second Spark job)
    assert [load.skipped for load in result.loads] == [True, True]


@pytest.mark.parametrize(("name", "read_by_spark"), [
    ("events.jsonl", True), ("events.ndjson", True), ("one.json", True),
    ("events.parquet", False),  # (DuckDB's loader types Parquet columns)
    ("_events.jsonl", False), (".events.jsonl", False),  # (Hadoop's listing hides them)
    ("events{1}.jsonl", False), ("a,b.jsonl", False), ("e*.jsonl", False),  # (a glob would read them as patterns)
])
def test_spark_reads_json_files_whose_names_its_listing_takes_as_they_are(tmp_path, name, read_by_spark):
    (tmp_path / name).write_text(_line("t1", input_tokens=1) + "\n")
    assert by_spark(tmp_path / name) is read_by_spark
