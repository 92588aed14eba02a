"""Money: one rounding rule (half-up, ties away from zero), ISO 4217 exponents, deterministic ids."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from dagster_project.billing.money import (
    UnknownCurrency,
    currency_exponent,
    format_money,
    from_cents,
    round_half_up,
    stable_id,
    to_cents,
)


@pytest.mark.parametrize(
    ("amount", "exponent", "expected"),
    [
        ("2.345", 2, "2.35"),  # the tie goes up
        ("2.344", 2, "2.34"),  # below the tie goes down
        ("-2.345", 2, "-2.35"),  # ties go away from zero, not towards +infinity
        ("2.5", 0, "3"),  # not banker's rounding: half-even would give 2
        ("1.0005", 3, "1.001"),
        ("7", 2, "7.00"),
    ],
)
def test_round_half_up_rounds_ties_away_from_zero(amount, exponent, expected):
    result = round_half_up(Decimal(amount), exponent)
    assert result == Decimal(expected)
    assert str(result) == expected  # quantized to exactly `exponent` decimals


@pytest.mark.parametrize(("currency", "exponent"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3)])
def test_currency_exponent_follows_iso_4217(currency, exponent):
    assert currency_exponent(currency) == exponent


def test_an_unknown_currency_is_refused_with_key_error():
    with pytest.raises(KeyError):
        currency_exponent("XYZ")
    with pytest.raises(KeyError):
        to_cents(Decimal("1"), "XYZ")


def test_a_lowercase_currency_code_is_not_silently_accepted():
    with pytest.raises(KeyError):
        currency_exponent("usd")


@pytest.mark.parametrize(
    ("amount", "currency", "cents"),
    [
        ("2.005", "USD", 201),  # 2.005 -> 2.01 half-up -> 201 cents
        ("2.004", "USD", 200),
        ("1.5", "JPY", 2),  # 0 decimals: 1.5 -> 2 yen
        ("1.4", "JPY", 1),
        ("1.0005", "KWD", 1001),  # 3 decimals: 1.0005 -> 1.001 -> 1001 fils
        ("-2.345", "USD", -235),
        ("0", "USD", 0),
        ("1234567.891", "USD", 123456789),  # 1234567.891 -> 1234567.89 -> 123456789
    ],
)
def test_to_cents_rounds_half_up_to_the_currency_minor_unit(amount, currency, cents):
    result = to_cents(Decimal(amount), currency)
    assert result == cents
    assert type(result) is int


def test_two_point_zero_zero_five_dollars_is_two_hundred_and_one_cents():
    assert to_cents(Decimal("2.005"), "USD") == 201


def test_one_and_a_half_yen_is_two_yen():
    assert to_cents(Decimal("1.5"), "JPY") == 2


@pytest.mark.parametrize(
    ("cents", "currency", "amount"),
    [(201, "USD", "2.01"), (2, "JPY", "2"), (1001, "KWD", "1.001"), (-235, "USD", "-2.35")],
)
def test_from_cents_gives_back_the_exact_amount(cents, currency, amount):
    result = from_cents(cents, currency)
    assert isinstance(result, Decimal)
    assert result == Decimal(amount)


def test_stable_id_is_a_deterministic_uuid():
    first = stable_id("invoice", "acme", 2026, 10)
    # a literal, not a second call: the id must survive process restarts and machines
    assert first == str(uuid.uuid5(uuid.UUID("6f1c2a57-5b0e-4c7e-9a53-3d1c0de0b111"), "invoice\x1facme\x1f2026\x1f10"))
    assert uuid.UUID(first).version == 5


def test_stable_id_differs_by_kind_and_by_key():
    base = stable_id("invoice", "acme", "2026-10")
    assert stable_id("invoice", "acme", "2026-11") != base
    assert stable_id("invoice", "globex", "2026-10") != base
    assert stable_id("fee", "acme", "2026-10") != base


def test_stable_id_keeps_key_parts_apart():
    # ("ab", "c") and ("a", "bc") are different natural keys
    assert stable_id("k", "ab", "c") != stable_id("k", "a", "bc")
    assert stable_id("k", "a", "b") != stable_id("k", "ab")


@pytest.mark.parametrize(
    ("cents", "currency", "text"),
    [
        (123456, "USD", "1,234.56 USD"),  # 2 decimals: 123456 / 10^2 = 1234.56
        (190400, "EUR", "1,904.00 EUR"),  # 190400 / 10^2 = 1904, shown with both decimals
        (5, "EUR", "0.05 EUR"),  # below one unit: the leading zero is kept
        (150000, "JPY", "150,000 JPY"),  # 0 decimals: the minor unit is the yen itself
        (123456, "KRW", "123,456 KRW"),  # 0 decimals, like JPY (a "/ 100" would print 1,234.56)
        (123456, "KWD", "123.456 KWD"),  # 3 decimals: 123456 / 10^3 = 123.456 (fils)
        (1234567, "BHD", "1,234.567 BHD"),  # 3 decimals with a thousands separator
        (0, "USD", "0.00 USD"),
        (0, "KWD", "0.000 KWD"),
        (-235, "USD", "-2.35 USD"),  # a negative amount keeps its sign before the digits
        (-1500, "JPY", "-1,500 JPY"),
        (-1, "KWD", "-0.001 KWD"),
        (123456789012, "USD", "1,234,567,890.12 USD"),  # exact past a float's comfort: no binary rounding
    ],
)
def test_format_money_shows_minor_units_with_the_currency_exponent(cents, currency, text):
    assert format_money(cents, currency) == text


def test_format_money_is_exact_where_a_float_would_not_be():
    # 2**53 + 1 cents: a float division by 100 loses the last digit (…740993 -> …740992)
    assert format_money(9007199254740993, "USD") == "90,071,992,547,409.93 USD"


def test_format_money_refuses_an_unknown_currency_naming_it():
    with pytest.raises(UnknownCurrency, match=r"unknown currency 'XYZ'"):
        format_money(100, "XYZ")
    # still a KeyError, which the catalog and payment checks catch to name the file and field
    with pytest.raises(KeyError):
        format_money(100, "XYZ")
