"""Schema `billing`: what the pricing step reads (the usage marts, the catalog, payments, what
earlier runs decided for good) and writes (the priced tables, rewritten whole, and the append-only
facts: finalized invoices, customer numbers, rule top-ups, issued credit notes)."""

import datetime as dt
import json

import polars as pl

from dagster_project.billing.credit_notes import CreditNoteBook, CreditNoteRequest
from dagster_project.billing.invoicing import excluding_taxes, fee_facts, including_taxes
from dagster_project.store.periods import periods_with_plans
from dagster_project.store.tables import rows, table_exists, write_table

FINALIZED_COLUMNS = [
    "invoice_id", "customer_id", "number", "sequential_id", "invoice_type", "issuing_date", "currency",
    "fees_amount_cents", "taxes_amount_cents", "prepaid_granted_credit_amount_cents",
    "prepaid_purchased_credit_amount_cents",
]
VAT_RATES = ["reference", "eu_vat_standard_rates"]
# Every table the pricing step reads besides its own (billing.*): each a declared dependency of
# the `priced_billing` asset.
READS = [
    ["marts", "fct_usage_daily"], ["marts", "fct_usage_daily_by_dimensions"], ["marts", "fct_charge_events"],
    ["marts", "fct_unpriced_usage"], ["catalog", "pricing_group_keys"],
    ["calendar", "billing_periods"], ["catalog", "subscriptions"], ["catalog", "plans"], ["catalog", "customers"],
    ["catalog", "charges"], ["catalog", "charge_filters"], ["catalog", "wallets"], ["catalog", "wallet_rules"], ["catalog", "taxes"],
    ["catalog", "billing_entities"], ["catalog", "wallet_transactions"], ["catalog", "credit_notes"],
    ["catalog", "applied_coupons"], ["catalog", "usage_thresholds"],
    VAT_RATES, ["raw", "payments"],
]


def create_append_only_tables(con) -> None:
    """The facts no run may change: finalized invoices, rule top-ups, and the dates billed through;
    customer numbers; issued credit notes, their voids and the credit finalized invoices took."""
    con.execute("create schema if not exists billing")
    con.execute(
        "create table if not exists billing.customer_sequences (customer_id varchar primary key, sequence integer)"
    )
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
    # What each coupon took off a finalized invoice, for good.
    con.execute("""create table if not exists billing.finalized_coupon_credits (
        invoice_id varchar, applied_coupon_id varchar, credit_order integer, amount_cents bigint,
        first_billed_through date, primary key (invoice_id, applied_coupon_id))""")
    # What a finalized invoice deducted of the progressive invoices before it, for good.
    con.execute("""create table if not exists billing.finalized_progressive_billing_credits (
        invoice_id varchar primary key, progressive_billing_invoice_id varchar, amount_cents bigint,
        first_billed_through date)""")
    con.execute("""create table if not exists billing.finalized_credit_note_applications (
        invoice_id varchar, credit_note_id varchar, amount_cents bigint, first_billed_through date,
        primary key (invoice_id, credit_note_id))""")


def customer_sequences(con) -> dict[str, int]:
    """Customer numbers already given (append-only: a customer keeps its number forever)."""
    return dict(con.execute("select customer_id, sequence from billing.customer_sequences").fetchall())


def add_customer_sequences(con, new: dict[str, int]) -> None:
    """Append the numbers given to new customers, in one statement (one insert per customer, each
    its own transaction, took 12-20 s for 20,000 customers on a first run)."""
    if not new:
        return
    frame = pl.DataFrame({"customer_id": list(new), "sequence": list(new.values())},
                         schema={"customer_id": pl.String, "sequence": pl.Int32})
    con.register("_new_sequences", frame.to_arrow())
    try:
        con.execute("insert into billing.customer_sequences by name select * from _new_sequences")
    finally:
        con.unregister("_new_sequences")


def entity_number_prefix(con) -> str | None:
    """The billing entity's `document_number_prefix`, if there is an entity and it sets one."""
    row = con.execute("select document_number_prefix from catalog.billing_entities limit 1").fetchone()
    return row[0] if row else None


