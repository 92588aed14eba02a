"""The invoice document: amounts formatted from integer cents, each line's pricing in the words of its
charge model, the parties with their addresses, the due date, and HTML that escapes what the catalog
says. Rows are made by hand; every expected string is worked out in the test."""

import datetime as dt
import json
from decimal import Decimal

import pytest

from dagster_project.catalog import read_catalog, tables
from dagster_project.publish import invoice_document, pdf_fonts
from dagster_project.publish.invoice_document import (
    credit_words, invoice_view, money, price, pricing_words, render_html, render_pdf,
)
from dagster_project.publish.lago_json import credit_fee, customer_object, invoice_object
from tests.conftest import OPENAPI, assert_lago_schemas


@pytest.mark.parametrize(
    ("cents", "currency", "text"),
    [(190400, "EUR", "1,904.00 EUR"), (5, "USD", "0.05 USD"), (518, "JPY", "518 JPY"), (1234567, "KWD", "1,234.567 KWD")],
)
def test_money_uses_the_currency_exponent(cents, currency, text):
    assert money(cents, currency) == text


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [("12", "USD", "12.00 USD"), ("0.000002", "USD", "0.000002 USD"), ("2.7", "USD", "2.70 USD"),
     ("1234.5", "EUR", "1,234.50 EUR"), ("1E+1", "USD", "10.00 USD"), ("5", "JPY", "5 JPY"), ("0.5", "JPY", "0.5 JPY")],
)
def test_a_price_keeps_every_digit_and_at_least_the_currency_exponent(amount, currency, text):
    assert price(Decimal(amount), currency) == text


def _charge(model, properties, units, precise, events=0):
    return {"fee_type": "charge", "charge_model": model, "properties_json": json.dumps(properties),
            "units": Decimal(units), "events_count": events, "precise_amount": Decimal(precise),
            "amount_cents": int(Decimal(precise) * 100)}


PACKAGE = {"amount": "12", "package_size": 1000000, "free_units": 0}


@pytest.mark.parametrize(
    ("properties", "units", "precise", "words"),
    [
        # 1.5M units: 2 started packages of 1M at 12 = 24.00
        (PACKAGE, "1500000", "24", "2 packages of 1,000,000 units at 12.00 USD"),
        (PACKAGE, "1000000", "12", "1 package of 1,000,000 units at 12.00 USD"),
        # 2 units, 1 free, in packages of 1 at 12: 1 package
        ({"amount": "12", "package_size": 1, "free_units": 1}, "2", "12", "1 package of 1 unit at 12.00 USD (first unit free)"),
        # 2.5M units, the first 1M free: 1.5M paid, 2 packages = 24.00
        ({**PACKAGE, "free_units": 1000000}, "2500000", "24", "2 packages of 1,000,000 units at 12.00 USD (first 1,000,000 units free)"),
        # a day of a charge paid in advance: 0.2M units that started no new package cost 0, not 12
        (PACKAGE, "200000", "0", "12.00 USD per package of 1,000,000 units"),
    ],
)
def test_a_package_line_counts_its_packages(properties, units, precise, words):
    assert pricing_words(_charge("package", properties, units, precise), "USD") == words


def test_a_standard_line_says_units_times_price():
    # 1,234,567 units at 0.000002 = 2.469134
    assert pricing_words(_charge("standard", {"amount": "0.000002"}, "1234567", "2.469134"), "USD") == \
        "1,234,567 units at 0.000002 USD"
    assert pricing_words(_charge("standard", {"amount": "0.000002"}, "1234567", "2"), "USD") == "0.000002 USD per unit"


TIERS = [{"from_value": 0, "to_value": 1000, "per_unit_amount": "0.01", "flat_amount": "10"},
         {"from_value": 1001, "to_value": None, "per_unit_amount": "0.005", "flat_amount": "0"}]


