"""Pandera schemas of the priced frames: checked before anything is written, since money is at stake."""

import pandera.polars as pa
import polars as pl

from dagster_project.billing.charge_models import MONEY


class Fees(pa.DataFrameModel):
    """One row per invoice and charge filter (or subscription fee); amounts exact and non-negative."""

    fee_id: str = pa.Field(unique=True)
    invoice_id: str
    fee_type: str = pa.Field(isin=["charge", "subscription", "true_up", "commitment"])
    units: MONEY = pa.Field(nullable=True)
    events_count: pl.Int64 = pa.Field(ge=0)
    precise_amount: MONEY = pa.Field(ge=0)
    amount_cents: pl.Int64 = pa.Field(ge=0)
    currency: str = pa.Field(str_length={"min_value": 3, "max_value": 3})


class Invoices(pa.DataFrameModel):
    """One row per invoice; credits never exceed the amount due."""

    invoice_id: str = pa.Field(unique=True)
    invoice_type: str = pa.Field(isin=["subscription", "credit", "progressive_billing"])
    status: str = pa.Field(isin=["draft", "finalized"])
    number: str
    fees_amount_cents: pl.Int64 = pa.Field(ge=0)
    taxes_amount_cents: pl.Int64 = pa.Field(ge=0)
    prepaid_granted_credit_amount_cents: pl.Int64 = pa.Field(ge=0)
    prepaid_purchased_credit_amount_cents: pl.Int64 = pa.Field(ge=0)
    credit_notes_amount_cents: pl.Int64 = pa.Field(ge=0)
    coupons_amount_cents: pl.Int64 = pa.Field(ge=0)
    progressive_billing_credit_amount_cents: pl.Int64 = pa.Field(ge=0)

    @pa.dataframe_check
    def coupons_take_at_most_the_fees(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("coupons_amount_cents") + pl.col("progressive_billing_credit_amount_cents") <= pl.col("fees_amount_cents"))

    @pa.dataframe_check
    def credits_cover_at_most_the_total(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("prepaid_granted_credit_amount_cents") + pl.col("prepaid_purchased_credit_amount_cents")
            + pl.col("credit_notes_amount_cents")
            <= pl.col("fees_amount_cents") - pl.col("coupons_amount_cents")
            - pl.col("progressive_billing_credit_amount_cents") + pl.col("taxes_amount_cents")
        )

    @pa.dataframe_check
    def finalized_numbers_are_unique(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("status") != "finalized")
            | ~pl.col("number").filter(pl.col("status") == "finalized").is_duplicated().any()
        )


class UsageDaily(pa.DataFrameModel):
    """`marts.fct_usage_daily`: one row per period, charge, filter and arrival day; exact decimals."""

    usage_daily_id: str = pa.Field(unique=True)
    billing_period_id: str
    charge_id: str
    aggregation_type: str = pa.Field(
        isin=["count_agg", "sum_agg", "max_agg", "unique_count_agg", "latest_agg", "weighted_sum_agg"]
    )
    units: MONEY
    events_count: pl.Int64 = pa.Field(gt=0)


class RawEvents(pa.DataFrameModel):
    """`raw.events`: a readable event has its ids and a timestamp; an unreadable one its reason and text."""

    source_file: str
    line_number: pl.Int64 = pa.Field(ge=1)

    @pa.dataframe_check
    def readable_or_explained(cls, data) -> pl.LazyFrame:
        readable = (
            pl.col("transaction_id").is_not_null() & pl.col("code").is_not_null()
            & pl.col("external_subscription_id").is_not_null() & pl.col("event_at").is_not_null()
        )
        explained = pl.col("load_error").is_not_null() & pl.col("raw_line").is_not_null()
        return data.lazyframe.select(pl.when(pl.col("load_error").is_null()).then(readable).otherwise(explained))
