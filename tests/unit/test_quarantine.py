"""The quarantine rules of the event loader (`ingest/quarantine.py`): written once, rendered into both
readers' SQL, and each record rejected for the first rule it fails, with its detail in words."""

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from dagster_project.ingest import events
from dagster_project.ingest.quarantine import load_error_detail_sql, load_error_sql
from dagster_project.ingest.spark_reader import LandingFile, typed_events_sql


def test_duckdb_s_loader_and_spark_s_reader_render_the_same_rules():
    spark = typed_events_sql([LandingFile(Path("/landing/2026-10-10/a.jsonl"), dt.date(2026, 10, 10),
                                          "2026-10-10/a.jsonl", dt.datetime(2026, 10, 10))], ["tokens"])
    for rendered in (load_error_sql(), load_error_detail_sql()):
        assert rendered in events._PARSE_SQL and rendered in events._FAST_SQL and rendered in spark


# A well-formed event's columns, as both readers compute them; each case changes some of them.
GOOD = {"line_error": None, "ev_type": "OBJECT",
        "transaction_id": "t1", "transaction_id_type": "VARCHAR", "code": "tokens", "code_type": "VARCHAR",
        "external_subscription_id": "sub_1", "external_subscription_id_type": "VARCHAR",
        "timestamp_type": "BIGINT", "timestamp_text": "1791633600", "parsed_at": dt.datetime(2026, 10, 10, 12),
        "properties_type": "OBJECT"}


def _rejected(**changes) -> tuple[str | None, str | None]:
    row = {**GOOD, **changes}
    columns = ", ".join(f"${name}::{'timestamp' if name == 'parsed_at' else 'varchar'} as {name}" for name in row)
    return duckdb.execute(
        f"select load_error, {load_error_detail_sql()} from (select *, {load_error_sql()} as load_error "
        f"from (select {columns}))", row).fetchone()


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, (None, None)),
    ({"line_error": "invalid_json", "ev_type": None}, ("invalid_json", "the line is not valid JSON")),
    ({"line_error": "empty_batch"}, ("empty_batch", "field events: an empty batch")),
    ({"ev_type": "VARCHAR"}, ("not_an_event_object", "the event is not a JSON object")),
    ({"transaction_id_type": "NULL", "transaction_id": None},
     ("missing_transaction_id", "field transaction_id: missing or empty")),
    ({"code": "  "}, ("missing_code", "field code: missing or empty")),
    # an id may be a JSON integer, not a number with a fraction, nor longer than 255 characters
    ({"code": "12", "code_type": "UBIGINT"}, (None, None)),
    ({"code": "1.5", "code_type": "DOUBLE"}, ("invalid_code", "field code: not a string of at most 255 characters")),
    ({"external_subscription_id": "s" * 256},
     ("invalid_external_subscription_id", "field external_subscription_id: not a string of at most 255 characters")),
    ({"external_subscription_id": "s" * 255}, (None, None)),
    # the first failing rule wins: the code before the timestamp
    ({"code_type": "NULL", "code": None, "timestamp_type": "VARCHAR", "timestamp_text": "yesterday", "parsed_at": None},
     ("missing_code", "field code: missing or empty")),
    ({"timestamp_type": "VARCHAR", "timestamp_text": "yesterday", "parsed_at": None},
     ("invalid_timestamp", "field timestamp: yesterday is neither Unix seconds nor ISO-8601 between 1970 and 2200")),
    # from 1970-01-01 00:00 (inclusive) to 2200-01-01 00:00 (exclusive)
    ({"parsed_at": dt.datetime(1970, 1, 1)}, (None, None)),
    ({"parsed_at": dt.datetime(1969, 12, 31, 23, 59, 59)}, ("invalid_timestamp", "field timestamp: 1791633600 is "
                                                            "neither Unix seconds nor ISO-8601 between 1970 and 2200")),
    ({"parsed_at": dt.datetime(2199, 12, 31, 23, 59, 59)}, (None, None)),
    ({"parsed_at": dt.datetime(2200, 1, 1)}, ("invalid_timestamp", "field timestamp: 1791633600 is "
                                              "neither Unix seconds nor ISO-8601 between 1970 and 2200")),
    # no timestamp, or a JSON null: the event takes its ingestion time (not rejected)
    ({"timestamp_type": "NULL", "timestamp_text": None, "parsed_at": None}, (None, None)),
    ({"properties_type": "ARRAY"}, ("invalid_properties", "field properties: not a JSON object")),
    ({"properties_type": "NULL"}, (None, None)),
])
def test_a_record_is_rejected_for_the_first_rule_it_fails_with_its_detail(changes, expected):
    assert _rejected(**changes) == expected
