"""The published files: invoices, credit notes and their documents, current usage, wallets and the
run summary (`publish`), and one billing month's invoices as sent (`publish_month`)."""

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl

from dagster_project.billing import unpriced
from dagster_project.billing.wallets import cents_to_credits
from dagster_project.publish import invoice_document, lago_json
from dagster_project.publish.files import replace_folder, write_json_atomically
from dagster_project.publish.pdf_cache import PdfCache
from dagster_project.publish.unchanged import GROUP_FILES_SCHEMA, Publication, group_digest
from dagster_project.store import publish_reads as reads
from dagster_project.store import publish_state


def invoice_files(invoice: dict) -> dict[str, list[str]]:
    """An invoice's files by folder (from its `number`, `status` and `invoice_id`): the JSON, and
    the HTML and PDF documents of a finalized invoice."""
    number = invoice["number"]
    if invoice["status"] != "finalized":
        return {"invoices": [f"draft-{invoice['invoice_id']}.json"]}
    return {"invoices": [f"{number}.json"], "documents": [f"{number}.html", f"{number}.pdf"]}


def credit_note_files(note: dict) -> dict[str, list[str]]:
    number = note["number"]
    return {"credit_notes": [f"{number}.json"], "documents": [f"{number}.html", f"{number}.pdf"]}


@dataclass
class InvoiceInputs:
    """What one invoice's files are made from: `lago_json.invoice_object`'s arguments (`json_args`)
    and, for a finalized invoice, `invoice_document.invoice_view`'s (`view_args`, each of them one
    of `json_args` too: the digest covers `json_args` and whether there are documents)."""
    invoice: dict
    json_args: tuple
    view_args: tuple | None

    @property
    def json_name(self) -> str:
        return invoice_files(self.invoice)["invoices"][0]

    @property
    def billing_month(self) -> str:
        """`YYYY-MM` of the period the invoice bills (its issuing date for credit invoices)."""
        return (self.invoice["period_start_date"] or self.invoice["issuing_date"]).strftime("%Y-%m")


@dataclass
class CreditNoteInputs:
    """What one credit note's files are made from: `credit_note_object`'s arguments and
    `credit_note_view`'s (each of them one of `json_args` too)."""
    note: dict
    json_args: tuple
    view_args: tuple


@dataclass
class RenderedInvoice:
    inputs: InvoiceInputs
    document: dict
    files: dict[str, bytes]  # the HTML and PDF documents of a finalized invoice
    document_key: str | None = None  # their key in the document cache

    @property
    def invoice(self) -> dict:
        return self.inputs.invoice


def _grouped(items: list[dict], key: str) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for item in items:
        groups.setdefault(item[key], []).append(item)
    return groups


def _fees_by_invoice(con, periods: dict, only: str | None) -> dict[str, list[dict]]:
    """Each invoice's fee rows (`only`: of those invoices, `reads.only`), with what their JSON and
    documents show (charge, filter, period, taxes)."""
    fee_taxes = _grouped(reads.fee_taxes(con, only), "fee_id")
    coupon_shares = reads.fee_coupon_amounts(con, only)
    progressive_shares = reads.progressive_fee_credits(con, only)
    fees_by_invoice: dict[str, list[dict]] = {}
    for fee in reads.fees(con, only):
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


