"""Charge models as pure polars expressions over exact decimals.

Every model takes the aggregated units of a bucket (one charge filter, or a charge's default
bucket, for one billing period) and the bucket's properties as columns, and returns the amount in
currency units (not cents), unrounded: `precise_amount`. Rounding to cents happens once, in
`amount_cents`, half-up to the currency's exponent.
"""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl

# Units and prices carry 12 decimals: enough for per-token prices (1e-6 USD) times fractions.
MONEY = pl.Decimal(38, 12)
ZERO = pl.lit(Decimal(0), MONEY)
ONE = pl.lit(Decimal(1), MONEY)

# Properties each model reads, as decimal columns `p_<name>` (absent: null).
MODEL_PROPERTIES = {
    "standard": ("amount",),
    "package": ("amount", "package_size", "free_units"),
    "percentage": ("rate", "fixed_amount", "free_units_per_events", "free_units_per_total_aggregation",
                   "per_transaction_min_amount", "per_transaction_max_amount"),
}
PROPERTY_COLUMNS = sorted({f"p_{name}" for names in MODEL_PROPERTIES.values() for name in names})
# Tiered models read a list of ranges.
TIER_KEYS = {
    "graduated": "graduated_ranges",
    "volume": "volume_ranges",
    "graduated_percentage": "graduated_percentage_ranges",
}
TIER_SCHEMA = {
    "bucket_index": pl.UInt32,
    "tier_index": pl.Int64,
    "lower": MONEY,
    "upper": MONEY,
    "per_unit_amount": MONEY,
    "flat_amount": MONEY,
    "rate": MONEY,
}


def _decimal(value) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def property_columns(properties_json: str | None) -> dict[str, Decimal | None]:
    """A charge's or filter's `properties` as exact decimals (`"2.7"`, `2.7` and `27e-1` alike)."""
    properties = json.loads(properties_json, parse_float=Decimal) if properties_json else {}
    return {column: _decimal(properties.get(column[2:])) for column in PROPERTY_COLUMNS}


def tiers(properties_json: str | None, charge_model: str) -> list[dict]:
    """The ranges of a tiered model, each with its lower bound: the previous range's `to_value`.

    Both ways Lago writes bounds come out the same: `0-10, 11-20, 21-` and `0-10, 10-20, 20-` put
    units 11 to 20 in the second range, and `0-0.1, 0.1-1, 1-` puts (0.1, 1] in the second.
    """
    key = TIER_KEYS.get(charge_model)
    properties = json.loads(properties_json, parse_float=Decimal) if properties_json else {}
    rows, lower = [], Decimal(0)
    for index, tier in enumerate(properties.get(key) or []):
        upper = _decimal(tier.get("to_value"))
        rows.append({
            "tier_index": index, "lower": lower, "upper": upper,
            "per_unit_amount": _decimal(tier.get("per_unit_amount")) or Decimal(0),
            "flat_amount": _decimal(tier.get("flat_amount")) or Decimal(0),
            "rate": _decimal(tier.get("rate")) or Decimal(0),
        })
        lower = upper if upper is not None else lower
    return rows


def _ceil_div(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """ceil(n / d) for non-negative decimals, exactly: a quotient truncated to 12 decimals could
    lose a remainder smaller than 1e-12, so the check multiplies back instead."""
    whole = (numerator / denominator).floor()
    return pl.when(whole * denominator < numerator).then(whole + ONE).otherwise(whole)


def standard(units: pl.Expr, amount: pl.Expr) -> pl.Expr:
    """`units * amount`."""
    return units * amount


def package(units: pl.Expr, amount: pl.Expr, package_size: pl.Expr, free_units: pl.Expr) -> pl.Expr:
    """`ceil(max(units - free_units, 0) / package_size) * amount`: 2,000,001 tokens in packages
    of 1,000,000 at 1 USD is 3 USD."""
    paid = pl.max_horizontal(units - free_units.fill_null(ZERO), ZERO)
    return _ceil_div(paid, package_size) * amount


def tiered_amounts(buckets: pl.DataFrame, tier_rows: pl.DataFrame) -> pl.Series:
    """Amounts of graduated, volume and graduated-percentage buckets, one per bucket row (0 for
    other models). `tier_rows` has one row per bucket and range (see `tiers`)."""
    units = buckets.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("bucket_index"),
        pl.max_horizontal(pl.col("units").cast(MONEY), ZERO).alias("units"),  # negative units count as 0
        "charge_model",
    )
    infinite = pl.col("upper").is_null()
    joined = tier_rows.join(units, on="bucket_index")
    in_tier = pl.max_horizontal(
        pl.min_horizontal(pl.col("units"), pl.when(infinite).then(pl.col("units")).otherwise(pl.col("upper")))
        - pl.col("lower"),
        ZERO,
    )
    reached = (pl.col("tier_index") == 0) | (pl.col("units") > pl.col("lower"))
    holds = (pl.col("tier_index") == 0) & (pl.col("units") <= pl.col("lower")) | (
        (pl.col("units") > pl.col("lower")) & (infinite | (pl.col("units") <= pl.col("upper")))
    )
    amount = (
        pl.when((pl.col("charge_model") == "graduated") & reached)
        .then(in_tier * pl.col("per_unit_amount") + pl.col("flat_amount"))
        .when((pl.col("charge_model") == "graduated_percentage") & reached)
        .then(in_tier * pl.col("rate") / pl.lit(Decimal(100), MONEY) + pl.col("flat_amount"))
        .when((pl.col("charge_model") == "volume") & holds)
        .then(pl.col("units") * pl.col("per_unit_amount") + pl.col("flat_amount"))
        .otherwise(ZERO)
        .cast(MONEY)
    )
    per_bucket = joined.group_by("bucket_index").agg(amount.sum().cast(MONEY).alias("tiered"))
    return units.join(per_bucket, on="bucket_index", how="left").sort("bucket_index").select(
        pl.col("tiered").fill_null(ZERO).cast(MONEY)
    ).to_series()


