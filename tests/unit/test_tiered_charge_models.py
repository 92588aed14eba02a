"""Tiered charge models (graduated, volume, graduated_percentage) over polars frames, and how a
percentage bucket takes its amount from its events (priced in `event_pricing`, tested there).

Rules (docs "Charges and charge filters", as implemented in `charge_models`):
- graduated: sum over every tier reached of `units_in_tier * per_unit_amount + flat_amount`; a tier's
  lower bound is the previous tier's `to_value` (`0-10, 11-20, 21-` and `0-10, 10-20, 20-` alike;
  `0-0.1, 0.1-1, 1-` puts (0.1, 1] in the second tier); the first tier is always reached, so zero
  units still pay its flat amount; the last tier has `to_value: null`.
- volume: the single tier `u` falls in (first tier includes 0, else `prev_to < u <= to`):
  `u * per_unit_amount + flat_amount`.
- graduated_percentage: as graduated, with `units_in_tier * rate / 100 + flat_amount`.
- percentage: the sum of the bucket's events' amounts (`bounded_amount`), 0 without events.
- Negative results become 0; amounts are exact polars Decimal(38, 12); cents half-up.

Figures in the tables are worked by hand in the comments; hypothesis properties compare the polars
expressions with a plain-Python row-by-row `Decimal` reference written here from the rules above.
"""

from __future__ import annotations

import decimal
import json
from decimal import ROUND_HALF_UP, Decimal

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagster_project.billing import charge_models
from dagster_project.billing.charge_models import (
    MONEY,
    PROPERTY_COLUMNS,
    TIER_KEYS,
    TIER_SCHEMA,
    amount_cents,
    precise_amount,
    tier_frame,
    tiers,
)

D = Decimal


# --- frame helpers --------------------------------------------------------------------------------


def bucket_frame(rows: list[dict]) -> pl.DataFrame:
    """One bucket per dict: `units`, `charge_model`, optional `events_count`, `bounded_amount` (a
    percentage bucket's events' amounts) and `p_*` (None: absent)."""
    data = {
        "units": [r["units"] for r in rows],
        "charge_model": [r["charge_model"] for r in rows],
        "events_count": [r.get("events_count", 0) for r in rows],
        "bounded_amount": [r.get("bounded_amount") for r in rows],
        **{col: [r.get(col) for r in rows] for col in PROPERTY_COLUMNS},
    }
    schema = {"units": MONEY, "charge_model": pl.String, "events_count": pl.Int64, "bounded_amount": MONEY,
              **{col: MONEY for col in PROPERTY_COLUMNS}}
    return pl.DataFrame(data, schema=schema)


def price(rows: list[dict], exponent: int = 2) -> tuple[pl.Series, list[int]]:
    """precise_amount (the Series) and amount_cents of every row; tiered rows carry `properties`."""
    frame = bucket_frame(rows)
    tier_rows = tier_frame([r.get("properties") for r in rows], [r["charge_model"] for r in rows])
    precise = precise_amount(frame, tier_rows)
    cents = pl.DataFrame({"p": precise}).select(amount_cents(pl.col("p"), pl.lit(exponent))).to_series()
    return precise, cents.to_list()


def one(units, model: str, properties: str | None = None, **p) -> tuple[Decimal, int]:
    precise, cents = price([{"units": units, "charge_model": model, "properties": properties, **p}])
    return precise.to_list()[0], cents[0]


def ranges_json(model: str, ranges: list[tuple]) -> str:
    """`ranges` as (from_value, to_value, per_unit_amount_or_rate, flat_amount) raw JSON texts."""
    price_key = "rate" if model == "graduated_percentage" else "per_unit_amount"
    body = ", ".join(
        f'{{"from_value": {lo}, "to_value": {hi}, "{price_key}": {pu}, "flat_amount": {flat}}}'
        for lo, hi, pu, flat in ranges
    )
    return f'{{"{TIER_KEYS[model]}": [{body}]}}'


