"""The payments folder as `raw.payments` (and `raw.payments_rejected`), read whole at every run."""

from pathlib import Path

import dagster as dg
import polars as pl

from dagster_project.billing.invoicing import PAYMENT_SCHEMA
from dagster_project.defs.ingest import write_table
from dagster_project.defs.resources import MeterhouseSettings
from dagster_project.ingest.payments import read_payments

REJECTED_SCHEMA = {"source_file": pl.String, "line_number": pl.Int64, "reason": pl.String, "raw_line": pl.String}


@dg.asset(
    key=["raw", "payments"],
    group_name="ingest",
    owners=["team:billing-data"],
    kinds={"python", "duckdb"},
    pool="duckdb_writer",
)
def raw_payments(context: dg.AssetExecutionContext, settings: MeterhouseSettings) -> dg.MaterializeResult:
    """Payments collected, from the CSV files of the payments folder (one row per payment; files
    are small, so the folder is read whole). Bad rows go to `raw.payments_rejected` with file, line
    and reason; a repeated (provider, provider_payment_id) is a duplicate."""
    payments, rejected = read_payments(Path(settings.payments_dir)) if settings.payments_dir else ([], [])
    with settings.connect() as con:
        con.execute("create schema if not exists raw")
        write_table(con, "raw", "payments", pl.DataFrame(payments, schema=PAYMENT_SCHEMA))
        write_table(con, "raw", "payments_rejected", pl.DataFrame(rejected, schema=REJECTED_SCHEMA))
    if rejected:
        context.log.warning(f"{len(rejected)} payment rows quarantined: {rejected[:3]}")
    return dg.MaterializeResult(metadata={"payments": len(payments), "rejected": len(rejected)})
