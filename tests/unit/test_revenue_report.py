"""The revenue report renders hand-made mart rows: figures formatted exactly, charts inline SVG, no
script and no external resource; the month still open marked incomplete and left out of growth; an
empty section says why it is empty."""

import re
from decimal import Decimal

import pytest

from dagster_project.analytics.report import ReportData, growth_text, is_month_complete, model_and_type, money, month_label, render


def _growth(month, units, previous, rate):
    return {"month": month, "model": "large", "token_type": "input", "units": Decimal(units),
            "previous_month_units": None if previous is None else Decimal(previous),
            "growth_rate": None if rate is None else Decimal(rate)}


# Billed through 2026-12-02: October and November are complete, December is open.
DATA = ReportData(
    through="2026-12-02",
    revenue_by_model=[
        {"month": "2026-11-01", "currency": "USD", "model": "large", "token_type": "input", "amount_cents": 1600},
        {"month": "2026-11-01", "currency": "USD", "model": "small", "token_type": "output", "amount_cents": 300},
        {"month": "2026-12-01", "currency": "USD", "model": "large", "token_type": "input", "amount_cents": 1200},
    ],
    gross_revenue=[{"month": "2026-11-01", "currency": "USD", "amount_cents": 533_000, "invoices_count": 2}],
    invoiced_usage=[{"month": "2026-11-01", "currency": "USD", "code": "tokens", "amount_cents": 3300}],
    mrr=[{"month": "2026-11-01", "currency": "USD", "amount_cents": 2200, "amount_excluding_taxes_cents": 2000}],
    top_customers=[
        {"currency": "USD", "external_customer_id": "beta", "revenue_cents": 8000, "usage_revenue_cents": 6000, "gross_revenue_cents": 8800},
        {"currency": "USD", "external_customer_id": "<alpha & co>", "revenue_cents": 4500, "usage_revenue_cents": 2500,
         "gross_revenue_cents": 4450},
    ],
    credits=[{"month": "2026-10-01", "currency": "EUR", "sold_cents": 500, "paid_consumed_cents": 0, "granted_cents": 2500,
              "granted_consumed_cents": 0, "voided_or_expired_cents": 0, "paid_outstanding_cents": 500,
              "granted_outstanding_cents": 2500}],
    # Nov against Oct: (3M - 4M) / 4M = -25%. December is open: the -66.7% a mart might hold for it
    # ((1M - 3M) / 3M) must not be shown.
    usage_growth=[_growth("2026-10-01", 4_000_000, None, None), _growth("2026-11-01", 3_000_000, 4_000_000, "-0.25"),
                  _growth("2026-12-01", 1_000_000, 3_000_000, "-0.666667")],
)


def _cells(page: str, first_cell: str) -> list[list[str]]:
    """The rows of the page's tables whose first cell is `first_cell`, as lists of cell texts."""
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    cells = [re.findall(r"<td>(.*?)</td>", r) for r in rows]
    return [c for c in cells if c and c[0] == first_cell]


def test_money_is_exact_minor_units():
    assert money(533_000, "USD") == "5,330.00 USD"
    assert money(1, "EUR") == "0.01 EUR"
    assert money(1500, "JPY") == "1,500 JPY"


@pytest.mark.parametrize(("month", "through", "complete"), [
    ("2026-11-01", "2026-11-29", False),  # the day before the last day: still open
    ("2026-11-01", "2026-11-30", True),  # billed through the last day
    ("2026-11-01", "2026-12-01", True),  # the first day of the next month
    ("2026-12-01", "2026-12-01", False),  # ...which opens December
    ("2026-12-15", "2026-12-31", True),  # any day names its month; the year's last day
    ("2028-02-01", "2028-02-28", False),  # a leap year's February ends on the 29th
    ("2028-02-01", "2028-02-29", True),
    ("2026-10-01", None, False),  # nothing billed: no month is complete
])
def test_a_month_is_complete_once_billed_through_its_last_day(month, through, complete):
    assert is_month_complete(month, through) is complete