# Three ways to write the same integer tiers: Lago's `0-10, 11-20, 21-`, adjacent `0-10, 10-20, 20-`,
# and prices as JSON numbers instead of strings. Tier 1: 2/unit + 10 flat; tier 2: 1.5/unit + 5 flat;
# tier 3: 0.5/unit + 1 flat.
LAGO_BOUNDS = [(0, 10, '"2"', '"10"'), (11, 20, '"1.5"', '"5"'), (21, "null", '"0.5"', '"1"')]
ADJACENT_BOUNDS = [(0, 10, '"2"', '"10"'), (10, 20, '"1.5"', '"5"'), (20, "null", '"0.5"', '"1"')]
NUMERIC_PRICES = [(0, 10, 2, 10), (11, 20, 1.5, 5), (21, "null", 0.5, 1)]
INTEGER_BOUND_STYLES = {"lago_0-10_11-20_21-": LAGO_BOUNDS, "adjacent_0-10_10-20_20-": ADJACENT_BOUNDS,
                        "json_number_prices": NUMERIC_PRICES}

# Decimal bounds `0-0.1, 0.1-1, 1-`. Tier 1: 10/unit + 0.5 flat; tier 2: 4/unit + 0.25; tier 3: 1/unit + 0.
DECIMAL_BOUNDS = [(0, 0.1, '"10"', '"0.5"'), (0.1, 1, '"4"', '"0.25"'), (1, "null", '"1"', '"0"')]


# --- tiers(): both ways of writing bounds --------------------------------------------------------


@pytest.mark.parametrize("style", list(INTEGER_BOUND_STYLES), ids=list(INTEGER_BOUND_STYLES))
def test_tiers_take_the_lower_bound_from_the_previous_to_value(style):
    rows = tiers(ranges_json("graduated", INTEGER_BOUND_STYLES[style]), "graduated")
    assert [(r["tier_index"], r["lower"], r["upper"]) for r in rows] == [
        (0, D(0), D(10)), (1, D(10), D(20)), (2, D(20), None)
    ]
    assert [(r["per_unit_amount"], r["flat_amount"]) for r in rows] == [
        (D(2), D(10)), (D("1.5"), D(5)), (D("0.5"), D(1))
    ]
    assert all(isinstance(v, Decimal) for r in rows for k, v in r.items() if k != "tier_index" and v is not None)


def test_decimal_bounds_are_read_exactly_not_as_floats():
    rows = tiers(ranges_json("volume", DECIMAL_BOUNDS), "volume")
    # 0.1 as a JSON number must be Decimal("0.1"), not 0.1000000000000000055511151231257827
    assert [(r["lower"], r["upper"]) for r in rows] == [(D(0), D("0.1")), (D("0.1"), D(1)), (D(1), None)]


def test_tier_frame_has_one_row_per_tiered_bucket_and_range():
    props = [ranges_json("graduated", LAGO_BOUNDS), '{"amount": "1"}', None, ranges_json("volume", DECIMAL_BOUNDS)]
    frame = tier_frame(props, ["graduated", "standard", "graduated", "volume"])
    assert frame.schema == pl.Schema(TIER_SCHEMA)
    # bucket 0: 3 ranges; bucket 1 is standard (no ranges); bucket 2 has no properties; bucket 3: 3 ranges
    assert frame["bucket_index"].to_list() == [0, 0, 0, 3, 3, 3]
    assert frame["tier_index"].to_list() == [0, 1, 2, 0, 1, 2]


# --- graduated -----------------------------------------------------------------------------------