def _invoice_inputs(con, customers: dict, sequences: dict, periods: dict,
                    fees_by_invoice: dict[str, list[dict]], only: str | None) -> list[InvoiceInputs]:
    """What every invoice's JSON (`only`: of those invoices), and each finalized one's documents,
    are made from."""
    invoice_taxes = _grouped(reads.invoice_taxes(con, only), "invoice_id")
    entity = reads.billing_entity(con)
    credits = _grouped(reads.credits_applied(con, only), "invoice_id")
    coupons = _grouped(reads.coupon_credits(con, only), "invoice_id")
    progressive = _grouped(reads.progressive_credits(con, only), "invoice_id")
    thresholds = _grouped(reads.applied_usage_thresholds(con, only), "invoice_id")

    found = []
    for inv in reads.invoices(con, only):
        fees = fees_by_invoice.get(inv["invoice_id"], [])
        if inv["invoice_type"] == "credit":
            fees = [lago_json.credit_fee(inv)]
        applied_taxes = invoice_taxes.get(inv["invoice_id"], [])
        json_args = (inv, fees, customers[inv["customer_id"]], sequences[inv["customer_id"]],
                     periods.get(inv["billing_period_id"]), applied_taxes, entity, credits.get(inv["invoice_id"], []),
                     coupons.get(inv["invoice_id"], []), progressive.get(inv["invoice_id"], []),
                     thresholds.get(inv["invoice_id"], []))
        view_args = None
        if inv["status"] == "finalized":
            view_args = (inv, fees, customers[inv["customer_id"]], entity, applied_taxes,
                         credits.get(inv["invoice_id"], []), coupons.get(inv["invoice_id"], []))
        found.append(InvoiceInputs(inv, json_args, view_args))
    return found


def _render_invoices(inputs: list[InvoiceInputs], pdfs: PdfCache) -> list[RenderedInvoice]:
    """Each invoice as Lago JSON, and each finalized one as HTML and PDF documents."""
    rendered = [RenderedInvoice(i, lago_json.invoice_object(*i.json_args), {}) for i in inputs]
    # the documents last, all together: those not rendered before are rendered (PDFs on every core)
    finalized = [r for r in rendered if r.inputs.view_args]
    views = [invoice_document.invoice_view(*r.inputs.view_args) for r in finalized]
    keys = [invoice_document.document_key(view) for view in views]
    for r, key, (html, pdf) in zip(finalized, keys, pdfs.documents(views, keys), strict=True):
        number = r.invoice["number"]
        r.files.update({f"{number}.html": html, f"{number}.pdf": pdf})
        r.document_key = key
    return rendered


def _credit_note_inputs(con, customers: dict, sequences: dict, fees_by_invoice: dict[str, list[dict]],
                        invoices_read: str | None, only: str | None) -> list[CreditNoteInputs]:
    """What each credit note's JSON (`{"credit_note": ...}`, `<number>.json`) and the document its
    customer reads (`<number>.html` and `.pdf`) are made from (`only`: of those notes; `invoices_read`
    and `fees_by_invoice` hold their invoices and fees)."""
    fees = {fee["fee_id"]: fee for rows in fees_by_invoice.values() for fee in rows}
    invoices = {i["invoice_id"]: i for i in reads.invoices(con, invoices_read)}
    entity = reads.billing_entity(con)
    items: dict[str, list[dict]] = {}
    for item in reads.credit_note_items(con, only):
        items.setdefault(item["credit_note_id"], []).append({**fees[item["fee_id"]], "credit_amount_cents": item["amount_cents"]})
    taxes = _grouped(reads.credit_note_taxes(con, only), "credit_note_id")
    found = []
    for note in reads.credit_notes(con, only):
        args = (note, items.get(note["credit_note_id"], []), taxes.get(note["credit_note_id"], []), invoices[note["invoice_id"]],
                customers[note["customer_id"]])
        found.append(CreditNoteInputs(note, (*args, sequences[note["customer_id"]], entity), (*args, entity)))
    return found


def _credit_note_documents(inputs: list[CreditNoteInputs], pdfs: PdfCache) -> tuple[dict[str, dict], dict[str, bytes], list[str]]:
    """Each credit note's JSON by file name, its HTML and PDF documents by file name, and each
    note's document key (in order)."""
    documents = {f"{n.note['number']}.json": lago_json.credit_note_object(*n.json_args) for n in inputs}
    views = [invoice_document.credit_note_view(*n.view_args) for n in inputs]
    keys = [invoice_document.document_key(view) for view in views]
    files = {}
    for n, (html, pdf) in zip(inputs, pdfs.documents(views, keys), strict=True):
        files.update({f"{n.note['number']}.html": html, f"{n.note['number']}.pdf": pdf})
    return documents, files, keys


