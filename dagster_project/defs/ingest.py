"""Catalog, raw events and billing periods: the Python-loaded inputs of the dbt models."""


import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl

from dagster_project.billing.period_table import billing_period_rows
from dagster_project.catalog import read_catalog, tables
from dagster_project.console import report_progress
from dagster_project.defs.partitions import arrival_days
from dagster_project.defs.resources import BillingDate, MeterhouseSettings
from dagster_project.ingest.events import ensure_raw_schema, load_arrival_day


def write_table(con, schema: str, name: str, frame: pl.DataFrame) -> None:
    """Replace `schema.name` with `frame` (the catalog is small and rewritten whole)."""
    con.execute(f"create schema if not exists {schema}")
    con.register("_frame", frame.to_arrow())
    con.execute(f"create or replace table {schema}.{name} as select * from _frame")
    con.unregister("_frame")


_S, _I, _B = pl.String, pl.Int64, pl.Boolean
EMPTY_SCHEMAS = {
    "charge_filters": {"charge_filter_id": _S, "charge_id": _S, "filter_index": _I, "invoice_display_name": _S,
                       "key_count": _I, "value_count": _I, "filter_values_json": _S, "properties_json": _S},
    "charge_filter_values": {"charge_filter_id": _S, "charge_id": _S, "key": _S, "value": _S},
    "wallets": {"wallet_id": _S, "wallet_key": _S, "creation_order": _I, "customer_id": _S,
                "external_customer_id": _S, "name": _S, "code": _S, "currency": _S, "priority": _I,
                "rate_amount": _S, "paid_credits": _S, "granted_credits": _S, "created_at": pl.Datetime("us"),
                "expiration_at": pl.Datetime("us"), "invoice_requires_successful_payment": _B,
                "recurring_transaction_rules_json": _S},
    "charges": {"charge_id": _S, "plan_id": _S, "plan_code": _S, "charge_index": _I, "billable_metric_id": _S,
                "billable_metric_code": _S, "charge_model": _S, "is_pay_in_advance": _B,
                "invoice_display_name": _S, "min_amount_cents": _I, "rounding_function": _S,
                "rounding_precision": _I, "properties_json": _S, "tax_codes_json": _S},
    "subscriptions": {"subscription_id": _S, "external_id": _S, "name": _S, "customer_id": _S,
                      "external_customer_id": _S, "plan_id": _S, "plan_code": _S, "billing_time": _S, "interval": _S,
                      "timezone": _S, "currency": _S, "subscription_at": pl.Datetime("us"),
                      "terminated_at": pl.Datetime("us"), "trial_period_days": _S, "is_plan_pay_in_advance": _B},
    "taxes": {"tax_id": _S, "code": _S, "name": _S, "rate": _S, "description": _S, "is_applied_to_organization": _B},
    "billing_entities": {"billing_entity_id": _S, "code": _S, "name": _S, "country": _S, "address_line1": _S,
                         "address_line2": _S, "zipcode": _S, "city": _S, "email": _S, "tax_identification_number": _S,
                         "document_number_prefix": _S, "is_eu_tax_management": _B, "state": _S, "legal_name": _S,
                         "legal_number": _S, "net_payment_term": _I},
    "credit_notes": {"credit_note_id": _S, "credit_note_order": _I, "invoice_ref": _S, "reason": _S, "description": _S,
                     "credit_amount_cents": _I, "refund_amount_cents": _I, "items_json": _S,
                     "created_at": pl.Datetime("us"), "voided_at": pl.Datetime("us"), "catalog_location": _S},
    "wallet_transactions": {"manual_transaction_id": _S, "transaction_order": _I, "wallet_id": _S, "name": _S,
                            "paid_credits": _S, "granted_credits": _S, "voided_credits": _S,
                            "invoice_requires_successful_payment": _B, "created_at": pl.Datetime("us")},
}

CATALOG_SCHEMAS = {
    "charges": {"rounding_function": pl.String, "rounding_precision": pl.Int64, "min_amount_cents": pl.Int64},
    "plans": {"minimum_commitment_cents": pl.Int64},
    "subscriptions": {"subscription_at": pl.Datetime("us"), "terminated_at": pl.Datetime("us"),
                      "trial_period_days": pl.String},
    "wallets": {"created_at": pl.Datetime("us"), "expiration_at": pl.Datetime("us")},
    "wallet_transactions": {"created_at": pl.Datetime("us"), "invoice_requires_successful_payment": pl.Boolean},
    "credit_notes": {"created_at": pl.Datetime("us"), "voided_at": pl.Datetime("us"), "description": pl.String},
}


CATALOG_TABLES = [*tables.TABLES, "property_keys"]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["catalog", name], group_name="ingest", owners=["team:billing-data"], kinds={"python", "duckdb"},
                     description=f"catalog.{name}: the catalog's {name.replace('_', ' ')}, one row per entity.")
        for name in CATALOG_TABLES
    ],
    name="catalog",
)
def catalog(context: dg.AssetExecutionContext, settings: MeterhouseSettings):
    """The Lago request bodies of the catalog folder as tables in schema `catalog`.

    Grain: one row per entity in each table (billable_metrics, plans, charges, charge_filters,
    charge_filter_values, customers, subscriptions, wallets). Refuses a bad catalog, naming the
    file, the body and the field, before anything is written.
    """
    parsed = read_catalog(settings.catalog_dir)
    counts = {}
    with settings.connect() as con:
        for name, build in tables.TABLES.items():
            rows = build(parsed)
            frame = pl.DataFrame(rows, schema_overrides=CATALOG_SCHEMAS.get(name), infer_schema_length=None)
            if frame.width == 0:  # no such entity in this catalog: an empty table of the right shape
                frame = pl.DataFrame(schema=EMPTY_SCHEMAS[name])
            # An optional field no body sets is a column of nulls: keep it text, not DuckDB's NULL type.
            frame = frame.with_columns(pl.col(c).cast(pl.String) for c, t in frame.schema.items() if t == pl.Null)
            write_table(con, "catalog", name, frame)
            counts[name] = len(rows)
        keys, filter_keys = tables.property_keys(parsed), set(tables.filter_keys(parsed))
        write_table(con, "catalog", "property_keys", pl.DataFrame(
            {"key": keys, "is_filter_key": [k in filter_keys for k in keys]}, schema={"key": pl.String, "is_filter_key": pl.Boolean}))
    counts["property_keys"] = len(tables.property_keys(parsed))
    context.log.info(f"catalog loaded: {counts}")
    for name in CATALOG_TABLES:
        yield dg.MaterializeResult(asset_key=["catalog", name], metadata={"rows": counts[name]})


