"""Coupons through `meterhouse run` (tests/scenarios/coupons), billed through 2026-12-02. Every figure by hand.

Plan `pro`: 20.00 USD a month in arrears, AI tokens at 0.00001 USD each (10.00 a million), API calls
at 0.10. Acme pays 20% VAT; Globex no tax. Coupons: `welcome`, 50.00 fixed once, not reusable, applied
to Acme on Oct 5 with its own amount of 40.00; `loyal`, 10% forever, applied to Acme on Oct 10;
`tokens_half`, 50% of the AI-tokens fees only, recurring for 2 invoices, applied to Globex on Oct 1.

Acme, October (MTH-001-001, Nov 1): subscription 20.00 + 1,500,000 tokens 15.00 + 30 calls 3.00 = 38.00.
  welcome (applied first) takes 38.00 of its 40.00: 2.00 is carried over; nothing is left for loyal.
  Sub-total 0.00, VAT 0.00, due 0.00.
Acme, November (MTH-001-002, Dec 1): 20.00 + 800,000 tokens 8.00 + 5 calls 0.50 = 28.50.
  welcome takes its last 2.00 (used up); loyal 10% of the 26.50 left = 2.65. Coupons 4.65.
  Sub-total 23.85; VAT 20% of 23.85 = 4.77 (on the fees less their coupon shares); due 28.62.
Globex, October (MTH-002-001): 20.00 + 2,000,000 tokens 20.00 + 10 calls 1.00 = 41.00.
  tokens_half: 50% of the tokens' 20.00 = 10.00; due 31.00; one invoice left of 2.
Globex, November (MTH-002-002): 20.00 + 333,333 tokens 3.33333 -> 3.33 = 23.33.
  tokens_half: 50% of 3.33 = 1.665 -> 1.67 (half-up); due 21.66; used up.
"""

import json
import shutil

import duckdb
import pytest

from tests.conftest import OPENAPI, REPO, assert_lago_schemas, bill_scenario, published_invoice, run_meterhouse, snapshot

THROUGH = "2026-12-02"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return bill_scenario(tmp_path_factory, "coupons", THROUGH)


def test_each_invoice_takes_its_coupons_before_taxes(out):
    got = {n: (i["fees_amount_cents"], i["coupons_amount_cents"], i["sub_total_excluding_taxes_amount_cents"],
               i["taxes_amount_cents"], i["total_amount_cents"])
           for n in ("MTH-001-001", "MTH-001-002", "MTH-002-001", "MTH-002-002") for i in [published_invoice(out, n)]}
    assert got == {
        "MTH-001-001": (3800, 3800, 0, 0, 0),
        "MTH-001-002": (2850, 465, 2385, 477, 2862),
        "MTH-002-001": (4100, 1000, 3100, 0, 3100),
        "MTH-002-002": (2333, 167, 2166, 0, 2166),
    }


def test_the_credits_of_type_coupon_name_each_coupon_in_the_order_they_applied(out):
    credits = [(c["item"]["type"], c["item"]["code"], c["item"]["name"], c["amount_cents"], c["before_taxes"])
               for c in published_invoice(out, "MTH-001-002")["credits"]]
    assert credits == [("coupon", "welcome", "Welcome", 200, True), ("coupon", "loyal", "Loyalty 10%", 265, True)]
    # October's 38.00 was taken by welcome alone
    assert [(c["item"]["code"], c["amount_cents"]) for c in published_invoice(out, "MTH-001-001")["credits"]] == [("welcome", 3800)]


def test_the_tax_is_on_the_fees_less_their_share_of_the_coupons(out):
    november = published_invoice(out, "MTH-001-002")
    assert [(t["fees_amount_cents"], t["amount_cents"]) for t in november["applied_taxes"]] == [(2385, 477)]
    # each fee's share: its amount x 4.65 / 28.50 (e.g. the subscription's 20.00 x 465 / 2850 = 326.3157...c)
    shares = {f["item"]["code"]: (f["amount_cents"], f["precise_coupons_amount_cents"], f["sub_total_excluding_taxes_amount_cents"])
              for f in november["fees"]}
    assert shares == {"pro": (2000, "326.315789473684", 1674), "tokens": (800, "130.526315789474", 669),
                      "calls": (50, "8.157894736843", 42)}


def test_a_metric_coupon_reduces_only_its_metrics_fee(out):
    fees = {f["item"]["code"]: f.get("precise_coupons_amount_cents") for f in published_invoice(out, "MTH-002-001")["fees"]}
    assert fees == {"pro": "0.0", "tokens": "1000.0", "calls": "0.0"}


def test_the_document_shows_each_coupon_between_the_fees_and_the_taxes(out):
    html = (out / "documents" / "MTH-001-002.html").read_text()
    order = [html.index(text) for text in ("28.50 USD", "Coupon Welcome (welcome)", "-2.00 USD", "Coupon Loyalty 10% (loyal)",
                                           "-2.65 USD", "Subtotal excluding taxes", "23.85 USD", "VAT (20 %) on 23.85 USD",
                                           "4.77 USD", "28.62 USD")]
    assert order == sorted(order)
    october = (out / "documents" / "MTH-001-001.html").read_text()
    assert "Coupon Welcome (welcome)" in october and "-38.00 USD" in october and "Loyalty" not in october


