"""The quarantine rules of the event loader, written once for both readers of the landing files.

Each rule is a reason (`raw.events.load_error`), the SQL predicate that rejects a record for it and
the SQL of its detail (`load_error_detail`); the first rule that holds wins. The predicates read the
columns each reader computes for an event, the same on both engines:

- `line_error`: set while reading the line (`invalid_utf8`, `invalid_json`, `empty_batch`);
- `ev_type`, `<field>_type` (each id field), `timestamp_type`, `properties_type`: the JSON type of
  the event and of its fields, in DuckDB's `json_type` names (`OBJECT`, `ARRAY`, `VARCHAR`,
  `BIGINT`, `UBIGINT`, `DOUBLE`, `BOOLEAN`, `NULL`; NULL when the field is absent);
- `<field>`, `timestamp_text`: the field's value as text;
- `parsed_at`: the timestamp read from it (NULL when it cannot be read).

The SQL is the subset DuckDB and Spark 4 spell alike (`case`, `is distinct from`, `in`, `trim`,
`length`, `like`, `substr`, `||`, typed literals), so DuckDB's loader (`ingest/events.py`) and Spark's
(`ingest/spark_reader.py`) render the same text.
"""

from __future__ import annotations

from dataclasses import dataclass

ID_FIELDS = ("transaction_id", "code", "external_subscription_id")
MAX_ID_LENGTH = 255
ID_TYPES = ("VARCHAR", "BIGINT", "UBIGINT")  # an id may be a JSON string or integer
# Timestamps are accepted from 1970 (inclusive) to 2200 (exclusive).
EARLIEST, LATEST = "1970-01-01", "2200-01-01"


@dataclass(frozen=True)
class Rule:
    reason: str
    when: str | None  # None: set by the reader from the line itself (`line_error`)
    detail: str


def _id_rules(field: str) -> tuple[Rule, Rule]:
    return (
        Rule(f"missing_{field}", f"{field}_type is null or {field}_type = 'NULL' or trim({field}) = ''",
             f"'field {field}: missing or empty'"),
        Rule(f"invalid_{field}",
             f"{field}_type not in ({', '.join(repr(t) for t in ID_TYPES)}) or length({field}) > {MAX_ID_LENGTH}",
             f"'field {field}: not a string of at most {MAX_ID_LENGTH} characters'"),
    )


RULES: tuple[Rule, ...] = (
    Rule("invalid_utf8", None, "'the line is not valid UTF-8'"),
    Rule("invalid_json", None, "'the line is not valid JSON'"),
    Rule("empty_batch", None, "'field events: an empty batch'"),
    Rule("not_an_event_object", "ev_type is distinct from 'OBJECT'", "'the event is not a JSON object'"),
    *(rule for field in ID_FIELDS for rule in _id_rules(field)),
    Rule("invalid_timestamp",
         f"timestamp_type is not null and timestamp_type <> 'NULL' and (parsed_at is null "
         f"or parsed_at < timestamp '{EARLIEST}' or parsed_at >= timestamp '{LATEST}')",
         "'field timestamp: ' || coalesce(timestamp_text, '') || ' is neither Unix seconds nor ISO-8601 between 1970 and 2200'"),
    Rule("invalid_properties", "properties_type is not null and properties_type not in ('OBJECT', 'NULL')",
         "'field properties: not a JSON object'"),
)


def load_error_sql() -> str:
    """The reason a record is rejected at load (NULL: it is not), as one SQL CASE."""
    whens = "\n            ".join(f"when {r.when} then '{r.reason}'" for r in RULES if r.when is not None)
    return f"case\n            when line_error is not null then line_error\n            {whens}\n        end"


def load_error_detail_sql() -> str:
    """What is wrong, in words, from `load_error` and the record's columns, as one SQL CASE."""
    whens = "\n        ".join(f"when '{r.reason}' then {r.detail}" for r in RULES)
    return f"case load_error\n        {whens}\n    end"
