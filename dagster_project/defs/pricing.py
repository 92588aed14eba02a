"""The polars pricing asset: fees, invoices, wallet ledger and late usage, as of the billing date."""

import datetime as dt
import json


import dagster as dg
import polars as pl

from dagster_project.billing.credit_notes import CreditNoteBook, CreditNoteRefused, CreditNoteRequest
from dagster_project.billing.invoicing import bill, fee_facts, including_taxes, with_fee_totals, with_invoice_totals
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


FINALIZED_COLUMNS = [
    "invoice_id", "customer_id", "number", "sequential_id", "invoice_type", "issuing_date", "currency",
    "fees_amount_cents", "taxes_amount_cents", "prepaid_granted_credit_amount_cents",
    "prepaid_purchased_credit_amount_cents",
]


def _append_only_tables(con) -> None:
    """The facts no run may change: finalized invoices, rule top-ups, and the dates billed through."""
    con.execute("create schema if not exists billing")
    con.execute("""create table if not exists billing.finalized_invoices (
        invoice_id varchar primary key, customer_id varchar, number varchar unique, sequential_id integer,
        invoice_type varchar, issuing_date date, currency varchar, fees_amount_cents bigint,
        taxes_amount_cents bigint, prepaid_granted_credit_amount_cents bigint,
        prepaid_purchased_credit_amount_cents bigint, first_billed_through date)""")
    con.execute("""create table if not exists billing.wallet_rule_top_ups (
        wallet_id varchar, customer_id varchar, top_up_date date, source varchar, invoice_key varchar,
        paid_credits varchar, granted_credits varchar, first_billed_through date,
        primary key (wallet_id, top_up_date, invoice_key))""")
    con.execute("create table if not exists billing.billed_through (through date primary key)")
    # A credit note keeps its number once issued; a finalized invoice the credit notes it took.
    con.execute("""create table if not exists billing.issued_credit_notes (
        credit_note_id varchar primary key, invoice_id varchar, number varchar unique, sequential_id integer,
        issuing_date date, first_billed_through date)""")
    con.execute("""create table if not exists billing.credit_note_voids (
        credit_note_id varchar primary key, voided_on date, first_billed_through date)""")
    con.execute("""create table if not exists billing.finalized_credit_note_applications (
        invoice_id varchar, credit_note_id varchar, amount_cents bigint, first_billed_through date,
        primary key (invoice_id, credit_note_id))""")


def _issued(con) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Numbers and totals (with taxes) of the invoices finalized by earlier runs."""
    numbers: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for customer_id, invoice_id, sequential_id, fees_cents, taxes_cents in con.execute(
        "select customer_id, invoice_id, sequential_id, fees_amount_cents, taxes_amount_cents from billing.finalized_invoices"
    ).fetchall():
        numbers.setdefault(customer_id, {})[invoice_id] = sequential_id
        totals[invoice_id] = including_taxes(fees_cents, taxes_cents)
    return numbers, totals


def _record_facts(con, invoices: pl.DataFrame, rule_top_ups: pl.DataFrame, through, credit_notes: pl.DataFrame,
                  applications: pl.DataFrame) -> None:
    """Append what this run decided for good (finalized invoices and the credit notes they took;
    issued credit notes; rule top-ups of complete days); rows already there are left as they are."""
    con.register("_applications", applications.to_arrow())
    con.execute("""insert into billing.finalized_credit_note_applications
                   select invoice_id, credit_note_id, sum(amount_cents), ?::date from _applications
                   where invoice_id not in (select invoice_id from billing.finalized_invoices)
                   group by invoice_id, credit_note_id""", [through])
    con.unregister("_applications")
    con.register("_notes", credit_notes.select("credit_note_id", "invoice_id", "number", "sequential_id", "issuing_date",
                                               "voided_on").to_arrow())
    con.execute("""insert into billing.issued_credit_notes
                   select credit_note_id, invoice_id, number, sequential_id, issuing_date, ?::date from _notes
                   where credit_note_id not in (select credit_note_id from billing.issued_credit_notes)""", [through])
    con.execute("""insert into billing.credit_note_voids select credit_note_id, voided_on, ?::date from _notes
                   where voided_on is not null
                     and credit_note_id not in (select credit_note_id from billing.credit_note_voids)""", [through])
    con.unregister("_notes")
    con.register("_finalized", invoices.filter(pl.col("status") == "finalized").select(FINALIZED_COLUMNS).to_arrow())
    con.execute("""insert into billing.finalized_invoices
                    select *, ?::date from _finalized
                    where invoice_id not in (select invoice_id from billing.finalized_invoices)""", [through])
    # Only complete days: the day billed through may still receive files, so its top-ups wait.
    con.register("_top_ups", rule_top_ups.filter(pl.col("top_up_date") < through).to_arrow())
    con.execute("""insert into billing.wallet_rule_top_ups
                   select t.*, ?::date from _top_ups t
                   where not exists (select 1 from billing.wallet_rule_top_ups r where r.wallet_id = t.wallet_id
                                     and r.top_up_date = t.top_up_date and r.invoice_key = t.invoice_key)""", [through])
    con.execute("insert into billing.billed_through select ?::date where ?::date not in (select through from billing.billed_through)",
                [through, through])
    con.unregister("_finalized")
    con.unregister("_top_ups")


def _keep_finalized(con, fresh: pl.DataFrame, table: str, key: str, frozen_ids: set[str]) -> pl.DataFrame:
    """Rows of invoices finalized in an earlier run are kept as stored, never recomputed."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'billing' and table_name = ?", [table]
    ).fetchone()[0]
    if not exists or not frozen_ids:
        return fresh
    stored = con.execute(f"select * from billing.{table}").pl()
    stored = stored.filter(pl.col(key).is_in(list(frozen_ids)))
    # a column added since (a warehouse billed by an older version): its neutral value, 0 or null
    stored = stored.with_columns(pl.lit(0 if fresh.schema[c] == pl.Int64 else None, fresh.schema[c]).alias(c)
                                 for c in fresh.columns if c not in stored.columns)
    return pl.concat([stored.select(fresh.columns), fresh.filter(~pl.col(key).is_in(list(frozen_ids)))], how="vertical_relaxed")


