"""Invoice documents (HTML and PDF) are rendered once per distinct view: a later run reads back the
same bytes and renders nothing, and any change to what the document shows renders it again."""

import copy
import datetime as dt
import json
import os

import pytest

from dagster_project.publish.files import replace_folder
from dagster_project.publish.pdf_cache import PdfCache
from dagster_project.publish import invoice_document
from dagster_project.publish.invoice_document import document_key, invoice_view, render_html, render_pdf


@pytest.fixture(scope="module")
def view():
    invoice = {"invoice_type": "subscription", "number": "MIS-002-001", "issuing_date": dt.date(2026, 11, 1),
               "period_start_date": dt.date(2026, 10, 1), "period_end_date": dt.date(2026, 11, 1), "currency": "EUR",
               "external_subscription_id": "s_de", "fees_amount_cents": 600, "taxes_amount_cents": 0,
               "prepaid_granted_credit_amount_cents": 0, "prepaid_purchased_credit_amount_cents": 0,
               "sub_total_excluding_taxes_amount_cents": 600, "sub_total_including_taxes_amount_cents": 600,
               "prepaid_credit_amount_cents": 0, "total_amount_cents": 600,
               "tax_rule": None, "payment_status": "pending"}
    fee = {"fee_type": "charge", "units": 2500000, "precise_amount": "6", "amount_cents": 600, "charge_model": "package",
           "properties_json": json.dumps({"amount": "2", "package_size": 1000000}), "charge_display_name": "AI Tokens"}
    return invoice_view(invoice, [fee], {"external_id": "de", "name": "Jonas Weber", "country": "DE", "net_payment_term_days": 0}, None, [])


def test_the_key_covers_every_field_of_the_view_and_not_the_order_of_its_keys(view):
    assert document_key(view) == document_key(dict(reversed(list(view.items()))))
    renamed = copy.deepcopy(view)
    renamed["parties"][-1]["lines"][0] = "Jonas Weber GmbH"  # a catalog edit: the document shows it, so it renders again
    repriced = copy.deepcopy(view)
    repriced["lines"][0]["detail"] = "3 packages of 1,000,000 units at 3.00 EUR"
    assert len({document_key(view), document_key(renamed), document_key(repriced)}) == 3


def test_cached_documents_have_the_bytes_the_renderers_give_and_a_second_run_renders_none(view, tmp_path, monkeypatch):
    rendered = (render_html(view).encode("utf-8"), render_pdf(view))
    cache = PdfCache(tmp_path)
    assert cache.documents([view]) == [rendered] and cache.rendered == 2  # an HTML and a PDF file
    monkeypatch.setattr(invoice_document, "render_pdf", lambda v: pytest.fail("PDF rendered again"))
    monkeypatch.setattr(invoice_document, "render_html", lambda v: pytest.fail("HTML rendered again"))
    again = PdfCache(tmp_path)
    assert again.documents([view]) == [rendered] and again.rendered == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{document_key(view)}.html", f"{document_key(view)}.pdf"]


def test_without_a_folder_every_document_is_rendered(view, monkeypatch):
    monkeypatch.setattr(invoice_document, "render_pdf", lambda v: b"%PDF-rendered")
    monkeypatch.setattr(invoice_document, "render_html", lambda v: "<html>")
    cache = PdfCache(None)
    assert cache.documents([view]) == [(b"<html>", b"%PDF-rendered")] and cache.rendered == 2


def test_prune_keeps_only_the_documents_asked_for(view, tmp_path, monkeypatch):
    monkeypatch.setattr(invoice_document, "render_pdf", lambda v: json.dumps(v).encode())
    old = {**view, "number": "MIS-002-000"}
    PdfCache(tmp_path).documents([old])
    cache = PdfCache(tmp_path)
    cache.documents([view])
    cache.prune()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{document_key(view)}.html", f"{document_key(view)}.pdf"]


def test_unchanged_files_are_not_rewritten(tmp_path):
    replace_folder(tmp_path, {"a.json": {"x": 1}, "b.pdf": b"%PDF-1"})
    before = {p.name: os.stat(p).st_ino for p in tmp_path.iterdir()}
    replace_folder(tmp_path, {"a.json": {"x": 1}, "b.pdf": b"%PDF-2"})
    after = {p.name: os.stat(p).st_ino for p in tmp_path.iterdir()}
    assert after["a.json"] == before["a.json"] and after["b.pdf"] != before["b.pdf"]
    assert (tmp_path / "a.json").read_text() == '{\n  "x": 1\n}\n' and (tmp_path / "b.pdf").read_bytes() == b"%PDF-2"


def numbered(view, count):
    return [{**view, "number": f"MIS-002-{n:03d}"} for n in range(count)]


def test_many_pdfs_render_in_worker_processes_with_the_bytes_of_one_process(view, monkeypatch):
    started = []

    class Recorded(invoice_document.ProcessPoolExecutor):
        def __init__(self, workers, **kwargs):
            started.append(workers)
            super().__init__(workers, **kwargs)

    monkeypatch.setattr(invoice_document, "ProcessPoolExecutor", Recorded)
    views = numbered(view, invoice_document.PARALLEL_FROM)
    pdfs = invoice_document.render_pdfs(views, workers=2)
    assert started == [2]
    assert pdfs == [render_pdf(v) for v in views]  # in order, byte for byte
    assert len(set(pdfs)) == len(views)


def test_a_few_pdfs_or_one_core_render_in_this_process(view, monkeypatch):
    monkeypatch.setattr(invoice_document, "ProcessPoolExecutor", lambda *a, **k: pytest.fail("pool started"))
    monkeypatch.setattr(invoice_document, "render_pdf", lambda v: v["number"].encode())
    few = numbered(view, invoice_document.PARALLEL_FROM - 1)
    assert invoice_document.render_pdfs(few, workers=2) == [v["number"].encode() for v in few]
    many = numbered(view, invoice_document.PARALLEL_FROM)
    assert invoice_document.render_pdfs(many, workers=1) == [v["number"].encode() for v in many]


def test_workers_that_cannot_start_leave_the_rendering_to_this_process(view, monkeypatch):
    class Broken:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, *args, **kwargs):
            raise invoice_document.BrokenProcessPool("no worker")

    monkeypatch.setattr(invoice_document, "ProcessPoolExecutor", Broken)
    monkeypatch.setattr(invoice_document, "render_pdf", lambda v: v["number"].encode())
    views = numbered(view, invoice_document.PARALLEL_FROM)
    assert invoice_document.render_pdfs(views, workers=2) == [v["number"].encode() for v in views]


def test_the_cache_renders_only_the_documents_it_lacks_and_answers_in_order(view, tmp_path, monkeypatch):
    views = numbered(view, 5)
    asked = []

    def render_pdfs(batch):
        asked.append([v["number"] for v in batch])
        return [v["number"].encode() for v in batch]

    monkeypatch.setattr(invoice_document, "render_pdfs", render_pdfs)
    monkeypatch.setattr(invoice_document, "render_html", lambda v: v["number"].lower())
    PdfCache(tmp_path).documents([views[1], views[3]])
    cache = PdfCache(tmp_path)
    assert cache.documents(views) == [(v["number"].lower().encode(), v["number"].encode()) for v in views]
    assert asked == [["MIS-002-001", "MIS-002-003"], ["MIS-002-000", "MIS-002-002", "MIS-002-004"]]
    assert cache.rendered == 6  # 3 documents, an HTML and a PDF each
