"""Catalog, raw events and billing periods: the Python-loaded inputs of the dbt models (billing
periods are derived from the catalog and the arrival dates: schema `calendar`, group `calendar`)."""


import datetime as dt
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from dagster_project.billing.period_table import (
    billing_period_rows,
    derivation_digest,
    period_horizon,
    subscriptions_to_derive,
    undated_subscriptions,
)
from dagster_project.catalog import Catalog, read_catalog
from dagster_project.console import report_progress
from dagster_project.defs.partitions import arrival_days
from dagster_project.defs.resources import BillingDate, MeterhouseSettings
from dagster_project.defs.dbt import run_on_spark
from dagster_project.ingest.events import ensure_raw_schema, load_arrival_day
from dagster_project.ingest.spark_load import load_days_with_spark
from dagster_project.store import catalog_tables, dbt_builds, periods, spark_exchange
from dagster_project.store.catalog_tables import CATALOG_TABLES


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["catalog", name], group_name="ingest", owners=["team:billing-data"], kinds={"python", "duckdb"},
                     description=f"catalog.{name}: the catalog's {name.replace('_', ' ')}, one row per entity.")
        for name in CATALOG_TABLES
    ],
    name="catalog",
)
def catalog(context: dg.AssetExecutionContext, settings: MeterhouseSettings,
            checked_catalog: dg.ResourceParam[Catalog | None]):
    """The Lago request bodies of the catalog folder as tables in schema `catalog`.

    Grain: one row per entity in each table (billable_metrics, plans, charges, charge_filters,
    charge_filter_values, customers, subscriptions, wallets). Refuses a bad catalog, naming the
    file, the body and the field, before anything is written. The folder is parsed here, once a
    run, unless the command line parsed and checked it before the run (`checked_catalog`). A
    folder whose files (and the code deriving the tables) are those of the last write is not
    derived again (`state.dbt_builds`, selection `catalog`).
    """
    digest = catalog_tables.catalog_digest(Path(settings.catalog_dir))
    with settings.connect() as con:
        unchanged = dbt_builds.up_to_date(con, "catalog", digest, [("catalog", name) for name in CATALOG_TABLES])
        if unchanged:  # the same files, derived by the same code: the tables are already these
            counts = catalog_tables.table_rows(con)
            parsed_before = "parsed before the run" if checked_catalog is not None else "not parsed"
            context.log.info(f"catalog unchanged since it was last written, not derived again ({parsed_before}): {counts}")
        else:
            parsed = checked_catalog if checked_catalog is not None else read_catalog(settings.catalog_dir)
            counts = catalog_tables.write_catalog(con, parsed)
            dbt_builds.record_build(con, "catalog", digest)
            context.log.info(f"catalog loaded: {counts}")
    for name in CATALOG_TABLES:
        yield dg.MaterializeResult(asset_key=["catalog", name], metadata={"rows": counts[name], "unchanged": unchanged})


@dg.asset(
    key=["raw", "events"],
    group_name="ingest",
    deps=[dg.AssetKey(["catalog", "property_keys"]), dg.AssetKey(["catalog", "billable_metrics"])],
    partitions_def=arrival_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=["team:billing-data"],
    kinds={"python", "duckdb"},
    pool="duckdb_writer",
)
def raw_events(context: dg.AssetExecutionContext, settings: MeterhouseSettings, dbt: DbtCliResource) -> dg.MaterializeResult:
    """Event lines of the landing folder, typed, one arrival date per partition.

    Grain: one row per event record (file, line, batch item); key (source_file, line_number,
    item_index). A range of days runs as one run; each day is replaced idempotently. With
    `--engine spark`, Spark reads and types the landing files (`ingest/spark_load.py`).
    """
    days = [dt.date.fromisoformat(k) for k in context.partition_keys]
    events_dir = Path(settings.events_dir)
    totals = {"files_loaded": 0, "files_duplicate": 0, "events_raw": 0, "events_malformed": 0, "days_unchanged": 0}
    with settings.connect() as con:
        ensure_raw_schema(con)
        keys = catalog_tables.property_keys(con)
        expressions = catalog_tables.metric_expressions(con)
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        if settings.engine == "spark":
            loads = _read_by_spark(context, dbt, settings, con, days, keys, expressions, now)
        else:
            loads = (load_arrival_day(con, events_dir, day, keys, now, expressions=expressions) for day in days)
        for index, (day, load) in enumerate(zip(days, loads, strict=True), start=1):
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


def _read_by_spark(context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: MeterhouseSettings, con,
                   days: list[dt.date], keys: list[str], expressions: dict, now: dt.datetime) -> list:
    """The days loaded with Spark reading the landing files (one Spark job for every new file of
    the range); Spark's typed events become the raw layer the usage models read on Spark."""
    typed_dir = settings.spark_dir / "landing"
    where = []
    result = load_days_with_spark(con, Path(settings.events_dir), days, keys, now, expressions=expressions,
                                  typed_dir=typed_dir, read=lambda statements: where.append(run_on_spark(dbt, settings, statements, context.log.info)))
    spark_exchange.place_typed_events(con, settings.spark_dir, typed_dir, [load.arrival_date for load in result.loads
                                                                              if not load.skipped], result.as_spark_wrote)
    context.log.info(f"landing files: {result.files_by_spark} read by {where[0] if where else 'Spark'}, "
                     f"{result.files_by_duckdb} by DuckDB's loader (Parquet, not UTF-8, or a name Spark lists otherwise)")
    return result.loads


@dg.asset(
    key=["calendar", "billing_periods"],
    group_name="calendar",
    deps=[dg.AssetKey(["catalog", "subscriptions"]), dg.AssetKey(["catalog", "customers"]), raw_events],
    owners=["team:billing-data"],
    kinds={"python", "duckdb"},
)
def billing_periods(context: dg.AssetExecutionContext, settings: MeterhouseSettings, billing_date: BillingDate) -> dg.MaterializeResult:
    """Billing periods of every subscription, in the customer's timezone, through the billing date.

    Grain: one row per subscription and period; key billing_period_id. Periods reach past the
    latest arrival date so that every event that is not in the future finds its period. When the
    subscriptions, grace days and first arrivals are those the table was derived from
    (`derivation_digest`), only the subscriptions whose next period starts by the horizon are
    derived again (`subscriptions_to_derive`; none on most days: the table is not rewritten).
    """
    with settings.connect() as con:
        ensure_raw_schema(con)
        subscription_rows = periods.subscriptions(con)
        subs = subscription_rows.to_dicts()
        first_event = periods.first_arrivals(con, undated_subscriptions(subs))
        through = settings.through_date(con, billing_date.through)
        horizon = period_horizon(periods.latest_arrival(con), through, dt.date.today())
        grace = periods.grace_days(con)
        digest, previous = derivation_digest(subscription_rows, grace, first_event), periods.derived_from(con)
        only = None  # every subscription's periods derived
        if previous is not None and previous[0] == digest and previous[1] <= horizon:
            only = subscriptions_to_derive(subs, periods.last_period_ends(con), horizon)
        rows = billing_period_rows([s for s in subs if only is None or s["subscription_id"] in only], grace, first_event, horizon)
        if only != set():
            periods.write_billing_periods(con, rows, digest, horizon, only)
    derived = len(subs) if only is None else len(only)
    return dg.MaterializeResult(metadata={"subscriptions_derived": derived, "periods_derived": len(rows), "horizon": str(horizon)})

