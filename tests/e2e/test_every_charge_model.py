"""`meterhouse run` on one plan per charge model, aggregation and period rule; every figure by hand.

Scenario tests/scenarios/every_charge_model, customers in UTC, billed through 2026-11-02:

- sub_a, standard at 0.5: 10 + "5.5" = 15.5 units * 0.5 = 7.75
- sub_b, graduated 0-10 @1 +2 flat, 11-20 @0.5 +1 flat, 21- @0.1: 25 units
  = (10 * 1 + 2) + (10 * 0.5 + 1) + (5 * 0.1) = 12 + 6 + 0.5 = 18.50
- sub_c, volume 0-10 @1, 11- @0.5 +3 flat: 15 units fall in the second tier: 15 * 0.5 + 3 = 10.50
- sub_d, percentage 2% + 0.1 per event, first event and first 100 units free: 1000 + 500 units
  in 2 events: (1500 - 100) * 2 / 100 + (2 - 1) * 0.1 = 28 + 0.1 = 28.10
- sub_e, from 2026-10-16 (16 of October's 31 days billed), every aggregation at 1 per unit:
    count 3 events                               3.00
    max of 4, 9, 2                               9.00
    unique users a, b, a                         2.00
    latest by timestamp (Oct 20: 7, Oct 22: 5, Oct 21: 8)      5.00
    weighted: +31 at Oct 16 00:00 for the whole 16-day window, -31 at Oct 24 00:00 for its last
      8 days (arrived Oct 25): 31 - 31 * 8 / 16 = 15.5         15.50
    sum 2.2 + 1.3 = 3.5, rounded up (ceil, precision 0) to 4   4.00
    subscription fee 10.00 * 16 / 31 = 5.16129... -> 5.16
    count charge minimum 10.00 * 16 / 31 = 5.16 (half-up of 5.1612...) - 3.00 = 2.16 true-up
    plan commitment 100.00 * 16 / 31 = 51.61 - (3 + 9 + 2 + 5 + 15.5 + 4 + 5.16 + 2.16 = 45.82) = 5.79
    total 51.61
- sub_f, weekly from Monday 2026-10-19, 7.00 a week in arrears, standard at 1:
    week of Oct 19: 3 units -> 3.00 + 7.00 = 10.00 (invoiced Oct 26); week of Oct 26: 7.00 (Nov 2)
- sub_g, package of 10 units at 1.00 paid in advance: an invoice per arrival day (see below)
- sub_h, percentage with per-transaction bounds, as lago-api prices them (see below): 2.70
- sub_i, graduated percentage 0-100 at 1% + 0.50 flat, 101- at 0.5%: 250 units
  = 100 * 1% + 0.50 + 150 * 0.5% = 1.00 + 0.50 + 0.75 = 2.25
- sub_j, a recurring sum (see below); sub_k, filters (see below)
- sub_l, 365.00 a year (calendar) from 2025-11-01: 2025's invoice on 2026-01-01 for 61 of 365
  days: 36500 * 61 / 365 = 6100
- sub_m, 181.00 a half-year from 2026-01-01: Jan 1 - Jul 1 is 181 days: 181.00 on Jul 1
"""

import json
import pytest

from tests.conftest import bill_scenario



@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return bill_scenario(tmp_path_factory, "every_charge_model", "2026-11-02")


def invoices(out) -> dict[tuple[str, str], dict]:
    """Invoices by (external subscription id, issuing date)."""
    docs = [json.loads(p.read_text())["invoice"] for p in (out / "invoices").glob("*.json")]
    return {(d["billing_periods"][0]["external_subscription_id"], d["issuing_date"]): d for d in docs}


def test_each_charge_model_totals_as_worked_out_by_hand(out):
    totals = {key: d["total_amount_cents"] for key, d in invoices(out).items()}
    assert totals == {
        ("sub_a", "2026-11-01"): 775,
        ("sub_b", "2026-11-01"): 1850,
        ("sub_c", "2026-11-01"): 1050,
        ("sub_d", "2026-11-01"): 2810,
        ("sub_e", "2026-11-01"): 5161,
        ("sub_f", "2026-10-26"): 1000,
        ("sub_f", "2026-11-02"): 700,
        ("sub_g", "2026-10-20"): 200,
        ("sub_g", "2026-10-25"): 0,
        ("sub_g", "2026-11-01"): 0,
        ("sub_h", "2026-11-01"): 270,
        ("sub_i", "2026-11-01"): 225,
        ("sub_j", "2026-10-01"): 500,
        ("sub_j", "2026-11-01"): 800,
        ("sub_k", "2026-11-01"): 1200,
        ("sub_l", "2026-01-01"): 6100,
        ("sub_m", "2026-07-01"): 18100,
    }