def issued(con) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Numbers and totals (fees less coupons and progressive-billing credit, with taxes) of the
    invoices finalized by earlier runs."""
    numbers: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for customer_id, invoice_id, sequential_id, fees_cents, taxes_cents, coupons_cents, progressive_cents in con.execute(
        """select customer_id, invoice_id, sequential_id, fees_amount_cents, taxes_amount_cents,
                  coalesce((select sum(c.amount_cents) from billing.finalized_coupon_credits c
                            where c.invoice_id = f.invoice_id), 0)::bigint,
                  coalesce((select sum(p.amount_cents) from billing.finalized_progressive_billing_credits p
                            where p.invoice_id = f.invoice_id), 0)::bigint
           from billing.finalized_invoices f"""
    ).fetchall():
        numbers.setdefault(customer_id, {})[invoice_id] = sequential_id
        totals[invoice_id] = including_taxes(excluding_taxes(fees_cents, coupons_cents, progressive_cents), taxes_cents)
    return numbers, totals


def last_billed_through(con) -> dt.date | None:
    return con.execute("select max(through) from billing.billed_through").fetchone()[0]


def billing_periods(con) -> pl.DataFrame:
    """Every billing period with what pricing needs of its subscription and plan."""
    return periods_with_plans(con).drop("external_customer_id", "plan_name", "plan_interval")


def customers(con) -> pl.DataFrame:
    return con.execute("select * from catalog.customers").pl()


def bill_tables(con) -> dict[str, pl.DataFrame]:
    """The tables `bill()` prices from, by its parameter names."""
    return {
        "usage": con.execute("select * from marts.fct_usage_daily").pl(),
        "charges": con.execute("select * from catalog.charges").pl(),
        "filters": con.execute("select * from catalog.charge_filters").pl(),
        "wallets": con.execute("select * from catalog.wallets").pl(),
        "wallet_rules": con.execute("select * from catalog.wallet_rules").pl(),
        "charge_events": con.execute("select * from marts.fct_charge_events").pl(),
        "manual_transactions": con.execute("select * from catalog.wallet_transactions").pl(),
        "payments": con.execute("select * from raw.payments").pl(),
        "recorded_top_ups": con.execute("select * from billing.wallet_rule_top_ups").pl(),
        "applied_coupons": con.execute("select * from catalog.applied_coupons").pl(),
        "usage_thresholds": con.execute("select * from catalog.usage_thresholds").pl(),
        "usage_by_dimensions": con.execute("select * from marts.fct_usage_daily_by_dimensions").pl(),
        "group_keys": group_keys(con),
    }


def group_keys(con) -> dict[tuple[str, str], list[str]]:
    """The buckets priced per group: (charge, filter id or 'default') -> its `pricing_group_keys`, in order."""
    keys: dict[tuple[str, str], list[str]] = {}
    for charge_id, bucket, key in con.execute(
            "select charge_id, charge_filter_key, group_key from catalog.pricing_group_keys order by charge_id, charge_filter_key, key_index").fetchall():
        keys.setdefault((charge_id, bucket), []).append(key)
    return keys


def recorded_coupon_credits(con) -> dict[str, list[tuple[str, int]]]:
    """What coupons took off each invoice finalized by an earlier run, in the order they applied."""
    recorded: dict[str, list[tuple[str, int]]] = {}
    for invoice_id, applied_coupon_id, cents in con.execute(
        """select invoice_id, applied_coupon_id, amount_cents from billing.finalized_coupon_credits
           order by invoice_id, credit_order""").fetchall():
        recorded.setdefault(invoice_id, []).append((applied_coupon_id, cents))
    return recorded


def tax_tables(con) -> dict[str, list[dict]]:
    """What the tax book is made of, by the parameter names of `taxes.book_from_tables`."""
    return {
        "taxes": rows(con, "select * from catalog.taxes"),
        "charges": rows(con, "select charge_id, tax_codes_json from catalog.charges"),
        "plans": rows(con, "select plan_id, tax_codes_json from catalog.plans"),
        "customers": rows(con, "select customer_id, tax_codes_json, country, tax_identification_number from catalog.customers"),
        "billing_entities": rows(con, "select * from catalog.billing_entities"),
        "vat_rates": rows(con, f"select * from {'.'.join(VAT_RATES)}"),
    }


def unpriced_values(con) -> dict[tuple[str, str], list[dict]]:
    """Per billing period and charge, the filter values of the usage arrived on time that no price
    applies to: the name of its invoice line."""
    return {(period_id, charge_id): [json.loads(v) for v in values] for period_id, charge_id, values in con.execute(
        """select billing_period_id, charge_id, list(distinct filter_values_json order by filter_values_json)
           from marts.fct_unpriced_usage where not is_late group by all""").fetchall()}


def credit_note_book(con, frozen_ids: set[str]) -> CreditNoteBook:
    """The catalog's credit notes, the stored fees of finalized invoices (what a note is checked
    against), and what earlier runs recorded of credit notes."""
    fees, fee_taxes, fee_coupons = (stored(con, name, frozen_ids) for name in ("fees", "fee_taxes", "fee_coupons"))
    return CreditNoteBook(
        requests=credit_note_requests(con),
        fees=fee_facts(fees, fee_taxes, fee_coupons) if fees is not None else {},
        recorded_sequences=recorded_credit_note_sequences(con),
        recorded_applications=recorded_credit_note_applications(con),
    )


def credit_note_requests(con) -> tuple[CreditNoteRequest, ...]:
    """The catalog's credit notes, in the order written."""
    return tuple(
        CreditNoteRequest(
            credit_note_id=r["credit_note_id"], order=r["credit_note_order"], invoice_ref=r["invoice_ref"],
            created_on=r["created_at"].date(), items=tuple((fee_id, cents) for fee_id, cents in json.loads(r["items_json"])),
            credit_amount_cents=r["credit_amount_cents"], refund_amount_cents=r["refund_amount_cents"],
            reason=r["reason"], description=r["description"],
            voided_on=r["voided_at"].date() if r["voided_at"] else None, where=r["catalog_location"],
        )
        for r in con.execute("select * from catalog.credit_notes order by credit_note_order").pl().iter_rows(named=True)
    )


