"""Meterhouse's Dagster definitions: one place that merges the `defs/` modules."""

import dagster as dg

from dagster_project.defs import dbt as dbt_defs
from dagster_project.defs.ingest import billing_periods, catalog, raw_events
from dagster_project.defs.outputs import published_outputs
from dagster_project.defs.pricing import priced_billing
from dagster_project.defs.resources import MeterhouseSettings


def build_definitions(settings: MeterhouseSettings | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[
            catalog,
            raw_events,
            billing_periods,
            dbt_defs.usage_models(),
            priced_billing,
            dbt_defs.billing_marts(),
            published_outputs,
        ],
        resources={"settings": settings or MeterhouseSettings.from_env(), "dbt": dbt_defs.dbt_resource()},
        executor=dg.in_process_executor,
    )


defs = build_definitions()
