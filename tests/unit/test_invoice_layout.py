"""The PDF invoice is laid out as a flow: no text is printed over other text, however long the
names, addresses and descriptions, and however many lines (a page break repeats the table header).

Text positions are read back from the PDF with pdfplumber: every character, word and text line of
a page is a box, and no two boxes of a page may share any area."""

import datetime as dt
import io
import json
from decimal import Decimal

import pdfplumber
import pytest

from dagster_project.publish.invoice_document import invoice_view, render_pdf

# Boxes that only touch (adjacent characters of a word, a line's edge) do not overlap.
TOUCH = 0.05  # points


def _overlaps(boxes: list[dict]) -> list[tuple[str, str]]:
    """The pairs of boxes (by their text) that share an area, with a sweep down the page."""
    found = []
    ordered = sorted(boxes, key=lambda b: b["top"])
    for i, box in enumerate(ordered):
        for other in ordered[i + 1:]:
            if other["top"] >= box["bottom"] - TOUCH:
                break
            if other["x0"] < box["x1"] - TOUCH and box["x0"] < other["x1"] - TOUCH:
                found.append((box["text"], other["text"]))
    return found


def overlapping_text(pdf: bytes) -> dict[int, list[tuple[str, str]]]:
    """Per page number, the characters, words and lines printed over one another."""
    found = {}
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        for number, page in enumerate(document.pages, start=1):
            pairs = []
            for boxes in (page.chars, page.extract_words(), page.extract_text_lines(return_chars=False)):
                pairs += _overlaps(boxes)
            if pairs:
                found[number] = pairs
    return found


def page_texts(pdf: bytes) -> list[str]:
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        return [page.extract_text() for page in document.pages]


def test_the_overlap_check_finds_text_printed_over_text():
    """The check itself: two strings drawn at the same place are found, side by side they are not."""
    from fpdf import FPDF

    def drawn(second_x):
        pdf = FPDF(format="A4")
        pdf.add_page()
        pdf.set_font("helvetica", size=10)
        pdf.text(20, 20, "Seller VAT FR123")
        pdf.text(second_x, 21, "Description")
        return bytes(pdf.output())

    assert overlapping_text(drawn(30))[1]
    assert overlapping_text(drawn(120)) == {}


LONG = "Verein zur Förderung der außerordentlich gründlichen Buchhaltung und Rechnungsprüfung"


def _long_invoice(lines: int):
    invoice = {"invoice_type": "subscription", "number": "MIS-042-017", "issuing_date": dt.date(2026, 11, 1),
               "period_start_date": dt.date(2026, 10, 1), "period_end_date": dt.date(2026, 11, 1), "currency": "EUR",
               "external_subscription_id": "subscription-with-a-rather-long-external-identifier-0001",
               "fees_amount_cents": 1200 * lines, "taxes_amount_cents": 228 * lines,
               "prepaid_granted_credit_amount_cents": 500, "prepaid_purchased_credit_amount_cents": 0,
               # as stored: (12.00 + 2.28) a line, less 5.00 of credits
               "sub_total_excluding_taxes_amount_cents": 1200 * lines, "sub_total_including_taxes_amount_cents": 1428 * lines,
               "prepaid_credit_amount_cents": 500, "total_amount_cents": 1428 * lines - 500,
               "tax_rule": "eu_consumer", "payment_status": "pending"}
    fees = [
        {"fee_type": "charge", "units": Decimal(1_500_000 + n), "events_count": 3, "precise_amount": Decimal(12),
         "amount_cents": 1200, "charge_model": "package", "taxes_rate": Decimal(19),
         "properties_json": json.dumps({"amount": "6", "package_size": 1000000, "free_units": 0}),
         "charge_display_name": "AI Tokens for the very long named model family",
         "filter_display_name": f"mistral-large-2411-instruct-long-context-edition-{n:02d} • output",
         "plan_name": "Mistral AI Pricing for Enterprise Customers", "plan_code": "enterprise"}
        for n in range(lines)
    ]
    address = {"address_line1": "Building C, 4th floor, Haus der Wirtschaftsprüfung und Steuerberatung",
               "address_line2": "Große Hamburger Straße 123-127, Hinterhaus, Aufgang B", "zipcode": "10115",
               "city": "Berlin-Mitte", "state": "Land Berlin", "country": "DE"}
    customer = {"external_id": "verein", "name": LONG, "legal_name": LONG + " e.V.", "email": "rechnungen@verein.example",
                "tax_identification_number": "DE123456789", "legal_number": "VR 12345 B", "net_payment_term_days": 30,
                **address}
    seller = {"code": "mistral", "name": "Mistral AI SAS", "legal_name": "Mistral AI Société par actions simplifiée",
              "address_line1": "15 rue des Halles, escalier B, troisième étage, porte de gauche", "zipcode": "75001",
              "city": "Paris", "country": "FR", "email": "billing-department-of-mistral@mistral.example",
              "tax_identification_number": "FR12345678901", "legal_number": "RCS Paris 952 418 325"}
    taxes = [{"tax_name": "VAT DE standard", "tax_rate": Decimal(19), "fees_amount_cents": 1200 * lines, "amount_cents": 228 * lines}]
    return invoice_view(invoice, fees, customer, seller, taxes)


