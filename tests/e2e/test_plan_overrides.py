"""Plan overrides through `meterhouse run` (tests/scenarios/plan_overrides), billed through 2026-12-02.
Every figure by hand.

Plan `ai`: 100.00 USD a month in arrears, VAT 20% on the plan, minimum commitment 150.00; AI tokens
priced per package of 1,000,000 tokens per model: small 1.00, large 4.00. Acme subscribes to it as it
is. Globex negotiated an enterprise deal (`plan_overrides`): named "AI Enterprise", 300.00 a month,
reduced VAT 10%, a minimum commitment of 500.00, small 0.50 and large 2.00 a package.

Acme, October (MTH-001-001): small 1,500,000 + 1,000,000 = 2,500,000 -> 3 packages x 1.00 = 3.00;
  large 1,200,000 -> 2 packages x 4.00 = 8.00. Fees 100.00 + 3.00 + 8.00 = 111.00, under the 150.00
  commitment: true-up 39.00. Fees 150.00, VAT 20% 30.00, total 180.00.
Acme, November (MTH-001-002): large 20,000,000 -> 20 x 4.00 = 80.00. Fees 180.00 >= 150.00: no true-up.
  VAT 36.00, total 216.00.
Globex, October (MTH-002-001): small 10,000,000 -> 10 x 0.50 = 5.00; large 20,000,000 + 10,500,000 =
  30,500,000 -> 31 x 2.00 = 62.00. Fees 300.00 + 5.00 + 62.00 = 367.00, under 500.00: true-up 133.00.
  Fees 500.00, VAT 10% 50.00, total 550.00. (On the plan as it is, the same usage would cost
  100.00 + 10 x 1.00 + 31 x 4.00 = 234.00, true-up 0, VAT 20%: 280.80.)
Globex, November (MTH-002-002): small 100,000,000 -> 100 x 0.50 = 50.00; large 80,000,001 -> 81 x 2.00
  = 162.00. Fees 300.00 + 50.00 + 162.00 = 512.00 >= 500.00: no true-up. VAT 51.20, total 563.20.
"""

import json
import shutil

import duckdb
import pytest

from dagster_project.catalog.ids import plan_id
from tests.conftest import OPENAPI, REPO, assert_lago_schemas, bill_scenario, published_invoice, run_meterhouse, snapshot

THROUGH = "2026-12-02"
SCENARIO = REPO / "tests" / "scenarios" / "plan_overrides"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return bill_scenario(tmp_path_factory, "plan_overrides", THROUGH)


def test_each_customer_is_billed_on_its_own_terms(out):
    got = {n: (i["fees_amount_cents"], i["taxes_amount_cents"], i["total_amount_cents"])
           for n in ("MTH-001-001", "MTH-001-002", "MTH-002-001", "MTH-002-002") for i in [published_invoice(out, n)]}
    assert got == {
        "MTH-001-001": (15000, 3000, 18000),
        "MTH-001-002": (18000, 3600, 21600),
        "MTH-002-001": (50000, 5000, 55000),
        "MTH-002-002": (51200, 5120, 56320),
    }


def _fees(invoice):
    return sorted((f["item"]["type"], f["item"].get("filter_invoice_display_name"), f["units"], f["amount_cents"],
                   f["taxes_rate"]) for f in invoice["fees"])


def test_the_negotiated_per_model_prices_base_amount_and_commitment_make_the_overridden_fees(out):
    assert _fees(published_invoice(out, "MTH-002-001")) == [
        ("charge", "large", "30500000.0", 6200, 10), ("charge", "small", "10000000.0", 500, 10),
        ("commitment", None, "1.0", 13300, 10), ("subscription", None, "1.0", 30000, 10)]
    assert _fees(published_invoice(out, "MTH-002-002")) == [
        ("charge", "large", "80000001.0", 16200, 10), ("charge", "small", "100000000.0", 5000, 10),
        ("subscription", None, "1.0", 30000, 10)]


