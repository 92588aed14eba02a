"""Charges priced event by event, in the order events were charged (`charge_order`).

- Percentage charges: each event's share of the rate (beyond the free units still left) plus the
  fixed amount (beyond the free events), bounded by `per_transaction_min_amount` and
  `per_transaction_max_amount`. Without bounds the sum is the bucket formula of `charge_models`.
- Charges paid in advance: each event costs what it adds to the bucket's price,
  `price(units through this event) - price(units before it)`.
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from dagster_project.billing.aggregation import BUCKET
from dagster_project.billing.charge_models import MONEY, ZERO

HUNDRED = pl.lit(Decimal(100), MONEY)


def per_transaction_amounts(events: pl.DataFrame) -> pl.Series:
    """The bounded percentage amount of each event. `events` holds BUCKET, `charge_order`, `units`
    and the percentage `p_*` columns."""
    ordered = events.with_row_index("_row").sort([*BUCKET, "charge_order"])
    units = pl.max_horizontal(pl.col("units").cast(MONEY), ZERO)
    free_units = pl.col("p_free_units_per_total_aggregation").cast(MONEY).fill_null(ZERO)
    through = units.cum_sum().over(BUCKET)
    before = through - units
    paid_units = pl.max_horizontal(through - free_units, ZERO) - pl.max_horizontal(before - free_units, ZERO)
    is_free_event = pl.col("charge_order") <= pl.col("p_free_units_per_events").cast(MONEY).fill_null(ZERO)
    amount = paid_units * pl.col("p_rate").cast(MONEY).fill_null(ZERO) / HUNDRED + pl.when(is_free_event).then(
        ZERO
    ).otherwise(pl.col("p_fixed_amount").cast(MONEY).fill_null(ZERO))
    low = pl.col("p_per_transaction_min_amount").cast(MONEY)
    high = pl.col("p_per_transaction_max_amount").cast(MONEY)
    bounded = (
        pl.when(amount <= ZERO).then(ZERO)  # a free transaction owes no minimum
        .when(low.is_not_null() & (amount < low)).then(low)
        .when(high.is_not_null() & (amount > high)).then(high)
        .otherwise(amount)
        .cast(MONEY)
    )
    return ordered.with_columns(event_amount=bounded).sort("_row")["event_amount"]


def incremental_units(events: pl.DataFrame) -> pl.DataFrame:
    """Each event with the bucket's units before it and through it, in charge order."""
    return events.sort([*BUCKET, "charge_order"]).with_columns(
        units_through=pl.col("units").cast(MONEY).cum_sum().over(BUCKET).cast(MONEY),
    ).with_columns(units_before=(pl.col("units_through") - pl.col("units").cast(MONEY)).cast(MONEY))