GRADUATED_CASES = [
    # id, units, precise, cents
    # 0 units: tier 1 is always reached -> 0 * 2 + 10 flat = 10
    ("zero_units_pay_the_first_flat_amount", D(0), D(10), 1000),
    # 1 * 2 + 10 = 12
    ("one_unit", D(1), D(12), 1200),
    # 5.25 * 2 + 10 = 20.5
    ("fractional_units_in_the_first_tier", D("5.25"), D("20.5"), 2050),
    # exactly 10: 10 * 2 + 10 = 30; tier 2 not reached (10 > 10 is false), no flat 5
    ("exactly_the_first_bound", D(10), D(30), 3000),
    # 10.000001: 30 + 0.000001 * 1.5 + 5 = 35.0000015 -> 3500 cents
    ("a_millionth_over_the_first_bound", D("10.000001"), D("35.0000015"), 3500),
    # 11: 30 + (11 - 10) * 1.5 + 5 = 36.5
    ("eleven_is_one_unit_into_the_second_tier", D(11), D("36.5"), 3650),
    # 20: 30 + 10 * 1.5 + 5 = 50; tier 3 not reached
    ("exactly_the_second_bound", D(20), D(50), 5000),
    # 20.5: 50 + 0.5 * 0.5 + 1 = 51.25
    ("half_a_unit_into_the_last_tier", D("20.5"), D("51.25"), 5125),
    # 21: 50 + 1 * 0.5 + 1 = 51.5
    ("twenty_one_is_one_unit_into_the_last_tier", D(21), D("51.5"), 5150),
    # 100: 50 + 80 * 0.5 + 1 = 91
    ("far_into_the_unbounded_tier", D(100), D(91), 9100),
]


@pytest.mark.parametrize("style", list(INTEGER_BOUND_STYLES))
@pytest.mark.parametrize(
    ("units", "precise", "cents"), [c[1:] for c in GRADUATED_CASES], ids=[c[0] for c in GRADUATED_CASES]
)
def test_graduated_integer_bounds(style, units, precise, cents):
    assert one(units, "graduated", ranges_json("graduated", INTEGER_BOUND_STYLES[style])) == (precise, cents)


GRADUATED_DECIMAL_CASES = [
    # 0 -> tier 1 flat 0.5
    ("zero_units", D(0), D("0.5"), 50),
    # 0.05 * 10 + 0.5 = 1.0
    ("inside_the_first_tier", D("0.05"), D("1.0"), 100),
    # 0.1 * 10 + 0.5 = 1.5; tier 2 not reached
    ("exactly_0.1", D("0.1"), D("1.5"), 150),
    # 1.5 + 0.000001 * 4 + 0.25 = 1.750004 -> 175 cents
    ("just_over_0.1", D("0.100001"), D("1.750004"), 175),
    # 1.5 + (1 - 0.1) * 4 + 0.25 = 1.5 + 3.6 + 0.25 = 5.35
    ("exactly_1", D(1), D("5.35"), 535),
    # 5.35 + 1.5 * 1 + 0 = 6.85
    ("into_the_last_tier", D("2.5"), D("6.85"), 685),
]


@pytest.mark.parametrize(
    ("units", "precise", "cents"), [c[1:] for c in GRADUATED_DECIMAL_CASES],
    ids=[c[0] for c in GRADUATED_DECIMAL_CASES],
)
def test_graduated_decimal_bounds(units, precise, cents):
    assert one(units, "graduated", ranges_json("graduated", DECIMAL_BOUNDS)) == (precise, cents)


def test_graduated_rounds_cents_half_up_once_on_the_total():
    # tiers 0-10 at 0.333 + 0, 10- at 0.001 + 0: 10 * 0.333 + 5 * 0.001 = 3.33 + 0.005 = 3.335 -> 334
    props = ranges_json("graduated", [(0, 10, '"0.333"', '"0"'), (10, "null", '"0.001"', '"0"')])
    assert one(D(15), "graduated", props) == (D("3.335"), 334)


def test_graduated_negative_total_becomes_zero():
    # 0-10 at -5/unit + 1 flat: 10 * -5 + 1 = -49 -> 0
    props = ranges_json("graduated", [(0, 10, '"-5"', '"1"'), (11, "null", '"1"', '"0"')])
    assert one(D(10), "graduated", props) == (D(0), 0)


