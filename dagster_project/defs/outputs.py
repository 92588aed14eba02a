"""Publish invoices, current usage, wallets and the run summary as files in Lago's JSON."""


import json
import os
import secrets
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import dagster as dg

from dagster_project.billing.wallets import cents_to_credits
from dagster_project.defs.partitions import billing_months
from dagster_project.defs.resources import MeterhouseSettings
from dagster_project.billing import unpriced
from dagster_project.publish import invoice_document, lago_json


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside the target, then rename: a killed run never leaves half a file.

    The file gets the mode a plain `open()` gives (0666 less the umask), not the 0600 of
    `tempfile`'s files: the kernel applies the umask to the mode asked for at creation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        partial = path.with_name(f"{path.name}.{secrets.token_hex(6)}.partial")
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # another writer's name: draw again
            continue
    with open(fd, "wb") as tmp:
        tmp.write(data)
    os.replace(partial, path)


def json_bytes(document: dict) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def write_json_atomically(path: Path, document: dict) -> None:
    write_atomically(path, json_bytes(document))


def _rows(con, sql: str, params=None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _replace_folder(folder: Path, documents: dict[str, dict | bytes]) -> None:
    """Write every document (JSON, or bytes as they are) whose file does not already hold exactly
    those bytes, and remove files no longer produced."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        data = document if isinstance(document, bytes) else json_bytes(document)
        if not (folder / name).exists() or (folder / name).read_bytes() != data:
            write_atomically(folder / name, data)
    for stale in folder.iterdir():
        if stale.is_file() and stale.name not in documents and not stale.name.endswith(".partial"):
            stale.unlink()


class PdfCache:
    """Invoice PDFs already rendered, kept between runs in a folder and found by `pdf_key`.

    Every run publishes every finalized invoice again, and fpdf2 parses and subsets the TTF font
    for each PDF (≈ 70 ms a document, nearly all of this step at 200 invoices). A PDF rendered
    earlier from an equal view by an equal renderer has the same bytes, so it is read back
    instead. Anything the document shows (customer, seller, catalog names) is in the view, so an
    edited catalog renders again. `None`: no folder, render every time. The folder can be
    deleted at any time."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.used: set[str] = set()

    def pdfs(self, views: list[dict]) -> list[bytes]:
        """The PDF of each view, in order: read back where rendered before; the others rendered
        together (`render_pdfs`: on every core when there are many) and kept."""
        if self.folder is None:
            return invoice_document.render_pdfs(views)
        paths = [self.folder / f"{invoice_document.pdf_key(view)}.pdf" for view in views]
        found: dict[int, bytes] = {}
        for i, path in enumerate(paths):
            self.used.add(path.name)
            try:
                found[i] = path.read_bytes()
            except FileNotFoundError:
                pass
        missing = [i for i in range(len(views)) if i not in found]
        for i, data in zip(missing, invoice_document.render_pdfs([views[i] for i in missing]), strict=True):
            write_atomically(paths[i], data)
            found[i] = data
        return [found[i] for i in range(len(views))]

    def prune(self) -> None:
        """Remove the PDFs no document asked for since the cache was opened."""
        if self.folder is not None and self.folder.is_dir():
            for path in self.folder.glob("*.pdf"):
                if path.name not in self.used:
                    path.unlink(missing_ok=True)


def pdf_cache_dir(settings: MeterhouseSettings) -> Path:
    """Beside the warehouse (`<warehouse>.pdf-cache/`, like dbt's `<warehouse>.dbt/`), not among
    the published files."""
    return settings.warehouse.parent / f"{settings.warehouse.name}.pdf-cache"


def _count_files(con, status: str, through) -> int:
    return int(con.execute(
        "select count(*) from raw.landing_files where status = ? and arrival_date <= ?", [status, through]
    ).fetchone()[0])


@dataclass
class RenderedInvoice:
    invoice: dict
    json_name: str
    document: dict
    files: dict[str, bytes]  # the HTML and PDF documents of a finalized invoice

    @property
    def billing_month(self) -> str:
        """`YYYY-MM` of the period the invoice bills (its issuing date for credit invoices)."""
        return (self.invoice["period_start_date"] or self.invoice["issuing_date"]).strftime("%Y-%m")


def _fees_by_invoice(con, periods: dict) -> dict[str, list[dict]]:
    """Each invoice's fee rows, with what their JSON and documents show (charge, filter, period,
    taxes)."""
    fee_taxes: dict[str, list[dict]] = {}
    for tax in _rows(con, "select * from billing.fee_taxes order by fee_id, tax_code"):
        fee_taxes.setdefault(tax["fee_id"], []).append(tax)
    fees_by_invoice: dict[str, list[dict]] = {}
    for fee in _rows(
        con,
        """select f.*, c.billable_metric_code, c.invoice_display_name as charge_display_name, c.charge_model,
                  cf.invoice_display_name as filter_display_name, cf.filter_values_json,
                  coalesce(cf.properties_json, c.properties_json) as properties_json
           from billing.fees f
           left join catalog.charges c using (charge_id)
           left join catalog.charge_filters cf on cf.charge_filter_id = f.charge_filter_key
           order by f.invoice_id, c.charge_index nulls first, cf.filter_index nulls last""",
    ):
        period = periods.get(fee["billing_period_id"]) or {}
        fee["charges_from_at"], fee["charges_to_at"] = period.get("charges_from_at"), period.get("charges_to_at")
        for key in ("plan_code", "plan_name", "interval", "amount_cents_plan"):
            fee[key] = period.get(key)
        fee["applied_taxes"] = fee_taxes.get(fee["fee_id"], [])
        if fee.get("unpriced_label"):  # named by pricing, kept with the fee once its invoice is finalized
            fee["filter_display_name"] = fee["unpriced_label"]
        fees_by_invoice.setdefault(fee["invoice_id"], []).append(fee)
    return fees_by_invoice


def _render_invoices(con, customers: dict, sequences: dict, periods: dict, fees_by_invoice: dict[str, list[dict]],
                     pdfs: PdfCache) -> list[RenderedInvoice]:
    """Every invoice as Lago JSON, and each finalized one as HTML and PDF documents."""
    invoice_taxes: dict[str, list[dict]] = {}
    for tax in _rows(con, "select * from billing.invoice_taxes order by invoice_id, tax_code"):
        invoice_taxes.setdefault(tax["invoice_id"], []).append(tax)
    entity = next(iter(_rows(con, "select * from catalog.billing_entities")), None)
    credits: dict[str, list[dict]] = {}
    # (the notes as recorded when issued: a finalized invoice keeps its credits when billed as of an earlier day)
    for credit in _rows(con, """select a.invoice_id, a.credit_note_id, a.amount_cents, n.number, i.number as invoice_number
                                from billing.credit_note_applications a
                                join billing.issued_credit_notes n using (credit_note_id)
                                join billing.finalized_invoices i on i.invoice_id = n.invoice_id
                                order by a.invoice_id, n.issuing_date, n.number"""):
        credits.setdefault(credit["invoice_id"], []).append(credit)

    rendered, views = [], {}
    for inv in _rows(con, "select * from billing.invoices order by number"):
        fees = fees_by_invoice.get(inv["invoice_id"], [])
        if inv["invoice_type"] == "credit":
            fees = [lago_json.credit_fee(inv)]
        name = f"{inv['number']}.json" if inv["status"] == "finalized" else f"draft-{inv['invoice_id']}.json"
        applied_taxes = invoice_taxes.get(inv["invoice_id"], [])
        document = lago_json.invoice_object(
            inv, fees, customers[inv["customer_id"]], sequences[inv["customer_id"]],
            periods.get(inv["billing_period_id"]), applied_taxes, entity, credits.get(inv["invoice_id"], []),
        )
        files = {}
        if inv["status"] == "finalized":
            view = invoice_document.invoice_view(inv, fees, customers[inv["customer_id"]], entity, applied_taxes,
                                                 credits.get(inv["invoice_id"], []))
            files = {f"{inv['number']}.html": invoice_document.render_html(view).encode("utf-8")}
            views[len(rendered)] = view
        rendered.append(RenderedInvoice(inv, name, document, files))
    # the PDFs last, all together: those not rendered before are rendered on every core
    for i, pdf in zip(views, pdfs.pdfs(list(views.values())), strict=True):
        rendered[i].files[f"{rendered[i].invoice['number']}.pdf"] = pdf
    return rendered


def _credit_note_documents(con, customers: dict, sequences: dict, fees_by_invoice: dict[str, list[dict]],
                           pdfs: PdfCache) -> tuple[dict[str, dict], dict[str, bytes]]:
    """Each credit note as `{"credit_note": ...}` (`<number>.json`), and as the document its
    customer reads (`<number>.html` and `.pdf`)."""
    fees = {fee["fee_id"]: fee for rows in fees_by_invoice.values() for fee in rows}
    invoices = {i["invoice_id"]: i for i in _rows(con, "select * from billing.invoices")}
    entity = next(iter(_rows(con, "select * from catalog.billing_entities")), None)
    items: dict[str, list[dict]] = {}
    for item in _rows(con, "select * from billing.credit_note_items order by credit_note_id, fee_id"):
        items.setdefault(item["credit_note_id"], []).append({**fees[item["fee_id"]], "credit_amount_cents": item["amount_cents"]})
    taxes: dict[str, list[dict]] = {}
    for tax in _rows(con, "select * from billing.credit_note_taxes order by credit_note_id, tax_code"):
        taxes.setdefault(tax["credit_note_id"], []).append(tax)
    notes = _rows(con, "select * from billing.credit_notes order by number")
    documents, files, views = {}, {}, []
    for note in notes:
        args = (note, items.get(note["credit_note_id"], []), taxes.get(note["credit_note_id"], []), invoices[note["invoice_id"]],
                customers[note["customer_id"]])
        documents[f"{note['number']}.json"] = lago_json.credit_note_object(*args, sequences[note["customer_id"]], entity)
        views.append(invoice_document.credit_note_view(*args, entity))
        files[f"{note['number']}.html"] = invoice_document.render_html(views[-1]).encode("utf-8")
    for note, pdf in zip(notes, pdfs.pdfs(views), strict=True):
        files[f"{note['number']}.pdf"] = pdf
    return documents, files


def _catalog_context(con) -> tuple[dict, dict, dict]:
    customers = {c["customer_id"]: c for c in _rows(con, "select * from catalog.customers")}
    sequences = dict(con.execute("select customer_id, sequence from billing.customer_sequences").fetchall())
    periods = {
        p["billing_period_id"]: p
        for p in _rows(
            con,
            """select p.*, s.plan_id, s.plan_code, s.currency, pl.name as plan_name, pl.interval,
                      pl.amount_cents as amount_cents_plan
               from catalog.billing_periods p
               join catalog.subscriptions s using (subscription_id)
               join catalog.plans pl on pl.plan_id = s.plan_id""",
        )
    }
    return customers, sequences, periods


def publish(con, out_dir: Path, pdf_cache: Path | None = None) -> dict:
    """Write every output file into `out_dir`; `pdf_cache`: the folder of a `PdfCache`, left
    holding the PDFs of this run's documents only."""
    customers, sequences, periods = _catalog_context(con)
    invoices, documents = {}, {}
    pdfs = PdfCache(pdf_cache)
    fees_by_invoice = _fees_by_invoice(con, periods)
    for rendered in _render_invoices(con, customers, sequences, periods, fees_by_invoice, pdfs):
        invoices[rendered.json_name] = rendered.document
        documents.update(rendered.files)
    credit_notes, note_documents = _credit_note_documents(con, customers, sequences, fees_by_invoice, pdfs)
    documents.update(note_documents)
    pdfs.prune()
    _replace_folder(out_dir / "invoices", invoices)
    _replace_folder(out_dir / "documents", documents)
    _replace_folder(out_dir / "credit_notes", credit_notes)

    usage_docs = {}
    buckets: dict[str, list[dict]] = {}
    for b in _rows(
        con,
        """select u.*, m.aggregation_type, cf.filter_values_json from billing.current_usage u
           join catalog.charges c using (charge_id)
           join catalog.billable_metrics m on m.billable_metric_id = c.billable_metric_id
           left join catalog.charge_filters cf on cf.charge_filter_id = u.charge_filter_key""",
    ):
        buckets.setdefault(b["billing_period_id"], []).append(b)
    through = con.execute("select through from billing.run_state").fetchone()[0]
    for period in sorted(periods.values(), key=lambda p: (p["external_subscription_id"], p["period_start_date"])):
        if period["period_start_date"] <= through < period["billing_day"]:
            usage_docs[f"{period['external_subscription_id']}.json"] = lago_json.customer_usage_object(
                period, buckets.get(period["billing_period_id"], [])
            )
    _replace_folder(out_dir / "current_usage", usage_docs)

    wallet_docs = {}
    balances = {b["wallet_id"]: b for b in _rows(con, "select * from billing.wallet_balances")}
    for wallet in _rows(con, "select * from catalog.wallets order by creation_order"):
        balance = balances[wallet["wallet_id"]]
        rate, currency = Decimal(wallet["rate_amount"]), wallet["currency"]
        wallet_docs[f"{wallet['wallet_id']}.json"] = lago_json.wallet_object(
            wallet, balance, cents_to_credits(balance["consumed_cents"], rate, currency),
            lambda cents, rate=rate, currency=currency: cents_to_credits(cents, rate, currency),
        )
    _replace_folder(out_dir / "wallets", wallet_docs)

    loads = con.execute(
        """select coalesce(sum(events_raw), 0), coalesce(sum(events_accepted), 0), coalesce(sum(events_duplicate), 0),
                  coalesce(sum(events_rejected), 0), coalesce(sum(events_late), 0)
           from marts.fct_event_loads where arrival_date <= ?""",
        [through],
    ).fetchone()
    unpriced_usage = unpriced.summary_entries(_rows(
        con, "select * from marts.fct_unpriced_usage where arrival_date <= ? order by all", [through]))
    summary = {
        "through": through.isoformat(),
        "events_raw": int(loads[0]),
        "events_accepted": int(loads[1]),
        "events_duplicate": int(loads[2]),
        "events_rejected": int(loads[3]),
        "events_late": int(loads[4]),
        "rejected_by_reason": dict(
            con.execute(
                "select rejection_reason, count(*) from marts.fct_events_rejected group by 1 order by 1"
            ).fetchall()
        ),
        "files_loaded": _count_files(con, "loaded", through),
        "files_duplicate": _count_files(con, "duplicate_file", through),
        "files_unrecognized": _count_files(con, "unrecognized", through),
        "late_amount_cents": int(con.execute("select coalesce(sum(late_amount_cents), 0) from billing.late_usage").fetchone()[0]),
        "invoices_finalized": sum(1 for d in invoices.values() if d["invoice"]["status"] == "finalized"),
        "invoice_documents": len(documents),
        "invoices_draft": sum(1 for d in invoices.values() if d["invoice"]["status"] == "draft"),
        "invoiced_total_amount_cents": sum(
            d["invoice"]["total_amount_cents"] for d in invoices.values() if d["invoice"]["status"] == "finalized"
        ),
        "credit_notes": len(credit_notes),
        "current_usage_subscriptions": len(usage_docs),
        "wallets": len(wallet_docs),
        "unpriced_usage": unpriced_usage,
        "warnings": unpriced.warnings(unpriced_usage),
    }
    write_json_atomically(out_dir / "run_summary.json", summary)
    return summary


@dg.asset(
    group_name="outputs",
    deps=[dg.AssetKey(["billing", "invoices"]), dg.AssetKey(["billing", "fees"]), dg.AssetKey(["billing", "wallet_balances"]),
          dg.AssetKey(["billing", "fee_taxes"]), dg.AssetKey(["billing", "invoice_taxes"]),
          dg.AssetKey(["billing", "current_usage"]), dg.AssetKey(["marts", "fct_event_loads"]), dg.AssetKey(["marts", "fct_events_rejected"]),
          dg.AssetKey(["marts", "fct_unpriced_usage"]), dg.AssetKey(["billing", "credit_notes"]),
          dg.AssetKey(["billing", "credit_note_items"]), dg.AssetKey(["billing", "credit_note_taxes"]),
          dg.AssetKey(["billing", "credit_note_applications"])],
    owners=["team:billing-data"],
    kinds={"json"},
)
def published_outputs(context: dg.AssetExecutionContext, settings: MeterhouseSettings) -> dg.MaterializeResult:
    """Invoice, current-usage and wallet files in Lago's JSON, and `run_summary.json`.

    Grain: one file per invoice (`invoices/<number>.json`), per subscription with an open period
    (`current_usage/<external_subscription_id>.json`) and per wallet (`wallets/<id>.json`); each
    finalized invoice also as a document a customer reads (`documents/<number>.html` and `.pdf`).
    A PDF is rendered only when what it shows changed (`PdfCache`); a file already holding its
    bytes is not rewritten.
    """
    out_dir = Path(settings.out_dir)
    with settings.connect() as con:
        summary = publish(con, out_dir, pdf_cache_dir(settings))
    context.log.info(f"published to {out_dir}: {summary}")
    for warning in summary["warnings"]:
        context.log.warning(warning)
    return dg.MaterializeResult(metadata={**{k: v for k, v in summary.items() if isinstance(v, int)},
                                          "out_dir": dg.MetadataValue.path(str(out_dir))})


@dg.asset(
    key=["outputs", "period_invoices"],
    group_name="outputs",
    partitions_def=billing_months,
    deps=[dg.AssetKey(["billing", "invoices"]), dg.AssetKey(["billing", "fees"]),
          dg.AssetKey(["billing", "fee_taxes"]), dg.AssetKey(["billing", "invoice_taxes"]),
          dg.AssetKey(["billing", "credit_notes"]),
          dg.AssetKey(["billing", "credit_note_items"]), dg.AssetKey(["billing", "credit_note_taxes"]),
          dg.AssetKey(["billing", "credit_note_applications"])],
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
        pdfs = PdfCache(pdf_cache_dir(settings))
        customers, sequences, periods = _catalog_context(con)
        fees_by_invoice = _fees_by_invoice(con, periods)
        rendered = [r for r in _render_invoices(con, customers, sequences, periods, fees_by_invoice, pdfs)
                    if r.billing_month == month]
        notes, note_files = _credit_note_documents(con, customers, sequences, fees_by_invoice, pdfs)
    files: dict[str, dict | bytes] = {}
    finalized = [r for r in rendered if r.invoice["status"] == "finalized"]
    for r in finalized:
        files[r.json_name] = r.document
        files.update(r.files)
    # the credit notes issued that month, with their documents
    issued = {name.removesuffix(".json"): doc["credit_note"] for name, doc in notes.items()
              if doc["credit_note"]["issuing_date"][:7] == month}
    files.update({name: doc for name, doc in notes.items() if name.removesuffix(".json") in issued})
    files.update({name: data for name, data in note_files.items() if Path(name).stem in issued})
    manifest = {
        "billing_month": month,
        "invoices": [{"number": r.invoice["number"], "external_customer_id": r.invoice["external_customer_id"],
                      "invoice_type": r.invoice["invoice_type"], "currency": r.invoice["currency"],
                      "total_amount_cents": r.document["invoice"]["total_amount_cents"]} for r in finalized],
        "drafts": sum(1 for r in rendered if r.invoice["status"] == "draft"),
        "credit_notes": [{"number": n["number"], "invoice_number": n["invoice_number"],
                          "external_customer_id": n["customer"]["external_id"], "currency": n["currency"],
                          "total_amount_cents": n["total_amount_cents"], "credit_amount_cents": n["credit_amount_cents"],
                          "refund_amount_cents": n["refund_amount_cents"]} for n in issued.values()],
    }
    files["manifest.json"] = manifest
    _replace_folder(folder, files)
    context.log.info(f"{month}: {len(finalized)} finalized invoices, {manifest['drafts']} drafts, in {folder}")
    return dg.MaterializeResult(metadata={
        "finalized": len(finalized), "drafts": manifest["drafts"], "folder": dg.MetadataValue.path(str(folder)),
        "total_amount_cents": sum(i["total_amount_cents"] for i in manifest["invoices"]),
    })
