"""Progressive billing through `meterhouse run` (tests/scenarios/progressive), billed through 2026-11-05.
Every figure by hand.

Plan `selfserve`: 10.00 USD a month in arrears, AI tokens at 0.00001 USD each (10.00 a million);
usage thresholds: 50.00 ("First 50 USD") and a recurring 30.00 ("Every 30 USD"). Customer `dev`
pays 20% VAT; subscription `s_dev` from 2026-10-01, calendar months, UTC. Events (one a day, in
the folder of the day they arrive):

  Oct 5   2,000,000 tokens   October so far 20.00   lifetime 20.00
  Oct 9   3,500,000          55.00                  55.00  passes 50.00 (55 - 50 = 5 < 30: not the recurring one)
  Oct 12    400,000          59.00                  59.00  billed 55.00: (59 - 55) + 55 % 30 = 4 + 25 = 29 < 30: nothing
  Oct 20  1,100,000          70.00                  70.00  (70 - 55) + 25 = 40 >= 30: the recurring one (at 60.00)
  Oct 28  1,000,000          80.00                  80.00  billed 70.00: (80 - 70) + 70 % 30 = 10 + 10 = 20 < 30: nothing
  Nov 3   1,000,000          November so far 10.00  lifetime 80.00 invoiced + 10.00 = 90.00:
                                                     10 + 80 % 30 = 10 + 20 = 30 >= 30: the recurring one again

Invoices, in the order they are finalized (each progressive one on its day, one invoice per day's check):
  MTH-001-001 progressive_billing, Oct 9: tokens 55.00; nothing billed before; VAT 11.00; due 66.00.
  MTH-001-002 progressive_billing, Oct 20: tokens 70.00 less the 55.00 of MTH-001-001 = 15.00;
    VAT 20% of 15.00 = 3.00; due 18.00.
  MTH-001-003 subscription, Nov 1 (October): subscription 10.00 + tokens 80.00 = 90.00, less the
    70.00 of MTH-001-002 (the period's last progressive invoice) = 20.00; VAT 4.00; due 24.00.
  MTH-001-004 progressive_billing, Nov 3: tokens 10.00 (November's first: nothing to deduct);
    VAT 2.00; due 12.00.
Lifetime usage on Nov 5: invoiced 80.00 (October's charge fees) + November 10.00 = 90.00; last
threshold reached 50.00 + 1 x 30.00 = 80.00 shown as Lago's lifetime usage counts steps from the
largest fixed one: (90 - 50) // 30 = 1 step -> 80.00, next 110.00.
"""

import json
import shutil

import duckdb
import pytest

from tests.conftest import OPENAPI, REPO, assert_lago_schemas, bill_scenario, published_invoice, run_meterhouse, snapshot

THROUGH = "2026-11-05"
SCENARIO = REPO / "tests" / "scenarios" / "progressive"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return bill_scenario(tmp_path_factory, "progressive", THROUGH)


def test_each_threshold_crossed_issues_a_progressive_invoice_deducting_what_the_period_already_billed(out):
    got = {n: (i["invoice_type"], i["issuing_date"], i["fees_amount_cents"], i["progressive_billing_credit_amount_cents"],
               i["sub_total_excluding_taxes_amount_cents"], i["taxes_amount_cents"], i["total_amount_cents"], i["status"])
           for n in ("MTH-001-001", "MTH-001-002", "MTH-001-003", "MTH-001-004") for i in [published_invoice(out, n)]}
    assert got == {
        "MTH-001-001": ("progressive_billing", "2026-10-09", 5500, 0, 5500, 1100, 6600, "finalized"),
        "MTH-001-002": ("progressive_billing", "2026-10-20", 7000, 5500, 1500, 300, 1800, "finalized"),
        "MTH-001-003": ("subscription", "2026-11-01", 9000, 7000, 2000, 400, 2400, "finalized"),
        "MTH-001-004": ("progressive_billing", "2026-11-03", 1000, 0, 1000, 200, 1200, "finalized"),
    }
    assert sorted(p.name for p in (out / "invoices").iterdir()) == [f"MTH-001-00{n}.json" for n in range(1, 5)]