def test_the_subscription_on_the_plan_as_it_is_keeps_the_plans_prices(out):
    assert _fees(published_invoice(out, "MTH-001-001")) == [
        ("charge", "large", "1200000.0", 800, 20), ("charge", "small", "2500000.0", 300, 20),
        ("commitment", None, "1.0", 3900, 20), ("subscription", None, "1.0", 10000, 20)]
    taxes = published_invoice(out, "MTH-001-002")["applied_taxes"]
    assert [(t["tax_code"], t["fees_amount_cents"], t["amount_cents"]) for t in taxes] == [
        ("vat20", 18000, 3600)]


def test_both_invoices_show_the_plans_code_and_the_overridden_one_its_own_plan_id(out):
    acme, globex = published_invoice(out, "MTH-001-001"), published_invoice(out, "MTH-002-001")
    codes = {(f["item"]["type"], f["item"]["code"]) for i in (acme, globex) for f in i["fees"]}
    assert codes == {("subscription", "ai"), ("commitment", "ai"), ("charge", "tokens")}
    assert acme["billing_periods"][0]["lago_plan_id"] == plan_id("ai")
    assert globex["billing_periods"][0]["lago_plan_id"] not in (plan_id("ai"), None)
    assert {f["lago_charge_id"] for f in acme["fees"] if f["lago_charge_id"]}.isdisjoint(
        f["lago_charge_id"] for f in globex["fees"])


def test_the_documents_name_each_subscriptions_plan(out):
    assert "Subscription: AI Enterprise" in (out / "documents" / "MTH-002-001.html").read_text()
    acme = (out / "documents" / "MTH-001-001.html").read_text()
    assert "Subscription: AI<" in acme and "Enterprise" not in acme


def test_the_mrr_mart_carries_the_negotiated_base_amount(out):
    with duckdb.connect(str(out.parent / "warehouse.duckdb"), read_only=True) as con:
        mrr = con.sql("""select external_customer_id, amount_excluding_taxes_cents, amount_cents from marts.fct_mrr
                         where month = date '2026-11-01' order by all""").fetchall()
    # with taxes: 100.00 + 20% = 120.00; 300.00 + 10% = 330.00
    assert mrr == [("acme", 10000, 12000), ("globex", 30000, 33000)]


@pytest.mark.skipif(not OPENAPI.exists(), reason=f"Lago's OpenAPI file is not at {OPENAPI}")
def test_the_invoices_validate_against_lagos_schema(out):
    assert_lago_schemas(out, folders=(("invoices", "Invoice"), ("current_usage", "CustomerUsage")))


def test_acme_bills_byte_for_byte_as_without_globexs_override(out, tmp_path):
    """The same scenario with Globex on the plan as it is: Acme's invoices and documents are the
    same bytes (the override touches no one else), Globex's October is 280.80 (see the docstring)."""
    catalog = tmp_path / "catalog"
    shutil.copytree(SCENARIO / "catalog", catalog)
    bodies = json.loads((catalog / "catalog.json").read_text())
    for body in bodies:
        body.get("subscription", {}).pop("plan_overrides", None)
    (catalog / "catalog.json").write_text(json.dumps(bodies))
    work = tmp_path / "work"
    shutil.copytree(SCENARIO / "events", work / "events")
    plain = run_meterhouse(catalog, work / "events", work, THROUGH)
    with_override, without = snapshot(out), snapshot(plain)
    acme = [name for name in with_override if "MTH-001-" in name]
    assert len(acme) == 6  # 2 invoices: JSON, HTML, PDF
    assert {name: with_override[name] for name in acme} == {name: without[name] for name in acme}
    assert published_invoice(plain, "MTH-002-001")["total_amount_cents"] == 28080


def test_a_rerun_changes_no_byte(out, tmp_path):
    work = tmp_path / "work"  # a copy: the other tests read the module's warehouse as billed
    shutil.copytree(out.parent, work)
    before = snapshot(work / "out")
    run_meterhouse(SCENARIO / "catalog", work / "events", work, THROUGH)
    assert snapshot(work / "out") == before
