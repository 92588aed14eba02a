"""Per-event pricing: bounded percentage transactions and the running units of charges paid in advance."""

from decimal import Decimal as D

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagster_project.billing.charge_models import MONEY
from dagster_project.billing.event_pricing import incremental_units, per_transaction_amounts


def events(units, **properties):
    n = len(units)
    frame = pl.DataFrame({
        "billing_period_id": ["p"] * n, "charge_id": ["c"] * n, "charge_filter_key": ["default"] * n,
        "charge_order": list(range(1, n + 1)), "units": [D(u) for u in units],
    }, schema_overrides={"units": MONEY})
    for name in ("rate", "fixed_amount", "free_units_per_events", "free_units_per_total_aggregation",
                 "per_transaction_min_amount", "per_transaction_max_amount"):
        value = properties.get(name)
        frame = frame.with_columns(pl.lit(None if value is None else D(value), MONEY).alias(f"p_{name}"))
    return frame


def test_without_bounds_transactions_add_up_to_the_bucket_formula():
    # 2% of (1000 + 500 - 100 free) = 28, plus 0.10 for the second event (the first is free): 28.10
    amounts = per_transaction_amounts(events(["1000", "500"], rate="2", fixed_amount="0.1",
                                             free_units_per_events="1", free_units_per_total_aggregation="100"))
    assert amounts.to_list() == [D("18"), D("10.1")]  # (1000 - 100) * 2%, then 500 * 2% + 0.10
    assert sum(amounts.to_list()) == D("28.1")


def test_each_paid_transaction_is_held_between_its_minimum_and_maximum():
    # every_charge_model's sub_h: 10 % + 0.20 a transaction, 1 free transaction, each between 0.50
    # and 3.00. Lago's per-transaction loop frees the first transaction whole (its 100 units and its
    # 0.20, and it owes no minimum): 0; 2 -> 0.20 + 0.20 = 0.40 raised to 0.50; 20 -> 2.00 + 0.20 = 2.20.
    # Total 2.70 (Meterhouse's rule before charged the first one's 10.00 capped to 3.00: 5.70).
    amounts = per_transaction_amounts(events(["100", "2", "20"], rate="10", fixed_amount="0.2",
                                             free_units_per_events="1", per_transaction_min_amount="0.5",
                                             per_transaction_max_amount="3"))
    assert amounts.to_list() == [D("0"), D("0.5"), D("2.2")]


def test_a_transaction_inside_the_free_units_owes_no_minimum():
    amounts = per_transaction_amounts(events(["50", "80"], rate="10", free_units_per_total_aggregation="100",
                                             per_transaction_min_amount="1"))
    assert amounts.to_list() == [D("0"), D("3")]  # 50 free; then 30 of 80 paid: 3.00


def test_running_units_before_and_through_each_event():
    steps = incremental_units(events(["4", "7", "9"]))
    assert steps.select("units_before", "units_through").rows() == [(D(0), D(4)), (D(4), D(11)), (D(11), D(20))]


# --- lago-api's spec/services/charge_models/percentage_service_spec.rb, event by event ------------
# The spec's events: running totals 50, 150, 400 and a total of 800 in 4 events, so the events are
# 50, 100, 250 and 400 units; rate 1.3 %, fixed amount 2.00 per transaction.
SPEC_EVENTS = ["50", "100", "250", "400"]


def spec_total(**free):
    return sum(per_transaction_amounts(events(SPEC_EVENTS, rate="1.3", fixed_amount="2.0", **free)).to_list())


def test_a_total_allowance_running_out_before_the_free_events_leaves_fewer_transactions_free():
    # Lago's base case: 3 free events and 250 free units. The running total reaches 250 on the
    # third event (400), so only the first two (50, 150) are free of the fixed amount:
    # (800 - 250) * 1.3 / 100 + (4 - 2) * 2.00 = 7.15 + 4.00 = 11.15 (not 7.15 + 1 * 2.00 = 9.15)
    amounts = per_transaction_amounts(events(SPEC_EVENTS, rate="1.3", fixed_amount="2.0",
                                             free_units_per_events="3", free_units_per_total_aggregation="250"))
    # 50 and 100 free; 250 - 100 free units left on the third: 150 * 1.3 % + 2 = 3.95; 400 * 1.3 % + 2 = 7.20
    assert amounts.to_list() == [D(0), D(0), D("3.95"), D("7.2")]
    assert sum(amounts.to_list()) == D("11.15")