def test_each_progressive_invoice_names_the_thresholds_it_was_issued_for_with_the_lifetime_usage(out):
    applied = {n: [(t["usage_threshold"]["threshold_display_name"], t["usage_threshold"]["amount_cents"],
                    t["usage_threshold"]["recurring"], t["lifetime_usage_amount_cents"])
                   for t in published_invoice(out, n)["applied_usage_thresholds"]]
               for n in ("MTH-001-001", "MTH-001-002", "MTH-001-004")}
    assert applied == {"MTH-001-001": [("First 50 USD", 5000, False, 5500)],
                       "MTH-001-002": [("Every 30 USD", 3000, True, 7000)],
                       "MTH-001-004": [("Every 30 USD", 3000, True, 9000)]}
    assert "applied_usage_thresholds" not in published_invoice(out, "MTH-001-003")
    assert [p["invoicing_reason"] for p in published_invoice(out, "MTH-001-002")["billing_periods"]] == ["progressive_billing"]


def test_the_deduction_is_a_credit_of_the_earlier_invoice_before_taxes_on_the_fee_of_its_charge(out):
    credits = {n: [(c["item"]["type"], c["item"]["code"], c["amount_cents"], c["before_taxes"])
                   for c in published_invoice(out, n)["credits"]]
               for n in ("MTH-001-001", "MTH-001-002", "MTH-001-003", "MTH-001-004")}
    assert credits == {"MTH-001-001": [], "MTH-001-002": [("invoice", "MTH-001-001", 5500, True)],
                       "MTH-001-003": [("invoice", "MTH-001-002", 7000, True)], "MTH-001-004": []}
    # October's tokens fee 80.00 takes the 70.00: taxed on 10.00 (2.00), the subscription fee on 10.00 (2.00)
    fees = {f["item"]["code"]: (f["amount_cents"], f.get("precise_coupons_amount_cents"),
                                f["sub_total_excluding_taxes_amount_cents"], f["taxes_amount_cents"])
            for f in published_invoice(out, "MTH-001-003")["fees"]}
    assert fees == {"selfserve": (1000, None, 1000, 200), "tokens": (8000, "7000.0", 1000, 200)}