def test_graduated_negative_units_pay_only_the_first_flat_amount():
    # negative units count as 0 units: nothing in any tier, tier 1 flat 10 -> 10
    assert one(D(-5), "graduated", ranges_json("graduated", LAGO_BOUNDS)) == (D(10), 1000)


# --- volume --------------------------------------------------------------------------------------

VOLUME_CASES = [
    # 0 falls in tier 1: 0 * 2 + 10 = 10
    ("zero_units_fall_in_the_first_tier", D(0), D(10), 1000),
    # 10 * 2 + 10 = 30
    ("exactly_10_is_the_first_tier", D(10), D(30), 3000),
    # 10.000001 is tier 2: 10.000001 * 1.5 + 5 = 15.0000015 + 5 = 20.0000015 -> 2000
    ("a_millionth_over_10_is_the_second_tier", D("10.000001"), D("20.0000015"), 2000),
    # 11 * 1.5 + 5 = 21.5
    ("eleven_is_the_second_tier", D(11), D("21.5"), 2150),
    # 20 * 1.5 + 5 = 35
    ("exactly_20_is_the_second_tier", D(20), D(35), 3500),
    # 20.5 * 0.5 + 1 = 11.25
    ("twenty_and_a_half_is_the_last_tier", D("20.5"), D("11.25"), 1125),
    # 21 * 0.5 + 1 = 11.5
    ("twenty_one_is_the_last_tier", D(21), D("11.5"), 1150),
    # 100 * 0.5 + 1 = 51
    ("far_into_the_last_tier", D(100), D(51), 5100),
]


@pytest.mark.parametrize("style", list(INTEGER_BOUND_STYLES))
@pytest.mark.parametrize(
    ("units", "precise", "cents"), [c[1:] for c in VOLUME_CASES], ids=[c[0] for c in VOLUME_CASES]
)
def test_volume_integer_bounds(style, units, precise, cents):
    assert one(units, "volume", ranges_json("volume", INTEGER_BOUND_STYLES[style])) == (precise, cents)


VOLUME_DECIMAL_CASES = [
    # 0 * 10 + 0.5 = 0.5
    ("zero_units", D(0), D("0.5"), 50),
    # 0.1 * 10 + 0.5 = 1.5 (0.1 is in the first tier)
    ("exactly_0.1", D("0.1"), D("1.5"), 150),
    # 0.100001 * 4 + 0.25 = 0.400004 + 0.25 = 0.650004 -> 65
    ("just_over_0.1", D("0.100001"), D("0.650004"), 65),
    # 1 * 4 + 0.25 = 4.25 (1 is in the second tier)
    ("exactly_1", D(1), D("4.25"), 425),
    # 1.000001 * 1 + 0 = 1.000001 -> 100
    ("just_over_1", D("1.000001"), D("1.000001"), 100),
]


@pytest.mark.parametrize(
    ("units", "precise", "cents"), [c[1:] for c in VOLUME_DECIMAL_CASES], ids=[c[0] for c in VOLUME_DECIMAL_CASES]
)
def test_volume_decimal_bounds(units, precise, cents):
    assert one(units, "volume", ranges_json("volume", DECIMAL_BOUNDS)) == (precise, cents)


def test_volume_negative_total_becomes_zero():
    # 5 * -3 + 2 = -13 -> 0
    props = ranges_json("volume", [(0, 10, '"-3"', '"2"'), (11, "null", '"1"', '"0"')])
    assert one(D(5), "volume", props) == (D(0), 0)


@pytest.mark.parametrize(("units", "expected"), [(D(-5), D(10)), (D(-20), D(10))])
def test_volume_negative_units_count_as_zero_units(units, expected):
    props = ranges_json("volume", [(0, 10, '"1"', '"10"'), (11, "null", '"0.5"', '"0"')])
    assert one(units, "volume", props)[0] == expected


# --- graduated_percentage -------------------------------------------------------------------------