def test_a_total_allowance_alone_frees_the_transactions_below_it_of_the_fixed_amount():
    # "when free_units_per_events is nil": the running totals 50 and 150 are below 250:
    # (800 - 250) * 1.3 / 100 + (4 - 2) * 2.00 = 11.15
    assert spec_total(free_units_per_total_aggregation="250") == D("11.15")


def test_free_events_alone_free_their_units_and_their_fixed_amount():
    # "when free_units_per_total_aggregation is nil": the first 3 events' 400 units are free:
    # (800 - 400) * 1.3 / 100 + (4 - 3) * 2.00 = 5.20 + 2.00 = 7.20
    assert spec_total(free_units_per_events="3") == D("7.2")


def test_a_total_allowance_above_the_free_events_units_frees_only_those_units():
    # "when free_units_per_total_aggregation > last running total": 500 free units, but the
    # first 3 events hold 400: (800 - 400) * 1.3 / 100 + (4 - 3) * 2.00 = 7.20
    assert spec_total(free_units_per_events="3", free_units_per_total_aggregation="500") == D("7.2")


def test_without_free_units_every_unit_and_transaction_pays():
    # "when free units are not set": 800 * 1.3 / 100 + 4 * 2.00 = 10.40 + 8.00 = 18.40
    assert spec_total() == D("18.4")


def test_more_free_events_than_events_costs_nothing():
    # "when free_units_count > number of events": 5 free events, 4 events: 0
    assert spec_total(free_units_per_events="5") == D(0)


def test_no_units_pay_no_fixed_amount():
    # "when aggregation value is 0": four events of 0 units; Lago's fixed amount is 0 on zero units
    amounts = per_transaction_amounts(events(["0", "0", "0", "0"], rate="1.3", fixed_amount="2.0",
                                             free_units_per_events="3", free_units_per_total_aggregation="250"))
    assert sum(amounts.to_list()) == D(0)


def test_a_first_event_that_reaches_the_total_allowance_leaves_the_free_events_free():
    # lago-api counts the events whose running total is below 250: none (the first is 1000); it
    # drops that 0 from its minimum, so the 1 free event stands: (1500 - 250) * 2 / 100 + 1 * 0.10
    # = 25 + 0.10 = 25.10 (the every_charge_model scenario's sub_d, with 100 free units, is this case)
    amounts = per_transaction_amounts(events(["1000", "500"], rate="2", fixed_amount="0.1",
                                             free_units_per_events="1", free_units_per_total_aggregation="250"))
    assert amounts.to_list() == [D("15"), D("10.1")]  # (1000 - 250) * 2 %; 500 * 2 % + 0.10


# --- lago-api's spec, "when applying min / max amount per transaction" (premium) -----------------
# Events of 10, 80 and 10,000 units at 2.99 %, each transaction between 1.75 and 12.00.
BOUNDED_EVENTS = ["10", "80", "10000"]
BOUNDS = {"rate": "2.99", "per_transaction_min_amount": "1.75", "per_transaction_max_amount": "12"}


def bounded_total(**properties):
    return sum(per_transaction_amounts(events(BOUNDED_EVENTS, **BOUNDS, **properties)).to_list())


def test_lago_raises_a_small_transaction_to_the_minimum_and_caps_a_large_one():
    # 10 * 2.99 % = 0.299 -> 1.75; 80 * 2.99 % = 2.392; 10,000 * 2.99 % = 299 -> 12: 16.142
    assert per_transaction_amounts(events(BOUNDED_EVENTS, **BOUNDS, fixed_amount="0")).to_list() == [
        D("1.75"), D("2.392"), D("12")]
    assert bounded_total(fixed_amount="0") == D("16.142")