@pytest.mark.parametrize("lines", [3, 45])
def test_no_text_of_a_long_invoice_is_printed_over_other_text(lines):
    pdf = render_pdf(_long_invoice(lines))
    assert overlapping_text(pdf) == {}


def test_without_dejavu_sans_the_helvetica_layout_does_not_overlap_either(monkeypatch, tmp_path):
    from dagster_project.publish import invoice_document

    monkeypatch.setattr(invoice_document, "UNICODE_FONT", tmp_path / "absent.ttf")
    pdf = render_pdf(_long_invoice(45))
    assert overlapping_text(pdf) == {}
    assert "Verein zur Förderung" in page_texts(pdf)[0]  # Latin-1 prints as is


def test_lines_past_the_page_go_on_the_next_page_under_the_table_header():
    pages = page_texts(render_pdf(_long_invoice(45)))
    assert len(pages) > 1
    for number, text in enumerate(pages, start=1):
        assert f"Invoice MIS-042-017 · page {number} of {len(pages)}" in text
        assert "Description Units Tax Amount" in text  # the header, on every page the table reaches
    flat = "".join("".join(pages).split())
    for n in range(45):  # every line, once
        assert flat.count(f"context-edition-{n:02d}•output") == 1
    assert flat.count("Amountdue") == 1


def test_the_pdf_and_the_html_show_every_text_of_the_view():
    """The two renderings stay in step: each string of the view is in both (whitespace aside, as
    the PDF wraps long text)."""
    from markupsafe import escape  # as Jinja2 escapes

    from tests.unit.test_invoice_document import CUSTOMER, SELLER, TAXES, _fee, _invoice
    from dagster_project.publish.invoice_document import render_html

    view = invoice_view(_invoice(), [_fee(), _fee(fee_type="subscription", amount_cents=1050, amount_cents_plan=1050,
                                                  interval="monthly", units=Decimal(1), taxes_rate=Decimal(19))],
                        CUSTOMER, SELLER, TAXES)
    texts = [view["title"], *(t for pair in view["meta"] for t in pair), *(p["label"] for p in view["parties"]),
             *(line for p in view["parties"] for line in p["lines"]), *(c["label"] for c in view["columns"]),
             *(cell for line in view["lines"] for cell in line["cells"]), *(line["detail"] for line in view["lines"]),
             *(t[k] for t in view["totals"] for k in ("label", "value")), *view["notes"]]
    assert "10.50 EUR per month" in texts and "Tax ID FR12345678901" in texts
    pdf = "".join("".join(page_texts(render_pdf(view))).split()).casefold()
    html = render_html(view)
    for text in texts:
        assert "".join(text.split()).casefold() in pdf, text
        assert str(escape(text)) in html, text