def recorded_credit_note_applications(con) -> dict[str, list[tuple[str, int]]]:
    """The credit each finalized invoice took, as recorded when it was finalized."""
    applications: dict[str, list[tuple[str, int]]] = {}
    for invoice_id, note_id, cents in con.execute(
        "select invoice_id, credit_note_id, amount_cents from billing.finalized_credit_note_applications order by all"
    ).fetchall():
        applications.setdefault(invoice_id, []).append((note_id, cents))
    return applications


def recorded_credit_note_sequences(con) -> dict[str, tuple[str, int]]:
    return {note_id: (invoice_id, sequence) for note_id, invoice_id, sequence in con.execute(
        "select credit_note_id, invoice_id, sequential_id from billing.issued_credit_notes").fetchall()}


def issued_credit_notes(con, through: dt.date) -> list[tuple[str, str, str]]:
    """(credit_note_id, number, invoice_id) of the notes earlier runs issued by `through`."""
    return con.execute(
        "select credit_note_id, number, invoice_id from billing.issued_credit_notes where issuing_date <= ? order by number",
        [through]).fetchall()


def credit_note_voids(con, through: dt.date) -> list[tuple[str, str, dt.date]]:
    """(credit_note_id, number, voided_on) of the voids earlier runs recorded by `through`."""
    return con.execute(
        """select v.credit_note_id, n.number, v.voided_on from billing.credit_note_voids v
           join billing.issued_credit_notes n using (credit_note_id) where v.voided_on <= ? order by n.number""",
        [through]).fetchall()


def stored(con, table: str, invoice_ids: set[str]) -> pl.DataFrame | None:
    """The stored rows of `billing.<table>` of these invoices; None when the table does not exist yet."""
    if not table_exists(con, "billing", table):
        return None
    return con.execute(f"select * from billing.{table}").pl().filter(pl.col("invoice_id").is_in(list(invoice_ids)))


def write_priced(con, tables: dict[str, pl.DataFrame], through: dt.date, rule_top_ups: pl.DataFrame) -> None:
    """In one transaction: replace each `billing.<name>` with its frame, record the billing date
    (`billing.run_state`) and append what this run decided for good (`record_facts`)."""
    con.execute("begin transaction")
    try:
        for name, frame in tables.items():
            write_table(con, "billing", name, frame)
        con.execute("create or replace table billing.run_state as select ?::date as through", [through])
        record_facts(con, tables["invoices"], rule_top_ups, through, tables["credit_notes"],
                     tables["credit_note_applications"], tables["coupon_credits"], tables["progressive_billing_credits"])
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def record_facts(con, invoices: pl.DataFrame, rule_top_ups: pl.DataFrame, through, credit_notes: pl.DataFrame,
                 applications: pl.DataFrame, coupon_credits: pl.DataFrame, progressive_credits: pl.DataFrame) -> None:
    """Append what this run decided for good (finalized invoices, the credit notes, coupons and
    progressive-billing credits they took; issued credit notes; rule top-ups of complete days); rows
    already there are left as they are."""
    finalized_ids = invoices.filter(pl.col("status") == "finalized")["invoice_id"]
    con.register("_progressive", progressive_credits.filter(pl.col("invoice_id").is_in(finalized_ids.implode())).group_by(
        "invoice_id", "progressive_billing_invoice_id").agg(pl.col("amount_cents").sum()).to_arrow())
    con.execute("""insert into billing.finalized_progressive_billing_credits
                   select p.*, ?::date from _progressive p
                   where invoice_id not in (select invoice_id from billing.finalized_invoices)""", [through])
    con.unregister("_progressive")
    con.register("_coupon_credits", coupon_credits.select("invoice_id", "applied_coupon_id", "credit_order",
                                                          "amount_cents").to_arrow())
    con.execute("""insert into billing.finalized_coupon_credits
                   select c.*, ?::date from _coupon_credits c
                   where invoice_id not in (select invoice_id from billing.finalized_invoices)""", [through])
    con.unregister("_coupon_credits")
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
