"""Charge models over polars frames of exact decimals: package and standard, then cents.

Figures are worked by hand in the comments; a hypothesis property checks package pricing against a
plain-Python `Decimal` reference.
"""

from __future__ import annotations

import decimal
from decimal import ROUND_CEILING, Decimal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagster_project.billing import charge_models
from dagster_project.billing.charge_models import MONEY, amount_cents, precise_amount, property_columns

D = Decimal
M = D(1_000_000)


def buckets(rows: list[tuple]) -> pl.DataFrame:
    """Rows of (units, charge_model, amount, package_size, free_units); None is a missing property."""
    return pl.DataFrame(
        {
            "units": [r[0] for r in rows],
            "charge_model": [r[1] for r in rows],
            "p_amount": [r[2] for r in rows],
            "p_package_size": [r[3] for r in rows],
            "p_free_units": [r[4] for r in rows],
        },
        schema={
            "units": MONEY,
            "charge_model": pl.String,
            "p_amount": MONEY,
            "p_package_size": MONEY,
            "p_free_units": MONEY,
        },
    )


def priced(rows: list[tuple], exponent: int = 2) -> tuple[list[Decimal], list[int]]:
    precise = precise_amount(buckets(rows))
    cents = pl.DataFrame({"p": precise}).select(amount_cents(pl.col("p"), pl.lit(exponent))).to_series()
    return precise.to_list(), cents.to_list()


def one(units, model, amount=None, size=None, free=None, exponent=2) -> tuple[Decimal, int]:
    precise, cents = priced([(units, model, amount, size, free)], exponent)
    return precise[0], cents[0]


PACKAGE_CASES = [
    # id, units, amount, package_size, free_units, precise, cents
    # 2,000,000 / 1,000,000 = 2 packages * 1 = 2 USD -> 200 cents (the seed's Mistral figure)
    ("two_million_tokens_are_two_packages", D(2_000_000), D(1), M, D(0), D(2), 200),
    # 2,000,001 / 1,000,000 = 2.000001 -> ceil 3 packages * 1 = 3 USD
    ("one_token_more_starts_a_third_package", D(2_000_001), D(1), M, D(0), D(3), 300),
    # 0 units -> 0 packages
    ("zero_units_cost_nothing", D(0), D(1), M, D(0), D(0), 0),
    # max(400,000 - 500,000, 0) = 0 -> 0 packages
    ("free_units_larger_than_usage_cost_nothing", D(400_000), D(1), M, D(500_000), D(0), 0),
    # 1,500,001 - 500,000 = 1,000,001 -> ceil(1.000001) = 2 packages * 1 = 2
    ("free_units_are_taken_off_before_packaging", D(1_500_001), D(1), M, D(500_000), D(2), 200),
    # 0.5 / 1,000,000 -> ceil = 1 package * 1 = 1
    ("half_a_unit_starts_a_package", D("0.5"), D(1), M, D(0), D(1), 100),
    # free_units absent counts as 0: 3,000,000 / 1,000,000 = 3 * 2.7 = 8.1
    ("missing_free_units_count_as_zero", D(3_000_000), D("2.7"), M, None, D("8.1"), 810),
    # 1e-12 / 3 is a remainder too small for a 12-decimal quotient: still ceil -> 1 package * 4
    ("a_remainder_below_the_decimal_scale_still_starts_a_package", D("0.000000000001"), D(4), D(3), D(0), D(4), 400),
    # 7 / 2.5 = 2.8 -> 3 packages * 0.335 = 1.005 -> 101 cents half-up
    ("fractional_package_size_and_price", D(7), D("0.335"), D("2.5"), D(0), D("1.005"), 101),
]


@pytest.mark.parametrize(
    ("units", "amount", "size", "free", "precise", "cents"),
    [case[1:] for case in PACKAGE_CASES],
    ids=[case[0] for case in PACKAGE_CASES],
)
def test_package_pricing(units, amount, size, free, precise, cents):
    assert one(units, "package", amount, size, free) == (precise, cents)


def test_two_million_small_input_tokens_cost_two_dollars():
    # the seed: 2,000,000 tokens, amount "1" per package of 1,000,000 -> 2 * 1 = 2.00 USD
    props = property_columns('{"amount": "1", "free_units": 0, "package_size": 1000000}')
    precise, cents = one(D(2_000_000), "package", props["p_amount"], props["p_package_size"], props["p_free_units"])
    assert precise == D(2)
    assert cents == 200


def test_standard_pricing_rounds_the_fee_half_up_once():
    # 5 * 0.335 = 1.675 USD unrounded -> 1.68 half-up -> 168 cents
    assert one(D(5), "standard", D("0.335")) == (D("1.675"), 168)


def test_standard_pricing_of_fractional_units_is_exact():
    # 0.1 + 0.2 style trap: 3 * 0.1 = 0.3 exactly, 30 cents (a float would give 0.30000000000000004)
    assert one(D(3), "standard", D("0.1")) == (D("0.3"), 30)


def test_per_token_prices_keep_their_decimals():
    # 1,234,567 tokens * 0.0000027 USD = 3.3333309 USD -> 333 cents
    assert one(D(1_234_567), "standard", D("0.0000027")) == (D("3.3333309"), 333)


@pytest.mark.parametrize("model", ["standard", "package"])
def test_a_bucket_with_no_properties_has_no_amount(model):
    # a default bucket of a charge without properties: units but no price -> 0
    assert one(D(2_000_000), model) == (D(0), 0)


