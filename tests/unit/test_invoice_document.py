"""The invoice document: amounts formatted from integer cents, unit prices in the charge model's
words, and HTML that escapes what the catalog says."""

import datetime as dt
import json
from decimal import Decimal

import pytest

from dagster_project.publish import invoice_document
from dagster_project.publish.invoice_document import invoice_view, money, render_html, render_pdf, unit_price


@pytest.mark.parametrize(
    ("cents", "currency", "text"),
    [(190400, "EUR", "1,904.00 EUR"), (5, "USD", "0.05 USD"), (518, "JPY", "518 JPY"), (1234567, "KWD", "1,234.567 KWD")],
)
def test_money_uses_the_currency_exponent(cents, currency, text):
    assert money(cents, currency) == text


def _fee(**kw):
    base = {"fee_type": "charge", "units": Decimal(2500000), "precise_amount": Decimal("6"), "amount_cents": 600,
            "charge_model": "package", "properties_json": json.dumps({"amount": "2", "package_size": 1000000})}
    return {**base, **kw}


def test_unit_prices_in_the_words_of_the_charge_model():
    assert unit_price(_fee(), "EUR") == "2 EUR per 1,000,000"
    assert unit_price(_fee(properties_json=json.dumps({"amount": "2", "package_size": 1000, "free_units": 500})), "EUR") == \
        "2 EUR per 1,000 (500 free)"
    assert unit_price(_fee(charge_model="standard", properties_json=json.dumps({"amount": "0.0002"})), "USD") == "0.0002 USD per unit"
    assert unit_price(_fee(charge_model="percentage", properties_json=json.dumps({"rate": "2.5"})), "USD") == "2.5 %"
    # Tiered models show the average: 6.00 over 2.5M units.
    assert unit_price(_fee(charge_model="graduated"), "USD") == "0.0000024 USD per unit (average)"
    assert unit_price({"fee_type": "subscription", "amount_cents_plan": 1050, "interval": "monthly"}, "EUR") == "10.50 EUR per monthly"


def _invoice(**kw):
    base = {"invoice_type": "subscription", "number": "MIS-002-001", "issuing_date": dt.date(2026, 11, 1),
            "period_start_date": dt.date(2026, 10, 1), "period_end_date": dt.date(2026, 11, 1), "currency": "EUR",
            "external_subscription_id": "s_de", "fees_amount_cents": 600, "taxes_amount_cents": 114,
            "prepaid_granted_credit_amount_cents": 100, "prepaid_purchased_credit_amount_cents": 14,
            "tax_rule": "eu_consumer", "payment_status": "pending"}
    return {**base, **kw}


def test_the_view_adds_up_the_invoice_as_stored():
    view = invoice_view(
        _invoice(), [_fee(charge_display_name="AI Tokens", filter_display_name="large • input", taxes_rate=Decimal(19))],
        {"external_id": "de", "name": "Jonas <b>Weber</b>", "country": "DE"}, None,
        [{"tax_name": "VAT DE standard", "tax_rate": Decimal(19), "fees_amount_cents": 600, "amount_cents": 114}],
    )
    assert view["period"] == "2026-10-01 to 2026-10-31"
    assert view["lines"] == [{"description": "AI Tokens — large • input", "units": "2,500,000",
                              "unit_price": "2 EUR per 1,000,000", "amount": "6.00 EUR", "tax_rate": "19 %"}]
    assert (view["subtotal"], view["total_with_taxes"], view["credits"], view["amount_due"]) == (
        "6.00 EUR", "7.14 EUR", "1.14 EUR", "6.00 EUR")
    assert view["taxes"] == [{"name": "VAT DE standard (19 %)", "base": "6.00 EUR", "amount": "1.14 EUR"}]
    html = render_html(view)
    assert "Jonas &lt;b&gt;Weber&lt;/b&gt;" in html and "<b>Weber" not in html
    assert render_pdf(view).startswith(b"%PDF-")


def test_tax_rates_are_json_numbers_with_their_exact_decimal_text():
    from dagster_project.publish.lago_json import rate_number

    assert [json.dumps(rate_number(Decimal(r))) for r in ("20", "20.000", "25.5", "7.7", "0")] == ["20", "20", "25.5", "7.7", "0"]
    assert rate_number(None) == 0


def _named(name):
    return invoice_view(
        _invoice(), [_fee(charge_display_name="AI Tokens", filter_display_name="large • input", taxes_rate=Decimal(19))],
        {"external_id": "c1", "name": name, "country": "DE"}, None,
        [{"tax_name": "VAT DE standard", "tax_rate": Decimal(19), "fees_amount_cents": 600, "amount_cents": 114}],
    )


@pytest.fixture
def cut_font(tmp_path, monkeypatch):
    """The cut font made afresh in a folder of the test's own, and the font file of each render."""
    if not invoice_document.UNICODE_FONT.exists():
        pytest.skip(f"{invoice_document.UNICODE_FONT} is not installed: documents use Helvetica")
    from fpdf import FPDF

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    invoice_document._cut_font.cache_clear()
    fonts = []
    add_font = FPDF.add_font
    monkeypatch.setattr(FPDF, "add_font", lambda self, family, style, fname, *a: fonts.append(fname) or add_font(self, family, style, fname, *a))
    yield fonts
    invoice_document._cut_font.cache_clear()


@pytest.mark.parametrize("name", ["Jonas Weber", "Łukasz Żółć", "Ελένη Παπαδοπούλου", "Дмитрий Иванов", "Zoë € ‰ ‒"])
def test_a_document_in_common_characters_is_drawn_from_the_cut_font_with_the_same_bytes(cut_font, name, monkeypatch):
    view = _named(name)
    cut = render_pdf(view)
    with monkeypatch.context() as m:  # the same document from the whole font
        m.setattr(invoice_document, "_cut_font", lambda: None)
        whole = render_pdf(view)
    assert cut_font[0].startswith(str(invoice_document._cut_font().parent)) and cut_font[1] == str(invoice_document.UNICODE_FONT)
    assert cut == whole


def test_a_character_outside_the_cut_takes_the_whole_font(cut_font):
    view = _named("Արամ Պետրոսյան")  # Armenian: in DejaVu Sans, not in the cut
    assert render_pdf(view).startswith(b"%PDF-")
    assert cut_font == [str(invoice_document.UNICODE_FONT)]


def test_the_cut_font_is_made_once_and_without_a_cache_folder_the_whole_font_is_used(cut_font, tmp_path, monkeypatch, caplog):
    first = invoice_document._cut_font()
    # (the inode, not only the time: a file made again is a new file renamed over the old one, and
    # a file system's clock may not tick between the two)
    made = first.stat().st_ino, first.stat().st_mtime_ns
    invoice_document._cut_font.cache_clear()
    assert invoice_document._cut_font() == first
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == made  # reused, not made again
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no partial file left
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    invoice_document._cut_font.cache_clear()
    assert invoice_document._cut_font() is None
    assert "documents use the whole font" in caplog.text
    render_pdf(_named("Jonas Weber"))
    assert cut_font == [str(invoice_document.UNICODE_FONT)]
