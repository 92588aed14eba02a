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
}
PROPERTY_COLUMNS = sorted({f"p_{name}" for names in MODEL_PROPERTIES.values() for name in names})


def property_columns(properties_json: str | None) -> dict[str, Decimal | None]:
    """A charge's or filter's `properties` as exact decimals (`"2.7"`, `2.7` and `27e-1` alike)."""
    properties = json.loads(properties_json, parse_float=Decimal) if properties_json else {}
    out: dict[str, Decimal | None] = {}
    for column in PROPERTY_COLUMNS:
        value = properties.get(column[2:])
        out[column] = None if value is None or value == "" else Decimal(str(value))
    return out


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


def precise_amount(buckets: pl.DataFrame) -> pl.Series:
    """The unrounded amount of each bucket, by its `charge_model` and `p_*` property columns.

    A bucket without pricing properties (a default bucket when the charge has no properties) has
    no amount: 0. Negative results become 0.
    """
    units = pl.col("units").cast(MONEY)
    p = {column: pl.col(column).cast(MONEY) for column in PROPERTY_COLUMNS}
    amount = (
        pl.when(pl.col("charge_model") == "standard")
        .then(standard(units, p["p_amount"]))
        .when(pl.col("charge_model") == "package")
        .then(package(units, p["p_amount"], p["p_package_size"], p["p_free_units"]))
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


SUPPORTED_MODELS = frozenset(MODEL_PROPERTIES)