def test_lago_adds_the_fixed_amount_to_each_transaction_before_bounding_it():
    # 0.299 + 2 = 2.299; 2.392 + 2 = 4.392; 299 + 2 -> 12: 18.691
    assert bounded_total(fixed_amount="2.0") == D("18.691")


def test_lago_frees_the_first_transactions_whole_and_bounds_only_the_paying_ones():
    # "with free units per events" 2: 10 and 80 owe nothing (no minimum); 10,000 -> 12: 12
    assert per_transaction_amounts(events(BOUNDED_EVENTS, **BOUNDS, free_units_per_events="2")).to_list() == [
        D(0), D(0), D(12)]


def test_lago_takes_the_free_units_off_the_transactions_in_order():
    # "with free units per total aggregation" 30: 10 is free (20 left); 80 - 20 = 60 paid:
    # 60 * 2.99 % = 1.794 (above 1.75); 10,000 -> 12: 13.794
    assert per_transaction_amounts(events(BOUNDED_EVENTS, **BOUNDS, free_units_per_total_aggregation="30")
                                   ).to_list() == [D(0), D("1.794"), D(12)]


def test_with_free_units_lago_ignores_the_free_transactions_count():
    # "when both ... are applied": 3 free transactions and 10,000 free units. 10 and 80 are free
    # (9,910 left); the third is not free although it is within the 3: 10,000 - 9,910 = 90 paid,
    # 90 * 2.99 % = 2.691 (between the bounds)
    assert per_transaction_amounts(events(BOUNDED_EVENTS, **BOUNDS, free_units_per_events="3",
                                          free_units_per_total_aggregation="10000")).to_list() == [D(0), D(0), D("2.691")]


def test_free_units_keep_freeing_transactions_after_the_free_transactions_count():
    # 1 free transaction but 100 free units: 50 (50 left) and 30 (20 left) are both free, so is a
    # second free transaction beyond the count; 40 reaches the allowance: (40 - 20) * 10 % = 2.00
    # + 0.50 fixed = 2.50, capped at 2.00; the last 5 -> 0.50 + 0.50 = 1.00
    amounts = per_transaction_amounts(events(["50", "30", "40", "5"], rate="10", fixed_amount="0.5",
                                             free_units_per_events="1", free_units_per_total_aggregation="100",
                                             per_transaction_max_amount="2"))
    assert amounts.to_list() == [D(0), D(0), D(2), D(1)]


def test_a_transaction_that_uses_up_the_free_units_exactly_pays_its_fixed_amount_and_the_minimum():
    # 100 free units: 60 leaves 40; 40 is not below the 40 left, so it pays on 0 units: 0 + 0.10
    # fixed = 0.10, raised to the 0.50 minimum; 10 more: 1.00 + 0.10 = 1.10
    amounts = per_transaction_amounts(events(["60", "40", "10"], rate="10", fixed_amount="0.1",
                                             free_units_per_total_aggregation="100", per_transaction_min_amount="0.5"))
    assert amounts.to_list() == [D(0), D("0.5"), D("1.1")]


def test_a_paid_transaction_of_no_units_still_owes_the_minimum():
    # no free allowance: a 0-unit transaction pays 0 * rate + 0 fixed = 0, raised to 0.25 (Lago
    # applies the minimum to every transaction it does not free)
    amounts = per_transaction_amounts(events(["0", "10"], rate="1", per_transaction_min_amount="0.25"))
    assert amounts.to_list() == [D("0.25"), D("0.25")]  # 10 * 1 % = 0.10 -> 0.25


def test_bucket_amounts_with_fractional_units_keep_their_twelve_decimals():
    # 123.45 units in 4 events (0.45, 23, 50, 50), 1.5 % + 0.05, first transaction and 0.45 units
    # free, no bounds: (123.45 - 0.45) * 1.5 / 100 + (4 - 1) * 0.05 = 1.845 + 0.15 = 1.995
    # (half-up to cents: 2.00, see test_charge_models' rounding)
    amounts = per_transaction_amounts(events(["0.45", "23", "50", "50"], rate="1.5", fixed_amount="0.05",
                                             free_units_per_events="1", free_units_per_total_aggregation="0.45"))
    assert sum(amounts.to_list()) == D("1.995")
    # 0.000001 units at 0.0001 %: 1e-12, the smallest amount MONEY holds
    assert per_transaction_amounts(events(["0.000001"], rate="0.0001")).to_list() == [D("0.000000000001")]