def test_a_graduated_line_prices_the_units_of_each_tier_reached():
    # 1,500 units: 1,000 x 0.01 + 10 flat + 500 x 0.005 = 10 + 10 + 2.5 = 22.5
    fee = _charge("graduated", {"graduated_ranges": TIERS}, "1500", "22.5")
    assert pricing_words(fee, "USD") == "1,000 units at 0.01 USD + 10.00 USD flat; 500 units at 0.005 USD"
    # 800 units reach the first tier only: 8 + 10 = 18
    assert pricing_words({**fee, "units": Decimal(800), "precise_amount": Decimal(18)}, "USD") == \
        "800 units at 0.01 USD + 10.00 USD flat"
    # an amount the units do not give (priced in advance): the price list instead
    assert pricing_words({**fee, "precise_amount": Decimal(3)}, "USD") == \
        "0.01 USD per unit 0 to 1,000 + 10.00 USD flat; 0.005 USD per unit above 1,000"


def test_a_volume_line_prices_every_unit_at_its_tier():
    # 1,500 units fall in the second tier: 1,500 x 0.005 + 0 = 7.5
    fee = _charge("volume", {"volume_ranges": TIERS}, "1500", "7.5")
    assert pricing_words(fee, "USD") == "1,500 units at 0.005 USD (tier above 1,000)"
    # 1,000 units: the first tier, 1,000 x 0.01 + 10 = 20
    assert pricing_words({**fee, "units": Decimal(1000), "precise_amount": Decimal(20)}, "USD") == \
        "1,000 units at 0.01 USD + 10.00 USD flat (tier 0 to 1,000)"


def test_a_graduated_percentage_line_gives_the_rate_of_each_tier():
    ranges = [{"from_value": 0, "to_value": 1000, "rate": "2", "flat_amount": "1"},
              {"from_value": 1000, "to_value": None, "rate": "1", "flat_amount": "0"}]
    # 1,500 units: 2 % of 1,000 + 1 flat + 1 % of 500 = 20 + 1 + 5 = 26
    fee = _charge("graduated_percentage", {"graduated_percentage_ranges": ranges}, "1500", "26")
    assert pricing_words(fee, "USD") == "2 % of 1,000 units + 1.00 USD flat; 1 % of 500 units"


PERCENTAGE = {"rate": "2.5", "fixed_amount": "0.5", "free_units_per_events": 5, "free_units_per_total_aggregation": "1000"}


def test_a_percentage_line_gives_the_rate_the_fixed_fees_and_what_was_free():
    # 11,000 units and 30 transactions: 2.5 % of (11,000 - 1,000) + (30 - 5) x 0.50 = 250 + 12.5 = 262.5
    fee = _charge("percentage", PERCENTAGE, "11000", "262.5", events=30)
    assert pricing_words(fee, "USD") == \
        "2.5 % of 10,000 units + 25 transactions at 0.50 USD (first 1,000 units and first 5 transactions free)"
    # held between a minimum and a maximum per transaction, the amount is the transactions': the rule;
    # with free units, Lago's per-transaction loop frees transactions by their units alone
    bounded = {**PERCENTAGE, "per_transaction_min_amount": "0.1", "per_transaction_max_amount": "5"}
    assert pricing_words(_charge("percentage", bounded, "11000", "100", events=30), "USD") == (
        "2.5 % of each transaction + 0.50 USD per transaction, at least 0.10 USD and at most 5.00 USD per transaction"
        " (first 1,000 units free)")
    # without free units, the first transactions are free whole
    events_only = {**bounded, "free_units_per_total_aggregation": None}
    assert pricing_words(_charge("percentage", events_only, "11000", "100", events=30), "USD") == (
        "2.5 % of each transaction + 0.50 USD per transaction, at least 0.10 USD and at most 5.00 USD per transaction"
        " (first 5 transactions free)")
    # one transaction free: 11,000 units and 30 transactions, 2.5 % of 10,000 + 29 x 0.50 = 250 + 14.5
    one_free = {**PERCENTAGE, "free_units_per_events": 1}
    assert pricing_words(_charge("percentage", one_free, "11000", "264.5", events=30), "USD") == \
        "2.5 % of 10,000 units + 29 transactions at 0.50 USD (first 1,000 units and first transaction free)"