def _inputs(con, invoices: str | None = None, notes: str | None = None,
            periods: str | None = None) -> tuple[dict, list[InvoiceInputs], list[CreditNoteInputs]]:
    """The billing periods by id, and what every invoice and credit note is made from; or, given
    tables of keys (`reads.only`), those of these invoices, credit notes (whose invoices are among
    `invoices`) and periods alone."""
    customers, sequences = reads.customers(con, invoices, notes), reads.customer_sequences(con)
    by_id = reads.billing_periods(con, invoices, periods)
    fees_by_invoice = _fees_by_invoice(con, by_id, invoices)
    return (by_id, _invoice_inputs(con, customers, sequences, by_id, fees_by_invoice, invoices),
            _credit_note_inputs(con, customers, sequences, fees_by_invoice, invoices, notes))


# The folders `publish` writes whole: any other file in them is removed.
FOLDERS = ["invoices", "documents", "credit_notes", "current_usage", "wallets", "wallet_transactions"]
# Invoices built, rendered and written at a time. At 100,000 invoices, holding every invoice's JSON,
# view, HTML and PDF until the end took the run to 4.5 GiB; a part is written (`Publication.flush`)
# and let go before the next is built. Each part starts its own PDF workers (about 0.6 s each), so
# a part is large: a run of 20,000 invoices is still one part.
INVOICES_AT_ONCE = 20_000


def _changed(out: Publication, kind: str, groups: list[dict], files) -> dict[str, str]:
    """Of `groups` (`reads.*_digests`: key `k` and `inputs`), those whose `files(group)` are not
    recognized unchanged (`Publication.recognize`): their digests by key."""
    digests = {g["k"]: group_digest(kind, g["inputs"]) for g in groups}
    every_file = pl.DataFrame([(g["k"], folder, name, digests[g["k"]]) for g in groups for folder, names in files(g).items()
                               for name in names], schema=GROUP_FILES_SCHEMA, orient="row")
    unchanged = out.recognize(every_file)
    return {k: digest for k, digest in digests.items() if k not in unchanged}


def _publish_documents(out: Publication, invoices: list[InvoiceInputs], notes: list[CreditNoteInputs],
                       pdfs: PdfCache, digests: dict[str, str], at_once: int) -> dict[str, int]:
    """Add to `out` the invoices and credit notes of `digests` (their ids: the digests of those not
    recognized unchanged), with their documents (rendered only when the document cache lacks them),
    `at_once` invoices at a time: each part is written (`Publication.flush`) and its rendered
    documents let go of (`PdfCache.save`) before the next is built. How many of each were built."""
    changed_invoices = [(i, digests[i.invoice["invoice_id"]]) for i in invoices if i.invoice["invoice_id"] in digests]
    changed_notes = [(n, digests[n.note["credit_note_id"]]) for n in notes if n.note["credit_note_id"] in digests]
    for start in range(0, len(changed_invoices), at_once):
        part = changed_invoices[start:start + at_once]
        for r, (inputs, digest) in zip(_render_invoices([i for i, _ in part], pdfs), part, strict=True):
            out.add("invoices", inputs.json_name, r.document, digest)
            for name, data in r.files.items():
                out.add("documents", name, data, digest, r.document_key)
        out.flush(["invoices", "documents"])
        pdfs.save(_recorded_documents(out.recordable("documents")))
    note_json, note_files, note_keys = _credit_note_documents([n for n, _ in changed_notes], pdfs)
    for (inputs, digest), key in zip(changed_notes, note_keys, strict=True):
        number = inputs.note["number"]
        out.add("credit_notes", f"{number}.json", note_json[f"{number}.json"], digest)
        for name in (f"{number}.html", f"{number}.pdf"):
            out.add("documents", name, note_files[name], digest, key)
    return {"invoices_built": len(changed_invoices), "credit_notes_built": len(changed_notes)}