def _credit_note(items: int):
    """A credit note of `items` fees of the long invoice's customer: 12.00 each at 19%."""
    from dagster_project.publish.invoice_document import credit_note_view

    note = {"number": "MIS-042-017-CN001", "issuing_date": dt.date(2026, 11, 5), "currency": "EUR",
            "reason": "duplicated_charge", "description": "Output tokens counted twice by the gateway " * 3,
            "sub_total_excluding_taxes_amount_cents": 1200 * items, "total_amount_cents": 1428 * items,
            "credit_amount_cents": 1428 * items - 500, "refund_amount_cents": 500}
    invoice = {"number": "MIS-042-017", "issuing_date": dt.date(2026, 11, 1),
               "external_subscription_id": "subscription-with-a-rather-long-external-identifier-0001"}
    fees = [{"fee_type": "charge", "charge_display_name": "AI Tokens for the very long named model family",
             "filter_display_name": f"mistral-large-2411-instruct-long-context-edition-{n:02d} • output",
             "taxes_rate": Decimal(19), "amount_cents": 1200, "credit_amount_cents": 1200} for n in range(items)]
    taxes = [{"tax_name": "VAT DE standard", "tax_rate": Decimal(19), "base_amount_cents": 1200 * items, "amount_cents": 228 * items}]
    customer = {"external_id": "verein", "name": LONG, "net_payment_term_days": 30}
    return credit_note_view(note, fees, taxes, invoice, customer, {"code": "mistral", "name": "Mistral AI SAS"})


@pytest.mark.parametrize("items", [2, 45])
def test_a_credit_note_document_is_laid_out_without_overlaps(items):
    view = _credit_note(items)
    pdf = render_pdf(view)
    assert overlapping_text(pdf) == {}
    flat = "".join("".join(page_texts(pdf)).split())
    assert flat.count("invoiced") == items  # each item once
    if items == 2:  # 2 x 12.00 = 24.00 + 19% (4.56) = 28.56: 5.00 refunded, 23.56 credited to the next invoices
        for text in ("CreditnoteNumberMIS-042-017-CN001", "CorrectsinvoiceMIS-042-017of2026-11-01",
                     "VATDEstandard(19%)on24.00EUR4.56EUR", "Totalcreditedincludingtaxes28.56EUR",
                     "Creditonyournextinvoices23.56EUR", "Refunded5.00EUR", "5.00EURispaidbacktoyou."):
            assert text in flat, text


def test_an_invoice_shows_each_credit_note_it_took_before_the_prepaid_credits():
    from dagster_project.publish import invoice_document

    # 12.00 + 19% = 14.28, a credit note's 3.00 and 5.00 of granted credits
    invoice = {"invoice_type": "subscription", "number": "MIS-042-018", "issuing_date": dt.date(2026, 12, 1),
               "currency": "EUR", "fees_amount_cents": 1200, "taxes_amount_cents": 228, "credit_notes_amount_cents": 300,
               "prepaid_granted_credit_amount_cents": 500, "prepaid_purchased_credit_amount_cents": 0, "payment_status": "pending",
               "sub_total_excluding_taxes_amount_cents": 1200, "sub_total_including_taxes_amount_cents": 1428,
               "prepaid_credit_amount_cents": 500, "total_amount_cents": 628}
    view = invoice_document.invoice_view(invoice, [], {"external_id": "verein", "net_payment_term_days": 0}, None, [],
                                         [{"number": "MIS-042-017-CN001", "amount_cents": 300}])
    # 14.28 - 3.00 of the credit note - 5.00 of credits = 6.28 due
    assert [(t["label"], t["value"]) for t in view["totals"]][-4:] == [
        ("Total including taxes", "14.28 EUR"), ("Credit note MIS-042-017-CN001", "-3.00 EUR"),
        ("Prepaid credits applied", "-5.00 EUR"), ("Amount due", "6.28 EUR")]