def test_subscription_and_minimum_lines_say_what_they_are():
    fee = {"fee_type": "subscription", "amount_cents": 1050, "amount_cents_plan": 1050, "interval": "monthly"}
    assert pricing_words(fee, "EUR") == "10.50 EUR per month"
    assert pricing_words({**fee, "amount_cents": 525}, "EUR") == "10.50 EUR per month, prorated"
    assert pricing_words({**fee, "interval": "semiannual"}, "EUR") == "10.50 EUR per half-year"
    assert pricing_words({"fee_type": "commitment"}, "EUR") == "the plan's minimum commitment for the period, less its fees"
    # a default bucket of a charge without properties carries units and no price
    assert pricing_words({"fee_type": "charge", "charge_model": "standard", "properties_json": None, "units": 5}, "EUR") == "no price set"


@pytest.mark.parametrize(
    ("credits", "cents", "words"),
    [("100", 10000, "100 prepaid credits at 1.00 USD"),   # 100.00 / 100 = 1
     ("2.5", 125, "2.5 prepaid credits at 0.50 USD"),     # 1.25 / 2.5 = 0.5
     ("1", 101, "1 prepaid credit at 1.01 USD"),
     ("3", 100, "3 prepaid credits for 1.00 USD")],       # 1.00 / 3 has no exact decimal
)
def test_prepaid_credits_read_as_credits_at_their_rate(credits, cents, words):
    assert credit_words(Decimal(credits), cents, "USD") == words


# --- the whole view ---------------------------------------------------------------------------------


def _invoice(**kw):
    base = {"invoice_id": "i-1", "subscription_id": "s-1", "external_customer_id": "de", "sequential_id": 1,
            "status": "finalized", "invoice_type": "subscription", "number": "MIS-002-001", "issuing_date": dt.date(2026, 11, 1),
            "period_start_date": dt.date(2026, 10, 1), "period_end_date": dt.date(2026, 11, 1), "currency": "EUR",
            "external_subscription_id": "s_de", "fees_amount_cents": 600, "taxes_amount_cents": 114,
            "prepaid_granted_credit_amount_cents": 100, "prepaid_purchased_credit_amount_cents": 14,
            "credit_notes_amount_cents": 0,
            # the totals pricing stores: 600 + 114 = 714; credits 100 + 14 = 114; 714 - 114 = 600 due
            "sub_total_excluding_taxes_amount_cents": 600, "sub_total_including_taxes_amount_cents": 714,
            "prepaid_credit_amount_cents": 114, "total_amount_cents": 600,
            "tax_rule": "eu_consumer", "payment_status": "pending", "paid_on": None}
    return {**base, **kw}


def _fee(**kw):
    base = {"fee_id": "f-1", "charge_id": "c-1", "charge_filter_key": "k", "fee_type": "charge", "units": Decimal(2500000),
            "events_count": 4, "precise_amount": Decimal("6"), "amount_cents": 600, "currency": "EUR",
            "taxes_amount_cents": 114, "total_amount_cents": 714,  # 19% of 600 = 114; 600 + 114 (as stored)
            "charge_model": "package", "properties_json": json.dumps({"amount": "2", "package_size": 1000000}),
            "charge_display_name": "AI Tokens", "filter_display_name": "large • input", "taxes_rate": Decimal(19),
            "plan_name": "EU plan", "plan_code": "eu_plan", "billable_metric_code": "tokens"}
    return {**base, **kw}


CUSTOMER = {
    "customer_id": "cu-1", "external_id": "de", "name": "Jonas <b>Weber</b>", "legal_name": None, "legal_number": None,
    "email": "jonas@weber.example", "address_line1": "Hauptstraße 5", "address_line2": "Hinterhaus", "zipcode": "10115",
    "city": "Berlin", "state": None, "country": "DE", "currency": "EUR", "timezone": "Europe/Berlin",
    "tax_identification_number": None, "net_payment_term": None, "net_payment_term_days": 30, "created_at": None,
}
SELLER = {"code": "mistral", "name": "Mistral AI", "legal_name": "Mistral AI SAS", "legal_number": "RCS Paris 123 456 789",
          "address_line1": "15 rue des Halles", "address_line2": None, "zipcode": "75001", "city": "Paris", "state": None,
          "country": "FR", "email": "billing@mistral.example", "tax_identification_number": "FR12345678901"}
