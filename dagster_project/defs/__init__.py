"""Dagster definitions, one module per concern (resources, ingest, dbt, pricing, outputs)."""