# --- properties: polars against lago-api's Ruby, ported line by line ------------------------------


def lago_amount(values: list[D], rate=None, fixed_amount=None, free_units_per_events=None,
                free_units_per_total_aggregation=None, per_transaction_min_amount=None,
                per_transaction_max_amount=None) -> D:
    """lago-api's `ChargeModels::PercentageService#compute_amount` on one bucket's event values, in
    plain Python: `compute_percentage_amount + compute_fixed_amount` with the sum aggregation's
    `running_total`, or, with a bound, `compute_amount_with_transaction_min_max`."""
    rate, fixed = D(rate or 0), D(fixed_amount or 0)
    n, a = int(free_units_per_events or 0), D(free_units_per_total_aggregation or 0)
    low = None if per_transaction_min_amount is None else D(per_transaction_min_amount)
    high = None if per_transaction_max_amount is None else D(per_transaction_max_amount)
    if low is not None or high is not None:
        total, free_events, free_amount = D(0), n, a
        for value in values:
            if free_events > 0 or free_amount > 0:
                free_events -= 1
                if not free_amount > 0:
                    continue
                if free_amount > value:
                    free_amount -= value
                    continue
                value -= free_amount
                free_amount, free_events = D(0), 0
            amount = value * rate / 100 + fixed
            if low is not None and amount < low:
                amount = low
            elif high is not None and amount > high:
                amount = high
            total += amount
        return total
    # SumService#running_total: the first n events' running totals, else those up to the first
    # one past a (it stops once the total before a value is above a)
    running, total = [], D(0)
    if n:
        for value in values[:n]:
            total += value
            running.append(total)
    elif a:
        for value in values:
            if a < total:
                break
            total += value
            running.append(total)
    last = running[-1] if running else D(0)
    if last == 0:
        free_units = D(0)
    elif a == 0 or last <= a:
        free_units = last
    else:
        free_units = a
    units, count = sum(values, D(0)), len(values)
    free_count = min([c for c in (n, sum(1 for r in running if r < a)) if c != 0], default=0)
    percentage = D(0) if free_units > units else (units - free_units) * rate / 100
    fixed_total = D(0) if units == 0 or free_count >= count else (count - free_count) * fixed
    return percentage + fixed_total


def test_the_ruby_port_gives_the_spec_figures():
    # the port itself, on lago-api's spec figures (see the tests above)
    assert lago_amount([D(v) for v in SPEC_EVENTS], "1.3", "2.0", 3, "250") == D("11.15")
    assert lago_amount([D(v) for v in BOUNDED_EVENTS], **BOUNDS, fixed_amount="2.0") == D("18.691")
    assert lago_amount([D(v) for v in BOUNDED_EVENTS], **BOUNDS, free_units_per_events=3,
                       free_units_per_total_aggregation="10000") == D("2.691")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(st.integers(0, 300).map(D), st.decimals(0, 300, places=2)), min_size=1, max_size=8),
    st.fixed_dictionaries({}, optional={
        "rate": st.decimals(0, 10, places=2).map(str),
        "fixed_amount": st.decimals(0, 5, places=2).map(str),
        "free_units_per_events": st.integers(1, 6).map(str),
        "free_units_per_total_aggregation": st.one_of(st.integers(1, 600), st.decimals(1, 600, places=2)).map(str),
        "per_transaction_min_amount": st.decimals(0, 3, places=2).map(str),
        "per_transaction_max_amount": st.decimals(3, 20, places=2).map(str),
    }),
)
def test_each_bucket_totals_what_lago_api_computes(values, properties):
    # event values with up to 2 decimals, rates with 2: every amount is exact within MONEY's 12 decimals
    amounts = per_transaction_amounts(events([str(v) for v in values], **properties))
    assert sum(amounts.to_list()) == lago_amount(values, **properties)