def test_an_open_month_is_labelled_incomplete_with_the_billing_date():
    assert month_label("2026-11-01", "2026-11-14") == "2026-11 (incomplete, through 2026-11-14)"
    assert month_label("2026-10-01", "2026-11-14") == "2026-10"
    assert month_label("2026-11-01", None) == "2026-11 (incomplete, nothing billed yet)"


def test_a_month_still_open_is_left_out_of_growth():
    through = "2026-11-14"
    assert growth_text(_growth("2026-10-01", 4_000_000, 2_000_000, "1"), through) == "+100.0%"
    # November is open: the mart's -25% is not shown, and no figure is computed for it
    assert growth_text(_growth("2026-11-01", 3_000_000, 4_000_000, "-0.25"), through) == "not computed: month incomplete"
    assert growth_text(_growth("2026-10-01", 4_000_000, None, None), through) == "first month"
    assert growth_text(_growth("2026-10-01", 4_000_000, 0, None), through) == "none the month before"
    # 0.25% is halfway between 0.2% and 0.3%: half-up, away from zero
    assert growth_text(_growth("2026-10-01", 4_010_000, 4_000_000, "0.0025"), through) == "+0.3%"
    assert growth_text(_growth("2026-10-01", 3_990_000, 4_000_000, "-0.0025"), through) == "-0.3%"


def test_the_report_holds_the_figures_and_charts():
    page = render(DATA)
    for text in ("5,330.00 USD", "33.00 USD", "22.00 USD", "20.00 USD", "80.00 USD", "44.50 USD", "5.00 EUR", "25.00 EUR",
                 "3,000,000", "2026-12-02", "large input", "small output"):
        assert text in page, text
    # Nov bar: 16.00 + 3.00 stacked, labelled with its total
    assert "19.00 USD" in page
    assert page.count("<svg") == 3  # revenue by model and top customers (USD), credits outstanding (EUR)
    assert "<script" not in page and "<link" not in page
    assert "&lt;alpha &amp; co&gt;" in page and "<alpha & co>" not in page


def test_the_open_month_is_marked_in_tables_and_charts_and_has_no_growth():
    page = render(DATA)
    assert ("<p>2026-12 is still open (billed through 2026-12-02): it is marked incomplete wherever it appears "
            "and has no month-over-month growth.</p>") in page
    assert _cells(page, "2026-12 (incomplete, through 2026-12-02)") == [
        ["2026-12 (incomplete, through 2026-12-02)", "large input", "12.00 USD"],
        ["2026-12 (incomplete, through 2026-12-02)", "large input", "1,000,000", "3,000,000", "not computed: month incomplete"]]
    assert _cells(page, "2026-11") == [
        ["2026-11", "large input", "16.00 USD"], ["2026-11", "small output", "3.00 USD"], ["2026-11", "5,330.00 USD", "2"],
        ["2026-11", "tokens", "33.00 USD"], ["2026-11", "22.00 USD", "20.00 USD"],
        ["2026-11", "large input", "3,000,000", "4,000,000", "-25.0%"]]
    assert "-66.7%" not in page
    # the chart's axis: the month, then "(incomplete," and "through 2026-12-02)" under it; its bar's tooltip
    assert re.search(r'>2026-12</text><text [^>]*>\(incomplete,</text><text [^>]*>through 2026-12-02\)</text>', page)
    assert "<title>2026-12 (incomplete, through 2026-12-02) large input: 12.00 USD</title>" in page


def test_no_month_is_open_when_billed_through_a_months_last_day():
    page = render(ReportData(through="2026-11-30", usage_growth=[
        _growth("2026-10-01", 4_000_000, None, None), _growth("2026-11-01", 3_000_000, 4_000_000, "-0.25")]))
    assert "still open" not in page and "incomplete" not in page
    assert _cells(page, "2026-11") == [["2026-11", "large input", "3,000,000", "4,000,000", "-25.0%"]]


