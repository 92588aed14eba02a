"""From priced usage to fees, invoices, credits applied and late usage, as of a billing date.

Pure: polars frames in, polars frames out. The asset in `defs/pricing.py` only reads the warehouse
and writes the results back.

Which events an invoice holds is decided by the data: those of its period that arrived on or
before the day it is finalized (billing day plus grace days). Later arrivals are late usage,
reported with the amount they would have added.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal

import polars as pl

from dagster_project.billing import charge_models as cm
from dagster_project.billing import coupons as cp
from dagster_project.billing import progressive as pg
from dagster_project.billing.aggregation import BUCKET, aggregate, carry_over_recurring, cumulative, round_units
from dagster_project.billing.credit_notes import (
    CreditNoteBook, CreditNoteRefused, FeeFacts, InvoiceFacts, customer_of, issue, next_sequence,
)
from dagster_project.billing.event_pricing import incremental_units, per_transaction_amounts
from dagster_project.billing.grouping import NO_GROUP, usage_by_group
from dagster_project.billing.money import currency_exponent, round_half_up, stable_id
from dagster_project.billing.taxes import Tax, TaxBook, fee_tax_precise, half_up_cents, invoice_taxes
from dagster_project.billing.unpriced import unpriced_label
from dagster_project.billing.wallets import (
    DueInvoice, FeeKey, ManualTransaction, OpenUsage, Rule, RuleTopUp, WalletSpec, balance_sync_days,
    replay_customer,
)

NO_TAXES = TaxBook(taxes={}, charge_codes={}, plan_codes={}, customer_codes={}, customer_places={})


@dataclass
class BillingResult:
    fees: pl.DataFrame
    invoices: pl.DataFrame
    fee_taxes: pl.DataFrame
    invoice_taxes: pl.DataFrame
    wallet_transactions: pl.DataFrame
    wallet_balances: pl.DataFrame
    late_usage: pl.DataFrame
    current_usage: pl.DataFrame
    payments: pl.DataFrame
    rule_top_ups: pl.DataFrame
    credit_notes: pl.DataFrame
    credit_note_items: pl.DataFrame
    credit_note_taxes: pl.DataFrame
    credit_note_applications: pl.DataFrame
    coupon_credits: pl.DataFrame
    fee_coupons: pl.DataFrame
    applied_coupons: pl.DataFrame
    applied_usage_thresholds: pl.DataFrame
    progressive_billing_credits: pl.DataFrame
    lifetime_usage: pl.DataFrame
    fee_groups: pl.DataFrame | None = None


def _with_properties(buckets: pl.DataFrame, charges: pl.DataFrame, filters: pl.DataFrame) -> pl.DataFrame:
    """Attach each bucket's pricing properties: the filter's, or the charge's own for the default bucket."""
    charge_props = charges.select(
        "charge_id",
        pl.col("properties_json").alias("charge_properties_json"),
        "charge_model",
        pl.col("invoice_display_name").alias("charge_display_name"),
        "billable_metric_code",
    )
    filter_props = filters.select(
        pl.col("charge_filter_id").alias("charge_filter_key"),
        pl.col("properties_json").alias("filter_properties_json"),
        pl.col("invoice_display_name").alias("filter_display_name"),
        "filter_values_json",
    )
    out = buckets.join(charge_props, on="charge_id", how="left").join(filter_props, on="charge_filter_key", how="left")
    out = out.with_columns(properties_json=pl.when(pl.col("charge_filter_key") == "default")
                           .then(pl.col("charge_properties_json")).otherwise(pl.col("filter_properties_json")))
    # Each distinct properties text is read once (a catalog has a few; the buckets are many).
    texts = out["properties_json"].drop_nulls().unique().sort().to_list()
    parsed = [cm.property_columns(text) for text in texts]
    properties = pl.DataFrame(
        [pl.Series("properties_json", texts, dtype=pl.String)]
        + [pl.Series(col, [p[col] for p in parsed], dtype=cm.MONEY) for col in cm.PROPERTY_COLUMNS]
    )
    columns = [c for c in out.columns if c != "properties_json"]
    return out.join(properties, on="properties_json", how="left", maintain_order="left").select(
        *columns, *cm.PROPERTY_COLUMNS, "properties_json")


def price_buckets(buckets: pl.DataFrame, charges: pl.DataFrame, filters: pl.DataFrame) -> pl.DataFrame:
    """Add `precise_amount` and `amount_cents` to buckets of (period, charge, filter) with `units`,
    `currency`."""
    if buckets.is_empty():
        return buckets.with_columns(
            precise_amount=pl.lit(None, cm.MONEY), amount_cents=pl.lit(None, pl.Int64)
        )
    priced = _with_properties(buckets, charges, filters)
    tier_rows = cm.tier_frame(priced["properties_json"].to_list(), priced["charge_model"].to_list())
    priced = priced.with_columns(precise_amount=cm.precise_amount(priced, tier_rows))
    exponents = pl.Series([currency_exponent(c) for c in priced["currency"]], dtype=pl.Int64)
    return priced.with_columns(amount_cents=cm.amount_cents(pl.col("precise_amount"), pl.lit(exponents)))


# The totals of an invoice and of a fee: computed here only, stored with them (billing.invoices,
# billing.fees) and read by the JSON, the documents, the marts and the checks. Written so that they
# take integers (the wallet replay) and polars expressions (the stored columns) alike.

def including_taxes(amount_cents, taxes_amount_cents):
    """A sub-total with its taxes: an invoice's fees (less coupons) + its taxes, or a fee's amount + its taxes."""
    return amount_cents + taxes_amount_cents


def excluding_taxes(fees_amount_cents, coupons_amount_cents, progressive_credit_cents=0):
    """An invoice's `sub_total_excluding_taxes_amount_cents`: its fees less its coupons and its
    progressive-billing credit (what earlier progressive invoices billed): taxes apply to that."""
    return fees_amount_cents - coupons_amount_cents - progressive_credit_cents


def amount_due(including_taxes_cents, credit_notes_cents, granted_credits_cents, purchased_credits_cents):
    """An invoice's `total_amount_cents`, what is left to pay: its sub-total including taxes, less
    the credit notes' credit it took, less the prepaid credits (granted and purchased) that paid it."""
    return including_taxes_cents - credit_notes_cents - granted_credits_cents - purchased_credits_cents


INVOICE_TOTAL_COLUMNS = ["sub_total_excluding_taxes_amount_cents", "sub_total_including_taxes_amount_cents",
                         "prepaid_credit_amount_cents", "total_amount_cents"]


def with_invoice_totals(invoices: pl.DataFrame) -> pl.DataFrame:
    """The totals of each invoice as columns (Lago's names), from its parts: fees, coupons, taxes,
    credit notes and prepaid credits. Derived from the parts every time, so an invoice kept as stored
    by an earlier run (even by a version without these columns) gets the totals of its own parts."""
    for name in ("coupons_amount_cents", "progressive_billing_credit_amount_cents"):
        if name not in invoices.columns:  # (stored by a version without coupons or progressive billing: none)
            invoices = invoices.with_columns(pl.lit(0, pl.Int64).alias(name))
    granted, purchased = pl.col("prepaid_granted_credit_amount_cents"), pl.col("prepaid_purchased_credit_amount_cents")
    excluded = excluding_taxes(pl.col("fees_amount_cents"), pl.col("coupons_amount_cents"),
                               pl.col("progressive_billing_credit_amount_cents"))
    included = including_taxes(excluded, pl.col("taxes_amount_cents"))
    return invoices.with_columns(
        sub_total_excluding_taxes_amount_cents=excluded,
        sub_total_including_taxes_amount_cents=included,
        prepaid_credit_amount_cents=granted + purchased,
        total_amount_cents=amount_due(included, pl.col("credit_notes_amount_cents"), granted, purchased),
    )


def with_fee_totals(fees: pl.DataFrame) -> pl.DataFrame:
    """Each fee's `total_amount_cents`: its amount with its taxes (each rounded on its own)."""
    return fees.with_columns(total_amount_cents=including_taxes(pl.col("amount_cents"), pl.col("taxes_amount_cents")))