TAXES = [{"tax_name": "VAT DE standard", "tax_rate": Decimal(19), "fees_amount_cents": 600, "amount_cents": 114}]


def test_the_view_shows_the_invoice_as_stored_with_its_parties_and_due_date():
    view = invoice_view(_invoice(), [_fee()], CUSTOMER, SELLER, TAXES)
    assert view["title"] == "Invoice" and view["number"] == "MIS-002-001" and view["date"] == "2026-11-01"
    assert view["meta"] == [
        ["Number", "MIS-002-001"], ["Issue date", "2026-11-01"],
        ["Due date", "2026-12-01"],  # Nov 1 + 30 days
        ["Payment status", "Awaiting payment"], ["Billing period", "2026-10-01 to 2026-10-31"],
        ["Plan", "EU plan"], ["Subscription", "s_de"],
    ]
    assert view["parties"] == [
        {"label": "From", "lines": ["Mistral AI SAS", "15 rue des Halles", "75001 Paris", "FR", "Tax ID FR12345678901",
                                    "Registration number RCS Paris 123 456 789", "billing@mistral.example"]},
        {"label": "Bill to", "lines": ["Jonas <b>Weber</b>", "Hauptstraße 5", "Hinterhaus", "10115 Berlin", "DE",
                                       "jonas@weber.example"]},
    ]
    # 2.5M units in packages of 1M at 2: 3 started packages, 6.00
    assert view["lines"] == [{"cells": ["AI Tokens — large • input", "2,500,000", "19 %", "6.00 EUR"],
                              "detail": "3 packages of 1,000,000 units at 2.00 EUR"}]
    # 6.00 + 1.14 tax = 7.14; credits 1.00 + 0.14 = 1.14; due 6.00
    assert view["totals"] == [
        {"label": "Subtotal excluding taxes", "value": "6.00 EUR"},
        {"label": "VAT DE standard (19 %) on 6.00 EUR", "value": "1.14 EUR"},
        {"label": "Total including taxes", "value": "7.14 EUR"},
        {"label": "Prepaid credits applied", "value": "-1.14 EUR"},
        {"label": "Amount due", "value": "6.00 EUR", "strong": True},
    ]
    assert view["notes"] == ["VAT at the customer's country's standard rate: consumer in the EU"]


def test_the_legal_name_comes_before_the_name_and_a_party_without_one_shows_its_id():
    customer = {**CUSTOMER, "legal_name": "Weber Consulting GmbH", "state": "Berlin", "tax_identification_number": "DE123456789",
                "legal_number": "HRB 12345", "address_line2": None, "email": None}
    view = invoice_view(_invoice(), [_fee()], customer, None, TAXES)
    assert view["parties"] == [  # no seller in the catalog: no "From"
        {"label": "Bill to", "lines": ["Weber Consulting GmbH", "Hauptstraße 5", "10115 Berlin", "Berlin", "DE",
                                       "Tax ID DE123456789", "Registration number HRB 12345"]},
    ]
    nameless = {k: None for k in CUSTOMER} | {"external_id": "cust_42", "net_payment_term_days": 0}
    assert invoice_view(_invoice(), [_fee()], nameless, None, TAXES)["parties"] == [{"label": "Bill to", "lines": ["cust_42"]}]


def test_a_paid_invoice_says_when_it_was_paid():
    view = invoice_view(_invoice(payment_status="succeeded", paid_on=dt.date(2026, 11, 3)), [_fee()], CUSTOMER, SELLER, TAXES)
    assert ["Payment status", "Paid on 2026-11-03"] in view["meta"]