def test_the_marts_carry_the_coupon_credits_and_what_is_left_of_each_coupon(out):
    with duckdb.connect(str(out.parent / "warehouse.duckdb"), read_only=True) as con:
        credits = con.sql("""select invoice_number, coupon_code, credit_order, amount_cents from marts.fct_coupon_credits
                             order by invoice_number, credit_order""").fetchall()
        applied = con.sql("""select external_customer_id, coupon_code, status, amount_cents_remaining,
                                    frequency_duration_remaining, terminated_on::varchar, consumed_amount_cents
                             from marts.fct_applied_coupons order by all""").fetchall()
        totals = con.sql("""select number, fees_amount_cents, sub_total_excluding_taxes_amount_cents, total_amount_cents
                            from marts.fct_invoices order by number""").fetchall()
    assert credits == [("MTH-001-001", "welcome", 0, 3800), ("MTH-001-002", "welcome", 0, 200),
                       ("MTH-001-002", "loyal", 1, 265), ("MTH-002-001", "tokens_half", 0, 1000),
                       ("MTH-002-002", "tokens_half", 0, 167)]
    assert applied == [("acme", "loyal", "active", None, None, None, 265),
                       ("acme", "welcome", "terminated", 0, None, "2026-12-01", 4000),
                       ("globex", "tokens_half", "terminated", None, 0, "2026-12-01", 1167)]
    assert totals == [("MTH-001-001", 3800, 0, 0), ("MTH-001-002", 2850, 2385, 2862),
                      ("MTH-002-001", 4100, 3100, 3100), ("MTH-002-002", 2333, 2166, 2166)]