# Tier 1: 0-10 at 1 % + 0.5 flat; tier 2: 11-20 at 0.5 % + 0.25 flat; tier 3: 21- at 0.25 % + 0 flat.
GP_TIERS = [(0, 10, '"1"', '"0.5"'), (11, 20, '"0.5"', '"0.25"'), (21, "null", '"0.25"', '"0"')]
GRADUATED_PERCENTAGE_CASES = [
    # 0 units: tier 1 flat 0.5
    ("zero_units_pay_the_first_flat_amount", D(0), D("0.5"), 50),
    # 10 * 1 / 100 + 0.5 = 0.6
    ("exactly_the_first_bound", D(10), D("0.6"), 60),
    # 0.6 + 1 * 0.5 / 100 + 0.25 = 0.6 + 0.005 + 0.25 = 0.855 -> 85.5 cents half-up 86
    ("eleven_rounds_half_up", D(11), D("0.855"), 86),
    # 0.6 + 5.5 * 0.5 / 100 + 0.25 = 0.6 + 0.0275 + 0.25 = 0.8775 -> 88
    ("fractional_units_in_the_second_tier", D("15.5"), D("0.8775"), 88),
    # 0.6 + 10 * 0.5 / 100 + 0.25 = 0.9
    ("exactly_the_second_bound", D(20), D("0.9"), 90),
    # 0.9 + 980 * 0.25 / 100 + 0 = 0.9 + 2.45 = 3.35
    ("far_into_the_last_tier", D(1000), D("3.35"), 335),
]


@pytest.mark.parametrize(
    ("units", "precise", "cents"), [c[1:] for c in GRADUATED_PERCENTAGE_CASES],
    ids=[c[0] for c in GRADUATED_PERCENTAGE_CASES],
)
def test_graduated_percentage(units, precise, cents):
    assert one(units, "graduated_percentage", ranges_json("graduated_percentage", GP_TIERS)) == (precise, cents)


def test_graduated_percentage_does_not_read_per_unit_amount():
    # a per_unit_amount on a graduated_percentage range is not the rate: rate absent -> 0 %, flat 1 -> 1
    props = '{"graduated_percentage_ranges": [{"from_value": 0, "to_value": null, "per_unit_amount": "5", "flat_amount": "1"}]}'
    assert one(D(100), "graduated_percentage", props) == (D(1), 100)


# --- percentage ----------------------------------------------------------------------------------

def test_a_percentage_bucket_costs_what_its_events_cost():
    # the events' amounts, summed in event_pricing: 26.005 -> 2601 cents half-up; the units, events
    # and properties are not priced again
    assert one(D(1000), "percentage", events_count=10, p_rate=D("2.5"), p_fixed_amount=D("0.1"),
               bounded_amount=D("26.005")) == (D("26.005"), 2601)


def test_a_percentage_bucket_without_priced_events_costs_nothing():
    # usage carried over without events of its own (a recurring metric): no transaction, no amount
    assert one(D(1000), "percentage", events_count=0, p_rate=D("2.5"), p_fixed_amount=D("0.1")) == (D(0), 0)


# --- frames mixing models ------------------------------------------------------------------------


def test_a_frame_mixing_models_prices_each_row_with_its_own_ranges():
    precise, cents = price([
        {"units": D(11), "charge_model": "graduated", "properties": ranges_json("graduated", LAGO_BOUNDS)},  # 36.5
        {"units": D(5), "charge_model": "standard", "p_amount": D("0.335")},  # 5 * 0.335 = 1.675
        {"units": D(11), "charge_model": "volume", "properties": ranges_json("volume", LAGO_BOUNDS)},  # 21.5
        {"units": D(7), "charge_model": "graduated", "properties": None},  # default bucket, no properties: 0
        {"units": D(1000), "charge_model": "percentage", "events_count": 10,
         "p_rate": D("2.5"), "p_fixed_amount": D("0.1"), "bounded_amount": D(26)},  # its events' 26
        {"units": D(11), "charge_model": "graduated_percentage",
         "properties": ranges_json("graduated_percentage", GP_TIERS)},  # 0.855
        {"units": D("0.1"), "charge_model": "volume", "properties": ranges_json("volume", DECIMAL_BOUNDS)},  # 1.5
    ])
    assert precise.to_list() == [D("36.5"), D("1.675"), D("21.5"), D(0), D(26), D("0.855"), D("1.5")]
    assert cents == [3650, 168, 2150, 0, 2600, 86, 150]


