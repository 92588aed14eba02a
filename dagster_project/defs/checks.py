"""Asset checks where money is at stake: they run after each materialization and block downstream
assets when they fail."""

import dagster as dg
import pandera.errors

from dagster_project.billing.schemas import Fees, Invoices, RawEvents, UsageDaily
from dagster_project.defs.resources import MeterhouseSettings
from dagster_project.store import check_queries


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
        bad = check_queries.days_not_accounted_for(con)
    return dg.AssetCheckResult(passed=not bad, metadata={"days_off": len(bad), "first": str(bad[:3])})


@dg.asset_check(asset=dg.AssetKey(["billing", "invoices"]), blocking=True,
                description="Invoice arithmetic: fees = sum of fee lines, coupons = sum of the coupon credits "
                            "(at most the fees), taxes = sum of applied taxes, credit notes = sum of the credit they "
                            "gave it, the stored totals agree with their parts (total = fees - coupons + taxes - "
                            "credit notes - prepaid credits), never below zero, and each fee's total is its amount + "
                            "its taxes.")
def invoice_arithmetic(settings: MeterhouseSettings) -> dg.AssetCheckResult:
    # The one place the totals' arithmetic is written a second time, on purpose: pricing computes and
    # stores them (billing/invoicing.py, `with_invoice_totals`); this check restates it to verify them.
    with settings.connect() as con:
        bad = check_queries.invoices_off(con)
    return dg.AssetCheckResult(passed=not bad, metadata={"invoices_off": len(bad), "first": str(bad[:5])})


@dg.asset_check(asset=dg.AssetKey(["billing", "credit_notes"]), blocking=True,
                description="Credit note arithmetic: total = credit + refund = items less coupons adjustment "
                            "(half-up) + taxes; credit = used by invoices + balance left + voided, none below zero.")
def credit_note_arithmetic(settings: MeterhouseSettings) -> dg.AssetCheckResult:
    with settings.connect() as con:
        bad = check_queries.credit_notes_off(con)
    return dg.AssetCheckResult(passed=not bad, metadata={"credit_notes_off": len(bad), "first": str(bad[:5])})


@dg.asset_check(asset=dg.AssetKey(["billing", "fees"]), blocking=True,
                description="Pandera schema of fees: exact decimals, non-negative amounts, unique ids.")
def fees_schema(settings: MeterhouseSettings) -> dg.AssetCheckResult:
    with settings.connect() as con:
        return _pandera_result(Fees, check_queries.table(con, "billing.fees"))


@dg.asset_check(asset=dg.AssetKey(["billing", "invoices"]), blocking=True,
                description="Pandera schema of invoices: credits within totals, finalized numbers unique.")
def invoices_schema(settings: MeterhouseSettings) -> dg.AssetCheckResult:
    with settings.connect() as con:
        return _pandera_result(Invoices, check_queries.table(con, "billing.invoices"))


@dg.asset_check(asset=dg.AssetKey(["raw", "events"]), blocking=True,
                description="Pandera schema of raw events: readable with ids and time, or quarantined with text.")
def raw_events_schema(settings: MeterhouseSettings) -> dg.AssetCheckResult:
    with settings.connect() as con:
        suspect, total = check_queries.suspect_raw_events(con)
    result = _pandera_result(RawEvents, suspect)
    return dg.AssetCheckResult(passed=result.passed, metadata={**result.metadata, "rows_in_table": total})


@dg.asset_check(asset=dg.AssetKey(["marts", "fct_usage_daily"]), blocking=True,
                description="Pandera schema of the pricing input: exact decimal units, known aggregations.")
def usage_schema(settings: MeterhouseSettings) -> dg.AssetCheckResult:
    with settings.connect() as con:
        return _pandera_result(UsageDaily, check_queries.table(con, "marts.fct_usage_daily"))


CHECKS = [raw_events_schema, usage_schema, every_event_is_accounted_for, invoice_arithmetic, credit_note_arithmetic,
          fees_schema, invoices_schema]
