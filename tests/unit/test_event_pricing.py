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
