"""The published files: invoices, credit notes and their documents, current usage, wallets and the
run summary (`publish`), and one billing month's invoices as sent (`publish_month`)."""

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from dagster_project.billing import unpriced
from dagster_project.billing.wallets import cents_to_credits
from dagster_project.publish import invoice_document, lago_json
from dagster_project.publish.files import replace_folder, write_json_atomically
from dagster_project.publish.pdf_cache import PdfCache
from dagster_project.store import publish_reads as reads


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


def _grouped(items: list[dict], key: str) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for item in items:
        groups.setdefault(item[key], []).append(item)
    return groups


def _fees_by_invoice(con, periods: dict) -> dict[str, list[dict]]:
    """Each invoice's fee rows, with what their JSON and documents show (charge, filter, period,
    taxes)."""
    fee_taxes = _grouped(reads.fee_taxes(con), "fee_id")
    coupon_shares = reads.fee_coupon_amounts(con)
    progressive_shares = reads.progressive_fee_credits(con)
    fees_by_invoice: dict[str, list[dict]] = {}
    for fee in reads.fees(con):
        period = periods.get(fee["billing_period_id"]) or {}
        fee["charges_from_at"], fee["charges_to_at"] = period.get("charges_from_at"), period.get("charges_to_at")
        for key in ("plan_code", "plan_name", "amount_cents_plan"):
            fee[key] = period.get(key)
        fee["interval"] = period.get("plan_interval")
        fee["applied_taxes"] = fee_taxes.get(fee["fee_id"], [])
        if fee["fee_id"] in coupon_shares:  # (only the fees of invoices with coupons carry their share)
            fee["precise_coupons_amount_cents"] = coupon_shares[fee["fee_id"]]
        if fee["fee_id"] in progressive_shares:  # Lago counts the progressive credit there too
            fee["precise_coupons_amount_cents"] = fee.get("precise_coupons_amount_cents", 0) + progressive_shares[fee["fee_id"]]
        if fee.get("unpriced_label"):  # named by pricing, kept with the fee once its invoice is finalized
            fee["filter_display_name"] = fee["unpriced_label"]
        fees_by_invoice.setdefault(fee["invoice_id"], []).append(fee)
    return fees_by_invoice


def _render_invoices(con, customers: dict, sequences: dict, periods: dict, fees_by_invoice: dict[str, list[dict]],
                     pdfs: PdfCache) -> list[RenderedInvoice]:
    """Every invoice as Lago JSON, and each finalized one as HTML and PDF documents."""
    invoice_taxes = _grouped(reads.invoice_taxes(con), "invoice_id")
    entity = reads.billing_entity(con)
    credits = _grouped(reads.credits_applied(con), "invoice_id")
    coupons = _grouped(reads.coupon_credits(con), "invoice_id")
    progressive = _grouped(reads.progressive_credits(con), "invoice_id")
    thresholds = _grouped(reads.applied_usage_thresholds(con), "invoice_id")

    rendered, views = [], {}
    for inv in reads.invoices(con):
        fees = fees_by_invoice.get(inv["invoice_id"], [])
        if inv["invoice_type"] == "credit":
            fees = [lago_json.credit_fee(inv)]
        name = f"{inv['number']}.json" if inv["status"] == "finalized" else f"draft-{inv['invoice_id']}.json"
        applied_taxes = invoice_taxes.get(inv["invoice_id"], [])
        document = lago_json.invoice_object(
            inv, fees, customers[inv["customer_id"]], sequences[inv["customer_id"]],
            periods.get(inv["billing_period_id"]), applied_taxes, entity, credits.get(inv["invoice_id"], []),
            coupons.get(inv["invoice_id"], []), progressive.get(inv["invoice_id"], []),
            thresholds.get(inv["invoice_id"], []),
        )
        if inv["status"] == "finalized":
            views[len(rendered)] = invoice_document.invoice_view(
                inv, fees, customers[inv["customer_id"]], entity, applied_taxes, credits.get(inv["invoice_id"], []),
                coupons.get(inv["invoice_id"], []))
        rendered.append(RenderedInvoice(inv, name, document, {}))
    # the documents last, all together: those not rendered before are rendered (PDFs on every core)
    for i, (html, pdf) in zip(views, pdfs.documents(list(views.values())), strict=True):
        number = rendered[i].invoice["number"]
        rendered[i].files.update({f"{number}.html": html, f"{number}.pdf": pdf})
    return rendered