@pytest.mark.parametrize(
    ("model", "size"), [("standard", None), ("package", M)]
)
def test_negative_units_cost_nothing(model, size):
    # standard: -5 * 1 = -5 -> 0; package: max(-5,000,000 - 0, 0) = 0 -> 0
    assert one(D(-5_000_000), model, D(1), size, D(0)) == (D(0), 0)


@pytest.mark.parametrize(
    ("model", "size"), [("standard", None), ("package", M)]
)
def test_negative_prices_cost_nothing(model, size):
    # standard: 2,000,000 * -1 < 0 -> 0; package: 2 packages * -1 = -2 -> 0
    assert one(D(2_000_000), model, D(-1), size, D(0)) == (D(0), 0)


def test_an_unknown_charge_model_has_no_amount():
    assert one(D(10), "graduated", D(1)) == (D(0), 0)


def test_a_frame_mixing_models_prices_each_row_by_its_own_model():
    precise, cents = priced(
        [
            (D(2_000_000), "package", D(3), M, D(0)),  # 2 packages * 3 = 6
            (D(5), "standard", D("0.335"), None, None),  # 1.675
            (D(1), "package", None, None, None),  # no properties: 0
        ]
    )
    assert precise == [D(6), D("1.675"), D(0)]
    assert cents == [600, 168, 0]


def test_precise_amount_is_a_polars_decimal_never_a_float():
    series = precise_amount(buckets([(D(5), "standard", D("0.335"), None, None)]))
    assert isinstance(series.dtype, pl.Decimal)
    assert not series.dtype.is_float()
    assert series.dtype == MONEY
    assert series.name == "precise_amount"


def test_precise_amount_reads_float_columns_as_decimals():
    # even if a caller hands float columns, the result is Decimal: 5 * 0.5 = 2.5 exactly
    frame = pl.DataFrame(
        {"units": [5.0], "charge_model": ["standard"], "p_amount": [0.5], "p_package_size": [None], "p_free_units": [None]},
        schema={"units": pl.Float64, "charge_model": pl.String, "p_amount": pl.Float64,
                "p_package_size": pl.Float64, "p_free_units": pl.Float64},
    )
    series = precise_amount(frame)
    assert isinstance(series.dtype, pl.Decimal)
    assert series.to_list() == [D("2.5")]


@pytest.mark.parametrize(
    ("precise", "exponent", "cents"),
    [
        (D("2.005"), 2, 201),  # USD: 2.005 -> 2.01
        (D("2.004"), 2, 200),
        (D("1.5"), 0, 2),  # JPY: 1.5 -> 2
        (D("1.0005"), 3, 1001),  # KWD: 1.0005 -> 1.001 -> 1001
        (D("0.000000000001"), 2, 0),
        (D("12345.675"), 2, 1234568),  # 12345.675 -> 12345.68
    ],
)
def test_amount_cents_rounds_half_up_to_the_currency_exponent(precise, exponent, cents):
    frame = pl.DataFrame({"p": [precise]}, schema={"p": MONEY})
    result = frame.select(amount_cents(pl.col("p"), pl.lit(exponent))).to_series()
    assert result.dtype == pl.Int64
    assert result.to_list() == [cents]


@pytest.mark.parametrize(
    ("properties_json", "expected"),
    [
        ('{"amount": "2.7", "package_size": 1000000, "free_units": 0}', {"p_amount": D("2.7"), "p_package_size": D(1_000_000), "p_free_units": D(0)}),
        ('{"amount": 2.7}', {"p_amount": D("2.7"), "p_package_size": None, "p_free_units": None}),
        ('{"amount": 27e-1}', {"p_amount": D("2.7"), "p_package_size": None, "p_free_units": None}),
        ('{"amount": ""}', {"p_amount": None, "p_package_size": None, "p_free_units": None}),
        (None, {"p_amount": None, "p_package_size": None, "p_free_units": None}),
    ],
)
def test_property_columns_read_prices_as_exact_decimals(properties_json, expected):
    columns = property_columns(properties_json)
    assert {k: columns[k] for k in expected} == expected
    assert all(columns[k] is None for k in columns.keys() - expected.keys())  # properties not given
    assert all(v is None or isinstance(v, Decimal) for v in columns.values())


# --- property: polars package pricing equals a plain-Python Decimal reference --------------------


def reference_package(units: Decimal, amount: Decimal, size: Decimal, free: Decimal) -> Decimal:
    """ceil(max(u - free, 0) / size) * amount, with a context wide enough to be exact."""
    with decimal.localcontext() as ctx:
        ctx.prec = 80
        paid = max(units - free, D(0))
        packages = (paid / size).to_integral_value(rounding=ROUND_CEILING)
        return max(packages * amount, D(0))


def decimals(max_value: int, places: int, min_value: int = 0) -> st.SearchStrategy[Decimal]:
    return st.one_of(
        st.integers(min_value, max_value).map(Decimal),
        st.decimals(min_value=min_value, max_value=max_value, places=places, allow_nan=False, allow_infinity=False),
    )


package_rows = st.tuples(
    decimals(10**12, 6, min_value=-1000),  # units: integers or 6-decimal fractions, a few negative
    decimals(10_000, 6),  # amount per package
    decimals(10**7, 4).filter(lambda d: d > 0),  # package size
    decimals(10**7, 4),  # free units
)


@settings(max_examples=60, deadline=None)
@given(st.lists(package_rows, min_size=1, max_size=20))
def test_package_pricing_in_polars_matches_a_decimal_reference(rows):
    precise = precise_amount(buckets([(u, "package", a, s, f) for u, a, s, f in rows])).to_list()
    expected = [reference_package(u, a, s, f) for u, a, s, f in rows]
    assert precise == expected