def test_the_lifetime_usage_mart_holds_invoiced_and_current_usage_and_the_thresholds_around_it(out):
    with duckdb.connect(str(out.parent / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql("""select external_subscription_id, invoiced_usage_amount_cents, current_usage_amount_cents,
                                 total_usage_amount_cents, last_threshold_amount_cents, next_threshold_amount_cents,
                                 as_of::varchar
                          from marts.fct_lifetime_usage""").fetchall()
        invoices = con.sql("select number, invoice_type from marts.fct_invoices order by number").fetchall()
    assert rows == [("s_dev", 8000, 1000, 9000, 8000, 11000, "2026-11-05")]
    assert invoices == [("MTH-001-001", "progressive_billing"), ("MTH-001-002", "progressive_billing"),
                        ("MTH-001-003", "subscription"), ("MTH-001-004", "progressive_billing")]


def test_the_revenue_mart_counts_a_progressive_period_once_with_all_the_taxes_charged_on_it(out):
    # October's tokens count once, on MTH-001-003 (Nov 1): 80.00. Their taxes were charged on three
    # invoices: 20% of 55.00 = 11.00 (MTH-001-001), of 15.00 = 3.00 (MTH-001-002) and of the 10.00
    # left = 2.00 (MTH-001-003): 16.00 = 20% of 80.00. The subscription fee: 10.00, VAT 2.00.
    # November's MTH-001-004 (Oct usage's period still open) is not counted yet.
    with duckdb.connect(str(out.parent / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql("""select revenue_date::varchar, fee_type, amount_cents, taxes_amount_cents
                          from marts.fct_revenue_daily order by revenue_date, fee_type""").fetchall()
    assert rows == [("2026-11-01", "charge", 8000, 1600), ("2026-11-01", "subscription", 1000, 200)]


@pytest.mark.skipif(not OPENAPI.exists(), reason=f"Lago's OpenAPI file is not at {OPENAPI}")
def test_the_progressive_invoices_validate_against_lagos_schema(out):
    assert_lago_schemas(out, folders=(("invoices", "Invoice"), ("current_usage", "CustomerUsage")))


def test_a_rerun_changes_no_byte(out, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(out.parent, work)
    before = snapshot(work / "out")
    run_meterhouse(SCENARIO / "catalog", work / "events", work, THROUGH)
    assert snapshot(work / "out") == before


def test_a_finalized_progressive_invoice_is_never_altered_by_later_days(out, tmp_path):
    """Billed through Oct 21 first (MTH-001-001 and -002 finalized), then through Nov 5 on the same
    warehouse: the two progressive invoices keep their bytes, and every file is what one run
    through Nov 5 writes."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(SCENARIO / "events", work / "events")
    run_meterhouse(SCENARIO / "catalog", work / "events", work, "2026-10-21")
    early = snapshot(work / "out")
    assert sorted(k for k in early if k.startswith("invoices/")) == ["invoices/MTH-001-001.json", "invoices/MTH-001-002.json"]
    run_meterhouse(SCENARIO / "catalog", work / "events", work, THROUGH)
    later = snapshot(work / "out")
    assert {k: later[k] for k in early if k.startswith("invoices/")} == {k: v for k, v in early.items() if k.startswith("invoices/")}
    assert later == snapshot(out)


def test_a_wallet_pays_the_progressive_invoices_and_its_ongoing_balance_does_not_count_their_usage_again(tmp_path):
    """The scenario with a wallet of 100 granted credits (1 credit = 1.00 USD = 100 cents) from Oct 1,
    billed through Oct 21:
      MTH-001-001 (Oct 9): 55.00 + VAT 11.00 = 66.00, paid by the wallet Oct 10: 100.00 - 66.00 = 34.00.
      MTH-001-002 (Oct 20): 70.00 - 55.00 = 15.00 + VAT 3.00 = 18.00, paid Oct 21: 34.00 - 18.00 = 16.00.
    October's open usage on Oct 21: 7,000,000 tokens = 70.00 + VAT 14.00 = 84.00, all of it billed
    by the two (66.00 + 18.00): ongoing usage 0, ongoing balance 16.00 (counted again it would be
    16.00 - 84.00 = -68.00)."""
    bodies = json.loads((SCENARIO / "catalog" / "catalog.json").read_text())
    bodies.append({"wallet": {"external_customer_id": "dev", "name": "Credits", "code": "credits", "currency": "USD",
                              "rate_amount": "1", "granted_credits": "100", "created_at": "2026-10-01T00:00:00Z"}})
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "catalog.json").write_text(json.dumps(bodies))
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(SCENARIO / "events", work / "events")
    out = run_meterhouse(catalog, work / "events", work, "2026-10-21")
    (wallet_file,) = (out / "wallets").glob("*.json")
    wallet = json.loads(wallet_file.read_text())["wallet"]
    assert (wallet["balance_cents"], wallet["ongoing_usage_balance_cents"], wallet["ongoing_balance_cents"]) == (
        1600, 0, 1600)
    assert [(i["number"], i["prepaid_credit_amount_cents"], i["total_amount_cents"])
            for i in (json.loads(p.read_text())["invoice"] for p in sorted((out / "invoices").glob("*.json")))] == [
        ("MTH-001-001", 6600, 0), ("MTH-001-002", 1800, 0)]
