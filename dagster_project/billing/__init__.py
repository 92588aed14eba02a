"""Billing rules as pure functions: no Dagster, dbt or database in here."""
