"""The invoice document: amounts formatted from integer cents, unit prices in the charge model's
words, and HTML that escapes what the catalog says."""

import datetime as dt
import json
from decimal import Decimal

import pytest

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
