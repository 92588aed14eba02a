"""Per-event pricing: bounded percentage transactions and the running units of charges paid in advance."""

from decimal import Decimal as D

import polars as pl

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


def test_each_transaction_is_held_between_its_minimum_and_maximum():
    amounts = per_transaction_amounts(events(["100", "2", "20"], rate="10", fixed_amount="0.2",
                                             free_units_per_events="1", per_transaction_min_amount="0.5",
                                             per_transaction_max_amount="3"))
    assert amounts.to_list() == [D("3"), D("0.5"), D("2.2")]


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