def tier_frame(properties: list[str | None], models: list[str]) -> pl.DataFrame:
    """One row per bucket and range, from each bucket's properties JSON."""
    ranges: dict[tuple[str | None, str], list[dict]] = {}  # each distinct text read once
    rows = [
        {"bucket_index": index, **tier}
        for index, (props, model) in enumerate(zip(properties, models, strict=True))
        if model in TIER_KEYS
        for tier in (ranges[props, model] if (props, model) in ranges
                     else ranges.setdefault((props, model), tiers(props, model)))
    ]
    return pl.DataFrame(rows, schema=TIER_SCHEMA)


def precise_amount(buckets: pl.DataFrame, tier_rows: pl.DataFrame | None = None) -> pl.Series:
    """The unrounded amount of each bucket, by its `charge_model`, its `p_*` property columns and,
    for tiered models, its ranges in `tier_rows` (see `tier_frame`).

    A percentage bucket is priced event by event, as Lago prices it (its free units and events
    depend on the order of the events, so no formula over the bucket's totals gives Lago's amount):
    its amount is the sum of its events' amounts, `bounded_amount` (see
    `event_pricing.per_transaction_amounts`), 0 when it has none.

    A bucket without pricing properties (a default bucket when the charge has no properties) has
    no amount: 0. Negative results become 0.
    """
    units = pl.col("units").cast(MONEY)
    p = {
        column: pl.col(column).cast(MONEY) if column in buckets.columns else pl.lit(None, MONEY)
        for column in PROPERTY_COLUMNS
    }
    events_amount = pl.col("bounded_amount").cast(MONEY) if "bounded_amount" in buckets.columns else pl.lit(None, MONEY)
    tiered = tiered_amounts(buckets, tier_rows if tier_rows is not None else pl.DataFrame(schema=TIER_SCHEMA))
    amount = (
        pl.when(pl.col("charge_model") == "standard")
        .then(standard(units, p["p_amount"]))
        .when(pl.col("charge_model") == "package")
        .then(package(units, p["p_amount"], p["p_package_size"], p["p_free_units"]))
        .when(pl.col("charge_model") == "percentage")
        .then(events_amount.fill_null(ZERO))
        .when(pl.col("charge_model").is_in(list(TIER_KEYS)))
        .then(pl.lit(tiered))
    )
    return buckets.select(
        pl.max_horizontal(amount.fill_null(ZERO), ZERO).cast(MONEY).alias("precise_amount")
    ).to_series()


def amount_cents(precise: pl.Expr, exponent: pl.Expr) -> pl.Expr:
    """Half-up rounding to the currency's exponent, as integer minor units (2.005 USD -> 201)."""
    return (
        pl.when(exponent == 0)
        .then(precise.round(0, mode="half_away_from_zero"))
        .when(exponent == 3)
        .then((precise * pl.lit(Decimal(1000), MONEY)).round(0, mode="half_away_from_zero"))
        .otherwise((precise * pl.lit(Decimal(100), MONEY)).round(0, mode="half_away_from_zero"))
        .cast(pl.Int64)
    )


SUPPORTED_MODELS = frozenset(MODEL_PROPERTIES) | frozenset(TIER_KEYS)
