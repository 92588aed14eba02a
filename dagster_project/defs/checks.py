"""Asset checks where money is at stake: they run after each materialization and block downstream
assets when they fail."""

import dagster as dg
import pandera.errors

from dagster_project.billing.schemas import Fees, Invoices, RawEvents, UsageDaily
from dagster_project.defs.resources import MeterhouseSettings


def _pandera_result(schema, frame) -> dg.AssetCheckResult:
    try:
        schema.validate(frame)
    except pandera.errors.SchemaError as exc:
        return dg.AssetCheckResult(passed=False, metadata={"error": str(exc)[:500]})
    return dg.AssetCheckResult(passed=True, metadata={"rows": len(frame)})


@dg.asset_check(asset=dg.AssetKey(["marts", "fct_event_loads"]), blocking=True,
                description="Every raw event is accepted, a duplicate or rejected, on every arrival day.")
def every_event_is_accounted_for(settings: MeterhouseSettings) -> dg.AssetCheckResult:
    with settings.connect() as con:
        bad = con.execute(
            """select arrival_date::varchar, events_raw, events_accepted, events_duplicate, events_rejected
               from marts.fct_event_loads
               where events_raw <> events_accepted + events_duplicate + events_rejected order by 1"""
        ).fetchall()
    return dg.AssetCheckResult(passed=not bad, metadata={"days_off": len(bad), "first": str(bad[:3])})


@dg.asset_check(asset=dg.AssetKey(["billing", "invoices"]), blocking=True,
                description="Invoice arithmetic: fees = sum of fee lines, taxes = sum of applied taxes, "
                            "credit notes = sum of the credit they gave it, the stored totals agree with their "
                            "parts (total = fees + taxes - credit notes - prepaid credits), never below zero, and each "
                            "fee's total is its amount + its taxes.")
def invoice_arithmetic(settings: MeterhouseSettings) -> dg.AssetCheckResult:
    # The one place the totals' arithmetic is written a second time, on purpose: pricing computes and
    # stores them (billing/invoicing.py, `with_invoice_totals`); this check restates it to verify them.
    with settings.connect() as con:
        bad = con.execute(
            """select number from billing.invoices
               where total_amount_cents < 0
                  or sub_total_excluding_taxes_amount_cents <> fees_amount_cents
                  or sub_total_including_taxes_amount_cents <> fees_amount_cents + taxes_amount_cents
                  or prepaid_credit_amount_cents <> prepaid_granted_credit_amount_cents + prepaid_purchased_credit_amount_cents
                  or total_amount_cents <> sub_total_including_taxes_amount_cents - credit_notes_amount_cents
                                           - prepaid_credit_amount_cents
                  or credit_notes_amount_cents <> coalesce((select sum(amount_cents) from billing.credit_note_applications a
                                                           where a.invoice_id = invoices.invoice_id), 0)
                  or fees_amount_cents <> coalesce((select sum(amount_cents) from billing.fees f
                                                   where f.invoice_id = invoices.invoice_id), 0)
                     and invoice_type = 'subscription'
                  or exists (select 1 from billing.fees f where f.invoice_id = invoices.invoice_id
                             and f.total_amount_cents <> f.amount_cents + f.taxes_amount_cents)
                  or taxes_amount_cents <> coalesce((select sum(amount_cents) from billing.invoice_taxes t
                                                    where t.invoice_id = invoices.invoice_id), 0)"""
        ).fetchall()
    return dg.AssetCheckResult(passed=not bad, metadata={"invoices_off": len(bad), "first": str(bad[:5])})


@dg.asset_check(asset=dg.AssetKey(["billing", "credit_notes"]), blocking=True,
                description="Credit note arithmetic: total = credit + refund = items + taxes; credit = used by "
                            "invoices + balance left + voided, none below zero.")
def credit_note_arithmetic(settings: MeterhouseSettings) -> dg.AssetCheckResult:
    with settings.connect() as con:
        bad = con.execute(
            """select number from billing.credit_notes n
               where total_amount_cents <> credit_amount_cents + refund_amount_cents
                  or total_amount_cents <> sub_total_excluding_taxes_amount_cents + taxes_amount_cents
                  or sub_total_excluding_taxes_amount_cents <> coalesce((select sum(amount_cents)
                         from billing.credit_note_items i where i.credit_note_id = n.credit_note_id), 0)
                  or consumed_amount_cents <> coalesce((select sum(amount_cents) from billing.credit_note_applications a
                                                       where a.credit_note_id = n.credit_note_id and a.applied_on <= n.as_of), 0)
                  or credit_amount_cents <> consumed_amount_cents + balance_amount_cents + voided_amount_cents
                  or least(balance_amount_cents, consumed_amount_cents, voided_amount_cents) < 0
               order by number"""
        ).fetchall()
    return dg.AssetCheckResult(passed=not bad, metadata={"credit_notes_off": len(bad), "first": str(bad[:5])})


@dg.asset_check(asset=dg.AssetKey(["billing", "fees"]), blocking=True,
                description="Pandera schema of fees: exact decimals, non-negative amounts, unique ids.")
def fees_schema(settings: MeterhouseSettings) -> dg.AssetCheckResult:
    with settings.connect() as con:
        return _pandera_result(Fees, con.execute("select * from billing.fees").pl())


@dg.asset_check(asset=dg.AssetKey(["billing", "invoices"]), blocking=True,
                description="Pandera schema of invoices: credits within totals, finalized numbers unique.")
def invoices_schema(settings: MeterhouseSettings) -> dg.AssetCheckResult:
    with settings.connect() as con:
        return _pandera_result(Invoices, con.execute("select * from billing.invoices").pl())


# The rows of `raw.events` (with the text of their line from `raw.rejected_lines`) that
# `RawEvents` could reject: quarantined, or missing a field it requires. Every other row passes
# each of its rules (`source_file` and a `line_number` >= 1, ids and a time when there is no
# `load_error`), so only these are read into memory: every event would be 100M rows in polars at
# 100M events (about 10 GB); these are about one in a thousand.
RAW_EVENTS_SUSPECT = (
    "load_error is not null or source_file is null or line_number is null or line_number < 1"
    " or transaction_id is null or code is null or external_subscription_id is null or event_at is null"
)


@dg.asset_check(asset=dg.AssetKey(["raw", "events"]), blocking=True,
                description="Pandera schema of raw events: readable with ids and time, or quarantined with text.")
def raw_events_schema(settings: MeterhouseSettings) -> dg.AssetCheckResult:
    with settings.connect() as con:
        suspect = con.execute(
            "select source_file, line_number, transaction_id, code, external_subscription_id, event_at, load_error,"
            " raw_line from raw.events left join raw.rejected_lines using (arrival_date, source_file, line_number)"
            f" where {RAW_EVENTS_SUSPECT}"
        ).pl()
        total = con.execute("select count(*) from raw.events").fetchone()[0]
    result = _pandera_result(RawEvents, suspect)
    return dg.AssetCheckResult(passed=result.passed, metadata={**result.metadata, "rows_in_table": total})


@dg.asset_check(asset=dg.AssetKey(["marts", "fct_usage_daily"]), blocking=True,
                description="Pandera schema of the pricing input: exact decimal units, known aggregations.")
def usage_schema(settings: MeterhouseSettings) -> dg.AssetCheckResult:
    with settings.connect() as con:
        return _pandera_result(UsageDaily, con.execute("select * from marts.fct_usage_daily").pl())


CHECKS = [raw_events_schema, usage_schema, every_event_is_accounted_for, invoice_arithmetic, credit_note_arithmetic,
          fees_schema, invoices_schema]
