"""Charges priced event by event, in the order events were charged (`charge_order`).

- Percentage charges: each event's share of the rate (beyond the free units still left) plus the
  fixed amount (beyond the free events), as lago-api's `ChargeModels::PercentageService` prices
  them: without per-transaction bounds, with the free units and free events of its bucket formula
  (`_lago_free_allowances`); with `per_transaction_min_amount` or `per_transaction_max_amount`, its
  per-transaction path (`_lago_bounded_allowances`), each paid transaction held between the bounds.
  A percentage bucket's amount is the sum of its events' amounts (`charge_models.precise_amount`).
- Charges paid in advance: each event costs what it adds to the bucket's price,
  `price(units through this event) - price(units before it)`.
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from dagster_project.billing.aggregation import EVENT_BUCKET as BUCKET  # (their charges are never grouped)
from dagster_project.billing.charge_models import MONEY, ZERO

HUNDRED = pl.lit(Decimal(100), MONEY)


def _lago_free_allowances(units: pl.Expr, through: pl.Expr, before: pl.Expr, order: pl.Expr,
                          free_events: pl.Expr, free_total: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """The units of an event free of the rate, and whether it is free of the fixed amount, as
    lago-api's `PercentageService` decides them for a charge without per-transaction bounds.

    With `free_units_per_events` N and `free_units_per_total_aggregation` A (0 when absent) and the
    running total of the bucket's units `through` each event, in charge order:
    - free units (`free_units_value`): the units of the first N events, at most A in all; with no
      N, the first A units; with neither, none;
    - free of the fixed amount (`free_units_count`): with N and A, the first N events whose running
      total is still below A (an allowance running out before N events frees fewer than N), except
      that when the very first event already reaches A, Lago's count is 0, which it drops from its
      minimum, so the first N events are free; with N alone the first N events; with A alone the
      events whose running total is below A; and none when the bucket has no units
      (`compute_fixed_amount` returns 0 on zero units).
    """
    has_n, has_a = free_events > ZERO, free_total > ZERO
    among_first_n = order.cast(MONEY) <= free_events
    cap = pl.when(has_a).then(free_total)
    free_units = (
        pl.when(has_a & (~has_n | among_first_n))
        .then(pl.min_horizontal(through, cap) - pl.min_horizontal(before, cap))
        .when(has_n & among_first_n)
        .then(units)
        .otherwise(ZERO)
    )
    below_a = through < free_total
    first_reaches_a = through.first().over(BUCKET) >= free_total
    free_of_fixed = (
        pl.when(has_n & has_a).then(among_first_n & (below_a | first_reaches_a))
        .when(has_n).then(among_first_n)
        .when(has_a).then(below_a)
        .otherwise(False)
    ) | (units.sum().over(BUCKET) == ZERO)
    return free_units, free_of_fixed


def _lago_bounded_allowances(units: pl.Expr, through: pl.Expr, before: pl.Expr, order: pl.Expr,
                             free_events: pl.Expr, free_total: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Whether an event is free (it owes nothing, not even the minimum) and the units it pays the
    rate on, as lago-api's `PercentageService#compute_amount_with_transaction_min_max` decides them
    for a charge with per-transaction bounds. That loop walks the events in order with the free
    events N and free units A (0 when absent) still left, and an event is free while either is left:
    - with A: the events whose running total is still below A are free (A is taken off them, and N
      is counted down but never stops them); the event that reaches A pays the rate on its units
      beyond A (`through - A`, 0 when it reaches A exactly) plus the fixed amount, and every later
      event pays on all its units. N plays no part: Lago's loop keeps freeing events after N while
      free units are left, and stops freeing them (N set to 0) when A runs out first;
    - without A: the first N events are free; the others pay on all their units.
    """
    has_a = free_total > ZERO
    is_free = pl.when(has_a).then(through < free_total).otherwise(order.cast(MONEY) <= free_events)
    paid_units = pl.when(is_free).then(ZERO).when(has_a).then(through - pl.max_horizontal(before, free_total)).otherwise(units)
    return is_free, paid_units


def per_transaction_amounts(events: pl.DataFrame) -> pl.Series:
    """The percentage amount of each event. `events` holds BUCKET, `charge_order`, `units`
    and the percentage `p_*` columns."""
    ordered = events.with_row_index("_row").sort([*BUCKET, "charge_order"])
    units = pl.max_horizontal(pl.col("units").cast(MONEY), ZERO)
    free_total = pl.col("p_free_units_per_total_aggregation").cast(MONEY).fill_null(ZERO)
    free_events = pl.col("p_free_units_per_events").cast(MONEY).fill_null(ZERO)
    through = units.cum_sum().over(BUCKET)
    before = through - units
    low = pl.col("p_per_transaction_min_amount").cast(MONEY)
    high = pl.col("p_per_transaction_max_amount").cast(MONEY)
    rate = pl.col("p_rate").cast(MONEY).fill_null(ZERO)
    fixed = pl.col("p_fixed_amount").cast(MONEY).fill_null(ZERO)
    order = pl.col("charge_order")
    # Without bounds: Lago's bucket formula, shared out event by event.
    free_units, free_of_fixed = _lago_free_allowances(units, through, before, order, free_events, free_total)
    unbounded = (units - free_units) * rate / HUNDRED + pl.when(free_of_fixed).then(ZERO).otherwise(fixed)
    # With bounds: Lago's per-transaction loop.
    is_free, paid_units = _lago_bounded_allowances(units, through, before, order, free_events, free_total)
    paid = paid_units * rate / HUNDRED + fixed
    bounded = (
        pl.when(is_free).then(ZERO)  # a free transaction owes no minimum
        .when(low.is_not_null() & (paid < low)).then(low)
        .when(high.is_not_null() & (paid > high)).then(high)
        .otherwise(paid)
    )
    amount = pl.when(low.is_not_null() | high.is_not_null()).then(bounded).otherwise(unbounded).cast(MONEY)
    return ordered.with_columns(event_amount=amount).sort("_row")["event_amount"]


def incremental_units(events: pl.DataFrame) -> pl.DataFrame:
    """Each event with the bucket's units before it and through it, in charge order."""
    return events.sort([*BUCKET, "charge_order"]).with_columns(
        units_through=pl.col("units").cast(MONEY).cum_sum().over(BUCKET).cast(MONEY),
    ).with_columns(units_before=(pl.col("units_through") - pl.col("units").cast(MONEY)).cast(MONEY))
