"""The polars pricing asset: fees, invoices, wallet ledger and late usage, as of the billing date."""


import dagster as dg
import polars as pl

from dagster_project.billing.invoicing import bill
from dagster_project.billing.schemas import Fees, Invoices
from dagster_project.billing.taxes import book_from_tables
from dagster_project.defs.ingest import write_table
from dagster_project.defs.resources import BillingDate, MeterhouseSettings

DEFAULT_PREFIX = "MTH"


def _customer_sequences(con, customers: pl.DataFrame) -> dict[str, int]:
    """Customer numbers for invoice numbers, append-only: a customer keeps its number forever;
    new customers get the next ones in (created_at, external_id) order."""
    con.execute("create schema if not exists billing")
    con.execute(
        "create table if not exists billing.customer_sequences (customer_id varchar primary key, sequence integer)"
    )
    known = dict(con.execute("select customer_id, sequence from billing.customer_sequences").fetchall())
    new = customers.filter(~pl.col("customer_id").is_in(list(known))).sort(
        ["created_at", "external_id"], nulls_last=False
    )
    next_number = max(known.values(), default=0)
    for customer_id in new["customer_id"]:
        next_number += 1
        known[customer_id] = next_number
        con.execute("insert into billing.customer_sequences values (?, ?)", [customer_id, next_number])
    return known


def _number_prefix(con) -> str:
    """The billing entity's `document_number_prefix`, else MTH."""
    row = con.execute("select document_number_prefix from catalog.billing_entities limit 1").fetchone()
    return (row[0] if row and row[0] else None) or DEFAULT_PREFIX


def _issued(con) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Numbers and totals of the invoices finalized by earlier runs (none on a new warehouse)."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'billing' and table_name = 'invoices'"
    ).fetchone()[0]
    if not exists:
        return {}, {}
    numbers: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for customer_id, invoice_id, sequential_id, total in con.execute(
        """select customer_id, invoice_id, sequential_id, fees_amount_cents + taxes_amount_cents
           from billing.invoices where status = 'finalized'"""
    ).fetchall():
        numbers.setdefault(customer_id, {})[invoice_id] = sequential_id
        totals[invoice_id] = total
    return numbers, totals


