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
    invoice_type: str = pa.Field(isin=["subscription", "credit"])
    status: str = pa.Field(isin=["draft", "finalized"])
    number: str
    fees_amount_cents: pl.Int64 = pa.Field(ge=0)
    taxes_amount_cents: pl.Int64 = pa.Field(ge=0)
    prepaid_granted_credit_amount_cents: pl.Int64 = pa.Field(ge=0)
    prepaid_purchased_credit_amount_cents: pl.Int64 = pa.Field(ge=0)

    @pa.dataframe_check
    def credits_cover_at_most_the_total(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("prepaid_granted_credit_amount_cents") + pl.col("prepaid_purchased_credit_amount_cents")
            <= pl.col("fees_amount_cents") + pl.col("taxes_amount_cents")
        )

    @pa.dataframe_check
    def finalized_numbers_are_unique(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("status") != "finalized")
            | ~pl.col("number").filter(pl.col("status") == "finalized").is_duplicated().any()
        )
