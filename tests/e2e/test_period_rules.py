"""`meterhouse run` on one subscription per period rule (tests/scenarios/period_rules), UTC
customers, billed through 2026-11-02. Every figure by hand:

- s_adv, 31.00 a month paid in advance from Oct 1: a starting invoice on Oct 1 with October's
  31.00, then October's closing invoice on Nov 1 with November's 31.00 (30 of 30 days).
- s_trial, 31.00 a month in arrears with a 10-day trial from Oct 1: Oct 11-31 is 21 days:
  3100 * 21 / 31 = 2100.
- s_anniv, 30.00 a month on the 15th (anniversary) from Sep 15: Sep 15 - Oct 15, 30.00, Oct 15.
- s_term, 31.00 a month, ending Oct 11 00:00: Oct 1-10 is 10 days: 3100 * 10 / 31 = 1000, on Oct 11.
- s_quarter, 90.00 a quarter from Jul 1: Q3, 90.00, on Oct 1.
- s_yen, 1000 yen a month from Oct 16 (JPY has no minor unit): 1000 * 16 / 31 = 516.13 -> 516,
  and 3 calls at 0.5 yen = 1.5 -> 2 (half-up): 518 yen.
- s_up, small (10.00) from Oct 1, upgraded to big (31.00) on Oct 11: small ends at once, 10 days:
  1000 * 10 / 31 = 322.58 -> 323 on Oct 11; big Oct 11-31, 21 days: 3100 * 21 / 31 = 2100, plus
  the calls of Oct 15 and 16 at 0.50: 2200 on Nov 1. The call of Oct 5 arrived on Oct 20, after the
  small plan's invoice was finalized (Oct 11): late, 0.50 it would have added.
- s_down, big from Oct 1, downgraded to small on Oct 20: big runs to the end of October, 31.00 on
  Nov 1; small starts Nov 1 and has no invoice yet.
"""

import json
import pytest

from tests.conftest import bill_scenario



@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return bill_scenario(tmp_path_factory, "period_rules", "2026-11-02")


def test_each_period_rule_is_invoiced_on_its_day_for_its_amount(out):
    docs = [json.loads(p.read_text())["invoice"] for p in sorted((out / "invoices").glob("*.json"))]
    got = sorted(
        (d["fees"][0]["external_subscription_id"], d["issuing_date"], d["currency"], d["total_amount_cents"])
        for d in docs
    )
    assert got == [
        ("s_adv", "2026-10-01", "USD", 3100),
        ("s_adv", "2026-11-01", "USD", 3100),
        ("s_anniv", "2026-10-15", "USD", 3000),
        ("s_down", "2026-11-01", "USD", 3100),
        ("s_quarter", "2026-10-01", "USD", 9000),
        ("s_term", "2026-10-11", "USD", 1000),
        ("s_trial", "2026-11-01", "USD", 2100),
        ("s_up", "2026-10-11", "USD", 323),
        ("s_up", "2026-11-01", "USD", 2200),
        ("s_yen", "2026-11-01", "JPY", 518),
    ]


def test_the_yen_invoice_rounds_to_whole_yen(out):
    (doc,) = [
        json.loads(p.read_text())["invoice"] for p in (out / "invoices").glob("*.json")
        if json.loads(p.read_text())["invoice"]["currency"] == "JPY"
    ]
    assert sorted((f["item"]["type"], f["amount_cents"], f["precise_amount"]) for f in doc["fees"]) == [
        ("charge", 2, "1.5"),
        ("subscription", 516, "516.129032258065"),  # kept to 12 decimals
    ]


def test_the_upgrade_leaves_one_late_call_reported_not_billed(out):
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["events_late"] == 1
    assert summary["late_amount_cents"] == 50