def bill(
    *,
    through: dt.date,
    usage: pl.DataFrame,
    periods: pl.DataFrame,
    charges: pl.DataFrame,
    filters: pl.DataFrame,
    customers: pl.DataFrame,
    wallets: pl.DataFrame,
    customer_sequences: dict[str, int],
    number_prefix: str,
    issued_numbers: dict[str, dict[str, int]] | None = None,
    frozen_totals: dict[str, int] | None = None,
    charge_events: pl.DataFrame | None = None,
    tax_book: TaxBook = NO_TAXES,
    manual_transactions: pl.DataFrame | None = None,
    payments: pl.DataFrame | None = None,
    recorded_top_ups: pl.DataFrame | None = None,
    decided_through: dt.date | None = None,
    credit_notes: CreditNoteBook | None = None,
    unpriced_values: dict[tuple[str, str], list[dict]] | None = None,
    wallet_rules: pl.DataFrame | None = None,
    applied_coupons: pl.DataFrame | None = None,
    recorded_coupon_credits: dict[str, list[tuple[str, int]]] | None = None,
    usage_thresholds: pl.DataFrame | None = None,
    usage_by_dimensions: pl.DataFrame | None = None,
    group_keys: dict[tuple[str, str], list[str]] | None = None,
) -> BillingResult:
    """Bill everything due by `through`.

    `issued_numbers` (customer -> invoice -> sequential number) and `frozen_totals` (invoice ->
    total with taxes) come from invoices finalized by earlier runs: their numbers and totals are
    kept, and the wallet replay pays exactly those totals. `credit_notes`: the catalog's credit
    notes and what earlier runs recorded of them (`CreditNoteBook.fees` of finalized invoices as
    stored; the others' are this run's). Raises `CreditNoteRefused` listing every credit note that
    cannot be issued. `unpriced_values`: per (billing period, charge), the filter values of the usage
    arrived on time that no price applies to (`marts.fct_unpriced_usage`), which name its fee line.
    `wallet_rules`: the wallets' recurring top-up rules (`catalog.wallet_rules`; None: none).
    `applied_coupons`: the coupons applied to customers (`catalog.applied_coupons`; None: none), and
    `recorded_coupon_credits` what they took off invoices finalized by earlier runs (invoice ->
    [(applied coupon, cents)]), kept as it was. `usage_thresholds`: the plans' thresholds
    (`catalog.usage_thresholds`; None: none), which issue progressive_billing invoices.
    `group_keys`: the buckets priced per group ((charge, filter id or 'default') ->
    `pricing_group_keys`; `catalog.pricing_group_keys`), whose usage is read from
    `usage_by_dimensions` (`marts.fct_usage_daily_by_dimensions`) instead.
    """
    usage = usage_by_group(usage, usage_by_dimensions if usage_by_dimensions is not None else usage.clear(),
                           group_keys or {})
    usage = usage.filter(pl.col("arrival_date") <= through).with_columns(
        charge_filter_key=pl.col("charge_filter_id").fill_null("default")
    )
    period_cols = periods.select(
        "billing_period_id", "subscription_id", "external_subscription_id", "customer_id", "currency",
        "period_start_date", "period_end_date", "period_start_at", "period_end_at", "charges_from_at",
        "charges_to_at", "billing_day", "invoice_finalized_on", "plan_code", "plan_id",
        "amount_cents_plan", "days_in_period", "billed_days", "minimum_commitment_cents",
        "fee_days", "period_index", "is_plan_pay_in_advance",
    )
    usage = usage.join(period_cols.select("billing_period_id", "invoice_finalized_on", "billing_day"),
                       on="billing_period_id", how="left", suffix="_p")
    events = _charge_events(charge_events, through, period_cols, charges, filters)
    usage = usage.join(
        events.group_by([*BUCKET, "arrival_date"]).agg(pl.col("event_amount").sum().cast(cm.MONEY).alias("bounded_amount")),
        on=[*BUCKET, "arrival_date"], how="left",
    )
    usage = carry_over_recurring(usage, period_cols)
    # Charges paid in advance are invoiced as their events arrive, not with the period.
    advance_charges = charges.filter(pl.col("is_pay_in_advance"))["charge_id"].to_list()
    advance_usage = usage.filter(pl.col("charge_id").is_in(advance_charges))
    usage = usage.filter(~pl.col("charge_id").is_in(advance_charges))
    rounding = charges.select("charge_id", "rounding_function", "rounding_precision")

    def rounded(frame: pl.DataFrame) -> pl.DataFrame:
        """Apply each metric's rounding to its aggregated units."""
        return frame.join(rounding, on="charge_id", how="left").with_columns(
            units=round_units(pl.col("units"), pl.col("rounding_function"), pl.col("rounding_precision"))
        ).drop("rounding_function", "rounding_precision")

    # Invoices: periods whose billing day has come. Buckets: usage that arrived in time.
    advance_due, advance_fees = _advance_invoices(events.filter(pl.col("charge_id").is_in(advance_charges)),
                                                  period_cols, charges, filters, through)
    due = pl.concat([_due_invoices(period_cols, through), advance_due], how="diagonal_relaxed").with_columns(
        pl.col("is_advance").fill_null(False)
    )
    closing = ~pl.col("is_starting") & ~pl.col("is_advance")
    on_time = rounded(aggregate(usage, pl.col("arrival_date") <= pl.col("invoice_finalized_on_p")))
    fee_buckets = on_time.join(
        due.filter(closing).select("billing_period_id", "invoice_id", "currency", "status"),
        on="billing_period_id",
    )
    fees = price_buckets(fee_buckets, charges, filters)
    fees = fees.filter(~((pl.col("units") == 0) & (pl.col("events_count") == 0) & (pl.col("amount_cents") == 0)))
    fees = fees.with_columns(
        fee_id=pl.struct("invoice_id", "charge_id", "charge_filter_key", "grouped_by").map_elements(fee_id, return_dtype=pl.String),
        fee_type=pl.lit("charge"),
        unpriced_label=_unpriced_labels(fees, unpriced_values or {}),
    )
    advance_fees = advance_fees.with_columns(unpriced_label=_unpriced_labels(advance_fees, unpriced_values or {}))
    fees = pl.concat([fees.select(FEE_COLUMNS), advance_fees.select(FEE_COLUMNS)], how="vertical_relaxed")
    subscription_fees = _subscription_fees(period_cols, due.filter(closing | pl.col("is_starting")))
    subscription_fees = pl.concat(
        [subscription_fees, _minimum_fees(due.filter(~pl.col("is_advance")), fees, subscription_fees, charges)],
        how="vertical_relaxed",
    )

    # Late usage of finalized periods: what it would have added.
    late_usage = _late_usage(usage, on_time, rounded, due.filter(~pl.col("is_advance")), charges, filters)

    # Current usage: periods open at the end of `through`, everything arrived so far.
    open_periods = period_cols.filter((pl.col("period_start_date") <= through) & (pl.col("billing_day") > through))
    current = rounded(aggregate(pl.concat([usage, advance_usage], how="vertical_relaxed"), pl.lit(True))).join(
        open_periods.select("billing_period_id", "currency"), on="billing_period_id"
    )
    current_usage = price_buckets(current, charges, filters)

    # Progressive billing: invoices of the usage so far when it crosses a threshold, each deducting
    # what the period's previous one billed (and the closing invoice the last one's).
    progressive = _progressive(usage, advance_usage, rounded, period_cols, charges, filters, fees, due, usage_thresholds,
                               current_usage, through, unpriced_values, set(frozen_totals or {}))
    due = pl.concat([due.with_columns(invoice_type=pl.lit("subscription")), progressive.due], how="diagonal_relaxed")
    all_fees = pl.concat([fees, subscription_fees.select(FEE_COLUMNS), progressive.fees], how="vertical_relaxed")
    coupon_credits, fee_coupons, coupon_states = _coupons(
        all_fees, due.filter(pl.col("invoice_type") == "subscription"), charges, applied_coupons,
        {**{i: [] for i in frozen_totals or {}}, **(recorded_coupon_credits or {})})
    fee_credits = pl.concat([fee_coupons, progressive.shares])  # what each fee's taxes do not apply to
    all_fees, fee_taxes, invoice_tax_rows = _taxed(all_fees, due, tax_book, fee_credits)
    current_usage = _taxed_buckets(current_usage, period_cols, tax_book)
    invoice_totals = _invoice_totals(due, all_fees, invoice_tax_rows, tax_book, coupon_credits, progressive.credits)
    # The ongoing balance is a wallet's: priced day by day for the customers who have one.
    open_usage = usage.filter(pl.col("arrival_date") <= pl.col("invoice_finalized_on_p"))
    wallet_periods = period_cols.filter(pl.col("customer_id").is_in(wallets["customer_id"].implode()))
    daily_ongoing = _daily_ongoing_usage(
        open_usage.join(wallet_periods.select("billing_period_id"), on="billing_period_id", how="semi"),
        rounded, period_cols, charges, filters, tax_book,
        _progressive_billed(progressive.due, wallet_periods, all_fees, progressive.credits, charges),
    )
    book = credit_notes or CreditNoteBook()
    book = CreditNoteBook(book.requests, {**fee_facts(all_fees, fee_taxes, fee_coupons), **(book.fees or {})},
                          book.recorded_sequences or {}, book.recorded_applications or {})
    matched_payments, invoices, transactions, balances, rule_top_ups, notes = _replay_wallets(
        invoice_totals, wallets, wallet_rules, customers, daily_ongoing, open_usage["arrival_date"].min(), through,
        customer_sequences, number_prefix,
        issued_numbers or {}, frozen_totals or {}, _manual_transactions(manual_transactions),
        payments if payments is not None else pl.DataFrame(schema=PAYMENT_SCHEMA),
        _recorded(recorded_top_ups), decided_through, book, wallet_fee_amounts(all_fees, fee_credits, charges),
    )
    fee_groups = all_fees.filter(pl.col("grouped_by") != NO_GROUP).select("fee_id", "invoice_id", "grouped_by")
    return BillingResult(all_fees, invoices, fee_taxes, invoice_tax_rows, transactions, balances, late_usage,
                         current_usage, matched_payments, rule_top_ups, *notes, coupon_credits, fee_coupons,
                         coupon_states, progressive.applied_thresholds, progressive.credits, progressive.lifetime_usage,
                         fee_groups)


def fee_id(fee: dict) -> str:
    """A charge fee's id, from its invoice, charge, bucket and group (a fee of a bucket priced as a
    whole keeps the id it had before groups existed)."""
    group = () if fee["grouped_by"] == NO_GROUP else (fee["grouped_by"],)
    return stable_id("fee", fee["invoice_id"], fee["charge_id"], fee["charge_filter_key"], *group)


def fee_coupon_shares(fee_coupons: pl.DataFrame | None) -> dict[str, Decimal]:
    """Each fee's share of its invoice's coupons, exact (`fee_coupons`: one row per fee and coupon)."""
    shares: dict[str, Decimal] = {}
    for fee_id, share in (fee_coupons.select("fee_id", "precise_amount_cents").iter_rows() if fee_coupons is not None else ()):
        shares[fee_id] = shares.get(fee_id, Decimal(0)) + share
    return shares


def wallet_fee_amounts(fees: pl.DataFrame, fee_coupons: pl.DataFrame,
                       charges: pl.DataFrame) -> dict[str, tuple[tuple[FeeKey, Decimal], ...]]:
    """Per invoice, each fee's key and what a wallet may pay of it: its amount less its share of the
    coupons, plus its precise taxes (cents, exact). The key is what a wallet's `applies_to` looks
    at: the fee type as Lago names it (a charge's true-up, `min_amount_cents`, is a `charge` fee of
    its charge, as in Lago) and, for a charge fee, its billable metric's code."""
    metric_of = dict(zip(charges["charge_id"], charges["billable_metric_code"], strict=True))
    coupon_shares = fee_coupon_shares(fee_coupons)
    out: dict[str, list[tuple[FeeKey, Decimal]]] = {}
    for f in fees.select("fee_id", "invoice_id", "fee_type", "charge_id", "amount_cents",
                         "taxes_precise_amount_cents").iter_rows(named=True):
        fee_type = "charge" if f["fee_type"] == "true_up" else f["fee_type"]
        key = (fee_type, metric_of.get(f["charge_id"]) if fee_type == "charge" else None)
        amount = f["amount_cents"] - coupon_shares.get(f["fee_id"], Decimal(0)) + f["taxes_precise_amount_cents"]
        out.setdefault(f["invoice_id"], []).append((key, amount))
    return {invoice_id: tuple(items) for invoice_id, items in out.items()}


def _unpriced_labels(fees: pl.DataFrame, values: dict[tuple[str, str], list[dict]]) -> pl.Series:
    """The name of each fee line of a default bucket that no price applies to (its charge has no
    `properties` of its own): its filter values; null for every other fee."""
    if "properties_json" not in fees.columns:  # (no fee at all: an empty frame without the column)
        return pl.Series("unpriced_label", [None] * len(fees), dtype=pl.String)
    return pl.Series("unpriced_label", [
        unpriced_label(values.get((period, charge), [])) if key == "default" and props is None else None
        for period, charge, key, props in zip(fees["billing_period_id"], fees["charge_id"], fees["charge_filter_key"],
                                              fees["properties_json"], strict=True)
    ], dtype=pl.String)


def fee_facts(fees: pl.DataFrame, fee_taxes: pl.DataFrame,
              fee_coupons: pl.DataFrame | None = None) -> dict[str, tuple[FeeFacts, ...]]:
    """Per invoice, each fee's amount, taxes and exact share of the coupons (`fee_coupons`): what a
    credit note on it is checked against."""
    coupon_shares = fee_coupon_shares(fee_coupons)
    taxes: dict[str, list[Tax]] = {}
    for t in fee_taxes.iter_rows(named=True):
        taxes.setdefault(t["fee_id"], []).append(Tax(t["tax_code"], t["tax_name"], Decimal(t["tax_rate"]), t["tax_description"]))
    facts: dict[str, list[FeeFacts]] = {}
    for f in fees.select("fee_id", "invoice_id", "amount_cents").iter_rows(named=True):
        facts.setdefault(f["invoice_id"], []).append(FeeFacts(f["fee_id"], f["amount_cents"], tuple(taxes.get(f["fee_id"], ())),
                                                              coupon_shares.get(f["fee_id"], Decimal(0))))
    return {invoice_id: tuple(items) for invoice_id, items in facts.items()}


