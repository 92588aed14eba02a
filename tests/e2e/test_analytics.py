"""Revenue analytics marts, the revenue report and the price simulation (issue 7).

tests/scenarios/analytics, billed through 2026-12-02: UTC customers in USD on the `pro` plan (10.00
a month in arrears, package charges per started million tokens: small input 1, small output 3,
large input 4, large output 12), a 10% organization tax; alpha's wallet holds 5 paid credits
(1 credit = 1 USD, credit invoice MTH-001-001 of 5.00 on Oct 1). Every figure by hand:

- October usage (arrived Oct 10): alpha small input 2M (2.00), small output 1M (3.00), large input
  1M (4.00): usage 9.00, fees 19.00, tax 1.90, 20.90; its 5 paid credits pay 5.00 on Nov 2: total
  15.90. beta large input 3M (12.00), large output 1M (12.00): usage 24.00, fees 34.00, tax 3.40,
  total 37.40. Both issued Nov 1.
- November usage (arrived Nov 10): alpha small input 4M (4.00), large output 1M (12.00): fees
  26.00, total 28.60. beta large input 3M (12.00), large output 2M (24.00): fees 46.00, total 50.60.
  Both issued Dec 1.
- Gross revenue (finalized invoice totals): Oct 5.00 (the credit invoice), Nov 15.90 + 37.40 =
  53.30, Dec 28.60 + 50.60 = 79.20. Invoiced usage (charge fees, no taxes): Nov 9.00 + 24.00 =
  33.00, Dec 16.00 + 36.00 = 52.00. MRR (monthly plans, issuing month, taxes included): 11.00 per
  customer in Nov and in Dec (22.00 in all); 10.00 each before taxes.
- Top customers: Nov beta 34.00 (64.1509%), alpha 19.00; Dec beta 46.00, alpha 26.00.
- Usage growth Oct -> Nov: small input 2M -> 4M (+100%), small output 1M -> 0 (-100%), large input
  4M -> 3M (-25%), large output 1M -> 3M (+200%).
- Credits: alpha/main sells 5.00 in October (outstanding 5.00 at Oct 31), consumes 5.00 in
  November (outstanding 0).
- Simulation of November under pro_repriced.json (15.00 a month; small input 2, small output 3,
  large input 3, large output 10): alpha 4M x 2 + 1M x 10 + 15 = 33.00 (was 26.00: +7.00); beta
  3M x 3 + 2M x 10 + 15 = 44.00 (was 46.00: -2.00). October under flat_per_model.json (a new
  plan, no fee, per model: small 1.50, large 5.00 per started million): alpha small 2M + 1M = 3
  packages, 4.50, large 1M, 5.00: 9.50 (was 19.00); beta large 3M + 1M = 4 packages, 20.00 (was 34.00).

The same scenario billed through 2026-11-14 (the Nov 10 arrivals loaded, November still open):
October is complete (the billing date is after Oct 31), November is not, so November has no growth
figure (the run through 2026-12-02 gives it +100%, -100%, -25%, +200%). The Nov 1 invoices are
finalized: gross revenue Oct 5.00, Nov 53.30 so far. In the report, 2026-12 is the open month of
the run through 2026-12-02 (gross revenue 79.20 so far), 2026-11 that of the run through 2026-11-14.

tests/scenarios/wallets (figures in tests/e2e/test_wallets_and_payments.py), billed through
2026-11-03, gives the credits: sold, consumed, voided, expired and outstanding per wallet.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO, bill_scenario, run_meterhouse

SCENARIO = REPO / "tests" / "scenarios" / "analytics"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("analytics")
    shutil.copytree(SCENARIO / "events", work / "events")
    run_meterhouse(SCENARIO / "catalog", work / "events", work, "2026-12-02")
    return work


@pytest.fixture(scope="module")
def mid_november(tmp_path_factory):
    """The analytics scenario billed through 2026-11-14 (November still open): its work folder."""
    return bill_scenario(tmp_path_factory, "analytics", "2026-11-14").parent


@pytest.fixture(scope="module")
def wallets(wallets_billed):
    """tests/scenarios/wallets billed through 2026-11-03 with its payments file (one run, shared with
    test_wallets_and_payments)."""
    return wallets_billed


def _query(work, sql):
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_revenue_by_month_model_type_and_customer(work):
    rows = _query(work, """
        select revenue_month::varchar, external_customer_id, fee_type, model, token_type, amount_cents, taxes_amount_cents
        from marts.fct_revenue_monthly order by all""")
    assert rows == [
        ("2026-11-01", "alpha", "charge", "large", "input", 400, 40),
        ("2026-11-01", "alpha", "charge", "small", "input", 200, 20),
        ("2026-11-01", "alpha", "charge", "small", "output", 300, 30),
        ("2026-11-01", "alpha", "subscription", "(subscription)", "(subscription)", 1000, 100),
        ("2026-11-01", "beta", "charge", "large", "input", 1200, 120),
        ("2026-11-01", "beta", "charge", "large", "output", 1200, 120),
        ("2026-11-01", "beta", "subscription", "(subscription)", "(subscription)", 1000, 100),
        ("2026-12-01", "alpha", "charge", "large", "output", 1200, 120),
        ("2026-12-01", "alpha", "charge", "small", "input", 400, 40),
        ("2026-12-01", "alpha", "subscription", "(subscription)", "(subscription)", 1000, 100),
        ("2026-12-01", "beta", "charge", "large", "input", 1200, 120),
        ("2026-12-01", "beta", "charge", "large", "output", 2400, 240),
        ("2026-12-01", "beta", "subscription", "(subscription)", "(subscription)", 1000, 100),
    ]
    daily = _query(work, """select revenue_date::varchar, sum(amount_cents) from marts.fct_revenue_daily group by 1 order by 1""")
    assert daily == [("2026-11-01", 1900 + 3400), ("2026-12-01", 2600 + 4600)]


def test_gross_revenue_invoiced_usage_and_mrr_as_lago_defines_them(work):
    assert _query(work, """select month::varchar, sum(amount_cents), sum(invoices_count) from marts.fct_gross_revenue
                           group by 1 order by 1""") == [
        ("2026-10-01", 500, 1), ("2026-11-01", 1590 + 3740, 2), ("2026-12-01", 2860 + 5060, 2)]
    assert _query(work, "select month::varchar, code, amount_cents from marts.fct_invoiced_usage order by 1") == [
        ("2026-11-01", "tokens", 3300), ("2026-12-01", "tokens", 5200)]
    assert _query(work, """select month::varchar, external_customer_id, amount_cents, amount_excluding_taxes_cents
                           from marts.fct_mrr order by all""") == [
        ("2026-11-01", "alpha", 1100, 1000), ("2026-11-01", "beta", 1100, 1000),
        ("2026-12-01", "alpha", 1100, 1000), ("2026-12-01", "beta", 1100, 1000)]


def test_top_customers_and_usage_growth(work):
    assert _query(work, """select month::varchar, external_customer_id, revenue_cents, usage_revenue_cents, gross_revenue_cents,
                                  revenue_rank, share_of_month_revenue::varchar
                           from marts.fct_top_customers order by month, revenue_rank""") == [
        ("2026-11-01", "beta", 3400, 2400, 3740, 1, "0.641509"),
        ("2026-11-01", "alpha", 1900, 900, 1590, 2, "0.358491"),
        ("2026-12-01", "beta", 4600, 3600, 5060, 1, "0.638889"),
        ("2026-12-01", "alpha", 2600, 1600, 2860, 2, "0.361111"),
    ]
    # billed through 2026-12-02: November is complete (Dec 2 >= Nov 30)
    assert _query(work, """select month::varchar, model, token_type, units::bigint, previous_month_units::bigint,
                                  growth_rate::varchar, is_month_complete
                           from marts.fct_usage_growth where month = date '2026-11-01' order by all""") == [
        ("2026-11-01", "large", "input", 3_000_000, 4_000_000, "-0.250000", True),
        ("2026-11-01", "large", "output", 3_000_000, 1_000_000, "2.000000", True),
        ("2026-11-01", "small", "input", 4_000_000, 2_000_000, "1.000000", True),
        ("2026-11-01", "small", "output", 0, 1_000_000, "-1.000000", True),
    ]


def test_a_month_still_open_has_no_growth(mid_november):
    """Billed through 2026-11-14: October is complete, November is not; November's tokens so far are
    shown against October's, without a change or a growth rate."""
    assert _query(mid_november, """select month::varchar, model, token_type, units::bigint, previous_month_units::bigint,
                                          units_change, growth_rate, is_month_complete
                                   from marts.fct_usage_growth order by all""") == [
        ("2026-10-01", "large", "input", 4_000_000, None, None, None, True),
        ("2026-10-01", "large", "output", 1_000_000, None, None, None, True),
        ("2026-10-01", "small", "input", 2_000_000, None, None, None, True),
        ("2026-10-01", "small", "output", 1_000_000, None, None, None, True),
        ("2026-11-01", "large", "input", 3_000_000, 4_000_000, None, None, False),
        ("2026-11-01", "large", "output", 3_000_000, 1_000_000, None, None, False),
        ("2026-11-01", "small", "input", 4_000_000, 2_000_000, None, None, False),
        ("2026-11-01", "small", "output", 0, 1_000_000, None, None, False),
    ]


