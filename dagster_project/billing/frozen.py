"""What earlier runs decided for good stays as decided: finalized invoices are kept as stored, and
credit notes issued (or voided) before cannot change."""

from __future__ import annotations

import datetime as dt

import polars as pl

from dagster_project.billing.invoicing import BillingResult, with_fee_totals, with_invoice_totals
from dagster_project.billing.schemas import Fees, Invoices

# The tables of schema `billing` the pricing step rewrites, in the order it writes them.
PRICED_TABLES = ["invoices", "fees", "fee_taxes", "invoice_taxes", "wallet_transactions", "wallet_balances",
                 "late_usage", "payments", "current_usage", "credit_notes", "credit_note_items", "credit_note_taxes",
                 "credit_note_applications", "coupon_credits", "fee_coupons", "applied_coupons",
                 "applied_usage_thresholds", "progressive_billing_credits", "lifetime_usage",
                 "fee_groups"]
# Those whose rows of an invoice finalized in an earlier run are kept as stored.
KEPT_WHEN_FINALIZED = ["invoices", "fees", "fee_taxes", "invoice_taxes", "credit_note_applications", "coupon_credits",
                       "fee_coupons", "applied_usage_thresholds", "progressive_billing_credits", "fee_groups"]
# What collections say of an invoice, which changes after it is finalized.
COLLECTIONS = ["payment_status", "paid_on", "paid_amount_cents"]


def keep_finalized(fresh: pl.DataFrame, stored: pl.DataFrame | None, frozen_ids: set[str]) -> pl.DataFrame:
    """Rows of invoices finalized in an earlier run (`frozen_ids`) are kept as stored (`stored`,
    None when nothing was stored yet), never recomputed; the other rows are `fresh`."""
    if stored is None or not frozen_ids:
        return fresh
    stored = stored.filter(pl.col("invoice_id").is_in(list(frozen_ids)))
    # a column added since (a warehouse billed by an older version): its neutral value, 0 or null
    stored = stored.with_columns(pl.lit(0 if fresh.schema[c] == pl.Int64 else None, fresh.schema[c]).alias(c)
                                 for c in fresh.columns if c not in stored.columns)
    return pl.concat([stored.select(fresh.columns), fresh.filter(~pl.col("invoice_id").is_in(list(frozen_ids)))],
                     how="vertical_relaxed")


def priced_tables(result: BillingResult, stored: dict[str, pl.DataFrame | None], frozen_ids: set[str]) -> dict[str, pl.DataFrame]:
    """The tables of schema `billing` to write, sorted, from this run's `result` and the rows
    `stored` of invoices finalized before (`frozen_ids`).

    A finalized invoice never changes, except what collections say of it: its payment status.
    (A finalized invoice billed after the billing date is not replayed when billing as of an earlier
    day: the credit it took stays with it.)"""
    kept = {name: keep_finalized(getattr(result, name), stored.get(name), frozen_ids) for name in KEPT_WHEN_FINALIZED}
    # (totals derived again from the parts: rows kept from a warehouse billed before they were stored)
    invoices = Invoices.validate(with_invoice_totals(
        kept["invoices"].drop(COLLECTIONS, strict=False)
        .join(result.invoices.select("invoice_id", *COLLECTIONS), on="invoice_id", how="left")
    ))
    return {
        "invoices": invoices.sort("number"),
        # (a fee's group is stored apart, in fee_groups, so that billing.fees keeps its columns)
        "fees": Fees.validate(with_fee_totals(kept["fees"].drop("grouped_by", strict=False))).sort(["invoice_id", "fee_id"]),
        "fee_taxes": kept["fee_taxes"].sort(["invoice_id", "fee_id", "tax_code"]),
        "invoice_taxes": kept["invoice_taxes"].sort(["invoice_id", "tax_code"]),
        "wallet_transactions": result.wallet_transactions,
        "wallet_balances": result.wallet_balances,
        "late_usage": result.late_usage,
        "payments": result.payments.sort("source_file", "line_number"),
        "current_usage": result.current_usage.drop([c for c in result.current_usage.columns if c.endswith("_json")]),
        "credit_notes": result.credit_notes.sort("number"),
        "credit_note_items": result.credit_note_items.sort("credit_note_id", "fee_id"),
        "credit_note_taxes": result.credit_note_taxes.sort("credit_note_id", "tax_code"),
        "credit_note_applications": kept["credit_note_applications"].sort("invoice_id", "credit_note_id"),
        "coupon_credits": kept["coupon_credits"].sort("invoice_id", "credit_order"),
        "fee_coupons": kept["fee_coupons"].sort("invoice_id", "fee_id", "applied_coupon_id"),
        "applied_coupons": result.applied_coupons.sort("customer_id", "applied_coupon_id"),
        "applied_usage_thresholds": kept["applied_usage_thresholds"].sort("invoice_id", "threshold_order"),
        "progressive_billing_credits": kept["progressive_billing_credits"].sort("invoice_id", "fee_id"),
        "lifetime_usage": result.lifetime_usage.sort("external_subscription_id", "subscription_id"),
        "fee_groups": kept["fee_groups"].sort("invoice_id", "fee_id"),
    }


def changed_credit_notes(issued_before: list[tuple[str, str, str]], voids_before: list[tuple[str, str, dt.date]],
                         issued: pl.DataFrame) -> list[str]:
    """What earlier runs decided of credit notes (`issued_before`: (id, number, invoice id);
    `voids_before`: (id, number, voided on)) that this run's notes (`issued`) now say otherwise: a
    note issued and no longer there as it was, a void undone or moved."""
    present = set(issued["credit_note_id"])
    problems = [
        f"credit note {number} (on invoice {invoice_id}) was issued by an earlier run and is no longer in the catalog "
        f"as it was: an issued credit note cannot be changed or removed (void its credit with voided_at, or issue another)"
        for note_id, number, invoice_id in issued_before
        if note_id not in present
    ]
    voided_now = dict(zip(issued["credit_note_id"], issued["voided_on"], strict=True))
    problems += [
        f"credit note {number} was voided on {voided_on} by an earlier run: a void cannot be undone or moved "
        f"(its voided_at must stay {voided_on})"
        for note_id, number, voided_on in voids_before
        if note_id in present and voided_now[note_id] != voided_on
    ]
    return problems