@dg.asset(
    key=["raw", "events"],
    group_name="ingest",
    deps=[dg.AssetKey(["catalog", "property_keys"])],
    partitions_def=arrival_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=["team:billing-data"],
    kinds={"python", "duckdb"},
    pool="duckdb_writer",
)
def raw_events(context: dg.AssetExecutionContext, settings: MeterhouseSettings) -> dg.MaterializeResult:
    """Event lines of the landing folder, typed, one arrival date per partition.

    Grain: one row per event record (file, line, batch item); key (source_file, line_number,
    item_index). A range of days runs as one run; each day is replaced idempotently.
    """
    days = [dt.date.fromisoformat(k) for k in context.partition_keys]
    events_dir = Path(settings.events_dir)
    totals = {"files_loaded": 0, "files_duplicate": 0, "events_raw": 0, "events_malformed": 0, "days_unchanged": 0}
    with settings.connect() as con:
        ensure_raw_schema(con)
        keys = [r[0] for r in con.execute("select key from catalog.property_keys").fetchall()]
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        for index, day in enumerate(days, start=1):
            load = load_arrival_day(con, events_dir, day, keys, now)
            report_progress("events", index, len(days), str(day))  # the console's progress line, if any
            if load.skipped:  # same files and catalog keys as its last load: not read again
                # (counted for the day folders only: the range also holds the dates without one)
                totals["days_unchanged"] += (events_dir / day.isoformat()).is_dir()
                continue
            for k in totals.keys() - {"days_unchanged"}:
                totals[k] += getattr(load, k)
            if load.files_loaded or load.files_duplicate or index == len(days):
                context.log.info(
                    f"[{index}/{len(days)}] {day}: {load.events_raw} events from {load.files_loaded} files "
                    f"({load.events_malformed} unreadable, {load.files_duplicate} duplicate files)"
                )
    return dg.MaterializeResult(metadata={**totals, "days": len(days)})


@dg.asset(
    key=["catalog", "billing_periods"],
    group_name="ingest",
    deps=[dg.AssetKey(["catalog", "subscriptions"]), dg.AssetKey(["catalog", "customers"]), raw_events],
    owners=["team:billing-data"],
    kinds={"python", "duckdb"},
)
def billing_periods(context: dg.AssetExecutionContext, settings: MeterhouseSettings, billing_date: BillingDate) -> dg.MaterializeResult:
    """Billing periods of every subscription, in the customer's timezone, through the billing date.

    Grain: one row per subscription and period; key billing_period_id. Periods reach past the
    latest arrival date so that every event that is not in the future finds its period.
    """
    with settings.connect() as con:
        ensure_raw_schema(con)
        subs = con.execute("select * from catalog.subscriptions").pl().to_dicts()
        grace = dict(con.execute("select customer_id, invoice_grace_period_days from catalog.customers").fetchall())
        # A subscription with no start begins with the first arrival day of its events: the landing
        # folder's date is set by the operator, an event's timestamp by the client. (Asked for those
        # subscriptions only: with every start set, no run scans the events here.)
        undated = sorted({s["external_id"] for s in subs if s["subscription_at"] is None})
        first_event = dict(
            con.execute(
                """select external_subscription_id, min(arrival_date)::timestamp from raw.events
                   where load_error is null and list_contains(?::varchar[], external_subscription_id)
                   group by 1""",
                [undated],
            ).fetchall()
        ) if undated else {}
        latest_arrival = con.execute("select max(arrival_date) from raw.events").fetchone()[0]
        through = settings.through_date(con, billing_date.through)
        candidates = [d for d in (latest_arrival, through) if d is not None] or [dt.date.today()]
        horizon = max(candidates) + dt.timedelta(days=3)
        rows = billing_period_rows(subs, grace, first_event, horizon)
        frame = pl.DataFrame(rows, schema=PERIOD_SCHEMA)
        write_table(con, "catalog", "billing_periods", frame)
    return dg.MaterializeResult(metadata={"periods": len(rows), "horizon": str(horizon)})


PERIOD_SCHEMA = {
    "billing_period_id": pl.String, "subscription_id": pl.String, "external_subscription_id": pl.String,
    "period_start_date": pl.Date, "period_end_date": pl.Date, "period_start_at": pl.Datetime("us"),
    "period_end_at": pl.Datetime("us"), "charges_from_at": pl.Datetime("us"), "charges_to_at": pl.Datetime("us"),
    "days_in_period": pl.Int64, "billed_days": pl.Int64, "fee_days": pl.Int64, "billing_day": pl.Date,
    "invoice_finalized_on": pl.Date, "period_index": pl.Int64,
}