def test_a_credit_invoice_reads_as_prepaid_credits_bought():
    invoice = _invoice(invoice_type="credit", number="MTH-001-001", period_start_date=None, period_end_date=None,
                       external_subscription_id=None, subscription_id=None, fees_amount_cents=10000, taxes_amount_cents=0,
                       prepaid_granted_credit_amount_cents=0, prepaid_purchased_credit_amount_cents=0, tax_rule=None,
                       paid_credits="100.00000", sub_total_excluding_taxes_amount_cents=10000,
                       sub_total_including_taxes_amount_cents=10000, prepaid_credit_amount_cents=0,
                       total_amount_cents=10000)
    view = invoice_view(invoice, [credit_fee(invoice)], CUSTOMER, SELLER, [])
    assert view["title"] == "Invoice for prepaid credits"
    assert view["meta"] == [["Number", "MTH-001-001"], ["Issue date", "2026-11-01"], ["Due date", "2026-12-01"],
                            ["Payment status", "Awaiting payment"]]
    # 100.00 USD for 100 credits: 1.00 a credit
    assert view["lines"] == [{"cells": ["Prepaid credits", "100", "0 %", "100.00 EUR"], "detail": "100 prepaid credits at 1.00 EUR"}]
    assert view["totals"][-1] == {"label": "Amount due", "value": "100.00 EUR", "strong": True}
    assert view["notes"] == []


def test_the_html_escapes_the_catalog_and_shows_what_the_view_shows():
    view = invoice_view(_invoice(), [_fee()], CUSTOMER, SELLER, TAXES)
    html = render_html(view)
    assert "Jonas &lt;b&gt;Weber&lt;/b&gt;" in html and "<b>Weber" not in html
    for text in ("<title>Invoice MIS-002-001</title>", "<dt>Due date</dt><dd>2026-12-01</dd>", "<p>10115 Berlin</p>",
                 "<td>AI Tokens — large • input<div class=\"detail\">3 packages of 1,000,000 units at 2.00 EUR</div></td>",
                 "<td class=\"right\">2,500,000</td><td class=\"right\">19 %</td><td class=\"right\">6.00 EUR</td>",
                 "<tr class=\"strong\"><td colspan=\"3\" class=\"right\">Amount due</td><td class=\"right\">6.00 EUR</td>",
                 "VAT at the customer&#39;s country&#39;s standard rate"):
        assert text in html, text
    assert render_pdf(view).startswith(b"%PDF-")


# --- the invoice JSON: due date and customer --------------------------------------------------------


def test_the_invoice_json_carries_the_net_payment_term_and_the_due_date(tmp_path):
    document = invoice_object(_invoice(), [_fee()], CUSTOMER, 2, None, [], SELLER)
    invoice = document["invoice"]
    assert (invoice["issuing_date"], invoice["net_payment_term"], invoice["payment_due_date"]) == ("2026-11-01", 30, "2026-12-01")
    customer = invoice["customer"]
    assert {k: customer[k] for k in ("address_line1", "address_line2", "zipcode", "city", "state", "legal_name",
                                     "net_payment_term")} == {
        "address_line1": "Hauptstraße 5", "address_line2": "Hinterhaus", "zipcode": "10115", "city": "Berlin",
        "state": None, "legal_name": None, "net_payment_term": None}
    if OPENAPI.exists():
        (tmp_path / "invoices").mkdir()
        (tmp_path / "invoices" / "MIS-002-001.json").write_text(json.dumps(document, default=str))
        assert_lago_schemas(tmp_path, folders=(("invoices", "Invoice"),))


def test_a_customer_object_shows_its_own_term_and_legal_details():
    customer = {**CUSTOMER, "legal_name": "Weber GmbH", "legal_number": "HRB 1", "tax_identification_number": "DE1",
                "net_payment_term": 14, "net_payment_term_days": 14}
    got = customer_object(customer, 7)
    assert (got["slug"], got["legal_name"], got["legal_number"], got["tax_identification_number"], got["net_payment_term"]) == (
        "007", "Weber GmbH", "HRB 1", "DE1", 14)


def _catalog(tmp_path, *bodies):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "catalog.json").write_text(json.dumps(list(bodies)))
    return read_catalog(tmp_path)