def _keep_finalized(con, fresh: pl.DataFrame, table: str, key: str, frozen_ids: set[str]) -> pl.DataFrame:
    """Rows of invoices finalized in an earlier run are kept as stored, never recomputed."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'billing' and table_name = ?", [table]
    ).fetchone()[0]
    if not exists or not frozen_ids:
        return fresh
    stored = con.execute(f"select * from billing.{table}").pl()
    stored = stored.filter(pl.col(key).is_in(list(frozen_ids)))
    return pl.concat([stored, fresh.filter(~pl.col(key).is_in(list(frozen_ids)))], how="vertical_relaxed")


BILLING_TABLES = ["fees", "invoices", "fee_taxes", "invoice_taxes", "wallet_transactions", "wallet_balances",
                  "late_usage", "current_usage", "payments"]
VAT_RATES = ["reference", "eu_vat_standard_rates"]


def _tax_book(con):
    def rows(sql: str) -> list[dict]:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    return book_from_tables(
        rows("select * from catalog.taxes"), rows("select charge_id, tax_codes_json from catalog.charges"),
        rows("select plan_id, tax_codes_json from catalog.plans"),
        rows("select customer_id, tax_codes_json, country, tax_identification_number from catalog.customers"),
        rows("select * from catalog.billing_entities"), rows(f"select * from {'.'.join(VAT_RATES)}"),
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["billing", name], group_name="billing", owners=["team:billing-data"], kinds={"polars", "duckdb"},
            description=f"billing.{name}, written by the polars pricing step.",
            deps=[dg.AssetKey(["marts", "fct_usage_daily"]), dg.AssetKey(["marts", "fct_charge_events"]),
                  dg.AssetKey(["catalog", "billing_periods"]),
                  dg.AssetKey(["catalog", "charges"]), dg.AssetKey(["catalog", "charge_filters"]),
                  dg.AssetKey(["catalog", "wallets"]), dg.AssetKey(["catalog", "taxes"]),
                  dg.AssetKey(["catalog", "billing_entities"]), dg.AssetKey(["catalog", "wallet_transactions"]),
                  dg.AssetKey(VAT_RATES), dg.AssetKey(["raw", "payments"])],
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
        periods = con.execute(
            """select p.*, s.customer_id, s.currency, s.plan_id, s.plan_code, s.is_plan_pay_in_advance, pl.amount_cents as amount_cents_plan,
                      pl.minimum_commitment_cents
               from catalog.billing_periods p
               join catalog.subscriptions s using (subscription_id)
               join catalog.plans pl on pl.plan_id = s.plan_id"""
        ).pl()
        customers = con.execute("select * from catalog.customers").pl()
        issued_numbers, frozen_totals = _issued(con)
        result = bill(
            through=through,
            usage=con.execute("select * from marts.fct_usage_daily").pl(),
            periods=periods,
            charges=con.execute("select * from catalog.charges").pl(),
            filters=con.execute("select * from catalog.charge_filters").pl(),
            customers=customers,
            wallets=con.execute("select * from catalog.wallets").pl(),
            customer_sequences=_customer_sequences(con, customers),
            number_prefix=_number_prefix(con),
            charge_events=con.execute("select * from marts.fct_charge_events").pl(),
            issued_numbers=issued_numbers,
            frozen_totals=frozen_totals,
            tax_book=_tax_book(con),
            manual_transactions=con.execute("select * from catalog.wallet_transactions").pl(),
            payments=con.execute("select * from raw.payments").pl(),
        )
        frozen: set[str] = set()
        exists = con.execute(
            "select count(*) from information_schema.tables where table_schema = 'billing' and table_name = 'invoices'"
        ).fetchone()[0]
        if exists:
            frozen = {
                r[0] for r in con.execute("select invoice_id from billing.invoices where status = 'finalized'").fetchall()
            }
        # A finalized invoice never changes, except what collections say of it: its payment status.
        collections = ["payment_status", "paid_on", "paid_amount_cents"]
        invoices = Invoices.validate(
            _keep_finalized(con, result.invoices, "invoices", "invoice_id", frozen)
            .drop(collections, strict=False)
            .join(result.invoices.select("invoice_id", *collections), on="invoice_id", how="left")
        )
        fees = Fees.validate(_keep_finalized(con, result.fees, "fees", "invoice_id", frozen))
        fee_taxes = _keep_finalized(con, result.fee_taxes, "fee_taxes", "invoice_id", frozen)
        invoice_taxes = _keep_finalized(con, result.invoice_taxes, "invoice_taxes", "invoice_id", frozen)
        con.execute("begin transaction")
        try:
            write_table(con, "billing", "invoices", invoices.sort("number"))
            write_table(con, "billing", "fees", fees.sort(["invoice_id", "fee_id"]))
            write_table(con, "billing", "fee_taxes", fee_taxes.sort(["invoice_id", "fee_id", "tax_code"]))
            write_table(con, "billing", "invoice_taxes", invoice_taxes.sort(["invoice_id", "tax_code"]))
            write_table(con, "billing", "wallet_transactions", result.wallet_transactions)
            write_table(con, "billing", "wallet_balances", result.wallet_balances)
            write_table(con, "billing", "late_usage", result.late_usage)
            write_table(con, "billing", "payments", result.payments.sort("source_file", "line_number"))
            write_table(con, "billing", "current_usage", result.current_usage.drop(
                [c for c in result.current_usage.columns if c.endswith("_json")]))
            con.execute("create or replace table billing.run_state as select ?::date as through", [through])
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    rows = {"fees": len(fees), "invoices": len(invoices), "fee_taxes": len(fee_taxes), "invoice_taxes": len(invoice_taxes), "wallet_transactions": len(result.wallet_transactions),
            "wallet_balances": len(result.wallet_balances), "late_usage": len(result.late_usage), "payments": len(result.payments),
            "current_usage": len(result.current_usage)}
    context.log.info(f"billed through {through}: {rows}")
    for name in BILLING_TABLES:
        yield dg.MaterializeResult(asset_key=["billing", name], metadata={"rows": rows[name], "through": str(through)})
