"""Lago's aggregations rebuilt from the daily partial aggregates of `marts.fct_usage_daily`.

dbt leaves, per bucket and arrival day, an additive part (`units`: sums, event counts, first-seen
unique values, time-weighted contributions), the largest value and the latest value. Any arrival
cut-off is then a filter and a group-by, and a cumulative replay is a window: so invoices, late
usage, current usage and the daily ongoing balance all use one rule.
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from dagster_project.billing.charge_models import MONEY, ZERO

# The bucket of a charge priced event by event (paid in advance, percentage): never grouped.
EVENT_BUCKET = ["billing_period_id", "charge_id", "charge_filter_key"]
# (`grouped_by`: the bucket's group, `grouping.NO_GROUP` for a bucket priced as a whole)
BUCKET = [*EVENT_BUCKET, "grouped_by"]
ADDITIVE = ("count_agg", "sum_agg", "unique_count_agg", "weighted_sum_agg")


def units_expr(additive: pl.Expr, max_value: pl.Expr, latest_value: pl.Expr) -> pl.Expr:
    """Aggregated units by `aggregation_type`: latest_agg below zero counts as zero."""
    return (
        pl.when(pl.col("aggregation_type") == "max_agg")
        .then(max_value)
        .when(pl.col("aggregation_type") == "latest_agg")
        .then(pl.max_horizontal(latest_value, ZERO))
        .otherwise(additive)
        .cast(MONEY)
    )


def aggregate(usage: pl.DataFrame, condition: pl.Expr) -> pl.DataFrame:
    """One row per bucket: aggregated `units` and `events_count` of the usage rows kept by `condition`."""
    return (
        usage.filter(condition)
        .group_by(BUCKET)
        .agg(
            pl.col("aggregation_type").first(),
            pl.col("units").sum().cast(MONEY).alias("additive"),
            pl.col("max_value").max().cast(MONEY),
            pl.col("latest_value").sort_by("latest_at").last().cast(MONEY),
            pl.col("events_count").sum(),
            pl.col("bounded_amount").sum().cast(MONEY),
        )
        .with_columns(units=units_expr(pl.col("additive"), pl.col("max_value"), pl.col("latest_value")))
        .drop("additive", "max_value", "latest_value")
    )


def cumulative(usage: pl.DataFrame) -> pl.DataFrame:
    """Per bucket and arrival day, the aggregated units of everything arrived by that day."""
    daily = (
        usage.group_by([*BUCKET, "arrival_date"])
        .agg(
            pl.col("aggregation_type").first(),
            pl.col("units").sum().cast(MONEY),
            pl.col("max_value").max().cast(MONEY),
            pl.col("latest_value").sort_by("latest_at").last().cast(MONEY),
            pl.col("latest_at").max(),
            pl.col("events_count").sum(),
            pl.col("bounded_amount").sum().cast(MONEY),
        )
        .sort([*BUCKET, "arrival_date"])
    )
    latest_so_far = pl.col("latest_at").cum_max().over(BUCKET)
    return daily.with_columns(
        pl.col("units").cum_sum().over(BUCKET).cast(MONEY).alias("additive"),
        pl.col("max_value").cum_max().over(BUCKET).cast(MONEY),
        pl.when(pl.col("latest_at") == latest_so_far).then(pl.col("latest_value")).otherwise(None)
        .forward_fill().over(BUCKET).cast(MONEY).alias("latest_value"),
        pl.col("events_count").cum_sum().over(BUCKET),
        pl.col("bounded_amount").cum_sum().over(BUCKET).cast(MONEY),
    ).with_columns(units=units_expr(pl.col("additive"), pl.col("max_value"), pl.col("latest_value"))).drop(
        "additive"
    )


def carry_over_recurring(usage: pl.DataFrame, periods: pl.DataFrame) -> pl.DataFrame:
    """Recurring metrics keep their usage from period to period: each row of a recurring metric is
    repeated in every later period of its subscription. A time-weighted value was there for the
    whole of a later period, so it carries its plain value (`value_sum`), not its share."""
    recurring = usage.filter(pl.col("is_recurring"))
    if recurring.is_empty():
        return usage
    later = periods.select(
        "subscription_id",
        pl.col("billing_period_id").alias("later_period_id"),
        pl.col("period_start_date").alias("later_start"),
        pl.col("invoice_finalized_on").alias("later_finalized_on"),
        pl.col("billing_day").alias("later_billing_day"),
    )
    own_start = periods.select("billing_period_id", pl.col("period_start_date").alias("own_start"))
    carried = (
        recurring.join(own_start, on="billing_period_id")
        .join(later, on="subscription_id")
        .filter(pl.col("later_start") > pl.col("own_start"))
        .with_columns(
            billing_period_id=pl.col("later_period_id"),
            invoice_finalized_on_p=pl.col("later_finalized_on"),
            billing_day_p=pl.col("later_billing_day"),
            units=pl.when(pl.col("aggregation_type") == "weighted_sum_agg")
            .then(pl.col("value_sum"))
            .otherwise(pl.col("units"))
            .cast(MONEY),
            events_count=pl.lit(0, pl.Int64),
            bounded_amount=pl.lit(None, MONEY),
        )
        .select(usage.columns)
    )
    return pl.concat([usage, carried], how="vertical_relaxed")


def round_units(units: pl.Expr, function: pl.Expr, precision: pl.Expr) -> pl.Expr:
    """A metric's `rounding_function` (ceil, floor, round half-up) at `rounding_precision` decimals
    (negative: tens, hundreds...). Without a function the units are left as they are."""
    powers = {p: Decimal(10) ** p for p in range(-12, 13)}  # what 12 decimals can hold
    scale = precision.fill_null(0).cast(pl.Int64).clip(-12, 12).replace_strict(powers, return_dtype=MONEY)
    scaled = units * scale
    rounded = (
        pl.when(function == "ceil").then(scaled.ceil())
        .when(function == "floor").then(scaled.floor())
        .when(function == "round").then(scaled.round(0, mode="half_away_from_zero"))
    )
    return pl.when(function.is_null()).then(units).otherwise(rounded / scale).cast(MONEY)
