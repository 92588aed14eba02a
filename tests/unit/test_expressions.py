"""Lago's billable-metric expressions (lago-expression's grammar): parsed at catalog read, evaluated
per event, exactly, in decimals. Every figure is worked out by hand in its comment."""

import datetime as dt
from decimal import Decimal as D

import pytest

from dagster_project.catalog.expressions import (
    EVALUATION_FAILED,
    Event,
    EvaluationError,
    ExpressionSyntaxError,
    as_text,
    evaluate_events,
    parse,
)

AT = dt.datetime(2026, 10, 1, 12, 0, 0, 750000)  # 1790856000.75 Unix seconds


def value(text, **properties):
    return parse(text).evaluate(Event("llm_tokens", AT, {k: str(v) for k, v in properties.items()}))


def test_cached_tokens_count_for_a_tenth_of_an_input_token():
    # 1000 + 333 * 0.1 = 1000 + 33.3 = 1033.3
    assert value("event.properties.input_tokens + event.properties.cached_tokens * 0.1",
                 input_tokens=1000, cached_tokens=333) == D("1033.3")


def test_multiplication_and_division_bind_tighter_than_addition_and_run_left_to_right():
    assert value("2 + 3 * 4") == 14            # 2 + 12
    assert value("(2 + 3) * 4") == 20
    assert value("12 / 4 / 3") == 1            # (12 / 4) / 3
    assert value("10 - 4 - 3") == 3            # (10 - 4) - 3
    assert value("-2 * 3 - 1") == -7           # (-2) * 3 - 1


def test_arithmetic_is_exact_in_decimals():
    # a binary float would give 0.30000000000000004
    assert value("event.properties.a + event.properties.b", a="0.1", b="0.2") == D("0.3")


def test_a_quotient_is_kept_to_twelve_places_half_up():
    assert value("2 / 3") == D("0.666666666667")   # 0.6666... rounded half-up at the 12th place
    assert value("1 / 3") == D("0.333333333333")


def test_round_ceil_and_floor_take_a_precision():
    assert value("round(event.properties.ms / 1000, 1)", ms=1250) == D("1.3")   # 1.25 half-up -> 1.3
    assert value("round(-1.25, 1)") == D("-1.3")   # half away from zero, as bigdecimal's HalfUp
    assert value("ceil(1.01)") == 2
    assert value("ceil(-1.5)") == -1               # towards +infinity
    assert value("floor(-1.5)") == -2              # towards -infinity
    assert value("floor(1.99, 1)") == D("1.9")
    assert value("ceil(1234.5, -2)") == 1300       # a negative precision rounds to hundreds
    assert value("ROUND(2.5)") == 3 and value("Floor(2.5)") == 2


def test_least_greatest_and_concat():
    assert value("least(3, event.properties.x, 2)", x="1.5") == D("1.5")
    assert value("greatest(3, event.properties.x, 2)", x="1.5") == 3
    assert value("concat(event.properties.user, '-', event.properties.app)", user="u1", app="a9") == "u1-a9"


def test_the_timestamp_is_whole_unix_seconds_and_the_code_is_text():
    # 2026-10-01T12:00:00.75Z is 1790856000.75 s; lago-api passes timestamp.to_i
    assert value("event.timestamp") == 1790856000
    assert value("event.timestamp / 60 - 29847600") == 0   # 1790856000 / 60 = 29847600
    assert value("concat(event.code, '!')") == "llm_tokens!"


def test_a_property_written_as_a_number_in_text_is_a_number():
    assert value("event.properties.a * 2", a="1.5e2") == 300   # 150 * 2


@pytest.mark.parametrize(("text", "field", "message"), [
    ("event.properties.input_tokens + 1", "properties.input_tokens", "missing"),
    ("event.properties.model * 2", "properties.model", "'gpt' is not a number"),
    ("event.properties.tokens / (event.properties.tokens - 5)", "expression", "division by zero"),
])
def test_an_event_it_cannot_be_evaluated_on_names_the_field_and_what_is_wrong(text, field, message):
    with pytest.raises(EvaluationError) as raised:
        value(text, model="gpt", tokens=5)
    assert (raised.value.field, str(raised.value)) == (field, message)


@pytest.mark.parametrize(("text", "message"), [
    ("", "the expression is empty"),
    ("event.properties.a +", "the expression ends where a value is expected"),
    ("sqrt(4)", "unknown name 'sqrt' at position 1 (functions: round, ceil, floor, least, greatest, concat)"),
    ("event.props.a", "unknown variable 'event.props.a' at position 1 (event.properties.NAME, event.timestamp or event.code)"),
    ("round(1, 2, 3)", "round() takes a value and an optional precision, not 3 arguments (position 1)"),
    ("(1 + 2", "expected ')', found the end"),
    ("1 +\t2", "unexpected character '\\t' at position 4"),
    ("--1", "unexpected '-' at position 2"),
    ("rOUND(1)", "unknown name 'rOUND' at position 1 (functions: round, ceil, floor, least, greatest, concat)"),
    ("1 2", "unexpected '2' at position 3"),
    (".5 + 1", "malformed number '.5' at position 1 (digits, then an optional fraction)"),
    ("1.1.1", "malformed number '1.1.1' at position 1 (digits, then an optional fraction)"),
])
def test_an_expression_lago_would_not_parse_is_refused_with_what_is_wrong(text, message):
    with pytest.raises(ExpressionSyntaxError) as raised:
        parse(text)
    assert str(raised.value) == message


def test_the_properties_an_expression_reads():
    assert parse("round(event.properties.b * event.properties.a + event.timestamp, 2)").property_names == ["a", "b"]


def test_a_value_becomes_property_text_in_plain_digits():
    assert [as_text(v) for v in (D("1.2E+3"), D("0.500000000000"), D("-0"), D("7"))] == ["1200", "0.5", "0", "7"]


def test_events_are_evaluated_or_marked_for_the_quarantine():
    expressions = {"llm_tokens": ("billable_tokens", "event.properties.input + event.properties.cached * 0.1")}
    results = evaluate_events([
        ("llm_tokens", AT, {"input": "100", "cached": "50"}),   # 100 + 5 = 105
        ("llm_tokens", AT, {"input": "100", "cached": None}),
    ], expressions)
    assert results == [
        ("105", None, None),
        (None, EVALUATION_FAILED, "field properties.cached: missing (expression of metric 'llm_tokens': "
                                  "event.properties.input + event.properties.cached * 0.1)"),
    ]