def test_credits_of_the_analytics_scenario(work):
    assert _query(work, """select month::varchar, wallet_key, paid_credits_opening_cents, paid_credits_sold_cents,
                                  paid_credits_consumed_cents, paid_credits_outstanding_cents
                           from marts.fct_prepaid_credits_monthly order by 1""") == [
        ("2026-10-01", "alpha/main", 0, 500, 0, 500),
        ("2026-11-01", "alpha/main", 500, 0, 500, 0),
        ("2026-12-01", "alpha/main", 0, 0, 0, 0),
    ]


def test_prepaid_credits_sold_consumed_expired_and_outstanding(wallets):
    """From the wallets scenario's ledger: October sales (threshold 10 + 20, target 10 + 46, priority
    20 + 10 paid), grants (interval 10, promo 5, trial 50), the trial's 20 voided and its 30 expired
    on Oct 20; interval_co's 15 paid credits, invoiced Nov 1, are pending until paid on Nov 2."""
    rows = _query(wallets, """
        select month::varchar, wallet_key, paid_credits_sold_cents, paid_credits_consumed_cents,
               paid_credits_outstanding_cents, granted_credits_cents, granted_credits_consumed_cents,
               granted_credits_voided_cents, granted_credits_expired_cents, granted_credits_outstanding_cents
        from marts.fct_prepaid_credits_monthly order by 1, 2""")
    assert rows == [
        ("2026-10-01", "expiry_co/trial", 0, 0, 0, 5000, 0, 2000, 3000, 0),
        ("2026-10-01", "interval_co/main", 0, 0, 0, 1000, 0, 0, 0, 1000),
        ("2026-10-01", "priority_co/main", 3000, 0, 3000, 0, 0, 0, 0, 0),
        ("2026-10-01", "priority_co/promo", 0, 0, 0, 500, 0, 0, 0, 500),
        ("2026-10-01", "target_co/main", 5600, 0, 5600, 0, 0, 0, 0, 0),
        ("2026-10-01", "threshold_co/main", 3000, 0, 3000, 0, 0, 0, 0, 0),
        ("2026-11-01", "expiry_co/trial", 0, 0, 0, 0, 0, 0, 0, 0),
        ("2026-11-01", "interval_co/main", 1500, 200, 1300, 0, 1000, 0, 0, 0),
        ("2026-11-01", "priority_co/main", 0, 700, 2300, 0, 0, 0, 0, 0),
        ("2026-11-01", "priority_co/promo", 0, 0, 0, 0, 500, 0, 0, 0),
        ("2026-11-01", "target_co/main", 0, 600, 5000, 0, 0, 0, 0, 0),
        ("2026-11-01", "threshold_co/main", 0, 800, 2200, 0, 0, 0, 0, 0),
    ]
    # The liability at the billing date: 13 + 23 + 50 + 22 paid credits, the same as billing.wallet_balances.
    assert _query(wallets, """select sum(paid_balance_cents) from marts.fct_wallet_balances_daily
                              where balance_date = date '2026-11-03'""") == [(1300 + 2300 + 5000 + 2200,)]
    assert _query(wallets, """select balance_date::varchar, pending_paid_cents, paid_balance_cents, granted_balance_cents
                              from marts.fct_wallet_balances_daily where wallet_key = 'interval_co/main'
                              and balance_date >= date '2026-10-31' order by 1""") == [
        ("2026-10-31", 0, 0, 1000), ("2026-11-01", 1500, 0, 1000), ("2026-11-02", 0, 1300, 0), ("2026-11-03", 0, 1300, 0)]


