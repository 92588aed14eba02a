"""The revenue report renders hand-made mart rows: figures formatted exactly, charts inline SVG, no
script and no external resource."""

from decimal import Decimal

from dagster_project.analytics.report import ReportData, money, render

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
    usage_growth=[{"month": "2026-11-01", "model": "large", "token_type": "input", "units": Decimal(3_000_000),
                   "previous_month_units": Decimal(4_000_000), "growth_rate": Decimal("-0.25")}],
)


def test_money_is_exact_minor_units():
    assert money(533_000, "USD") == "5,330.00 USD"
    assert money(1, "EUR") == "0.01 EUR"
    assert money(1500, "JPY") == "1,500 JPY"


def test_the_report_holds_the_figures_and_charts():
    page = render(DATA)
    for text in ("5,330.00 USD", "33.00 USD", "22.00 USD", "20.00 USD", "80.00 USD", "44.50 USD", "5.00 EUR", "25.00 EUR",
                 "3,000,000", "-25.0%", "2026-12-02", "large input", "small output"):
        assert text in page, text
    # Nov bar: 16.00 + 3.00 stacked, labelled with its total
    assert "19.00 USD" in page
    assert page.count("<svg") == 3  # revenue by model and top customers (USD), credits outstanding (EUR)
    assert "<script" not in page and "<link" not in page
    assert "&lt;alpha &amp; co&gt;" in page and "<alpha & co>" not in page


def test_an_empty_warehouse_renders():
    assert "Nothing invoiced yet" in render(ReportData())