def test_tiered_models_without_tier_rows_have_no_amount():
    # precise_amount without tier_rows: tiered buckets are 0, never null
    frame = bucket_frame([{"units": D(11), "charge_model": "graduated"}, {"units": D(3), "charge_model": "volume"}])
    assert precise_amount(frame).to_list() == [D(0), D(0)]


@pytest.mark.parametrize("model", ["graduated", "volume", "graduated_percentage", "percentage"])
def test_the_result_is_a_polars_decimal_never_a_float(model):
    props = ranges_json(model, LAGO_BOUNDS) if model in TIER_KEYS else None
    precise, _ = price([{"units": D(11), "charge_model": model, "properties": props, "events_count": 2,
                         "p_rate": D(1), "p_fixed_amount": D(1), "bounded_amount": D("2.11")}])
    assert isinstance(precise.dtype, pl.Decimal)
    assert not precise.dtype.is_float()
    assert precise.dtype == MONEY


# --- properties: polars against a row-by-row Decimal reference -----------------------------------


def reference_amount(model: str, units: Decimal, ranges: list[dict]) -> Decimal:
    """The rules above, one bucket at a time in plain Python. `ranges`: dicts of to_value (None: open),
    per_unit_amount, flat_amount, rate, in order."""
    with decimal.localcontext() as ctx:
        ctx.prec = 100
        total = D(0)
        if model in ("graduated", "graduated_percentage"):
            lower = D(0)
            for index, r in enumerate(ranges):
                upper = r["to_value"]
                if index == 0 or units > lower:
                    top = units if upper is None else min(units, upper)
                    in_tier = max(top - lower, D(0))
                    if model == "graduated":
                        total += in_tier * r["per_unit_amount"] + r["flat_amount"]
                    else:
                        total += in_tier * r["rate"] / 100 + r["flat_amount"]
                if upper is None:
                    break
                lower = upper
        elif model == "volume":
            lower = D(0)
            for index, r in enumerate(ranges):
                upper = r["to_value"]
                if (index == 0 or units > lower) and (upper is None or units <= upper):
                    total = units * r["per_unit_amount"] + r["flat_amount"]
                    break
                lower = upper
        return max(total, D(0))


def reference_cents(amount: Decimal, exponent: int) -> int:
    return int((amount * (D(10) ** exponent)).quantize(D(1), rounding=ROUND_HALF_UP))


def decimals(max_value, places: int, min_value=0) -> st.SearchStrategy[Decimal]:
    """Integers or decimals with up to `places` decimals, in [min_value, max_value]."""
    return st.one_of(
        st.integers(min_value, max_value).map(Decimal),
        st.decimals(min_value=min_value, max_value=max_value, places=places, allow_nan=False, allow_infinity=False),
    )


def json_number(value: Decimal | None, as_string: bool) -> str:
    if value is None:
        return "null"
    text = format(value, "f")
    return f'"{text}"' if as_string else text


