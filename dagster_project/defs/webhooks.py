"""The webhook outbox: the messages a run's billing produced, kept for `meterhouse deliver-webhooks`."""

from pathlib import Path

import dagster as dg

from dagster_project.defs.outputs import published_outputs
from dagster_project.defs.resources import MeterhouseSettings
from dagster_project.publish.outbox import fill_outbox
from dagster_project.store import webhook_outbox


@dg.asset(
    key=["outputs", "webhook_outbox"],
    group_name="outputs",
    deps=[published_outputs, *(dg.AssetKey(key) for key in webhook_outbox.READS)],
    owners=["team:billing-data"],
    kinds={"duckdb"},
    pool="duckdb_writer",
)
def webhook_outbox_asset(context: dg.AssetExecutionContext, settings: MeterhouseSettings) -> dg.MaterializeResult:
    """`state.webhook_outbox`: Lago's webhook messages (`alert.triggered`, `invoice.created`,
    `credit_note.created`, `wallet_transaction.created`, `wallet.depleted_ongoing_balance`), one row
    per message and subscribed endpoint (key `webhook_id`), added once: a rerun adds nothing. The
    usage alerts are checked here (their last values in `state.alert_values`). Nothing is posted:
    `meterhouse deliver-webhooks` does that. A catalog without endpoints or alerts writes nothing."""
    with settings.connect() as con:
        found = fill_outbox(con, Path(settings.out_dir))
    context.log.info(f"webhook outbox: {found}")
    return dg.MaterializeResult(metadata=found)