def test_the_net_payment_term_is_the_customers_else_the_billing_entitys_else_zero(tmp_path):
    own = {"customer": {"external_id": "own", "net_payment_term": 14, "address_line1": "1 Main St", "state": "CA",
                        "legal_name": "Own Inc", "legal_number": "C123"}}
    inherits = {"customer": {"external_id": "inherits"}}
    entity = {"billing_entity": {"code": "seller", "name": "Seller", "net_payment_term": 30, "state": "Île-de-France",
                                 "legal_name": "Seller SAS", "legal_number": "RCS 1"}}
    rows = {r["external_id"]: r for r in tables.customers(_catalog(tmp_path / "a", own, inherits, entity))}
    assert {k: (r["net_payment_term"], r["net_payment_term_days"]) for k, r in rows.items()} == {
        "own": (14, 14), "inherits": (None, 30)}
    assert (rows["own"]["address_line1"], rows["own"]["state"], rows["own"]["legal_name"], rows["own"]["legal_number"]) == (
        "1 Main St", "CA", "Own Inc", "C123")
    (seller,) = tables.billing_entities(_catalog(tmp_path / "b", own, entity))
    assert (seller["net_payment_term"], seller["state"], seller["legal_name"], seller["legal_number"]) == (
        30, "Île-de-France", "Seller SAS", "RCS 1")
    rows = tables.customers(_catalog(tmp_path / "c", inherits))
    assert rows[0]["net_payment_term_days"] == 0


@pytest.mark.parametrize("body", [{"customer": {"external_id": "c", "net_payment_term": -1}},
                                  {"billing_entity": {"code": "s", "net_payment_term": -1}}])
def test_a_negative_net_payment_term_is_refused(tmp_path, body):
    from dagster_project.catalog import CatalogError

    with pytest.raises(CatalogError, match="net_payment_term"):
        _catalog(tmp_path, body)


def test_tax_rates_are_json_numbers_with_their_exact_decimal_text():
    from dagster_project.publish.lago_json import rate_number

    assert [json.dumps(rate_number(Decimal(r))) for r in ("20", "20.000", "25.5", "7.7", "0")] == ["20", "20", "25.5", "7.7", "0"]
    assert rate_number(None) == 0


# --- fonts --------------------------------------------------------------------------------------------


def _named(name):
    return invoice_view(_invoice(), [_fee()], {**CUSTOMER, "name": name}, SELLER, TAXES)


@pytest.fixture
def cut_font(tmp_path, monkeypatch):
    """The cut font made afresh in a folder of the test's own, and the font file of each render."""
    if not invoice_document.UNICODE_FONT.exists():
        pytest.skip(f"{invoice_document.UNICODE_FONT} is not installed: documents use Helvetica")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    invoice_document._cut_font.cache_clear()
    fonts = []
    add_font = pdf_fonts.add_font
    monkeypatch.setattr(pdf_fonts, "add_font", lambda pdf, family, path: fonts.append(str(path)) or add_font(pdf, family, path))
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


def test_a_pdf_is_the_same_bytes_when_rendered_again():
    view = _named("Jonas Weber")
    assert render_pdf(view) == render_pdf(json.loads(json.dumps(view)))


def test_a_period_end_invoice_shows_the_usage_a_progressive_invoice_already_billed():
    """70.00 of fees, 55.00 of them billed on the period's progressive invoice: 15.00 left, 19 %
    VAT 2.85, 17.85 due (the totals as pricing stores them)."""
    invoice = _invoice(fees_amount_cents=7000, progressive_billing_credit_amount_cents=5500,
                       sub_total_excluding_taxes_amount_cents=1500, taxes_amount_cents=285,
                       sub_total_including_taxes_amount_cents=1785, prepaid_credit_amount_cents=0,
                       prepaid_granted_credit_amount_cents=0, prepaid_purchased_credit_amount_cents=0,
                       total_amount_cents=1785)
    taxes = [{"tax_name": "VAT DE standard", "tax_rate": Decimal(19), "fees_amount_cents": 1500, "amount_cents": 285}]
    view = invoice_view(invoice, [_fee(amount_cents=7000)], CUSTOMER, SELLER, taxes)
    assert view["totals"] == [
        {"label": "Fees", "value": "70.00 EUR"},
        {"label": "Usage billed on an earlier progressive billing invoice", "value": "-55.00 EUR"},
        {"label": "Subtotal excluding taxes", "value": "15.00 EUR"},
        {"label": "VAT DE standard (19 %) on 15.00 EUR", "value": "2.85 EUR"},
        {"label": "Total including taxes", "value": "17.85 EUR"},
        {"label": "Amount due", "value": "17.85 EUR", "strong": True},
    ]