BILLING_TABLES = ["fees", "invoices", "fee_taxes", "invoice_taxes", "wallet_transactions", "wallet_balances",
                  "late_usage", "current_usage", "payments", "credit_notes", "credit_note_items", "credit_note_taxes",
                  "credit_note_applications"]
VAT_RATES = ["reference", "eu_vat_standard_rates"]


def _credit_note_book(con, frozen: set[str]) -> CreditNoteBook:
    """The catalog's credit notes, the stored fees of finalized invoices (what a note is checked
    against), and what earlier runs recorded of credit notes."""
    requests = tuple(
        CreditNoteRequest(
            credit_note_id=r["credit_note_id"], order=r["credit_note_order"], invoice_ref=r["invoice_ref"],
            created_on=r["created_at"].date(), items=tuple((fee_id, cents) for fee_id, cents in json.loads(r["items_json"])),
            credit_amount_cents=r["credit_amount_cents"], refund_amount_cents=r["refund_amount_cents"],
            reason=r["reason"], description=r["description"],
            voided_on=r["voided_at"].date() if r["voided_at"] else None, where=r["catalog_location"],
        )
        for r in con.execute("select * from catalog.credit_notes order by credit_note_order").pl().iter_rows(named=True)
    )
    stored = {name: _stored(con, name, frozen) for name in ("fees", "fee_taxes")}
    applications: dict[str, list[tuple[str, int]]] = {}
    for invoice_id, note_id, cents in con.execute(
        "select invoice_id, credit_note_id, amount_cents from billing.finalized_credit_note_applications order by all"
    ).fetchall():
        applications.setdefault(invoice_id, []).append((note_id, cents))
    return CreditNoteBook(
        requests=requests,
        fees=fee_facts(stored["fees"], stored["fee_taxes"]) if stored["fees"] is not None else {},
        recorded_sequences={note_id: (invoice_id, sequence) for note_id, invoice_id, sequence in con.execute(
            "select credit_note_id, invoice_id, sequential_id from billing.issued_credit_notes").fetchall()},
        recorded_applications=applications,
    )


def _stored(con, table: str, invoice_ids: set[str]) -> pl.DataFrame | None:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'billing' and table_name = ?", [table]
    ).fetchone()[0]
    return con.execute(f"select * from billing.{table}").pl().filter(pl.col("invoice_id").is_in(list(invoice_ids))) if exists else None