def test_a_placeholder_model_and_type_is_labelled_once():
    assert model_and_type("(unfiltered)", "(unfiltered)") == "(unfiltered)"
    assert model_and_type("large", "(unfiltered)") == "large (unfiltered)"
    assert model_and_type("large", "input") == "large input"
    page = render(ReportData(through="2026-11-30", revenue_by_model=[
        {"month": "2026-11-01", "currency": "USD", "model": "(unfiltered)", "token_type": "(unfiltered)", "amount_cents": 700}]))
    assert "(unfiltered) (unfiltered)" not in page
    assert _cells(page, "2026-11") == [["2026-11", "(unfiltered)", "7.00 USD"]]
    assert ">(unfiltered)</text>" in page  # the chart's legend


def test_an_empty_warehouse_says_why_each_section_is_empty():
    page = render(ReportData(through="2026-11-14"))
    assert ('<h2>Revenue</h2><p class="empty">No finalized invoices yet: revenue appears once an invoice is finalized '
            '(billing through 2026-11-14).</p><p class="empty">No prepaid credits sold or granted.</p>') in page
    assert '<h2>Usage growth</h2><p class="empty">No usage yet (billing through 2026-11-14).</p>' in page
    assert "<table" not in page and "<svg" not in page
    assert "nothing billed yet" in render(ReportData())


def test_an_empty_part_of_a_currency_says_why_instead_of_an_empty_table():
    page = render(DATA)
    eur = page[page.index("<h2>EUR</h2>"):page.index("<h2>USD</h2>")]
    for text in (
        "No usage revenue in EUR yet: it appears once an invoice with usage charges is finalized (billing through 2026-12-02).",
        "No finalized invoices in EUR yet: gross revenue appears once an invoice is finalized (billing through 2026-12-02).",
        "No invoiced usage in EUR yet: it appears once an invoice with usage charges is finalized (billing through 2026-12-02).",
        "No MRR in EUR: no finalized invoice has a subscription fee (billing through 2026-12-02).",
        "No customer revenue in EUR yet: customers are ranked once an invoice with fees is finalized (billing through 2026-12-02).",
    ):
        assert f'<p class="empty">{text}</p>' in eur, text
    assert eur.count("<table") == 1 and eur.count("<svg") == 1  # the credits' table and chart
    assert '<p class="empty">No prepaid credits sold or granted in USD.</p>' in page
    assert "<tbody></tbody>" not in page


def test_growth_needs_two_complete_months():
    page = render(ReportData(through="2026-11-14", usage_growth=[
        _growth("2026-10-01", 4_000_000, None, None), _growth("2026-11-01", 3_000_000, 4_000_000, "-0.25")]))
    assert ('<p class="empty">Growth needs two complete months; complete so far: 2026-10 (billing through 2026-11-14).</p>'
            in page)
    assert _cells(page, "2026-10") == [["2026-10", "large input", "4,000,000", "-", "first month"]]
    assert "%" not in page.split("<h2>Usage growth</h2>")[1]
    page = render(ReportData(through="2026-10-20", usage_growth=[_growth("2026-10-01", 4_000_000, None, None)]))
    assert "Growth needs two complete months; complete so far: none (billing through 2026-10-20)." in page
    assert "Growth needs" not in render(DATA)


def test_a_first_month_that_began_before_the_events_loaded_is_partial_and_not_compared():
    # September's billing period started on the 15th but the events loaded begin on 2026-10-01: the mart
    # marks September incomplete, so October (complete) has no growth against it (+938 % before)
    september = {**_growth("2026-09-01", 500_000, None, None), "is_month_complete": False, "is_previous_month_complete": None}
    october = {**_growth("2026-10-01", 5_190_000, 500_000, "9.38"), "is_month_complete": True,
               "is_previous_month_complete": False}
    assert growth_text(october, "2026-11-14") == "not computed: the month before is incomplete"
    page = render(ReportData(through="2026-11-14", data_from="2026-10-01", usage_growth=[september, october]))
    growth = page.split("<h2>Usage growth</h2>")[1]
    assert "2026-09 (incomplete, data from 2026-10-01)" in growth
    assert "Growth needs two complete months; complete so far: 2026-10 (billing through 2026-11-14; events loaded from 2026-10-01)." in growth
    assert "%" not in growth