def _taxed(fees: pl.DataFrame, due: pl.DataFrame, book: TaxBook,
           fee_coupons: pl.DataFrame | None = None) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Each fee's taxes (charge, plan, customer or EU VAT rule, organization: the first level that
    names any) on the fee less its share of the coupons (`fee_coupons`: exact shares per fee),
    rounded half-up per fee for display; each invoice's taxes, per tax, rounded once on the sum of
    its fees' precise taxes."""
    context = {r["invoice_id"]: r for r in due.select("invoice_id", "plan_id", "customer_id", "billing_day").iter_rows(named=True)}
    coupon_shares = fee_coupon_shares(fee_coupons)
    fee_rows, per_invoice, rates, precise_taxes, fee_tax_cents = [], {}, [], [], []
    for f in fees.select("fee_id", "invoice_id", "charge_id", "amount_cents", "currency").iter_rows(named=True):
        inv = context[f["invoice_id"]]
        taxes = book.fee_taxes(f["charge_id"], inv["plan_id"], inv["customer_id"], inv["billing_day"])
        base = f["amount_cents"] - coupon_shares[f["fee_id"]] if f["fee_id"] in coupon_shares else f["amount_cents"]
        per_invoice.setdefault(f["invoice_id"], []).append((base, taxes))
        precise = sum((fee_tax_precise(base, t.rate) for t in taxes), Decimal(0))
        rates.append(sum((t.rate for t in taxes), Decimal(0)))
        precise_taxes.append(precise)
        fee_tax_cents.append(half_up_cents(precise))
        for t in taxes:
            one = fee_tax_precise(base, t.rate)
            fee_rows.append({
                "fee_id": f["fee_id"], "invoice_id": f["invoice_id"], "tax_code": t.code, "tax_name": t.name,
                "tax_rate": t.rate, "tax_description": t.description, "fee_amount_cents": f["amount_cents"],
                "precise_amount_cents": one, "amount_cents": half_up_cents(one), "currency": f["currency"],
            })
    fees = with_fee_totals(fees.with_columns(
        taxes_rate=pl.Series(rates, dtype=cm.MONEY), taxes_precise_amount_cents=pl.Series(precise_taxes, dtype=cm.MONEY),
        taxes_amount_cents=pl.Series(fee_tax_cents, dtype=pl.Int64),
    ))
    currency = {r["invoice_id"]: r["currency"] for r in fees.select("invoice_id", "currency").unique().iter_rows(named=True)}
    invoice_rows = [
        {"invoice_id": invoice_id, "tax_code": a.tax.code, "tax_name": a.tax.name, "tax_rate": a.tax.rate,
         "tax_description": a.tax.description, "fees_amount_cents": a.fees_amount_cents, "amount_cents": a.amount_cents,
         "currency": currency[invoice_id]}
        for invoice_id, items in sorted(per_invoice.items()) for a in invoice_taxes(items)
    ]
    return fees, pl.DataFrame(fee_rows, schema=FEE_TAX_SCHEMA), pl.DataFrame(invoice_rows, schema=INVOICE_TAX_SCHEMA)


def _bucket_rates(frame: pl.DataFrame, periods: pl.DataFrame, book: TaxBook) -> pl.Series:
    """The total tax rate of each usage bucket, as on its period's invoice (looked up once per
    charge and period: the buckets of a period's days and filters share it)."""
    pairs = frame.select("charge_id", "billing_period_id").unique(maintain_order=True)
    context = pairs.join(periods.select("billing_period_id", "plan_id", "customer_id", "billing_day"),
                         on="billing_period_id", how="left", maintain_order="left")
    rates = [sum((t.rate for t in book.fee_taxes(charge_id, plan_id, customer_id, billing_day)), Decimal(0))
             for charge_id, _, plan_id, customer_id, billing_day in context.iter_rows()]
    keyed = pairs.with_columns(taxes_rate=pl.Series(rates, dtype=cm.MONEY))
    return frame.select("charge_id", "billing_period_id").join(
        keyed, on=["charge_id", "billing_period_id"], how="left", maintain_order="left")["taxes_rate"]


def _taxed_buckets(buckets: pl.DataFrame, periods: pl.DataFrame, book: TaxBook) -> pl.DataFrame:
    """Current usage with the tax rate and tax (half-up per bucket) its invoice would apply."""
    rates = _bucket_rates(buckets, periods, book)
    # (a bucket without taxes owes none; the others, each distinct amount and rate taxed once)
    taxed: dict[tuple[int, Decimal], int] = {}
    taxes = [0 if not rate else taxed[(amount, rate)] if (amount, rate) in taxed
             else taxed.setdefault((amount, rate), half_up_cents(fee_tax_precise(amount, rate)))
             for amount, rate in zip(buckets["amount_cents"].to_list(), rates.to_list(), strict=True)]
    return buckets.with_columns(taxes_rate=rates, taxes_amount_cents=pl.Series(taxes, dtype=pl.Int64))


FEE_COLUMNS = [
    "fee_id", "invoice_id", "fee_type", "billing_period_id", "charge_id", "charge_filter_key", "units",
    "events_count", "precise_amount", "amount_cents", "currency", "unpriced_label", "grouped_by",
]


def _charge_events(charge_events, through, periods, charges, filters) -> pl.DataFrame:
    """Events priced one by one, with their pricing properties and `event_amount` (the bounded
    percentage amount; null for other models)."""
    schema = {"event_record_id": pl.String, "subscription_id": pl.String, "billing_period_id": pl.String,
              "charge_id": pl.String, "charge_filter_key": pl.String, "grouped_by": pl.String, "arrival_date": pl.Date,
              "charge_order": pl.Int64, "units": cm.MONEY, "event_amount": cm.MONEY, "currency": pl.String}
    if charge_events is None or charge_events.is_empty():
        return pl.DataFrame(schema=schema)
    events = charge_events.filter(pl.col("arrival_date") <= through).with_columns(
        charge_filter_key=pl.col("charge_filter_id").fill_null("default"), events_count=pl.lit(1, pl.Int64),
        units=pl.col("units").cast(cm.MONEY), grouped_by=pl.lit(NO_GROUP),  # (never priced per group: see reader)
    ).join(periods.select("billing_period_id", "currency"), on="billing_period_id")
    events = _with_properties(events, charges, filters)
    is_percentage = pl.col("charge_model") == "percentage"
    return events.with_columns(
        event_amount=pl.when(is_percentage).then(per_transaction_amounts(events)).otherwise(None).cast(cm.MONEY)
    )