def test_the_revenue_report_is_written_with_the_scenario_figures(work):
    page = (work / "out" / "reports" / "revenue.html").read_text(encoding="utf-8")
    assert "<svg" in page and "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for figure in ("53.30 USD", "79.20 USD", "33.00 USD", "52.00 USD", "22.00 USD", "80.00 USD", "45.00 USD",
                   "5.00 USD", "+100.0%", "-25.0%", "+200.0%"):
        assert figure in page, figure
    top = page[page.index("Top customers"):]
    assert top.index("beta") < top.index("alpha")  # 80.00 before 45.00
    # December, issued Dec 1 and billed through Dec 2, is still open; November is complete
    assert "<tr><td>2026-12 (incomplete, through 2026-12-02)</td><td>79.20 USD</td><td>2</td></tr>" in page
    assert "<tr><td>2026-11</td><td>53.30 USD</td><td>2</td></tr>" in page
    assert "Growth needs" not in page


def test_the_revenue_report_marks_the_open_month_and_gives_it_no_growth(mid_november):
    page = (mid_november / "out" / "reports" / "revenue.html").read_text(encoding="utf-8")
    assert "<p>2026-11 is still open (billed through 2026-11-14)" in page
    assert "<tr><td>2026-10</td><td>5.00 USD</td><td>1</td></tr>" in page
    assert "<tr><td>2026-11 (incomplete, through 2026-11-14)</td><td>53.30 USD</td><td>2</td></tr>" in page
    growth = page[page.index("<h2>Usage growth</h2>"):]
    assert "Growth needs two complete months; complete so far: 2026-10 (billing through 2026-11-14; events loaded from 2026-10-10)." in growth
    assert ("<tr><td>2026-11 (incomplete, through 2026-11-14)</td><td>small input</td><td>4,000,000</td><td>2,000,000</td>"
            "<td>not computed: month incomplete</td></tr>") in growth
    assert "%" not in growth


