"""Meterhouse's Dagster definitions: one place that merges the `defs/` modules."""

import dagster as dg

from dagster_project.defs import dbt as dbt_defs
from dagster_project.defs.analytics import revenue_report
from dagster_project.defs.checks import CHECKS
from dagster_project.defs.jobs import (
    daily_billing_job,
    daily_billing_schedule,
    landing_folder_sensor,
    period_end_job,
    period_end_schedule,
)
from dagster_project.defs.ingest import billing_periods, catalog, raw_events
from dagster_project.defs.outputs import period_invoices, published_outputs
from dagster_project.defs.payments import raw_payments
from dagster_project.defs.pricing import priced_billing
from dagster_project.defs.resources import BillingDate, MeterhouseSettings, checked_catalog
from dagster_project.defs.webhooks import webhook_outbox_asset


def build_definitions(settings: MeterhouseSettings | None = None, parsed_catalog: object = None) -> dg.Definitions:
    """`parsed_catalog`: the catalog already parsed from `settings.catalog_dir` (by the command line's
    input check), which the catalog asset then writes without parsing the folder again."""
    return dg.Definitions(
        assets=[
            catalog,
            raw_events,
            raw_payments,
            billing_periods,
            dbt_defs.usage_models(),
            priced_billing,
            dbt_defs.billing_marts(),
            published_outputs,
            period_invoices,
            revenue_report,
            webhook_outbox_asset,
        ],
        asset_checks=CHECKS,
        jobs=[daily_billing_job, period_end_job],
        schedules=[daily_billing_schedule, period_end_schedule],
        sensors=[landing_folder_sensor],
        resources={
            "settings": settings or MeterhouseSettings.from_env(),
            "billing_date": BillingDate(),
            "checked_catalog": checked_catalog(parsed_catalog),
            "dbt": dbt_defs.dbt_resource(),
        },
        executor=dg.in_process_executor,
    )


defs = build_definitions()
