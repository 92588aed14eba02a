"""The payments folder as `raw.payments` (and `raw.payments_rejected`), read whole at every run."""

from pathlib import Path

import dagster as dg

from dagster_project.defs.resources import MeterhouseSettings
from dagster_project.ingest.payments import read_payments
from dagster_project.store.payments import write_payments


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
        write_payments(con, payments, rejected)
    if rejected:
        context.log.warning(f"{len(rejected)} payment rows quarantined: {rejected[:3]}")
    return dg.MaterializeResult(metadata={"payments": len(payments), "rejected": len(rejected)})