def _marts(out, sql):
    with duckdb.connect(str(out.parent / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(sql).fetchall()


def test_fct_invoices_carries_each_invoices_coupons(out):
    assert _marts(out, """select number, fees_amount_cents, coupons_amount_cents, sub_total_excluding_taxes_amount_cents
                          from marts.fct_invoices order by number""") == [
        ("MTH-001-001", 3800, 3800, 0), ("MTH-001-002", 2850, 465, 2385),
        ("MTH-002-001", 4100, 1000, 3100), ("MTH-002-002", 2333, 167, 2166)]


def test_each_fee_takes_its_share_of_the_coupons_in_whole_cents_adding_up_to_the_invoices(out):
    # MTH-001-002's 4.65 spread over 28.50 of fees: 2000 x 465 / 2850 = 326.3157...,
    # 800 x 465 / 2850 = 130.5263..., 50 x 465 / 2850 = 8.1578...; rounded down 326 + 130 + 8 = 464,
    # the cent left goes to the largest remainder (tokens' .5263): 326, 131, 8 = 465.
    # October's 38.00 (welcome) takes each fee whole; tokens_half only the tokens' fees (10.00, 1.67).
    rows = _marts(out, """select f.invoice_number, coalesce(f.billable_metric_code, f.fee_type), c.coupons_amount_cents
                          from marts.fct_fee_coupons c join marts.fct_fees f using (fee_id) order by all""")
    assert rows == [("MTH-001-001", "calls", 300), ("MTH-001-001", "subscription", 2000), ("MTH-001-001", "tokens", 1500),
                    ("MTH-001-002", "calls", 8), ("MTH-001-002", "subscription", 326), ("MTH-001-002", "tokens", 131),
                    ("MTH-002-001", "tokens", 1000), ("MTH-002-002", "tokens", 167)]


def test_the_revenue_marts_count_the_fees_after_their_coupons(out):
    # a customer's revenue of a day is the sub-total excluding taxes of its invoices that day
    assert _marts(out, """select revenue_date::varchar, external_customer_id, sum(amount_cents)::bigint
                          from marts.fct_revenue_daily group by all order by all""") == [
        ("2026-11-01", "acme", 0), ("2026-11-01", "globex", 3100),
        ("2026-12-01", "acme", 2385), ("2026-12-01", "globex", 2166)]
    # Lago's invoiced usage subtracts each charge fee's coupons: November tokens 0 (Acme) + 20.00 - 10.00
    # (Globex), calls 0 + 1.00; December tokens 8.00 - 1.31 + 3.33 - 1.67 = 8.35, calls 0.50 - 0.08 = 0.42
    assert _marts(out, """select month::varchar, code, amount_cents from marts.fct_invoiced_usage order by all""") == [
        ("2026-11-01", "calls", 100), ("2026-11-01", "tokens", 1000),
        ("2026-12-01", "calls", 42), ("2026-12-01", "tokens", 835)]
    # Lago's MRR: the subscription fee less its coupons, plus its taxes. Acme in December: 20.00 - 3.26
    # = 16.74, VAT 20 % of (20.00 - 3.263157...) = 3.347368... -> 3.35: 20.09
    assert _marts(out, """select month::varchar, external_customer_id, amount_cents, amount_excluding_taxes_cents
                          from marts.fct_mrr order by all""") == [
        ("2026-11-01", "acme", 0, 0), ("2026-11-01", "globex", 2000, 2000),
        ("2026-12-01", "acme", 2009, 1674), ("2026-12-01", "globex", 2000, 2000)]


@pytest.mark.skipif(not OPENAPI.exists(), reason=f"Lago's OpenAPI file is not at {OPENAPI}")
def test_the_invoices_with_coupons_validate_against_lagos_schema(out):
    assert_lago_schemas(out, folders=(("invoices", "Invoice"),))


def test_a_coupon_applied_later_changes_no_finalizedpublished_invoice(out, tmp_path):
    """Loyal 10% applied to Globex, dated Oct 1 but added after its invoices were finalized: they keep
    their figures, byte for byte, and the coupon has taken nothing."""
    work = tmp_path / "work"  # a copy: the other tests read the module's warehouse as billed
    shutil.copytree(out.parent, work)
    before = snapshot(work / "out")
    catalog = tmp_path / "catalog"
    shutil.copytree(REPO / "tests" / "scenarios" / "coupons" / "catalog", catalog)
    bodies = json.loads((catalog / "coupons.json").read_text())
    bodies.append({"applied_coupon": {"external_customer_id": "globex", "coupon_code": "loyal",
                                      "created_at": "2026-10-01T00:00:00Z"}})
    (catalog / "coupons.json").write_text(json.dumps(bodies))
    run_meterhouse(catalog, work / "events", work, THROUGH)
    after = snapshot(work / "out")
    assert {k: v for k, v in after.items() if k.startswith("invoices/")} == {
        k: v for k, v in before.items() if k.startswith("invoices/")}
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("""select status, consumed_amount_cents from marts.fct_applied_coupons
                          where external_customer_id = 'globex' and coupon_code = 'loyal'""").fetchall() == [("active", 0)]


@pytest.fixture(scope="module")
def credited(out, tmp_path_factory):
    """The billed warehouse, copied; then a credit note on MTH-001-002's tokens fee (8.00 of
    which 1.31 went to coupons) dated Dec 2, as a user writes it from the invoice JSON, billed again
    through Dec 2. No invoice is issued after it: its credit stays available, the figures above hold."""
    work = tmp_path_factory.mktemp("credited")
    shutil.copytree(out.parent, work, dirs_exist_ok=True)
    catalog = work / "catalog"
    shutil.copytree(REPO / "tests" / "scenarios" / "coupons" / "catalog", catalog)
    tokens = next(f for f in published_invoice(out, "MTH-001-002")["fees"] if f["item"]["code"] == "tokens")
    (catalog / "credit_notes.json").write_text(json.dumps({"credit_note": {
        "invoice_id": "MTH-001-002", "reason": "product_unsatisfactory", "credit_amount_cents": 803,
        "items": [{"fee_id": tokens["lago_id"], "amount_cents": 800}], "created_at": "2026-12-02T10:00:00Z"}}))
    run_meterhouse(catalog, work / "events", work, THROUGH)
    return work / "out"


def test_a_credit_note_on_an_invoice_with_coupons_gives_back_the_fee_less_its_coupons(credited):
    # the tokens fee, 8.00, took 800 x 465 / 2850 = 130.526315789474 of the coupons: the note credits
    # 800 - 130.526... = 669.47... -> 6.69, VAT 20 % of 669.47... = 133.89... -> 1.34, total
    # half-up(669.47... + 133.89...) = 8.03 (not 8.00 + 1.60 = 9.60); coupons adjustment 1.31
    note = json.loads((credited / "credit_notes" / "MTH-001-002-CN001.json").read_text())["credit_note"]
    assert (note["sub_total_excluding_taxes_amount_cents"], note["coupons_adjustment_amount_cents"],
            note["taxes_amount_cents"], note["total_amount_cents"], note["credit_amount_cents"],
            note["balance_amount_cents"]) == (669, 131, 134, 803, 803, 803)
    assert [(t["base_amount_cents"], t["amount_cents"]) for t in note["applied_taxes"]] == [(669, 134)]
    html = (credited / "documents" / "MTH-001-002-CN001.html").read_text()
    order = [html.index(text) for text in ("8.00 USD", "Less coupons on these fees", "-1.31 USD",
                                           "Subtotal excluding taxes", "6.69 USD", "8.03 USD")]
    assert order == sorted(order)


@pytest.mark.skipif(not OPENAPI.exists(), reason=f"Lago's OpenAPI file is not at {OPENAPI}")
def test_the_credit_note_on_an_invoice_with_coupons_validates_against_lagos_schema(credited):
    assert_lago_schemas(credited, folders=(("credit_notes", "CreditNote"),))
