"""The polars pricing asset: fees, invoices, wallet ledger and late usage, as of the billing date."""

import datetime as dt

import dagster as dg

from dagster_project.billing import frozen, numbering
from dagster_project.billing.credit_notes import CreditNoteRefused
from dagster_project.billing.invoicing import bill
from dagster_project.billing.taxes import book_from_tables
from dagster_project.defs.resources import BillingDate, MeterhouseSettings
from dagster_project.store import billing_tables

BILLING_TABLES = ["fees", "invoices", "fee_taxes", "invoice_taxes", "wallet_transactions", "wallet_balances",
                  "late_usage", "current_usage", "payments", "credit_notes", "credit_note_items", "credit_note_taxes",
                  "credit_note_applications", "coupon_credits", "fee_coupons", "applied_coupons",
                  "applied_usage_thresholds", "progressive_billing_credits", "lifetime_usage",
                  "fee_groups"]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["billing", name], group_name="billing", owners=["team:billing-data"], kinds={"polars", "duckdb"},
            description=f"billing.{name}, written by the polars pricing step.",
            deps=[dg.AssetKey(key) for key in billing_tables.READS],
        )
        for name in BILLING_TABLES
    ],
    name="priced_billing",
    pool="duckdb_writer",
)
def priced_billing(context: dg.AssetExecutionContext, settings: MeterhouseSettings, billing_date: BillingDate):
    """Charge models, invoices, wallet credits and top-ups, as of the billing date.

    Writes schema `billing`: fees (one row per invoice, charge and filter), invoices (one row per
    invoice), wallet_transactions (the ledger), wallet_balances (one row per wallet), late_usage
    (one row per finalized period, charge and filter) and current_usage (open periods). A
    finalized invoice already stored is never changed.
    """
    with settings.connect() as con:
        through = settings.through_date(con, billing_date.through)
        if through is None:
            raise dg.Failure("nothing to bill: no events loaded and no billing date (`through`) given")
        billing_tables.create_append_only_tables(con)
        customers = billing_tables.customers(con)
        sequences = billing_tables.customer_sequences(con)
        new_sequences = numbering.new_customer_sequences(sequences, customers)
        billing_tables.add_customer_sequences(con, new_sequences)
        issued_numbers, frozen_totals = billing_tables.issued(con)
        frozen_ids = set(frozen_totals)
        # Days before the latest date billed through are complete (their folders closed): their
        # rule top-ups were decided for good. The last day billed may still have received files.
        last_through = billing_tables.last_billed_through(con)
        result = bill(
            through=through,
            periods=billing_tables.billing_periods(con),
            customers=customers,
            customer_sequences={**sequences, **new_sequences},
            number_prefix=numbering.number_prefix(billing_tables.entity_number_prefix(con)),
            issued_numbers=issued_numbers,
            frozen_totals=frozen_totals,
            tax_book=book_from_tables(**billing_tables.tax_tables(con)),
            decided_through=last_through - dt.timedelta(days=1) if last_through else None,
            credit_notes=billing_tables.credit_note_book(con, frozen_ids),
            unpriced_values=billing_tables.unpriced_values(con),
            recorded_coupon_credits=billing_tables.recorded_coupon_credits(con),
            **billing_tables.bill_tables(con),
        )
        if changed := frozen.changed_credit_notes(billing_tables.issued_credit_notes(con, through),
                                                  billing_tables.credit_note_voids(con, through), result.credit_notes):
            raise CreditNoteRefused(changed)
        stored = {name: billing_tables.stored(con, name, frozen_ids) if frozen_ids else None
                  for name in frozen.KEPT_WHEN_FINALIZED}
        tables = frozen.priced_tables(result, stored, frozen_ids)
        billing_tables.write_priced(con, tables, through, result.rule_top_ups)
    rows = {name: len(frame) for name, frame in tables.items()}
    context.log.info(f"billed through {through}: {rows}")
    for name in BILLING_TABLES:
        yield dg.MaterializeResult(asset_key=["billing", name], metadata={"rows": rows[name], "through": str(through)})