def _credit_note_documents(con, customers: dict, sequences: dict, fees_by_invoice: dict[str, list[dict]],
                           pdfs: PdfCache) -> tuple[dict[str, dict], dict[str, bytes]]:
    """Each credit note as `{"credit_note": ...}` (`<number>.json`), and as the document its
    customer reads (`<number>.html` and `.pdf`)."""
    fees = {fee["fee_id"]: fee for rows in fees_by_invoice.values() for fee in rows}
    invoices = {i["invoice_id"]: i for i in reads.invoices(con)}
    entity = reads.billing_entity(con)
    items: dict[str, list[dict]] = {}
    for item in reads.credit_note_items(con):
        items.setdefault(item["credit_note_id"], []).append({**fees[item["fee_id"]], "credit_amount_cents": item["amount_cents"]})
    taxes = _grouped(reads.credit_note_taxes(con), "credit_note_id")
    notes = reads.credit_notes(con)
    documents, files, views = {}, {}, []
    for note in notes:
        args = (note, items.get(note["credit_note_id"], []), taxes.get(note["credit_note_id"], []), invoices[note["invoice_id"]],
                customers[note["customer_id"]])
        documents[f"{note['number']}.json"] = lago_json.credit_note_object(*args, sequences[note["customer_id"]], entity)
        views.append(invoice_document.credit_note_view(*args, entity))
    for note, (html, pdf) in zip(notes, pdfs.documents(views), strict=True):
        files.update({f"{note['number']}.html": html, f"{note['number']}.pdf": pdf})
    return documents, files


def _documents(con, pdfs: PdfCache) -> tuple[dict, list[RenderedInvoice], tuple[dict[str, dict], dict[str, bytes]]]:
    """The billing periods by id, every invoice rendered, and the credit notes with their documents."""
    customers, sequences, periods = reads.customers(con), reads.customer_sequences(con), reads.billing_periods(con)
    fees_by_invoice = _fees_by_invoice(con, periods)
    rendered = _render_invoices(con, customers, sequences, periods, fees_by_invoice, pdfs)
    return periods, rendered, _credit_note_documents(con, customers, sequences, fees_by_invoice, pdfs)


def publish(con, out_dir: Path, pdf_cache: Path | None = None) -> dict:
    """Write every output file into `out_dir`; `pdf_cache`: the folder of a `PdfCache`, left
    holding the documents of this run only. Returns the run summary, and how many documents this
    run rendered (`documents_rendered`: the others were read back from the cache; not in the file,
    which depends on the data alone)."""
    invoices, documents = {}, {}
    pdfs = PdfCache(pdf_cache)
    periods, rendered_invoices, (credit_notes, note_documents) = _documents(con, pdfs)
    for rendered in rendered_invoices:
        invoices[rendered.json_name] = rendered.document
        documents.update(rendered.files)
    documents.update(note_documents)
    pdfs.prune()
    replace_folder(out_dir / "invoices", invoices)
    replace_folder(out_dir / "documents", documents)
    replace_folder(out_dir / "credit_notes", credit_notes)

    usage_docs = {}
    buckets = _grouped(reads.current_usage(con), "billing_period_id")
    through = reads.billed_through(con)
    for period in sorted(periods.values(), key=lambda p: (p["external_subscription_id"], p["period_start_date"])):
        if period["period_start_date"] <= through < period["billing_day"]:
            usage_docs[f"{period['external_subscription_id']}.json"] = lago_json.customer_usage_object(
                period, buckets.get(period["billing_period_id"], [])
            )
    replace_folder(out_dir / "current_usage", usage_docs)

    wallet_docs, ledger_docs = {}, {}
    balances, rules, ledgers = reads.wallet_balances(con), reads.wallet_rules(con), reads.wallet_transactions(con)
    for wallet in reads.wallets(con):
        balance = balances[wallet["wallet_id"]]
        rate, currency = Decimal(wallet["rate_amount"]), wallet["currency"]
        wallet_docs[f"{wallet['wallet_id']}.json"] = lago_json.wallet_object(
            wallet, rules.get(wallet["wallet_id"], []), balance, cents_to_credits(balance["consumed_cents"], rate, currency),
            lambda cents, rate=rate, currency=currency: cents_to_credits(cents, rate, currency),
        )
        ledger_docs[f"{wallet['wallet_id']}.json"] = {"wallet_transactions": [
            lago_json.wallet_transaction_object(t, wallet) for t in ledgers.get(wallet["wallet_id"], [])]}
    replace_folder(out_dir / "wallets", wallet_docs)
    replace_folder(out_dir / "wallet_transactions", ledger_docs)

    unpriced_usage = unpriced.summary_entries(reads.unpriced_usage(con, through))
    summary = {
        "through": through.isoformat(),
        **reads.event_totals(con, through),
        "rejected_by_reason": reads.rejected_by_reason(con),
        "files_loaded": reads.landing_files(con, "loaded", through),
        "files_duplicate": reads.landing_files(con, "duplicate_file", through),
        "files_unrecognized": reads.landing_files(con, "unrecognized", through),
        "late_amount_cents": reads.late_amount_cents(con),
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
    return {**summary, "documents_rendered": pdfs.rendered}


def publish_month(con, folder: Path, month: str, pdf_cache: Path | None = None) -> dict:
    """Write one billing month's invoices as sent into `folder`: each finalized invoice of the
    periods starting in `month` (`YYYY-MM`; credit invoices: issued in it) and each credit note
    issued in it, as JSON, HTML and PDF, and `manifest.json` with their numbers and totals and the
    number of drafts. Returns the manifest."""
    pdfs = PdfCache(pdf_cache)
    _, rendered, (notes, note_files) = _documents(con, pdfs)
    rendered = [r for r in rendered if r.billing_month == month]
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
    replace_folder(folder, files)
    return manifest
