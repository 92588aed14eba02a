"""Mistakes made loud and correctable: usage that no charge prices (tests/scenarios/corrections).

The scenario: plan `pay_go` (10.00 USD a month) prices AI tokens by model in packages of 1,000,000
(small 1.00, large 4.00) and has no price of its own for other models. Acme pays 20% VAT and holds a
wallet of 30 granted credits (1 credit = 1 USD). Billed through 2026-12-02.

October (invoice MTH-001-001, finalized 2026-11-01):
  subscription 10.00; small 2,000,000 tokens = 2 packages = 2.00; large 1,000,000 = 4.00;
  codestral 3,000,000 and 500,000 without a model: no filter, no price: 0.00 on a line named by its values
  fees 16.00, VAT 20% = 3.20, total 19.20, paid by the wallet: 19.20, due 0.00 (30.00 - 19.20 = 10.80 left)
November (MTH-001-002): subscription 10.00 + small 1,000,000 = 1.00: fees 11.00, VAT 2.20, total 13.20;
  wallet 10.80; due 2.40.
"""

import json

import duckdb
import pytest

from tests.conftest import bill_scenario


@pytest.fixture(scope="module")
def billed(tmp_path_factory):
    out = bill_scenario(tmp_path_factory, "corrections", "2026-12-02")
    return out.parent


def _invoice(work, number):
    return json.loads((work / "out" / "invoices" / f"{number}.json").read_text())["invoice"]


def test_the_invoices_bill_what_is_priced_and_nothing_else(billed):
    october, november = _invoice(billed, "MTH-001-001"), _invoice(billed, "MTH-001-002")
    assert (october["fees_amount_cents"], october["taxes_amount_cents"], october["prepaid_credit_amount_cents"],
            october["total_amount_cents"]) == (1600, 320, 1920, 0)
    assert (november["fees_amount_cents"], november["taxes_amount_cents"], november["prepaid_credit_amount_cents"],
            november["total_amount_cents"]) == (1100, 220, 1080, 240)


def test_the_unpriced_line_is_named_by_its_values(billed):
    fees = {(f["item"]["name"], f["item"]["filter_invoice_display_name"]): f for f in _invoice(billed, "MTH-001-001")["fees"]}
    line = fees[("AI Tokens", "codestral; no filter values (not priced)")]
    assert (line["units"], line["amount_cents"], line["events_count"]) == ("3500000.0", 0, 2)
    html = (billed / "out" / "documents" / "MTH-001-001.html").read_text()
    assert "AI Tokens — codestral; no filter values (not priced)" in html


def test_the_run_summary_lists_and_warns_about_unpriced_usage(billed):
    summary = json.loads((billed / "out" / "run_summary.json").read_text())
    assert summary["unpriced_usage"] == [
        {"external_subscription_id": "sub_acme", "billable_metric_code": "tokens", "filter_values": {"model": "codestral"},
         "units": "3000000", "events_count": 1},
        {"external_subscription_id": "sub_acme", "billable_metric_code": "tokens", "filter_values": {},
         "units": "500000", "events_count": 1},
    ]
    assert summary["warnings"][0].startswith("3,000,000 units of tokens on sub_acme (model codestral, 1 event)")


def test_the_unpriced_usage_mart_has_one_row_per_values_and_day(billed):
    con = duckdb.connect(str(billed / "warehouse.duckdb"), read_only=True)
    rows = con.execute(
        """select external_customer_id, billable_metric_code, filter_values_json, arrival_date::varchar, units::varchar,
                  events_count, is_late
           from marts.fct_unpriced_usage order by filter_values_json"""
    ).fetchall()
    assert rows == [
        ("acme", "tokens", '{"model":"codestral"}', "2026-10-10", "3000000.000000000000", 1, False),
        ("acme", "tokens", "{}", "2026-10-10", "500000.000000000000", 1, False),
    ]