def _simulate(work, plan, period):
    out = work / f"sim_{period}.csv"
    result = subprocess.run(
        [sys.executable, "-m", "dagster_project.cli", "simulate", "--plan", str(SCENARIO / "plans" / plan),
         "--period", period, "--warehouse", str(work / "warehouse.duckdb"), "--catalog", str(SCENARIO / "catalog"),
         "--out", str(out)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return out.read_text().splitlines()


def test_simulation_reprices_a_past_month_without_touching_the_warehouse(work):
    before = hashlib.sha256((work / "warehouse.duckdb").read_bytes()).hexdigest()
    header = "period,external_customer_id,currency,subscriptions,old_plan_codes,new_plan_code,old_amount_cents,new_amount_cents,difference_cents"
    assert _simulate(work, "pro_repriced.json", "2026-11") == [
        header, "2026-11,alpha,USD,s_alpha,pro,pro,2600,3300,700", "2026-11,beta,USD,s_beta,pro,pro,4600,4400,-200"]
    assert _simulate(work, "flat_per_model.json", "2026-10") == [
        header, "2026-10,alpha,USD,s_alpha,pro,flat_per_model,1900,950,-950",
        "2026-10,beta,USD,s_beta,pro,flat_per_model,3400,2000,-1400"]
    assert hashlib.sha256((work / "warehouse.duckdb").read_bytes()).hexdigest() == before


def test_dbt_docs_generate(work, tmp_path):
    """Every model documented, `dbt docs generate` works on a billed warehouse."""
    env = {**os.environ, "METERHOUSE_WAREHOUSE": str(work / "warehouse.duckdb")}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "docs", "generate",
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        capture_output=True, text=True, cwd=REPO / "dbt_project", env=env)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "target" / "catalog.json").exists()