def test_filters_most_specific_all_values_and_the_default_bucket(out):
    # model a matches both filters: the one with fewer values wins (5.00); b only the
    # __ALL_FILTER_VALUES__ one (2 * 2.00); no model: the charge's own price (3 * 1.00)
    fees = invoices(out)[("sub_k", "2026-11-01")]["fees"]
    assert sorted((f["item"]["filter_invoice_display_name"] or "", f["units"], f["amount_cents"]) for f in fees) == [
        ("", "3.0", 300), ("Model A", "1.0", 500), ("a • b • c", "2.0", 400)
    ]


def test_a_recurring_metric_carries_its_usage_into_the_next_period(out):
    # 5 in September, 3 more in October: October bills 5 + 3 = 8
    by_day = invoices(out)
    assert [f["units"] for f in by_day[("sub_j", "2026-10-01")]["fees"]] == ["5.0"]
    assert [f["units"] for f in by_day[("sub_j", "2026-11-01")]["fees"]] == ["8.0"]


def test_a_charge_paid_in_advance_bills_each_event_for_what_it_adds(out):
    # packages of 10 units at 1.00: 4 units -> 1 package (+1.00); 11 -> 2 (+1.00), both on Oct 20;
    # 9 more on Oct 25: 20 units is still 2 packages (+0.00). October's closing invoice bills nothing again.
    by_day = invoices(out)
    assert [(f["units"], f["events_count"], f["amount_cents"]) for f in by_day[("sub_g", "2026-10-20")]["fees"]] == [
        ("11.0", 2, 200)
    ]
    assert [(f["units"], f["amount_cents"]) for f in by_day[("sub_g", "2026-10-25")]["fees"]] == [("9.0", 0)]
    assert by_day[("sub_g", "2026-11-01")]["fees"] == []


def test_percentage_bounds_apply_to_each_paid_transaction(out):
    # 10% + 0.20 a transaction, the first transaction free, each between 0.50 and 3.00. lago-api's
    # per-transaction path frees the first transaction whole (its units and its 0.20, no minimum):
    # 100 -> 0; 2 -> 0.20 + 0.20 = 0.40 raised to 0.50; 20 -> 2.00 + 0.20 = 2.20; total 2.70
    # (before session 15, Meterhouse freed only the first 0.20: 100 -> 10.20 capped to 3.00, 5.70)
    (fee,) = invoices(out)[("sub_h", "2026-11-01")]["fees"]
    assert (fee["units"], fee["events_count"], fee["amount_cents"]) == ("122.0", 3, 270)


def test_every_aggregation_and_minimum_on_the_mid_month_subscription(out):
    invoice = invoices(out)[("sub_e", "2026-11-01")]
    lines = {(f["item"]["type"], f["item"]["name"]): (f["units"], f["amount_cents"]) for f in invoice["fees"]}
    assert lines == {
        ("charge", "Requests"): ("3.0", 300),
        ("charge", "Peak seats"): ("9.0", 900),
        ("charge", "Active users"): ("2.0", 200),
        ("charge", "Current seats"): ("5.0", 500),
        ("charge", "Storage"): ("15.5", 1550),
        ("charge", "GPU hours"): ("4.0", 400),
        ("subscription", "Subscription fee (p_aggregations)"): ("0.516129032258", 516),
        ("charge", "Requests - minimum spend true-up"): ("1.0", 216),
        ("commitment", "Minimum commitment true-up"): ("1.0", 579),
    }
    assert invoice["fees_amount_cents"] == 5161
    assert invoice["issuing_date"] == "2026-11-01"


def test_weekly_periods_are_invoiced_each_monday(out):
    weekly = sorted(
        (d["issuing_date"], d["fees_amount_cents"]) for (sub, _), d in invoices(out).items() if sub == "sub_f"
    )
    assert weekly == [("2026-10-26", 1000), ("2026-11-02", 700)]
