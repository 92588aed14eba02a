"""Pricing group keys through `meterhouse run` (tests/scenarios/pricing_group_keys), billed through
2026-11-20. Every figure by hand.

Plan `ai`: 10.00 USD a month in arrears, no tax; AI tokens per model in packages of 1,000,000 tokens,
small 1.00 and large 4.00 a package, each model's filter grouped by `project_id`
(`"pricing_group_keys": ["project_id"]`): each project rounds up to its own packages.

October (MTH-001-001, finalized on 2026-11-01):
  small: alpha 1,500,000 + 300,000 = 1,800,000 -> 2 packages = 2.00; beta 100,000 -> 1 package = 1.00
         (as a whole, 1,900,000 would be 2 packages = 2.00: grouping costs 1.00 more)
  large: alpha 1,500,000 -> 2 packages = 8.00; gamma 500,000 -> 1 package = 4.00
         (as a whole, 2,000,000 would be 2 packages = 8.00)
  fees 10.00 + 2.00 + 1.00 + 8.00 + 4.00 = 25.00, total 25.00.
November (open: current usage): small alpha 3,000,000 -> 3.00; small beta 2,500,000 -> 3 packages = 3.00;
  large gamma 999,999 -> 1 package = 4.00. Amount 10.00 (small 5,500,000 tokens 6.00, large 4.00).
"""

import json

import duckdb
import pytest

from tests.conftest import OPENAPI, assert_lago_schemas, bill_scenario

THROUGH = "2026-11-20"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return bill_scenario(tmp_path_factory, "pricing_group_keys", THROUGH)


def _invoice(out):
    return json.loads((out / "invoices" / "MTH-001-001.json").read_text())["invoice"]


def test_each_project_is_priced_in_its_own_packages_on_its_own_fee_line(out):
    invoice = _invoice(out)
    fees = sorted((f["item"]["type"], f["item"]["filter_invoice_display_name"], json.dumps(f["item"].get("grouped_by")),
                   f["units"], f["events_count"], f["amount_cents"]) for f in invoice["fees"])
    assert fees == [
        ("charge", "large", '{"project_id": "alpha"}', "1500000.0", 1, 800),
        ("charge", "large", '{"project_id": "gamma"}', "500000.0", 1, 400),
        ("charge", "small", '{"project_id": "alpha"}', "1800000.0", 2, 200),
        ("charge", "small", '{"project_id": "beta"}', "100000.0", 1, 100),
        ("subscription", None, "null", "1.0", 0, 1000),
    ]
    assert (invoice["fees_amount_cents"], invoice["total_amount_cents"]) == (2500, 2500)
    assert len({f["lago_id"] for f in invoice["fees"]}) == 5


def test_current_usage_shows_each_projects_usage_in_grouped_usage(out):
    (path,) = (out / "current_usage").glob("*.json")
    (charge,) = json.loads(path.read_text())["customer_usage"]["charges_usage"]
    assert (charge["units"], charge["events_count"], charge["amount_cents"]) == ("6499999.0", 3, 1000)
    assert sorted((f["invoice_display_name"], f["units"], f["amount_cents"]) for f in charge["filters"]) == [
        ("large", "999999.0", 400), ("small", "5500000.0", 600)]  # (each filter summed over its groups)
    assert sorted((g["grouped_by"]["project_id"], [f["invoice_display_name"] for f in g["filters"]], g["units"],
                   g["amount_cents"]) for g in charge["grouped_usage"]) == [
        ("alpha", ["small"], "3000000.0", 300), ("beta", ["small"], "2500000.0", 300), ("gamma", ["large"], "999999.0", 400)]


def test_the_fee_groups_mart_has_one_row_per_grouped_fee_with_its_group(out):
    with duckdb.connect(str(out.parent / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql("select invoice_number, billable_metric_code, grouped_by, units::varchar, amount_cents "
                       "from marts.fct_fee_groups order by amount_cents, grouped_by").fetchall()
        fees = con.sql("select count(*) from marts.fct_fees").fetchone()[0]
    assert rows == [
        ("MTH-001-001", "tokens", '{"project_id":"beta"}', "100000.000000000000", 100),
        ("MTH-001-001", "tokens", '{"project_id":"alpha"}', "1800000.000000000000", 200),
        ("MTH-001-001", "tokens", '{"project_id":"gamma"}', "500000.000000000000", 400),
        ("MTH-001-001", "tokens", '{"project_id":"alpha"}', "1500000.000000000000", 800),
    ]
    assert fees == 5  # (the four grouped fees and the subscription fee: fct_fees has every fee)


def test_the_invoice_document_names_each_projects_line(out):
    html = (out / "documents" / "MTH-001-001.html").read_text()
    for line in ("Tokens — small • alpha", "Tokens — small • beta", "Tokens — large • alpha", "Tokens — large • gamma"):
        assert line in html


@pytest.mark.skipif(not OPENAPI.exists(), reason="Lago's OpenAPI file (../shared) is not here")
def test_the_invoice_and_the_current_usage_follow_lagos_schemas(out):
    assert_lago_schemas(out, folders=(("invoices", "Invoice"), ("current_usage", "CustomerUsage")))
