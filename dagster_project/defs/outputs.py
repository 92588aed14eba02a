"""Publish invoices, current usage, wallets and the run summary as files in Lago's JSON."""

from pathlib import Path

import dagster as dg

from dagster_project.defs.partitions import billing_months
from dagster_project.defs.resources import MeterhouseSettings
from dagster_project.publish.outputs import publish, publish_month
from dagster_project.publish.pdf_cache import pdf_cache_dir
from dagster_project.store import publish_reads


@dg.asset(
    group_name="outputs",
    deps=[dg.AssetKey(key) for key in publish_reads.READS],
    owners=["team:billing-data"],
    kinds={"json"},
)
def published_outputs(context: dg.AssetExecutionContext, settings: MeterhouseSettings) -> dg.MaterializeResult:
    """Invoice, current-usage and wallet files in Lago's JSON, and `run_summary.json`.

    Grain: one file per invoice (`invoices/<number>.json`), per subscription with an open period
    (`current_usage/<external_subscription_id>.json`) and per wallet (`wallets/<id>.json`); each
    finalized invoice also as a document a customer reads (`documents/<number>.html` and `.pdf`).
    Files whose inputs and code are those they were written from, and which are untouched since,
    are recognized without being built (`publish.unchanged`, `state.published_files`); a document
    (HTML and PDF) is rendered only when what it shows changed (`PdfCache`); a file already holding
    its bytes is not rewritten.
    """
    out_dir = Path(settings.out_dir)
    with settings.connect() as con:
        summary = publish(con, out_dir, pdf_cache_dir(settings.warehouse))
    context.log.info(f"published to {out_dir}: {summary}")
    context.log.info(f"document files rendered: {summary['documents_rendered']} of {summary['invoice_documents']} "
                     "(the others read back from the document cache or recognized unchanged)")
    context.log.info(
        f"built: {summary['invoices_built']} invoices, "
        f"{summary['credit_notes_built']} of {summary['credit_notes']} credit notes, "
        f"{summary['current_usage_built']} of {summary['current_usage_subscriptions']} current-usage files, "
        f"{summary['wallets_built']} of {summary['wallets']} wallets (the others recognized unchanged, not built)")
    for warning in summary["warnings"]:
        context.log.warning(warning)
    return dg.MaterializeResult(metadata={**{k: v for k, v in summary.items() if isinstance(v, int)},
                                          "out_dir": dg.MetadataValue.path(str(out_dir))})


@dg.asset(
    key=["outputs", "period_invoices"],
    group_name="outputs",
    partitions_def=billing_months,
    deps=[dg.AssetKey(key) for key in publish_reads.DOCUMENT_READS],
    owners=["team:billing-data"],
    kinds={"json", "html", "pdf"},
)
def period_invoices(context: dg.AssetExecutionContext, settings: MeterhouseSettings) -> dg.MaterializeResult:
    """The invoices of one billing month, as sent: `periods/YYYY-MM/` holds each finalized invoice
    of the periods starting that month (credit invoices: issued that month) and each credit note
    issued that month as JSON, HTML and PDF, and `manifest.json` with their numbers and totals,
    and the drafts still inside their grace period. Rerun a month from the UI after its drafts are finalized; finalized invoices never
    change, so a rerun rewrites the same bytes."""
    month = context.partition_key[:7]
    folder = Path(settings.out_dir) / "periods" / month
    with settings.connect() as con:
        manifest = publish_month(con, folder, month, pdf_cache_dir(settings.warehouse))
    finalized = manifest["invoices"]
    context.log.info(f"{month}: {len(finalized)} finalized invoices, {manifest['drafts']} drafts, in {folder}")
    return dg.MaterializeResult(metadata={
        "finalized": len(finalized), "drafts": manifest["drafts"], "folder": dg.MetadataValue.path(str(folder)),
        "total_amount_cents": sum(i["total_amount_cents"] for i in manifest["invoices"]),
    })
