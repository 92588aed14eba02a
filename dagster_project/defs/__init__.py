"""Dagster definitions, one module per concern (resources, ingest, dbt, pricing, outputs).

dagster-dbt is imported first, as where dbt-core is absent: dbt runs in its own processes, and the
Dagster process does not import it (`dagster_project/dbt_selection.py`)."""

from dagster_project.dbt_selection import import_dagster_dbt

import_dagster_dbt()