def _publish_current_usage(con, out: Publication, periods: dict, digests: dict[str, str], only: str) -> int:
    """Add the current usage (`<external_subscription_id>.json`) of each open period of `digests`
    (those not recognized unchanged; `only`: the same, as `reads.only`). How many were built."""
    buckets = _grouped(reads.current_usage(con, only), "billing_period_id")
    for period_id, digest in digests.items():
        period = periods[period_id]
        out.add("current_usage", f"{period['external_subscription_id']}.json",
                lago_json.customer_usage_object(period, buckets.get(period_id, [])), digest)
    return len(digests)


def _publish_wallets(con, out: Publication, digests: dict[str, str], ledger_digests: dict[str, str]) -> int:
    """Add each wallet of `digests` (`wallets/<id>.json`) and each ledger of `ledger_digests`
    (`wallet_transactions/<id>.json`): those not recognized unchanged; only their rows are read.
    How many wallet files were built."""
    only, ledger_only = reads.only(con, "wallets", digests), reads.only(con, "ledgers", ledger_digests)
    balances, rules, ledgers = reads.wallet_balances(con, only), reads.wallet_rules(con, only), reads.wallet_transactions(con, ledger_only)
    for wallet in reads.wallets(con, reads.only(con, "wallets_or_ledgers", {*digests, *ledger_digests})):
        wallet_id, name = wallet["wallet_id"], f"{wallet['wallet_id']}.json"
        if wallet_id in digests:
            balance, rate, currency = balances[wallet_id], Decimal(wallet["rate_amount"]), wallet["currency"]
            out.add("wallets", name, lago_json.wallet_object(
                wallet, rules.get(wallet_id, []), balance, cents_to_credits(balance["consumed_cents"], rate, currency),
                lambda cents, rate=rate, currency=currency: cents_to_credits(cents, rate, currency),
            ), digests[wallet_id])
        if wallet_id in ledger_digests:
            out.add("wallet_transactions", name, {"wallet_transactions": [
                lago_json.wallet_transaction_object(t, wallet) for t in ledgers.get(wallet_id, [])]}, ledger_digests[wallet_id])
    return len(digests)


def _recorded_documents(stamps: pl.DataFrame) -> set[str]:
    """The document keys whose published HTML and PDF are both recorded (`stamps`)."""
    documents = stamps.filter((pl.col("folder") == "documents") & pl.col("document_key").is_not_null())
    suffixes = documents.group_by("document_key").agg(
        html=pl.col("name").str.ends_with(".html").any(), pdf=pl.col("name").str.ends_with(".pdf").any())
    return set(suffixes.filter(pl.col("html") & pl.col("pdf"))["document_key"].to_list())


