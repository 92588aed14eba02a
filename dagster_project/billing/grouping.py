"""Pricing group keys (`pricing_group_keys`): a bucket's usage split per value of event properties.

As lago-api does (`ChargeModels::GroupedService`, `BillableMetrics::Aggregations::BaseService`),
a charge (its default bucket) or a charge filter with `pricing_group_keys` is aggregated and priced
once per combination of its events' values of those keys: each group gets its own package
rounding, its own tiers and its own fee line, which carries `grouped_by` ({key: value}). An event
without one of the keys is grouped under a null value for it, as lago-api reads
`event.properties[key]` (nil) into the group.

dbt leaves the usage of grouped buckets per combination of dimensions
(`marts.fct_usage_daily_by_dimensions`, `dimensions_json`: the events' values of the catalog's
filter and group keys); here each row gets its group, and the rows of the other buckets (from
`marts.fct_usage_daily`) get `NO_GROUP`, so that one bucket key serves every bucket.
"""

from __future__ import annotations

import json

import polars as pl

# The group of a bucket priced as a whole (Lago's `grouped_by: {}`): a value, not null, so that
# joins on the bucket key match it.
NO_GROUP = "{}"


def grouped_by(group_keys: list[str], dimensions_json: str | None) -> str:
    """The group of events with the dimensions `dimensions_json` (a JSON object of their property
    values, keys without a value left out), as canonical JSON: the charge's keys in its order,
    each with the events' value, null where they have none."""
    dimensions = json.loads(dimensions_json) if dimensions_json else {}
    return json.dumps({key: dimensions.get(key) for key in group_keys}, ensure_ascii=False, separators=(",", ":"))


def group_label(grouped_by_json: str | None) -> str | None:
    """The group's values as a fee line shows them (lago-api's `Fee#grouped_by_display`, without
    its leading bullet): the non-null values joined by " • "; None for a bucket not grouped."""
    values = [v for v in json.loads(grouped_by_json or NO_GROUP).values() if v is not None]
    return " • ".join(values) if values else None


def usage_by_group(usage: pl.DataFrame, by_dimensions: pl.DataFrame, group_keys: dict[tuple[str, str], list[str]]) -> pl.DataFrame:
    """The pricing input with a `grouped_by` column: the rows of `usage` (`fct_usage_daily`) of the
    buckets priced as a whole, with `NO_GROUP`, and, for the buckets priced per group (`group_keys`:
    (charge id, filter id or 'default') -> keys), the rows of `by_dimensions`
    (`fct_usage_daily_by_dimensions`) with their group, in `usage`'s columns."""
    if not group_keys:  # (the usual catalog: nothing to split, no row looked at)
        return usage.with_columns(grouped_by=pl.lit(NO_GROUP))
    bucket = pl.col("charge_filter_id").fill_null("default").alias("bucket")
    grouped = pl.DataFrame({"charge_id": [c for c, _ in group_keys], "bucket": [b for _, b in group_keys]},
                           schema={"charge_id": pl.String, "bucket": pl.String})
    whole = (usage.with_columns(bucket).join(grouped, on=["charge_id", "bucket"], how="anti")
             .drop("bucket").with_columns(grouped_by=pl.lit(NO_GROUP)))
    split = by_dimensions.with_columns(
        grouped_by=pl.struct("charge_id", bucket, "dimensions_json").map_elements(
            lambda r: grouped_by(group_keys[(r["charge_id"], r["bucket"])], r["dimensions_json"]), return_dtype=pl.String)
    )
    return pl.concat([whole, split.select(c for c in split.columns if c in whole.columns)], how="diagonal_relaxed")