def _changed_credit_notes(con, issued: pl.DataFrame, through: dt.date) -> list[str]:
    """What earlier runs decided of credit notes dated by `through` that the catalog now says
    otherwise: a note issued and no longer there as it was, a void undone or moved."""
    present = set(issued["credit_note_id"])
    problems = [
        f"credit note {number} (on invoice {invoice_id}) was issued by an earlier run and is no longer in the catalog "
        f"as it was: an issued credit note cannot be changed or removed (void its credit with voided_at, or issue another)"
        for note_id, number, invoice_id in con.execute(
            "select credit_note_id, number, invoice_id from billing.issued_credit_notes where issuing_date <= ? order by number",
            [through]).fetchall()
        if note_id not in present
    ]
    voided_now = dict(zip(issued["credit_note_id"], issued["voided_on"], strict=True))
    problems += [
        f"credit note {number} was voided on {voided_on} by an earlier run: a void cannot be undone or moved "
        f"(its voided_at must stay {voided_on})"
        for note_id, number, voided_on in con.execute(
            """select v.credit_note_id, n.number, v.voided_on from billing.credit_note_voids v
               join billing.issued_credit_notes n using (credit_note_id) where v.voided_on <= ? order by n.number""",
            [through]).fetchall()
        if note_id in present and voided_now[note_id] != voided_on
    ]
    return problems


def _unpriced_values(con) -> dict[tuple[str, str], list[dict]]:
    """Per billing period and charge, the filter values of the usage arrived on time that no price
    applies to: the name of its invoice line."""
    return {(period_id, charge_id): [json.loads(v) for v in values] for period_id, charge_id, values in con.execute(
        """select billing_period_id, charge_id, list(distinct filter_values_json order by filter_values_json)
           from marts.fct_unpriced_usage where not is_late group by all""").fetchall()}


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
                  dg.AssetKey(["marts", "fct_unpriced_usage"]),
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
        _append_only_tables(con)
        issued_numbers, frozen_totals = _issued(con)
        frozen = set(frozen_totals)
        # Days before the latest date billed through are complete (their folders closed): their
        # rule top-ups were decided for good. The last day billed may still have received files.
        last_through = con.execute("select max(through) from billing.billed_through").fetchone()[0]
        decided_through = last_through - dt.timedelta(days=1) if last_through else None
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
            recorded_top_ups=con.execute("select * from billing.wallet_rule_top_ups").pl(),
            decided_through=decided_through,
            credit_notes=_credit_note_book(con, frozen),
            unpriced_values=_unpriced_values(con),
        )
        if changed := _changed_credit_notes(con, result.credit_notes, through):
            raise CreditNoteRefused(changed)
        # A finalized invoice never changes, except what collections say of it: its payment status.
        collections = ["payment_status", "paid_on", "paid_amount_cents"]
        # (totals derived again from the parts: rows kept from a warehouse billed before they were stored)
        invoices = Invoices.validate(with_invoice_totals(
            _keep_finalized(con, result.invoices, "invoices", "invoice_id", frozen)
            .drop(collections, strict=False)
            .join(result.invoices.select("invoice_id", *collections), on="invoice_id", how="left")
        ))
        fees = Fees.validate(with_fee_totals(_keep_finalized(con, result.fees, "fees", "invoice_id", frozen)))
        fee_taxes = _keep_finalized(con, result.fee_taxes, "fee_taxes", "invoice_id", frozen)
        invoice_taxes = _keep_finalized(con, result.invoice_taxes, "invoice_taxes", "invoice_id", frozen)
        # (a finalized invoice billed after `through` is not replayed when billing as of an earlier day:
        # the credit it took stays with it)
        applications = _keep_finalized(con, result.credit_note_applications, "credit_note_applications", "invoice_id", frozen)
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
            write_table(con, "billing", "credit_notes", result.credit_notes.sort("number"))
            write_table(con, "billing", "credit_note_items", result.credit_note_items.sort("credit_note_id", "fee_id"))
            write_table(con, "billing", "credit_note_taxes", result.credit_note_taxes.sort("credit_note_id", "tax_code"))
            write_table(con, "billing", "credit_note_applications", applications.sort("invoice_id", "credit_note_id"))
            con.execute("create or replace table billing.run_state as select ?::date as through", [through])
            _record_facts(con, invoices, result.rule_top_ups, through, result.credit_notes, applications)
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    rows = {"fees": len(fees), "invoices": len(invoices), "fee_taxes": len(fee_taxes), "invoice_taxes": len(invoice_taxes), "wallet_transactions": len(result.wallet_transactions),
            "wallet_balances": len(result.wallet_balances), "late_usage": len(result.late_usage), "payments": len(result.payments),
            "current_usage": len(result.current_usage), "credit_notes": len(result.credit_notes),
            "credit_note_items": len(result.credit_note_items), "credit_note_taxes": len(result.credit_note_taxes),
            "credit_note_applications": len(applications)}
    context.log.info(f"billed through {through}: {rows}")
    for name in BILLING_TABLES:
        yield dg.MaterializeResult(asset_key=["billing", name], metadata={"rows": rows[name], "through": str(through)})