def publish(con, out_dir: Path, pdf_cache: Path | None = None, invoices_at_once: int = INVOICES_AT_ONCE) -> dict:
    """Write every output file into `out_dir`; `pdf_cache`: the folder of a `PdfCache`, left
    holding the documents published whose files could not be recorded (the others are read from
    their published files, as recorded in `state.published_files`); `invoices_at_once`: how many
    invoices are built, rendered and written at a time (the files do not depend on it). Files
    recognized unchanged (`publish.unchanged`: the same inputs and code as when they were written,
    and untouched since) are neither built nor read: a digest of each group's rows is made in the
    warehouse (`reads.*_digests`), and only the rows of the groups whose digest or files changed are
    read. Returns the run summary, and what this run built (not in the file, which depends on the
    data alone): `documents_rendered` (HTML and PDF files rendered; the other documents built were
    read back from the cache or from a recorded published copy), `invoices_built`, `credit_notes_built`, `current_usage_built`,
    `wallets_built` (the others recognized unchanged)."""
    pdfs = PdfCache(pdf_cache, lambda: publish_state.published_documents(con))
    out = Publication(out_dir, publish_state.recorded(con, out_dir))
    through = reads.billed_through(con)
    # which groups changed, from digests of their rows made in the warehouse; then the rows of those alone
    invoices = _changed(out, "invoice", reads.invoice_digests(con), invoice_files)
    notes = _changed(out, "credit note", reads.credit_note_digests(con), credit_note_files)
    usage = _changed(out, "current usage", reads.current_usage_digests(con, through),
                     lambda g: {"current_usage": [f"{g['external_subscription_id']}.json"]})
    wallets = _changed(out, "wallet", reads.wallet_digests(con), lambda g: {"wallets": [f"{g['k']}.json"]})
    ledgers = _changed(out, "wallet ledger", reads.ledger_digests(con), lambda g: {"wallet_transactions": [f"{g['k']}.json"]})
    only_notes, only_periods = reads.only(con, "credit_notes", notes), reads.only(con, "periods", usage)
    periods, invoice_inputs, note_inputs = _inputs(
        con, reads.only(con, "invoices", {*invoices, *reads.credited_invoices(con, only_notes)}), only_notes, only_periods)
    built = _publish_documents(out, invoice_inputs, note_inputs, pdfs, {**invoices, **notes}, invoices_at_once)
    built["current_usage_built"] = _publish_current_usage(con, out, periods, usage, only_periods)
    out.flush(["current_usage"])
    built["wallets_built"] = _publish_wallets(con, out, wallets, ledgers)
    stamps = out.write(FOLDERS)
    publish_state.record(con, out_dir, stamps)
    # the others kept in the document cache (nothing rendered, as on a day with no new invoice: no
    # stamp looked through)
    pdfs.save(_recorded_documents(stamps) if pdfs.pending else frozenset())
    pdfs.keep(out.kept_document_keys())
    pdfs.prune()

    unpriced_usage = unpriced.summary_entries(reads.unpriced_usage(con, through))
    summary = {
        "through": through.isoformat(),
        **reads.event_totals(con, through),
        "rejected_by_reason": reads.rejected_by_reason(con),
        "files_loaded": reads.landing_files(con, "loaded", through),
        "files_duplicate": reads.landing_files(con, "duplicate_file", through),
        "files_unrecognized": reads.landing_files(con, "unrecognized", through),
        "late_amount_cents": reads.late_amount_cents(con),
        **reads.invoice_totals(con),
        "invoice_documents": len(out.names("documents")),
        "current_usage_subscriptions": len(out.names("current_usage")),
        "wallets": len(out.names("wallets")),
        "unpriced_usage": unpriced_usage,
        "warnings": unpriced.warnings(unpriced_usage),
    }
    write_json_atomically(out_dir / "run_summary.json", summary)
    return {**summary, "documents_rendered": pdfs.rendered, **built}


def publish_month(con, folder: Path, month: str, pdf_cache: Path | None = None) -> dict:
    """Write one billing month's invoices as sent into `folder`: each finalized invoice of the
    periods starting in `month` (`YYYY-MM`; credit invoices: issued in it) and each credit note
    issued in it, as JSON, HTML and PDF, and `manifest.json` with their numbers and totals and the
    number of drafts. Returns the manifest."""
    pdfs = PdfCache(pdf_cache, lambda: publish_state.published_documents(con))
    _, invoice_inputs, note_inputs = _inputs(con)
    rendered = _render_invoices([i for i in invoice_inputs if i.billing_month == month], pdfs)
    notes, note_files, _ = _credit_note_documents(note_inputs, pdfs)
    files: dict[str, dict | bytes] = {}
    finalized = [r for r in rendered if r.invoice["status"] == "finalized"]
    for r in finalized:
        files[r.inputs.json_name] = r.document
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
    pdfs.save()  # (the month's folder is not recorded: what it rendered is kept in the document cache)
    return manifest