@st.composite
def tiered_bucket(draw, rate_places: int = 4, models: tuple[str, ...] = tuple(sorted(TIER_KEYS))):
    """(model, units, properties_json, ranges): 2-4 ranges with increasing integer or decimal bounds."""
    model = draw(st.sampled_from(models))
    bounds = sorted(draw(st.lists(decimals(10_000, 6).filter(lambda d: d > 0), min_size=1, max_size=3, unique=True)))
    ranges = [
        {
            "to_value": upper,
            "per_unit_amount": draw(decimals(1_000, 6)),
            "flat_amount": draw(decimals(100, 6)),
            "rate": draw(decimals(100, rate_places)),
        }
        for upper in [*bounds, None]
    ]
    # Bounds written Lago's way (from_value = previous to_value + 1 when integer) or adjacent; numbers
    # as JSON strings or JSON numbers. Both must price the same.
    lago_style = draw(st.booleans())
    as_string = draw(st.booleans())
    price_key = "rate" if model == "graduated_percentage" else "per_unit_amount"
    items, lower = [], D(0)
    for r in ranges:
        from_value = lower + 1 if lago_style and lower != 0 and lower == lower.to_integral_value() else lower
        items.append(
            f'{{"from_value": {json_number(from_value, as_string)}, "to_value": {json_number(r["to_value"], as_string)}, '
            f'"{price_key}": {json_number(r[price_key], as_string)}, "flat_amount": {json_number(r["flat_amount"], as_string)}}}'
        )
        lower = r["to_value"] if r["to_value"] is not None else lower
    properties = f'{{"{TIER_KEYS[model]}": [{", ".join(items)}]}}'
    # Units: anywhere, or on / just around a bound (the edges where tiers change).
    near_bound = st.sampled_from(bounds).flatmap(
        lambda b: st.sampled_from([b, b + D("0.000001"), max(b - D("0.000001"), D(0)), b + 1])
    )
    units = draw(st.one_of(decimals(20_000, 6), near_bound, st.just(D(0))))
    if model != "graduated_percentage":
        for r in ranges:
            r["rate"] = D(0)  # not read by graduated / volume
    return model, units, properties, ranges


def price_generated(tiered: list[tuple], exponent: int) -> tuple[pl.Series, list[int], list[Decimal]]:
    rows = [{"units": u, "charge_model": m, "properties": props} for m, u, props, _ in tiered]
    expected = [reference_amount(m, u, ranges) for m, u, _, ranges in tiered]
    precise, cents = price(rows, exponent)
    return precise, cents, expected


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(tiered_bucket(), min_size=1, max_size=25),
    st.sampled_from([0, 2, 3]),
)
def test_polars_pricing_matches_a_decimal_reference_exactly(tiered, exponent):
    # prices and units with up to 6 decimals and rates with up to 4: every exact amount fits the 12
    # decimals of MONEY, so polars must agree to the last digit, and so must the half-up cents.
    precise, cents, expected = price_generated(tiered, exponent)
    assert isinstance(precise.dtype, pl.Decimal)
    assert not precise.dtype.is_float()
    assert precise.dtype == MONEY
    assert precise.to_list() == expected
    assert cents == [reference_cents(e, exponent) for e in expected]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    # (generated as graduated_percentage, not filtered to it: filtering two buckets in three failed
    # Hypothesis's health check now and then)
    st.lists(tiered_bucket(rate_places=6, models=("graduated_percentage",)), min_size=1, max_size=20),
)
def test_six_decimal_rates_stay_within_the_money_scale(tiered):
    # with 6-decimal rates, units * rate / 100 can need 14 decimals; MONEY keeps 12, so each range's
    # share may be rounded by at most half of 1e-12
    precise, _, expected = price_generated(tiered, 2)
    assert precise.dtype == MONEY
    shares = [len(ranges) for _, _, _, ranges in tiered]
    for got, want, n in zip(precise.to_list(), expected, shares, strict=True):
        assert abs(got - want) <= n * D("0.5e-12"), (got, want)


def test_charge_models_module_exposes_the_tier_keys():
    assert TIER_KEYS == {"graduated": "graduated_ranges", "volume": "volume_ranges",
                         "graduated_percentage": "graduated_percentage_ranges"}
    assert charge_models.SUPPORTED_MODELS >= set(TIER_KEYS) | {"percentage"}
    assert json.loads(ranges_json("graduated", LAGO_BOUNDS))["graduated_ranges"][2]["to_value"] is None