def _advance_invoices(events, periods, charges, filters, through) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Charges paid in advance: each event costs what it adds to its bucket's price; a day's events
    of one subscription period make one invoice, issued on their arrival day."""
    if events.is_empty():
        return pl.DataFrame(schema={"invoice_id": pl.String, "is_advance": pl.Boolean}), pl.DataFrame(schema=_FEE_SCHEMA)
    steps = incremental_units(events)
    keep = [*BUCKET, "currency", "arrival_date", "event_record_id", "subscription_id", "charge_model", "event_amount"]
    through_price = price_buckets(steps.select(*keep, pl.col("units_through").alias("units"), pl.lit(1).alias("events_count")), charges, filters)
    before_price = price_buckets(steps.select(*keep, pl.col("units_before").alias("units"), pl.lit(1).alias("events_count")), charges, filters)
    priced = steps.with_columns(
        event_fee=pl.when(pl.col("charge_model") == "percentage").then(pl.col("event_amount"))
        .otherwise(through_price["precise_amount"] - before_price["precise_amount"]).cast(cm.MONEY)
    )
    fees = (
        priced.group_by(["billing_period_id", "arrival_date", "charge_id", "charge_filter_key", "grouped_by", "currency"])
        .agg(pl.col("units").sum().cast(cm.MONEY), pl.len().cast(pl.Int64).alias("events_count"),
             pl.col("event_fee").sum().cast(cm.MONEY).alias("precise_amount"))
        .with_columns(
            invoice_id=pl.struct("billing_period_id", "arrival_date").map_elements(
                lambda r: stable_id("advance_invoice", r["billing_period_id"], r["arrival_date"]), return_dtype=pl.String),
            fee_type=pl.lit("charge"),
        )
    )
    exponents = pl.Series([currency_exponent(c) for c in fees["currency"]], dtype=pl.Int64)
    fees = fees.with_columns(amount_cents=cm.amount_cents(pl.col("precise_amount"), pl.lit(exponents))).with_columns(
        fee_id=pl.struct("invoice_id", "charge_id", "charge_filter_key", "grouped_by").map_elements(fee_id, return_dtype=pl.String)
    )
    due = (
        fees.select("billing_period_id", "arrival_date", "invoice_id").unique()
        .join(periods, on="billing_period_id")
        .with_columns(
            billing_day=pl.col("arrival_date"), invoice_finalized_on=pl.col("arrival_date"),
            is_starting=pl.lit(False), is_advance=pl.lit(True),
            status=pl.when(pl.col("arrival_date") < through).then(pl.lit("finalized")).otherwise(pl.lit("draft")),
        )
        .drop("arrival_date")
    )
    return due, fees


def _due_invoices(periods: pl.DataFrame, through: dt.date) -> pl.DataFrame:
    """The subscription invoices issued by `through`: one at the end of each period, and, for a plan
    paid in advance, one when the subscription starts (it holds the first period's fee)."""
    # (issued by `through` first, then named: the periods to come are many and need no id yet)
    issued = pl.col("billing_day") <= through
    closing = periods.filter(issued).with_columns(
        is_starting=pl.lit(False),
        invoice_id=pl.col("billing_period_id").map_elements(lambda p: stable_id("invoice", p), return_dtype=pl.String),
    )
    grace = pl.col("invoice_finalized_on") - pl.col("billing_day")
    starting = periods.filter(pl.col("is_plan_pay_in_advance") & (pl.col("period_index") == 0)).with_columns(
        invoice_finalized_on=pl.col("period_start_date") + grace,
        billing_day=pl.col("period_start_date"),
        is_starting=pl.lit(True),
    ).filter(issued).with_columns(
        invoice_id=pl.col("billing_period_id").map_elements(lambda p: stable_id("starting_invoice", p), return_dtype=pl.String),
    )
    return pl.concat([closing, starting], how="vertical_relaxed").with_columns(
        is_advance=pl.lit(False),
        # Finalized by the first run after its finalization day: that day's landing folder is then
        # complete, so no on-time event can reach the folder after the invoice is frozen.
        status=pl.when(pl.col("invoice_finalized_on") < through).then(pl.lit("finalized")).otherwise(pl.lit("draft")),
    )


def _subscription_fees(periods: pl.DataFrame, due: pl.DataFrame) -> pl.DataFrame:
    """The plan's fee for each period, prorated by the days billed outside any trial:
    amount * fee days / days in period, half-up. In arrears it is on the invoice closing the period;
    in advance, on the invoice issued when the period starts (the previous period's closing invoice,
    or the subscription's starting invoice)."""
    by_period = {r["billing_period_id"]: r for r in due.filter(~pl.col("is_starting")).select(
        "billing_period_id", "invoice_id").iter_rows(named=True)}
    starting = {r["billing_period_id"]: r for r in due.filter(pl.col("is_starting")).select(
        "billing_period_id", "invoice_id").iter_rows(named=True)}
    previous = {(subscription_id, index): period_id for subscription_id, index, period_id
                in periods.select("subscription_id", "period_index", "billing_period_id").iter_rows()}
    rows = []
    # (only the periods with a plan amount and fee days have a fee)
    with_fee = periods.filter((pl.col("amount_cents_plan").fill_null(0) != 0) & (pl.col("fee_days").fill_null(0) != 0))
    for r in with_fee.iter_rows(named=True):
        if not r["is_plan_pay_in_advance"]:
            invoice = by_period.get(r["billing_period_id"])
        elif r["period_index"] == 0:
            invoice = starting.get(r["billing_period_id"])
        else:
            invoice = by_period.get(previous.get((r["subscription_id"], r["period_index"] - 1)))
        if invoice is None:
            continue  # not invoiced yet
        precise = Decimal(r["amount_cents_plan"]) * r["fee_days"] / r["days_in_period"]
        exponent = currency_exponent(r["currency"])
        rows.append({
            "fee_id": stable_id("fee", invoice["invoice_id"], "subscription", r["billing_period_id"]),
            "invoice_id": invoice["invoice_id"], "fee_type": "subscription",
            "billing_period_id": r["billing_period_id"], "charge_id": None, "charge_filter_key": None,
            "units": Decimal(r["fee_days"]) / Decimal(r["days_in_period"]), "events_count": 0,
            "precise_amount": precise.scaleb(-exponent), "amount_cents": int(round_half_up(precise, 0)),
            "currency": r["currency"],
        })
    return pl.DataFrame(rows, schema=_FEE_SCHEMA).with_columns(grouped_by=pl.lit(NO_GROUP))


_FEE_SCHEMA = {"fee_id": pl.String, "invoice_id": pl.String, "fee_type": pl.String, "billing_period_id": pl.String,
               "charge_id": pl.String, "charge_filter_key": pl.String, "units": cm.MONEY, "events_count": pl.Int64,
               "precise_amount": cm.MONEY, "amount_cents": pl.Int64, "currency": pl.String, "unpriced_label": pl.String,
               "grouped_by": pl.String}


def _prorated(cents: int, billed_days: int, days_in_period: int) -> int:
    """A minimum for the days billed: cents * billed / days, half-up to whole cents."""
    return int(round_half_up(Decimal(cents) * billed_days / days_in_period, 0))


def _minimum_fees(due: pl.DataFrame, fees: pl.DataFrame, subscription_fees: pl.DataFrame, charges: pl.DataFrame) -> pl.DataFrame:
    """True-up fees: a charge's `min_amount_cents` and the plan's `minimum_commitment`, prorated to
    the days billed, less what the period's fees already reach; none when they reach it."""
    charge_sums = fees.group_by("invoice_id", "charge_id").agg(pl.col("amount_cents").sum())
    sums = {(r["invoice_id"], r["charge_id"]): r["amount_cents"] for r in charge_sums.iter_rows(named=True)}
    invoice_sums = {
        r["invoice_id"]: r["amount_cents"]
        for r in pl.concat([fees.select("invoice_id", "amount_cents"), subscription_fees.select("invoice_id", "amount_cents")])
        .group_by("invoice_id").agg(pl.col("amount_cents").sum()).iter_rows(named=True)
    }
    minimums: dict[str, list[dict]] = {}  # by plan: its charges with a minimum, in catalog order
    for m in charges.filter(pl.col("min_amount_cents").fill_null(0) > 0).select(
            "charge_id", "plan_id", "min_amount_cents").iter_rows(named=True):
        minimums.setdefault(m["plan_id"], []).append(m)
    rows = []

    def fee_row(r: dict, kind: str, key: str, charge_id: str | None, cents: int) -> dict:
        exponent = currency_exponent(r["currency"])
        return {
            "fee_id": stable_id("fee", r["invoice_id"], kind, key), "invoice_id": r["invoice_id"], "fee_type": kind,
            "billing_period_id": r["billing_period_id"], "charge_id": charge_id, "charge_filter_key": None,
            "units": Decimal(1), "events_count": 0, "precise_amount": Decimal(cents).scaleb(-exponent),
            "amount_cents": cents, "currency": r["currency"],
        }

    for r in due.filter(~pl.col("is_starting")).iter_rows(named=True):
        true_ups = 0
        for m in minimums.get(r["plan_id"], ()):
            gap = _prorated(m["min_amount_cents"], r["billed_days"], r["days_in_period"]) - sums.get((r["invoice_id"], m["charge_id"]), 0)
            if gap > 0:
                rows.append(fee_row(r, "true_up", m["charge_id"], m["charge_id"], gap))
                true_ups += gap
        commitment = r.get("minimum_commitment_cents") or 0
        if commitment:
            gap = _prorated(commitment, r["billed_days"], r["days_in_period"]) - invoice_sums.get(r["invoice_id"], 0) - true_ups
            if gap > 0:
                rows.append(fee_row(r, "commitment", "plan", None, gap))
    return pl.DataFrame(rows, schema=_FEE_SCHEMA).with_columns(grouped_by=pl.lit(NO_GROUP))


def _late_usage(usage, on_time, rounded, due, charges, filters) -> pl.DataFrame:
    """Per finalized bucket with late arrivals: the late units and events, and what pricing all the
    usage known now would add to the finalized amount."""
    finalized = due.filter((pl.col("status") == "finalized") & ~pl.col("is_starting")).select("billing_period_id", "currency")
    is_late = pl.col("arrival_date") > pl.col("invoice_finalized_on_p")
    late = aggregate(usage, is_late).join(finalized, on="billing_period_id")
    if late.is_empty():
        return pl.DataFrame(schema={**{k: pl.String for k in BUCKET}, "late_units": cm.MONEY,
                                    "late_events_count": pl.Int64, "late_amount_cents": pl.Int64})
    everything = rounded(aggregate(usage, pl.lit(True))).join(late.select(*BUCKET, "currency"), on=BUCKET)
    billed = everything.select(*BUCKET, "currency").join(
        on_time.select(*BUCKET, "units", "events_count", "bounded_amount"), on=BUCKET, how="left"
    ).with_columns(pl.col("units").fill_null(Decimal(0)).cast(cm.MONEY), pl.col("events_count").fill_null(0))
    # (`bounded_amount`: a percentage bucket's on-time events priced one by one, as invoiced)
    with_late = price_buckets(everything.sort(BUCKET), charges, filters)
    without = price_buckets(billed.sort(BUCKET), charges, filters)
    return with_late.select(
        *BUCKET,
        (pl.col("units") - without["units"]).alias("late_units"),
        (pl.col("events_count") - without["events_count"]).alias("late_events_count"),
        (pl.col("amount_cents") - without["amount_cents"]).alias("late_amount_cents"),
    )


def _invoice_totals(due: pl.DataFrame, fees: pl.DataFrame, invoice_tax_rows: pl.DataFrame, book: TaxBook,
                    coupon_credits: pl.DataFrame, progressive_credits: pl.DataFrame) -> pl.DataFrame:
    sums = fees.group_by("invoice_id").agg(fees_amount_cents=pl.col("amount_cents").sum())
    coupons = coupon_credits.group_by("invoice_id").agg(coupons_amount_cents=pl.col("amount_cents").sum())
    progressive = progressive_credits.group_by("invoice_id").agg(
        progressive_billing_credit_amount_cents=pl.col("amount_cents").sum())
    taxes = invoice_tax_rows.group_by("invoice_id").agg(taxes_amount_cents=pl.col("amount_cents").sum())
    rules = []
    for customer_id, day in zip(due["customer_id"], due["billing_day"], strict=True):
        decision = book.vat_decision(customer_id, day)
        rules.append(decision.rule if decision else None)
    return due.with_columns(tax_rule=pl.Series(rules, dtype=pl.String)).join(
        sums, on="invoice_id", how="left").join(taxes, on="invoice_id", how="left").join(
        coupons, on="invoice_id", how="left").join(progressive, on="invoice_id", how="left").with_columns(
        pl.col("fees_amount_cents").fill_null(0), pl.col("taxes_amount_cents").fill_null(0),
        pl.col("coupons_amount_cents").fill_null(0), pl.col("progressive_billing_credit_amount_cents").fill_null(0),
    )


def _progressive_billed(progressive_due, periods, fees, credits, charges) -> dict[str, list]:
    """Per customer: what each fee of its progressive invoices in `periods` billed, for the ongoing
    usage (`progressive.ongoing_billed_changes`): (invoice day, its period's finalization day, fee
    key, amount less its progressive credit plus its taxes)."""
    if progressive_due.is_empty():
        return {}
    progressive_due = progressive_due.join(periods.select("billing_period_id"), on="billing_period_id", how="semi")
    metric_of = dict(zip(charges["charge_id"], charges["billable_metric_code"], strict=True))
    credit = dict(credits.group_by("fee_id").agg(pl.col("amount_cents").sum()).iter_rows())
    finalized_on = dict(periods.select("billing_period_id", "invoice_finalized_on").iter_rows())
    invoices = {r["invoice_id"]: r for r in progressive_due.iter_rows(named=True)}
    out: dict[str, list] = {}
    for f in fees.filter(pl.col("invoice_id").is_in(list(invoices))).iter_rows(named=True):
        invoice = invoices[f["invoice_id"]]
        out.setdefault(invoice["customer_id"], []).append(
            (invoice["billing_day"], finalized_on[invoice["billing_period_id"]], ("charge", metric_of.get(f["charge_id"])),
             f["amount_cents"] - credit.get(f["fee_id"], 0) + f["taxes_amount_cents"]))
    return out


def _daily_ongoing_usage(open_usage, rounded, periods, charges, filters,
                         book: TaxBook, billed: dict[str, list] | None = None) -> dict[str, dict[dt.date, dict[FeeKey, int]]]:
    """Per customer and day: the amount (cents, taxes included) of usage arrived by that day in
    periods whose invoice is not finalized yet (`open_usage`: usage arrived by its invoice's
    finalization), per fee key (`charge` and the billable metric: what a limited wallet looks at),
    less what progressive invoices already billed of it (`billed`, per customer:
    `_progressive_billed`). Priced on cumulative units, so package rounding is exact; each bucket's
    tax is rounded half-up."""
    cumulative_units = rounded(cumulative(open_usage)).join(
        periods.select("billing_period_id", "currency", "customer_id", "invoice_finalized_on"), on="billing_period_id"
    )
    priced = price_buckets(cumulative_units, charges, filters)
    priced = _taxed_buckets(priced, periods, book).with_columns(
        amount_cents=including_taxes(pl.col("amount_cents"), pl.col("taxes_amount_cents"))
    )
    priced = priced.with_columns(
        delta=pl.col("amount_cents") - pl.col("amount_cents").shift(1, fill_value=0).over(BUCKET)
    )
    changes: dict[str, dict[dt.date, dict[FeeKey, int]]] = {}
    metric_of = dict(zip(charges["charge_id"], charges["billable_metric_code"], strict=True))

    def add(customer: str, key: FeeKey, day: dt.date, cents: int) -> None:
        keys = changes.setdefault(customer, {}).setdefault(day, {})
        keys[key] = keys.get(key, 0) + cents

    # (the changes of a customer's charge on a day, summed in polars first: the loops below see one
    # row per customer, charge and day, not one per bucket with every priced column converted)
    daily = priced.group_by("customer_id", "charge_id", "arrival_date", maintain_order=True).agg(pl.col("delta").sum())
    for customer, charge_id, day, delta in daily.iter_rows():
        add(customer, ("charge", metric_of.get(charge_id)), day, delta)
    finals = priced.group_by("customer_id", "charge_id", "invoice_finalized_on").agg(pl.col("delta").sum())
    for customer, charge_id, finalized_on, delta in finals.iter_rows():  # usage leaves the open balance
        add(customer, ("charge", metric_of.get(charge_id)), finalized_on + dt.timedelta(days=1), -delta)
    for customer, rows in (billed or {}).items():
        for day, key, cents in pg.ongoing_billed_changes(rows):
            add(customer, key, day, cents)
    out: dict[str, dict[dt.date, dict[FeeKey, int]]] = {}
    for customer, days in changes.items():
        running: dict[FeeKey, int] = {}
        series = {}
        for day in sorted(days):
            for key, cents in days[day].items():
                running[key] = running.get(key, 0) + cents
            series[day] = dict(running)
        out[customer] = series
    return out


def _recorded(frame: pl.DataFrame | None) -> list[RuleTopUp]:
    """Rule top-ups recorded by earlier runs (`billing.wallet_rule_top_ups`)."""
    if frame is None:
        return []
    return [RuleTopUp(r["wallet_id"], r["top_up_date"], r["source"], r["invoice_key"], Decimal(r["paid_credits"]),
                      Decimal(r["granted_credits"])) for r in frame.iter_rows(named=True)]


def _manual_transactions(frame: pl.DataFrame | None) -> list[ManualTransaction]:
    if frame is None:
        return []
    return [
        ManualTransaction(
            wallet_id=r["wallet_id"], day=r["created_at"].date(), order=r["transaction_order"],
            paid_credits=Decimal(r["paid_credits"]), granted_credits=Decimal(r["granted_credits"]),
            voided_credits=Decimal(r["voided_credits"]),
            invoice_requires_successful_payment=r["invoice_requires_successful_payment"],
            metadata_json=r.get("metadata_json"),
        )
        for r in frame.iter_rows(named=True)
    ]


def collected_by_number(payments: pl.DataFrame) -> dict[str, list[tuple[dt.date, int]]]:
    """Payments per invoice number, in date (then file and line) order."""
    collected: dict[str, list[tuple[dt.date, int]]] = {}
    for r in payments.sort("paid_on", "source_file", "line_number").iter_rows(named=True):
        collected.setdefault(r["invoice_number"], []).append((r["paid_on"], r["amount_cents"]))
    return collected


def payment_status(due_cents: int, collected: list[tuple[dt.date, int]]) -> tuple[str, dt.date | None, int]:
    """(`payment_status`, the day the amount due was collected in full, cents collected). Nothing due
    (credits paid it all) is `succeeded` at once; otherwise `pending` until payments reach it."""
    total = 0
    for day, cents in collected:
        total += cents
        if total >= due_cents > 0:
            return "succeeded", day, sum(c for _, c in collected)
    if due_cents <= 0:
        return "succeeded", None, total
    return "pending", None, total


def _wallet_specs(wallets: pl.DataFrame, wallet_rules: pl.DataFrame | None, first_day: dt.date) -> dict[str, list[WalletSpec]]:
    """Each customer's wallets with their rules (`wallet_rules`: one row per rule, in the order of
    `rule_index`; credits as exact decimal text)."""
    rules_of: dict[str, list[Rule]] = {}
    for r in (wallet_rules.sort("wallet_id", "rule_index").iter_rows(named=True) if wallet_rules is not None else ()):
        rules_of.setdefault(r["wallet_id"], []).append(Rule(
            trigger=r["trigger"], method=r["method"],
            threshold_credits=Decimal(r["threshold_credits"]) if r["threshold_credits"] is not None else None,
            target_ongoing_balance=Decimal(r["target_ongoing_balance"]) if r["target_ongoing_balance"] is not None else None,
            paid_credits=Decimal(r["paid_credits"] or 0), granted_credits=Decimal(r["granted_credits"] or 0),
            grants_target_top_up=bool(r["grants_target_top_up"]),
            interval=r["interval"],
            started_on=r["started_on"],
            metadata_json=r.get("transaction_metadata_json"),
        ))
    specs: dict[str, list[WalletSpec]] = {}
    for w in wallets.iter_rows(named=True):
        rules = tuple(rules_of.get(w["wallet_id"], ()))
        specs.setdefault(w["customer_id"], []).append(
            WalletSpec(
                wallet_id=w["wallet_id"], priority=w["priority"], creation_order=w["creation_order"],
                currency=w["currency"], rate_amount=Decimal(w["rate_amount"]),
                paid_credits=Decimal(w["paid_credits"]), granted_credits=Decimal(w["granted_credits"]),
                effective_on=w["created_at"].date() if w["created_at"] else first_day,
                expires_on=w["expiration_at"].date() if w["expiration_at"] else None,
                invoice_requires_successful_payment=w["invoice_requires_successful_payment"],
                rules=rules,
                fee_types=tuple(json.loads(w.get("fee_types_json") or "[]")),
                billable_metric_codes=tuple(json.loads(w.get("billable_metric_codes_json") or "[]")),
                metadata_json=w.get("transaction_metadata_json"),
            )
        )
    return specs


def _replay_wallets(invoice_totals, wallets, wallet_rules, customers, daily_ongoing, first_usage_day, through, customer_sequences,
                    prefix, issued_numbers, frozen_totals, manual_transactions, payments, recorded, decided_through,
                    book: CreditNoteBook, fee_amounts: dict[str, tuple[tuple[FeeKey, Decimal], ...]]):
    # The first day replayed (and the start of a wallet without a creation date): the first period,
    # the first usage of any customer, the first wallet, or `through`.
    wallet_days = [w.date() for w in wallets["created_at"].to_list() if w is not None]
    first_day = min(
        [*invoice_totals["period_start_date"].to_list(), *([first_usage_day] if first_usage_day else []),
         *[d for s in daily_ongoing.values() for d in s], *wallet_days, through]
    )
    specs = _wallet_specs(wallets, wallet_rules, first_day)
    customer_of_wallet = {w.wallet_id: cid for cid, ws in specs.items() for w in ws}
    manual_by_customer: dict[str, list[ManualTransaction]] = {}
    for m in manual_transactions:
        manual_by_customer.setdefault(customer_of_wallet[m.wallet_id], []).append(m)
    payments = payments.filter(pl.col("paid_on") <= through)
    invoice_rows, transaction_rows, balance_rows, payment_rows, top_up_rows = [], [], [], [], []
    note_rows, item_rows, note_tax_rows, application_rows = [], [], [], []
    # Credit notes, by the customer of the invoice they name; one naming no invoice is refused.
    invoice_customers = dict(zip(invoice_totals["invoice_id"], invoice_totals["customer_id"], strict=True))
    customers_by_sequence = {sequence: cid for cid, sequence in customer_sequences.items()}
    notes_by_customer: dict[str, list] = {}
    problems = []
    for request in book.requests:
        owner = customer_of(request.invoice_ref, invoice_customers, customers_by_sequence, prefix)
        if owner is None:
            problems.append(f"{request.where}, field invoice_id: no invoice {request.invoice_ref!r} (give an invoice's "
                            f"number or lago_id)")
        elif request.created_on <= through:  # a credit note dated later waits for its day
            notes_by_customer.setdefault(owner, []).append(request)
    # Each customer's invoices in finalization order, its payments (by the customer part of their
    # invoice number: what `starts_with("<prefix>-<sequence>-")` selects), all split in one pass.
    invoices_by_customer: dict[str, list[dict]] = {}
    for r in invoice_totals.sort(["customer_id", "invoice_finalized_on", "period_start_date",
                                  "external_subscription_id"]).iter_rows(named=True):
        invoices_by_customer.setdefault(r["customer_id"], []).append(r)
    payments_by_sequence = {key: frame.drop("customer_sequence") for (key,), frame in payments.with_columns(
        pl.col("invoice_number").str.extract(rf"^{re.escape(prefix)}-(\d+)-", 1).alias("customer_sequence")
    ).partition_by("customer_sequence", as_dict=True).items() if key is not None}
    days = [first_day + dt.timedelta(days=i) for i in range((through - first_day).days + 1)]
    customer_rows = {c["customer_id"]: c for c in customers.iter_rows(named=True)}
    no_payments = payments.clear()
    for customer_id in sorted(customer_rows):
        customer = customer_rows[customer_id]
        subscription_invoices = invoices_by_customer.get(customer_id, [])
        # A customer with a limited wallet gives the replay each invoice's and each day's amounts per
        # fee key; the others one amount each (what any wallet without limitations pays alike).
        is_limited = any(w.fee_types or w.billable_metric_codes for w in specs.get(customer_id, []))
        finalized = [
            DueInvoice(r["invoice_id"], r["invoice_finalized_on"] + dt.timedelta(days=1),
                       frozen_totals.get(r["invoice_id"], _with_taxes(r)),
                       r["currency"], fee_amounts.get(r["invoice_id"], ()) if is_limited else ())
            for r in subscription_invoices if r["status"] == "finalized"
        ]
        # The open usage of each day matters only to wallets: a customer without one skips it.
        ongoing = daily_ongoing.get(customer_id, {}) if customer_id in specs else {}
        filled = OpenUsage(ongoing, per_fee_key=is_limited) if ongoing else {}
        sequence = customer_sequences[customer_id]
        currency = customer["currency"] or next(
            iter([*(r["currency"] for r in subscription_invoices), *(w.currency for w in specs.get(customer_id, []))]), None)
        mine = payments_by_sequence.get(f"{sequence:03d}", no_payments)
        collected = collected_by_number(mine.filter(pl.col("currency") == currency)) if mine.height else {}
        # Numbers already issued never change; a new invoice takes the next one, gap-free.
        numbers = dict(issued_numbers.get(customer_id, {}))
        last = [max(numbers.values(), default=0)]

        def number_for(invoice_id: str, numbers=numbers, last=last, sequence=sequence) -> str:
            if invoice_id not in numbers:
                last[0] += 1
                numbers[invoice_id] = last[0]
            return f"{prefix}-{sequence:03d}-{numbers[invoice_id]:03d}"

        by_id = {r["invoice_id"]: r for r in subscription_invoices}

        def issue_credit_note(request, earlier, numbers=numbers, by_id=by_id, sequence=sequence, collected=collected):
            """The invoice a credit note names, as numbered so far: finalized on or before its day."""
            invoice = None
            for invoice_id, n in numbers.items():
                number = f"{prefix}-{sequence:03d}-{n:03d}"
                if request.invoice_ref not in (invoice_id, number):
                    continue
                row = by_id.get(invoice_id)
                if row is None:  # a credit invoice (prepaid credits)
                    invoice = InvoiceFacts(invoice_id, number, "credit", request.created_on, currency, ())
                elif row["status"] == "finalized" and row["invoice_finalized_on"] <= request.created_on:
                    invoice = InvoiceFacts(invoice_id, number, "subscription", row["invoice_finalized_on"], row["currency"],
                                           book.fees.get(invoice_id, ()), row["coupons_amount_cents"])
            paid = sum(cents for day, cents in collected.get(invoice.number, []) if day <= request.created_on) if invoice else 0
            recorded = book.recorded_sequences.get(request.credit_note_id)
            sequence_on_invoice = recorded[1] if recorded else (
                next_sequence(invoice.invoice_id, earlier, book.recorded_sequences) if invoice else None)
            return issue(request, invoice, earlier, paid, request.created_on, sequence_on_invoice)

        # Drafts are not paid yet: they count in the ongoing balance like open usage.
        replay = replay_customer(
            specs.get(customer_id, []), finalized, filled, days,
            lambda wallet_id, day, source: stable_id("credit_invoice", wallet_id, day, source),
            manual=manual_by_customer.get(customer_id, []), payments=collected, number_for=number_for,
            recorded=recorded, decided_through=decided_through,
            credit_notes=notes_by_customer.get(customer_id, []), issue_credit_note=issue_credit_note,
            # every invoice finalized by an earlier run takes exactly the credit it took then (maybe none)
            recorded_applications={r["invoice_id"]: book.recorded_applications.get(r["invoice_id"], [])
                                   for r in subscription_invoices if r["invoice_id"] in frozen_totals},
        )
        problems += replay.credit_note_problems
        top_up_rows += [{"wallet_id": r.wallet_id, "customer_id": customer_id, "top_up_date": r.day, "source": r.source,
                         "invoice_key": r.invoice_key, "paid_credits": str(r.paid_credits),
                         "granted_credits": str(r.granted_credits)} for r in replay.rule_top_ups]
        for issued in replay.issued:
            number = numbers[issued.invoice_id]
            if issued.kind == "subscription":
                r = by_id[issued.invoice_id]
                granted, paid = replay.credits_applied.get(issued.invoice_id, (0, 0))
                noted = replay.credit_notes_applied.get(issued.invoice_id, 0)
                due = amount_due(frozen_totals.get(r["invoice_id"], _with_taxes(r)),
                                 noted, granted, paid)
                row = _invoice_row(r, customer, issued.number, number, "finalized", granted, paid, noted)
            else:
                due = issued.amount_cents
                row = {
                    "invoice_id": issued.invoice_id, "invoice_type": "credit", "number": issued.number,
                    "sequential_id": number, "status": "finalized", "customer_id": customer_id,
                    "external_customer_id": customer["external_id"], "subscription_id": None,
                    "external_subscription_id": None, "billing_period_id": None, "wallet_id": issued.wallet_id,
                    "issuing_date": issued.day, "period_start_date": None, "period_end_date": None,
                    "currency": next(w.currency for w in specs[customer_id] if w.wallet_id == issued.wallet_id),
                    "fees_amount_cents": issued.amount_cents, "taxes_amount_cents": 0,
                    "prepaid_granted_credit_amount_cents": 0, "prepaid_purchased_credit_amount_cents": 0,
                    "credit_notes_amount_cents": 0, "coupons_amount_cents": 0,
                    "progressive_billing_credit_amount_cents": 0, "paid_credits": str(issued.paid_credits),
                    "tax_rule": None,
                    "net_payment_term_days": customer.get("net_payment_term_days") or 0,
                }
            status, paid_on, paid_cents = payment_status(due, collected.get(issued.number, []))
            invoice_rows.append({**row, "payment_status": status, "paid_on": paid_on, "paid_amount_cents": paid_cents})
        issued_numbers_now = {i.number for i in replay.issued}
        for p in mine.iter_rows(named=True) if mine.height else ():
            match = ("unknown_invoice_number" if p["invoice_number"] not in issued_numbers_now
                     else "currency_mismatch" if p["currency"] != currency else "applied")
            payment_rows.append({**p, "customer_id": customer_id, "match_status": match})
        for r in subscription_invoices:
            if r["status"] == "draft":
                row = _invoice_row(r, customer, f"{prefix}-{sequence:03d}-DRAFT", None, "draft", 0, 0, 0)
                invoice_rows.append({**row, "payment_status": "pending", "paid_on": None, "paid_amount_cents": 0})
        for t in replay.transactions:
            transaction_rows.append({
                "wallet_transaction_id": stable_id("wallet_transaction", t.wallet_id, t.sequence, t.day, t.source),
                "wallet_id": t.wallet_id, "customer_id": customer_id, "transaction_date": t.day,
                "sequence": t.sequence, "transaction_type": t.transaction_type, "source": t.source,
                "status": t.status, "granted_amount_cents": t.granted_cents, "paid_amount_cents": t.paid_cents,
                "credit_amount": str(t.credits), "balance_after_cents": t.balance_after_cents,
                "invoice_id": t.invoice_id, "settled_on": t.settled_on, "metadata_json": t.metadata_json,
            })
        synced = balance_sync_days(replay.transactions)
        for wallet_id, b in replay.balances.items():
            balance_rows.append({
                "wallet_id": wallet_id, "customer_id": customer_id, "status": "terminated" if b.is_terminated else "active",
                "balance_cents": b.cents if b.is_active else 0,
                "granted_balance_cents": b.granted_cents, "paid_balance_cents": b.paid_cents,
                "consumed_cents": b.consumed_cents,
                "ongoing_usage_balance_cents": replay.ongoing_usage_cents.get(wallet_id, 0),
                "last_balance_sync_on": synced.get(wallet_id),
            })
        for balance in replay.credit_notes.values():
            rows = credit_note_rows(balance, customer, through)
            note_rows.append(rows["note"])
            item_rows += rows["items"]
            note_tax_rows += rows["taxes"]
        application_rows += [{"credit_note_id": a.credit_note_id, "invoice_id": a.invoice_id, "applied_on": a.day,
                              "amount_cents": a.amount_cents} for a in replay.credit_note_applications]
    if problems:
        raise CreditNoteRefused(problems)
    matched = {(p["source_file"], p["line_number"]) for p in payment_rows}
    for p in payments.iter_rows(named=True):
        if (p["source_file"], p["line_number"]) not in matched:
            payment_rows.append({**p, "customer_id": None, "match_status": "unknown_invoice_number"})
    return (
        pl.DataFrame(payment_rows, schema=MATCHED_PAYMENT_SCHEMA),
        with_invoice_totals(pl.DataFrame(invoice_rows, schema=INVOICE_SCHEMA)),
        pl.DataFrame(transaction_rows, schema=TRANSACTION_SCHEMA),
        pl.DataFrame(balance_rows, schema=BALANCE_SCHEMA),
        pl.DataFrame(top_up_rows, schema=RULE_TOP_UP_SCHEMA),
        (pl.DataFrame(note_rows, schema=CREDIT_NOTE_SCHEMA), pl.DataFrame(item_rows, schema=CREDIT_NOTE_ITEM_SCHEMA),
         pl.DataFrame(note_tax_rows, schema=CREDIT_NOTE_TAX_SCHEMA),
         pl.DataFrame(application_rows, schema=CREDIT_NOTE_APPLICATION_SCHEMA)),
    )


def _with_taxes(r: dict) -> int:
    """A subscription invoice's sub-total including taxes, from its parts."""
    return including_taxes(excluding_taxes(r["fees_amount_cents"], r["coupons_amount_cents"],
                                           r["progressive_billing_credit_amount_cents"]), r["taxes_amount_cents"])


COUPON_CREDIT_SCHEMA = {
    "coupon_credit_id": pl.String, "invoice_id": pl.String, "applied_coupon_id": pl.String, "coupon_code": pl.String,
    "coupon_name": pl.String, "credit_order": pl.Int64, "amount_cents": pl.Int64, "currency": pl.String,
}
FEE_COUPON_SCHEMA = {
    "fee_id": pl.String, "invoice_id": pl.String, "applied_coupon_id": pl.String, "precise_amount_cents": cm.MONEY,
}
APPLIED_COUPON_STATE_SCHEMA = {
    "applied_coupon_id": pl.String, "customer_id": pl.String, "external_customer_id": pl.String,
    "coupon_code": pl.String, "coupon_name": pl.String, "coupon_type": pl.String, "amount_cents": pl.Int64,
    "amount_currency": pl.String, "percentage_rate": pl.String, "frequency": pl.String,
    "frequency_duration": pl.Int64, "applied_on": pl.Date, "status": pl.String,
    "amount_cents_remaining": pl.Int64, "frequency_duration_remaining": pl.Int64, "terminated_on": pl.Date,
    "invoices_count": pl.Int64, "consumed_amount_cents": pl.Int64,
}


def applied_coupon_specs(frame: pl.DataFrame | None) -> list[cp.AppliedCoupon]:
    """`catalog.applied_coupons` rows as the coupon rules read them."""
    if frame is None:
        return []
    return [
        cp.AppliedCoupon(
            applied_coupon_id=r["applied_coupon_id"], customer_id=r["customer_id"], coupon_code=r["coupon_code"],
            coupon_type=r["coupon_type"], frequency=r["frequency"], applied_on=r["created_at"].date(),
            order=r["applied_order"], amount_cents=r["amount_cents"], currency=r["amount_currency"],
            percentage_rate=Decimal(r["percentage_rate"]) if r["percentage_rate"] is not None else None,
            frequency_duration=r["frequency_duration"],
            plan_codes=tuple(json.loads(r["plan_codes_json"] or "[]")),
            billable_metric_codes=tuple(json.loads(r["billable_metric_codes_json"] or "[]")),
        )
        for r in frame.iter_rows(named=True)
    ]


def _coupons(fees: pl.DataFrame, due: pl.DataFrame, charges: pl.DataFrame, applied: pl.DataFrame | None,
             recorded: dict[str, list[tuple[str, int]]]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The coupons' credits on the finalized subscription invoices (drafts take none, as in Lago:
    coupons apply when an invoice is finalized), each fee's exact share of them, and each applied
    coupon's state after them. Invoices are taken per customer in the order they are finalized."""
    specs = applied_coupon_specs(applied)
    if not specs:
        return (pl.DataFrame(schema=COUPON_CREDIT_SCHEMA), pl.DataFrame(schema=FEE_COUPON_SCHEMA),
                pl.DataFrame(schema=APPLIED_COUPON_STATE_SCHEMA))
    metric_of = dict(zip(charges["charge_id"], charges["billable_metric_code"], strict=True))
    fees_of: dict[str, list[cp.CouponFee]] = {}
    for f in fees.select("fee_id", "invoice_id", "charge_id", "amount_cents").sort("fee_id").iter_rows(named=True):
        fees_of.setdefault(f["invoice_id"], []).append(cp.CouponFee(f["fee_id"], f["amount_cents"], None, metric_of.get(f["charge_id"])))
    customers = {c.customer_id for c in specs}
    finalized = due.filter((pl.col("status") == "finalized") & pl.col("customer_id").is_in(list(customers))).sort(
        "invoice_finalized_on", "period_start_date", "external_subscription_id", "invoice_id")
    invoices = [
        cp.CouponInvoice(r["invoice_id"], r["customer_id"], r["currency"], r["invoice_finalized_on"],
                         tuple(cp.CouponFee(f.fee_id, f.amount_cents, r["plan_code"], f.billable_metric_code)
                               for f in fees_of.get(r["invoice_id"], [])))
        for r in finalized.iter_rows(named=True)
    ]
    credits, states = cp.replay_coupons(invoices, specs, recorded)
    by_id = {c.applied_coupon_id: c for c in specs}
    currency = dict(zip(due["invoice_id"], due["currency"], strict=True))
    order: dict[str, int] = {}
    credit_rows, share_rows = [], []
    for c in credits:
        order[c.invoice_id] = order.get(c.invoice_id, -1) + 1
        coupon = by_id.get(c.applied_coupon_id)
        credit_rows.append({
            "coupon_credit_id": stable_id("coupon_credit", c.invoice_id, c.applied_coupon_id),
            "invoice_id": c.invoice_id, "applied_coupon_id": c.applied_coupon_id,
            "coupon_code": coupon.coupon_code if coupon else None, "coupon_name": None,
            "credit_order": order[c.invoice_id], "amount_cents": c.amount_cents, "currency": currency[c.invoice_id],
        })
        share_rows += [{"fee_id": fee_id, "invoice_id": c.invoice_id, "applied_coupon_id": c.applied_coupon_id,
                        "precise_amount_cents": share} for fee_id, share in sorted(c.fee_shares.items())]
    catalog_rows = {r["applied_coupon_id"]: r for r in applied.iter_rows(named=True)}
    credit_rows = [{**r, "coupon_name": (catalog_rows.get(r["applied_coupon_id"]) or {}).get("coupon_name")}
                   for r in credit_rows]
    state_rows = [{
        **{k: catalog_rows[c.applied_coupon_id][k] for k in (
            "applied_coupon_id", "customer_id", "external_customer_id", "coupon_code", "coupon_name", "coupon_type",
            "amount_cents", "amount_currency", "percentage_rate", "frequency", "frequency_duration")},
        "applied_on": c.applied_on,
        "status": "active" if states[c.applied_coupon_id].is_active else "terminated",
        "amount_cents_remaining": states[c.applied_coupon_id].amount_cents_remaining,
        "frequency_duration_remaining": states[c.applied_coupon_id].frequency_duration_remaining,
        "terminated_on": states[c.applied_coupon_id].terminated_on,
        "invoices_count": sum(1 for k in credits if k.applied_coupon_id == c.applied_coupon_id),
        "consumed_amount_cents": sum(k.amount_cents for k in credits if k.applied_coupon_id == c.applied_coupon_id),
    } for c in specs]
    return (pl.DataFrame(credit_rows, schema=COUPON_CREDIT_SCHEMA), pl.DataFrame(share_rows, schema=FEE_COUPON_SCHEMA),
            pl.DataFrame(state_rows, schema=APPLIED_COUPON_STATE_SCHEMA))


def credit_note_rows(balance, customer: dict, through: dt.date) -> dict:
    """The rows of one issued credit note as of `through`: the note (amounts, what is left of its
    credit and its status), its items and its taxes."""
    note = balance.note
    request, invoice = note.request, note.invoice
    consumed = note.credit_amount_cents - balance.balance_cents - balance.voided_cents
    changed = [d for d in (request.created_on, balance.last_used_on, balance.voided_on) if d is not None]
    return {
        "note": {
            "credit_note_id": note.credit_note_id, "number": note.number, "sequential_id": note.sequential_id,
            "invoice_id": invoice.invoice_id, "invoice_number": invoice.number, "customer_id": customer["customer_id"],
            "external_customer_id": customer["external_id"], "issuing_date": request.created_on,
            "reason": request.reason, "description": request.description, "currency": invoice.currency,
            "sub_total_excluding_taxes_amount_cents": note.sub_total_excluding_taxes_amount_cents,
            "coupons_adjustment_amount_cents": note.coupons_adjustment_amount_cents,
            "precise_coupons_adjustment_amount_cents": note.precise_coupons_adjustment_amount_cents,
            "taxes_amount_cents": note.taxes_amount_cents, "precise_taxes_amount_cents": note.precise_taxes_amount_cents,
            "taxes_rate": note.taxes_rate, "credit_amount_cents": note.credit_amount_cents,
            "refund_amount_cents": note.refund_amount_cents, "total_amount_cents": note.total_amount_cents,
            "balance_amount_cents": balance.balance_cents, "consumed_amount_cents": consumed,
            "voided_amount_cents": balance.voided_cents,
            "credit_status": balance.status if note.credit_amount_cents > 0 else None,
            "refund_status": "pending" if note.refund_amount_cents > 0 else None,
            "voided_on": balance.voided_on, "updated_on": max(changed), "as_of": through,
        },
        "items": [{"credit_note_item_id": note.item_id(fee_id), "credit_note_id": note.credit_note_id, "fee_id": fee_id,
                   "amount_cents": amount, "currency": invoice.currency} for fee_id, amount in request.items],
        "taxes": [{"credit_note_id": note.credit_note_id, "tax_code": t.tax.code, "tax_name": t.tax.name,
                   "tax_rate": t.tax.rate, "tax_description": t.tax.description, "base_amount_cents": t.base_amount_cents,
                   "amount_cents": t.amount_cents, "currency": invoice.currency} for t in note.applied_taxes],
    }


def _invoice_row(r: dict, customer: dict, number: str, sequential_id: int | None, status: str, granted: int, paid: int,
                 credit_notes: int) -> dict:
    return {
        "invoice_id": r["invoice_id"], "invoice_type": r["invoice_type"], "number": number,
        "sequential_id": sequential_id, "status": status, "customer_id": r["customer_id"],
        "external_customer_id": customer["external_id"], "subscription_id": r["subscription_id"],
        "external_subscription_id": r["external_subscription_id"], "billing_period_id": r["billing_period_id"],
        "wallet_id": None, "issuing_date": r["invoice_finalized_on"], "period_start_date": r["period_start_date"],
        "period_end_date": r["period_end_date"], "currency": r["currency"],
        "fees_amount_cents": r["fees_amount_cents"], "taxes_amount_cents": r["taxes_amount_cents"],
        "prepaid_granted_credit_amount_cents": granted, "prepaid_purchased_credit_amount_cents": paid,
        "credit_notes_amount_cents": credit_notes, "coupons_amount_cents": r["coupons_amount_cents"],
        "progressive_billing_credit_amount_cents": r["progressive_billing_credit_amount_cents"],
        "paid_credits": None, "tax_rule": r["tax_rule"],
        # the term in force when the invoice is issued: kept with it, so editing the catalog later
        # does not move the due date of an invoice already finalized
        "net_payment_term_days": customer.get("net_payment_term_days") or 0,
    }


INVOICE_SCHEMA = {
    "invoice_id": pl.String, "invoice_type": pl.String, "number": pl.String, "sequential_id": pl.Int64,
    "status": pl.String, "customer_id": pl.String, "external_customer_id": pl.String,
    "subscription_id": pl.String, "external_subscription_id": pl.String, "billing_period_id": pl.String,
    "wallet_id": pl.String, "issuing_date": pl.Date, "period_start_date": pl.Date, "period_end_date": pl.Date,
    "currency": pl.String, "fees_amount_cents": pl.Int64, "taxes_amount_cents": pl.Int64,
    "prepaid_granted_credit_amount_cents": pl.Int64, "prepaid_purchased_credit_amount_cents": pl.Int64,
    "credit_notes_amount_cents": pl.Int64, "paid_credits": pl.String, "tax_rule": pl.String,
    "coupons_amount_cents": pl.Int64, "progressive_billing_credit_amount_cents": pl.Int64,
    "net_payment_term_days": pl.Int64, "payment_status": pl.String, "paid_on": pl.Date, "paid_amount_cents": pl.Int64,
}
CREDIT_NOTE_SCHEMA = {
    "credit_note_id": pl.String, "number": pl.String, "sequential_id": pl.Int64, "invoice_id": pl.String,
    "invoice_number": pl.String, "customer_id": pl.String, "external_customer_id": pl.String, "issuing_date": pl.Date,
    "reason": pl.String, "description": pl.String, "currency": pl.String,
    "sub_total_excluding_taxes_amount_cents": pl.Int64, "coupons_adjustment_amount_cents": pl.Int64,
    "precise_coupons_adjustment_amount_cents": cm.MONEY, "taxes_amount_cents": pl.Int64,
    "precise_taxes_amount_cents": cm.MONEY, "taxes_rate": cm.MONEY, "credit_amount_cents": pl.Int64,
    "refund_amount_cents": pl.Int64, "total_amount_cents": pl.Int64, "balance_amount_cents": pl.Int64,
    "consumed_amount_cents": pl.Int64, "voided_amount_cents": pl.Int64, "credit_status": pl.String,
    "refund_status": pl.String, "voided_on": pl.Date, "updated_on": pl.Date, "as_of": pl.Date,
}
CREDIT_NOTE_ITEM_SCHEMA = {
    "credit_note_item_id": pl.String, "credit_note_id": pl.String, "fee_id": pl.String, "amount_cents": pl.Int64,
    "currency": pl.String,
}
CREDIT_NOTE_TAX_SCHEMA = {
    "credit_note_id": pl.String, "tax_code": pl.String, "tax_name": pl.String, "tax_rate": cm.MONEY,
    "tax_description": pl.String, "base_amount_cents": pl.Int64, "amount_cents": pl.Int64, "currency": pl.String,
}
CREDIT_NOTE_APPLICATION_SCHEMA = {
    "credit_note_id": pl.String, "invoice_id": pl.String, "applied_on": pl.Date, "amount_cents": pl.Int64,
}
PAYMENT_SCHEMA = {
    "invoice_number": pl.String, "currency": pl.String, "amount_cents": pl.Int64, "paid_on": pl.Date,
    "provider": pl.String, "provider_payment_id": pl.String, "source_file": pl.String, "line_number": pl.Int64,
}
RULE_TOP_UP_SCHEMA = {
    "wallet_id": pl.String, "customer_id": pl.String, "top_up_date": pl.Date, "source": pl.String,
    "invoice_key": pl.String, "paid_credits": pl.String, "granted_credits": pl.String,
}
MATCHED_PAYMENT_SCHEMA = {**PAYMENT_SCHEMA, "customer_id": pl.String, "match_status": pl.String}
FEE_TAX_SCHEMA = {
    "fee_id": pl.String, "invoice_id": pl.String, "tax_code": pl.String, "tax_name": pl.String,
    "tax_rate": cm.MONEY, "tax_description": pl.String, "fee_amount_cents": pl.Int64,
    "precise_amount_cents": cm.MONEY, "amount_cents": pl.Int64, "currency": pl.String,
}
INVOICE_TAX_SCHEMA = {
    "invoice_id": pl.String, "tax_code": pl.String, "tax_name": pl.String, "tax_rate": cm.MONEY,
    "tax_description": pl.String, "fees_amount_cents": pl.Int64, "amount_cents": pl.Int64, "currency": pl.String,
}
TRANSACTION_SCHEMA = {
    "wallet_transaction_id": pl.String, "wallet_id": pl.String, "customer_id": pl.String,
    "transaction_date": pl.Date, "sequence": pl.Int64, "transaction_type": pl.String, "source": pl.String,
    "status": pl.String, "granted_amount_cents": pl.Int64, "paid_amount_cents": pl.Int64,
    "credit_amount": pl.String, "balance_after_cents": pl.Int64, "invoice_id": pl.String, "settled_on": pl.Date,
    "metadata_json": pl.String,
}
BALANCE_SCHEMA = {
    "wallet_id": pl.String, "customer_id": pl.String, "status": pl.String, "balance_cents": pl.Int64,
    "granted_balance_cents": pl.Int64, "paid_balance_cents": pl.Int64, "consumed_cents": pl.Int64,
    "ongoing_usage_balance_cents": pl.Int64, "last_balance_sync_on": pl.Date,
}


# --- Progressive billing (usage thresholds): the invoices, their credits, the lifetime usage ---

APPLIED_THRESHOLD_SCHEMA = {
    "invoice_id": pl.String, "threshold_order": pl.Int64, "usage_threshold_id": pl.String, "amount_cents": pl.Int64,
    "is_recurring": pl.Boolean, "threshold_display_name": pl.String, "lifetime_usage_amount_cents": pl.Int64,
    "created_on": pl.Date,
}
PROGRESSIVE_CREDIT_SCHEMA = {
    "invoice_id": pl.String, "fee_id": pl.String, "progressive_billing_invoice_id": pl.String, "amount_cents": pl.Int64,
    "currency": pl.String,
}
LIFETIME_USAGE_SCHEMA = {
    "subscription_id": pl.String, "external_subscription_id": pl.String, "customer_id": pl.String,
    "plan_id": pl.String, "currency": pl.String, "billing_period_id": pl.String,
    "invoiced_usage_amount_cents": pl.Int64, "current_usage_amount_cents": pl.Int64,
    "total_usage_amount_cents": pl.Int64, "last_threshold_amount_cents": pl.Int64,
    "next_threshold_amount_cents": pl.Int64, "as_of": pl.Date,
}


@dataclass
class Progressive:
    """What progressive billing adds to a run: the invoices (`due` rows and their fees), the credit
    each invoice takes from the period's previous progressive invoice, per fee (`credits`), the
    thresholds each invoice applied, and the lifetime usage per subscription."""

    due: pl.DataFrame
    fees: pl.DataFrame
    credits: pl.DataFrame

    @property
    def shares(self) -> pl.DataFrame:
        """The credits as fee shares (`FEE_COUPON_SCHEMA`): what each fee's taxes do not apply to."""
        return self.credits.select("fee_id", "invoice_id", pl.lit(None, pl.String).alias("applied_coupon_id"),
                                   pl.col("amount_cents").cast(cm.MONEY).alias("precise_amount_cents"))
    applied_thresholds: pl.DataFrame
    lifetime_usage: pl.DataFrame


def _invoiced_charges(fees: pl.DataFrame, due: pl.DataFrame, periods: pl.DataFrame) -> dict[str, int]:
    """Per billing period: the charge fees the subscription's invoices of its earlier periods billed
    (`progressive.invoiced_usage_cents`: period-end and pay-in-advance invoices, drafts included).
    Earlier periods are those of the same external subscription id, so a plan change keeps the
    lifetime usage of the plan it left (Lago counts every subscription sharing the external id)."""
    billed: dict[str, list] = {}
    for r in fees.join(due.select("invoice_id", "billing_period_id", "status"), on=["invoice_id", "billing_period_id"]).select(
            "billing_period_id", "status", "fee_type", "amount_cents").iter_rows():
        billed.setdefault(r[0], []).append(("subscription", *r[1:]))
    out, running = {}, {}
    for period_id, external_id in periods.sort("external_subscription_id", "period_start_date", "period_index").select(
            "billing_period_id", "external_subscription_id").iter_rows():
        out[period_id] = running.get(external_id, 0)
        running[external_id] = out[period_id] + pg.invoiced_usage_cents(billed.get(period_id, []))
    return out


def _threshold_specs(thresholds: pl.DataFrame | None) -> dict[str, list[tuple[pg.UsageThreshold, str]]]:
    """Per effective plan: its thresholds, each with its id (`catalog.usage_thresholds`)."""
    out: dict[str, list[tuple[pg.UsageThreshold, str]]] = {}
    for r in (thresholds.sort("plan_id", "threshold_index").iter_rows(named=True) if thresholds is not None else ()):
        out.setdefault(r["plan_id"], []).append(
            (pg.UsageThreshold(r["amount_cents"], r["is_recurring"], r["threshold_display_name"]), r["usage_threshold_id"]))
    return out


def _progressive(usage, advance_usage, rounded, periods, charges, filters, fees, due, thresholds, current_usage,
                 through: dt.date, unpriced_values, frozen_ids: set[str] = frozenset()) -> Progressive:
    """Progressive billing (`billing/progressive.py`), checked at the end of each arrival day of an
    open period on the usage arrived by then. The check is on the lifetime usage, every charge
    (`usage` billed in arrears and `advance_usage`, priced on the period's units so far); the
    invoices bill the charges billed in arrears. The earlier periods count as invoiced: their usage
    arrived by then and by their finalization, and their pay-in-advance invoices issued by then.

    A period whose closing invoice an earlier run finalized (`frozen_ids`) gets no progressive
    invoice it did not have then: that invoice deducted nothing for it (thresholds added to the
    catalog later bill from the next open period on)."""
    invoiced = _invoiced_charges(fees, due, periods)
    specs = _threshold_specs(thresholds)
    lifetime = _lifetime_usage(periods, invoiced, current_usage, specs, through)
    empty = Progressive(pl.DataFrame(schema={"invoice_id": pl.String}), pl.DataFrame(schema=_FEE_SCHEMA),
                        pl.DataFrame(schema=PROGRESSIVE_CREDIT_SCHEMA),
                        pl.DataFrame(schema=APPLIED_THRESHOLD_SCHEMA), lifetime)
    checked = periods.filter(pl.col("plan_id").is_in(list(specs)))
    # The usage of each period as its invoice holds it: arrived by its finalization day.
    def held(frame: pl.DataFrame) -> pl.DataFrame:
        frame = frame.join(checked.select("billing_period_id", "invoice_finalized_on", "currency"), on="billing_period_id")
        return frame.filter(pl.col("arrival_date") <= pl.col("invoice_finalized_on"))

    def priced_so_far(frame: pl.DataFrame) -> pl.DataFrame:
        return price_buckets(rounded(cumulative(frame)).join(
            checked.select("billing_period_id", "currency"), on="billing_period_id"), charges, filters)

    def day_series(frame: pl.DataFrame) -> dict[str, list[tuple[dt.date, int]]]:
        """Per period: (arrival day, the charge fees of its usage arrived by that day)."""
        daily = (
            frame.with_columns(delta=pl.col("amount_cents") - pl.col("amount_cents").shift(1, fill_value=0).over(BUCKET))
            .group_by("billing_period_id", "arrival_date").agg(pl.col("delta").sum())
            .sort("billing_period_id", "arrival_date")
            .with_columns(cents=pl.col("delta").cum_sum().over("billing_period_id"))
        )
        out: dict[str, list[tuple[dt.date, int]]] = {}
        for period_id, day, cents in daily.select("billing_period_id", "arrival_date", "cents").iter_rows():
            out.setdefault(period_id, []).append((day, cents))
        return out

    arrears, advance = held(usage), held(advance_usage)
    if arrears.is_empty():  # (no fee to bill: pay-in-advance usage alone passes no threshold, see progressive_invoices)
        return empty
    priced = priced_so_far(arrears)
    series = day_series(priced)
    all_series = day_series(pl.concat([priced, priced_so_far(advance)], how="vertical_relaxed")) if advance.height else series
    advance_due = due.filter(pl.col("is_advance")).select("invoice_id", "billing_day")
    advance_series = day_series(fees.join(advance_due, on="invoice_id").select(
        *BUCKET, pl.col("billing_day").alias("arrival_date"), "amount_cents").sort(*BUCKET, "arrival_date").with_columns(
        amount_cents=pl.col("amount_cents").cum_sum().over(BUCKET)))

    def amount_by(period_id: str, day: dt.date, found=series) -> int:
        """The charge fees of a period's usage arrived by `day` (`found`: which series)."""
        return next((cents for d, cents in reversed(found.get(period_id, [])) if d <= day), 0)

    period_rows = {r["billing_period_id"]: r for r in checked.iter_rows(named=True)}
    by_subscription: dict[str, list[dict]] = {}
    for r in checked.sort("period_index").iter_rows(named=True):
        by_subscription.setdefault(r["subscription_id"], []).append(r)
    invoices = []
    for subscription_id, own in sorted(by_subscription.items()):
        # Checked at the end of each day something of the subscription arrived, in the period open
        # that day: lifetime usage = the earlier periods' invoices (their usage arrived by then and
        # by their finalization) + the open period's usage arrived by then.
        own_ids = {r["billing_period_id"] for r in own}
        arrivals = sorted({d for period_id in own_ids for d, _ in all_series.get(period_id, [])})
        days = [
            pg.UsageDay(day, p["billing_period_id"],
                        sum(amount_by(q["billing_period_id"], min(day, q["invoice_finalized_on"]))
                            + amount_by(q["billing_period_id"], day, advance_series)
                            for q in own if q["period_index"] < p["period_index"]),
                        amount_by(p["billing_period_id"], day, all_series), amount_by(p["billing_period_id"], day))
            for day in arrivals for p in own if p["period_start_date"] <= day <= p["period_end_date"]
        ]
        invoices += [(period_rows[i.period_id], i)
                     for i in pg.progressive_invoices([t for t, _ in specs[own[0]["plan_id"]]], days)]
    closing = dict(due.filter(~pl.col("is_starting") & ~pl.col("is_advance")).select("billing_period_id", "invoice_id").iter_rows())
    invoices = [(p, i) for p, i in invoices if closing.get(i.period_id) not in frozen_ids
                or stable_id("progressive_invoice", i.period_id, i.day) in frozen_ids]
    if not invoices:
        return empty
    due_rows, fee_frames, applied_rows = [], [], []
    for p, i in invoices:
        invoice_id = stable_id("progressive_invoice", i.period_id, i.day)
        due_rows.append({**p, "invoice_id": invoice_id, "billing_day": i.day, "invoice_finalized_on": i.day})
        fee_frames.append(
            priced.filter((pl.col("billing_period_id") == i.period_id) & (pl.col("arrival_date") <= i.day))
            .sort(BUCKET + ["arrival_date"]).group_by(BUCKET, maintain_order=True).last()
            .with_columns(invoice_id=pl.lit(invoice_id))
        )
        ids = {(t.amount_cents, t.recurring): threshold_id for t, threshold_id in specs[p["plan_id"]]}
        applied_rows += [{"invoice_id": invoice_id, "threshold_order": n, "usage_threshold_id": ids[(t.amount_cents, t.recurring)],
                          "amount_cents": t.amount_cents, "is_recurring": t.recurring,
                          "threshold_display_name": t.threshold_display_name,
                          "lifetime_usage_amount_cents": i.lifetime_usage_cents, "created_on": i.day}
                         for n, t in enumerate(i.thresholds)]
    progressive_due = pl.DataFrame(due_rows, schema_overrides=dict(periods.schema)).with_columns(
        is_starting=pl.lit(False), is_advance=pl.lit(False), invoice_type=pl.lit("progressive_billing"),
        status=pl.when(pl.col("billing_day") < through).then(pl.lit("finalized")).otherwise(pl.lit("draft")),
    )
    progressive_fees = pl.concat(fee_frames, how="vertical_relaxed")
    progressive_fees = progressive_fees.filter(
        ~((pl.col("units") == 0) & (pl.col("events_count") == 0) & (pl.col("amount_cents") == 0))
    ).with_columns(
        fee_id=pl.struct("invoice_id", "charge_id", "charge_filter_key", "grouped_by").map_elements(
            fee_id, return_dtype=pl.String),
        fee_type=pl.lit("charge"),
    )
    progressive_fees = progressive_fees.with_columns(
        unpriced_label=_unpriced_labels(progressive_fees, unpriced_values or {})).select(FEE_COLUMNS)
    credits = _progressive_credits([(p["billing_period_id"], stable_id("progressive_invoice", i.period_id, i.day))
                                    for p, i in invoices], progressive_fees, fees, due)
    return Progressive(progressive_due, progressive_fees, credits,
                       pl.DataFrame(applied_rows, schema=APPLIED_THRESHOLD_SCHEMA), lifetime)


def _progressive_credits(invoices: list[tuple[str, str]], progressive_fees: pl.DataFrame, fees: pl.DataFrame,
                         due: pl.DataFrame) -> pl.DataFrame:
    """Each invoice's credit from the period's previous progressive invoice (`invoices`: (period,
    progressive invoice), in date order): the next progressive invoice of the period takes it, and
    the period's closing invoice takes the last one's (`progressive.credit_shares`, per fee)."""
    def charge_fees(frame: pl.DataFrame, invoice_id: str) -> dict[tuple[str, str, str], tuple[str, int]]:
        return {(r["charge_id"], r["charge_filter_key"], r["grouped_by"]): (r["fee_id"], r["amount_cents"])
                for r in frame.filter((pl.col("invoice_id") == invoice_id) & (pl.col("fee_type") == "charge")).iter_rows(named=True)}

    closing = dict(due.filter(~pl.col("is_starting") & ~pl.col("is_advance")).select("billing_period_id", "invoice_id").iter_rows())
    currency = dict(due.select("billing_period_id", "currency").unique().iter_rows())
    takers: list[tuple[str, str, dict]] = []  # (taker invoice, progressive invoice it deducts, taker's charge fees)
    last: dict[str, str] = {}
    for period, invoice_id in invoices:
        if period in last:
            takers.append((invoice_id, last[period], charge_fees(progressive_fees, invoice_id)))
        last[period] = invoice_id
    for period, invoice_id in last.items():
        if period in closing:
            takers.append((closing[period], invoice_id, charge_fees(fees, closing[period])))
    rows = []
    for taker, source, taker_fees in takers:
        previous = {key: cents for key, (_, cents) in charge_fees(progressive_fees, source).items()}
        shares = pg.credit_shares({key: cents for key, (_, cents) in taker_fees.items()}, previous)
        period = next(p for p, i in invoices if i == source)
        rows += [{"invoice_id": taker, "fee_id": taker_fees[key][0], "progressive_billing_invoice_id": source,
                  "amount_cents": cents, "currency": currency.get(period)} for key, cents in sorted(shares.items())]
    return pl.DataFrame(rows, schema=PROGRESSIVE_CREDIT_SCHEMA)


def _lifetime_usage(periods, invoiced: dict[str, int], current_usage: pl.DataFrame,
                    specs: dict[str, list[tuple[pg.UsageThreshold, str]]], through: dt.date) -> pl.DataFrame:
    """One row per subscription with a period open at the end of `through` (Lago's LifetimeUsage):
    the charge fees its earlier periods' invoices billed (`_invoiced_charges`), the open period's
    current usage (every charge, pay-in-advance ones included, as priced in current usage), their
    sum, and the last threshold reached and the next one (fixed ones by amount; past the largest,
    the recurring one's multiples). The `lifetime_usage_amount` alerts read this sum."""
    current = dict(current_usage.group_by("billing_period_id").agg(pl.col("amount_cents").sum()).iter_rows())
    rows = []
    for p in periods.filter((pl.col("period_start_date") <= through) & (pl.col("billing_day") > through)).sort(
            "external_subscription_id", "period_start_date").select(
            "subscription_id", "external_subscription_id", "customer_id", "plan_id", "currency",
            "billing_period_id").iter_rows(named=True):
        cents = current.get(p["billing_period_id"], 0)
        total = invoiced[p["billing_period_id"]] + cents
        last, upcoming = pg.last_and_next_threshold([t for t, _ in specs.get(p["plan_id"], [])], total)
        rows.append({
            "subscription_id": p["subscription_id"], "external_subscription_id": p["external_subscription_id"],
            "customer_id": p["customer_id"], "plan_id": p["plan_id"], "currency": p["currency"],
            "billing_period_id": p["billing_period_id"], "invoiced_usage_amount_cents": invoiced[p["billing_period_id"]],
            "current_usage_amount_cents": cents, "total_usage_amount_cents": total,
            "last_threshold_amount_cents": last, "next_threshold_amount_cents": upcoming, "as_of": through,
        })
    return pl.DataFrame(rows, schema=LIFETIME_USAGE_SCHEMA)
