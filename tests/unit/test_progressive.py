"""Progressive billing (billing/progressive.py): which thresholds pass on which day, and what each
progressive_billing invoice bills. Every figure is worked out by hand in the test (amounts in cents)."""

import datetime as dt

from dagster_project.billing.progressive import (
    invoiced_usage_cents,
    ongoing_billed_changes,
    ProgressiveInvoice, UsageDay, UsageThreshold, check_thresholds, credit_shares, last_and_next_threshold,
    progressive_invoices,
)

T100 = UsageThreshold(10000, False, "100 USD")
T250 = UsageThreshold(25000, False, "250 USD")
EVERY_50 = UsageThreshold(5000, True, "every 50 USD")
EVERY_30 = UsageThreshold(3000, True)


def oct_(day: int) -> dt.date:
    return dt.date(2026, 10, day)


def days(*currents: int, invoiced: int = 0, period: str = "oct", start: int = 1) -> list[UsageDay]:
    """One UsageDay per day from `start`, with the period's usage so far on each."""
    return [UsageDay(oct_(start + i), period, invoiced, c) for i, c in enumerate(currents)]


def test_a_subscription_without_thresholds_gets_no_progressive_invoice():
    assert progressive_invoices([], days(50000, 90000)) == []


def test_a_fixed_threshold_bills_the_usage_so_far_on_the_day_it_is_crossed():
    # 40.00 on Oct 1 (below 100.00), 120.00 on Oct 2: crossed on Oct 2; the invoice bills the 120.00
    # of usage so far, no earlier progressive invoice to deduct.
    assert progressive_invoices([T100], days(4000, 12000)) == [
        ProgressiveInvoice(oct_(2), "oct", (T100,), fees_cents=12000, credit_cents=0, lifetime_usage_cents=12000)
    ]


def test_two_fixed_thresholds_crossed_in_one_day_make_one_invoice_with_both():
    # 260.00 on the first day passes 100.00 and 250.00: one invoice holding both thresholds (Lago
    # issues one invoice per check). 260.00 - 250.00 = 10.00 < 50.00: the recurring one does not pass.
    [invoice] = progressive_invoices([T250, T100, EVERY_50], days(26000))
    assert invoice.thresholds == (T100, T250)
    assert (invoice.fees_cents, invoice.credit_cents, invoice.billed_cents) == (26000, 0, 26000)


def test_each_invoice_deducts_what_the_period_s_previous_one_billed():
    # 100.00 crossed at 120.00 (Oct 2), 250.00 at 270.00 (Oct 4): the second invoice's fees are the
    # 270.00 so far, less the 120.00 already billed: 150.00.
    invoices = progressive_invoices([T100, T250], days(4000, 12000, 20000, 27000))
    assert [(i.day, i.fees_cents, i.credit_cents, i.billed_cents) for i in invoices] == [
        (oct_(2), 12000, 0, 12000), (oct_(4), 27000, 12000, 15000)]


def test_a_recurring_threshold_passes_at_each_multiple_of_its_amount_once_past_the_fixed_ones():
    # Fixed 100.00, recurring 50.00. Oct 1: 110.00 passes 100.00 (110 - 100 = 10 < 50: not the
    # recurring one). From then on billed = 110.00 >= 100.00, and the recurring one passes when
    # (usage - 110.00) + 110.00 % 50.00 >= 50.00, i.e. (usage - 110) + 10 >= 50: usage >= 150.00.
    # Oct 2 at 149.99: no; Oct 3 at 150.00: yes, billing 150.00 - 110.00 = 40.00.
    # Next: 150.00 % 50.00 = 0, so at 200.00 (Oct 5), not at 199.00 (Oct 4).
    invoices = progressive_invoices([T100, EVERY_50], days(11000, 14999, 15000, 19900, 20000))
    assert [(i.day, i.thresholds, i.fees_cents, i.credit_cents) for i in invoices] == [
        (oct_(1), (T100,), 11000, 0), (oct_(3), (EVERY_50,), 15000, 11000), (oct_(5), (EVERY_50,), 20000, 15000)]


def test_past_the_fixed_thresholds_the_recurring_steps_are_multiples_of_its_amount_not_offsets_from_the_last_fixed():
    # Fixed 100.00, recurring 30.00 (not a divisor of 100.00). 110.00 passes 100.00; then
    # 110.00 % 30.00 = 20.00, so the next step is at 120.00 (a multiple of 30.00), not at 130.00
    # (100.00 + 30.00): (120 - 110) + 20 = 30 >= 30.
    invoices = progressive_invoices([T100, EVERY_30], days(11000, 11999, 12000))
    assert [(i.day, i.thresholds) for i in invoices] == [(oct_(1), (T100,)), (oct_(3), (EVERY_30,))]


def test_a_day_crossing_a_fixed_threshold_and_a_recurring_step_past_it_makes_one_invoice_with_both():
    # Fixed 100.00, recurring 30.00; 135.00 on the first day: 100.00 passes, and 135 - 100 = 35 >= 30,
    # so the recurring one does too.
    [invoice] = progressive_invoices([T100, EVERY_30], days(13500))
    assert invoice.thresholds == (T100, EVERY_30)


def test_a_jump_over_two_recurring_steps_in_one_day_is_one_invoice_and_the_next_step_waits_for_its_multiple():
    # Recurring 50.00 only. Oct 1: 120.00 passes it once (one invoice, 120.00). Then
    # 120.00 % 50.00 = 20.00: the next step is at 150.00: (140 - 120) + 20 = 40 < 50 on Oct 2,
    # (150 - 120) + 20 = 50 on Oct 3, billing 150.00 - 120.00 = 30.00.
    invoices = progressive_invoices([EVERY_50], days(12000, 14000, 15000))
    assert [(i.day, i.thresholds, i.billed_cents) for i in invoices] == [
        (oct_(1), (EVERY_50,), 12000), (oct_(3), (EVERY_50,), 3000)]


def test_a_fixed_threshold_is_crossed_once_in_the_subscription_s_life_not_once_per_period():
    # October's invoice billed 120.00 of charges: in November, invoiced 120.00 >= 100.00, so the
    # 100.00 threshold never passes again, even at 300.00 of November usage.
    november = [UsageDay(dt.date(2026, 11, d), "nov", 12000, c) for d, c in ((1, 5000), (2, 30000))]
    assert progressive_invoices([T100], november) == []


def test_a_recurring_threshold_counts_the_earlier_periods_invoiced_usage():
    # 120.00 invoiced for October; recurring 50.00: 120.00 % 50.00 = 20.00, so November passes it
    # at 30.00 of usage (lifetime 150.00), the first invoice of the period: nothing to deduct.
    november = [UsageDay(dt.date(2026, 11, d), "nov", 12000, c) for d, c in ((1, 2999), (2, 3000))]
    assert progressive_invoices([EVERY_50], november) == [
        ProgressiveInvoice(dt.date(2026, 11, 2), "nov", (EVERY_50,), 3000, 0, 15000)]


def test_usage_below_what_the_period_already_billed_passes_nothing():
    # billed 150.00 so far in the period (a fixed 100.00 crossed at 150.00); the usage then falls to
    # 140.00 (a max_agg metric): actual = 140 - 150 < 0, nothing passes even with a recurring 10.00.
    assert check_thresholds([T100, UsageThreshold(1000, True)], invoiced_cents=0, current_cents=14000,
                            billed_cents=15000) == []


def test_each_fee_takes_the_credit_of_the_previous_invoice_s_fee_of_its_charge_and_filter_at_most_its_own():
    # Previous progressive invoice: small 120.00, large 150.00 (270.00). Period end: small 130.00,
    # large 180.00, medium 5.00 (new): credits 120.00 and 150.00, none on medium: 270.00 in all.
    # Had large fallen to 140.00 (a max_agg), it takes 140.00 only.
    previous = {("tokens", "small"): 12000, ("tokens", "large"): 15000}
    assert credit_shares({("tokens", "small"): 13000, ("tokens", "large"): 18000, ("tokens", "medium"): 500},
                         previous) == {("tokens", "small"): 12000, ("tokens", "large"): 15000}
    assert credit_shares({("tokens", "small"): 13000, ("tokens", "large"): 14000}, previous) == {
        ("tokens", "small"): 12000, ("tokens", "large"): 14000}
    assert credit_shares({("tokens", "small"): 13000}, {}) == {}


def test_the_lifetime_usage_shows_the_last_threshold_reached_and_the_next_one():
    # Fixed 100.00 and 250.00, recurring 50.00. At 120.00: last 100.00, next 250.00. At 330.00:
    # past 250.00 by 80.00 = one step of 50.00: last 300.00, next 350.00. At 40.00: none, next 100.00.
    thresholds = [T250, T100, EVERY_50]
    assert last_and_next_threshold(thresholds, 12000) == (10000, 25000)
    assert last_and_next_threshold(thresholds, 33000) == (30000, 35000)
    assert last_and_next_threshold(thresholds, 4000) == (None, 10000)
    assert last_and_next_threshold([T100], 50000) == (10000, None)
    assert last_and_next_threshold([], 50000) == (None, None)


def test_invoiced_lifetime_usage_counts_the_charge_fees_of_period_end_and_pay_in_advance_invoices_draft_or_finalized():
    fees = [
        ("subscription", "finalized", "charge", 700),      # a period-end invoice's charge fee
        ("subscription", "finalized", "subscription", 2000),  # its subscription fee: not usage
        ("subscription", "finalized", "charge", 120),      # a pay-in-advance charge's invoice (Lago's type: subscription)
        ("subscription", "draft", "charge", 300),          # a draft (in its grace period) counts
        ("subscription", "voided", "charge", 999),         # a voided invoice does not
        ("progressive_billing", "finalized", "charge", 5500),  # still in the current usage, then on the period-end invoice
        ("credit", "finalized", "credit", 10000),
    ]
    # 700 + 120 + 300 = 1,120
    assert invoiced_usage_cents(fees) == 1120


def test_a_pay_in_advance_charge_counts_toward_the_threshold_but_only_the_arrears_charges_are_billed_progressively():
    # Fixed 100.00. Oct 2: arrears usage 60.00 and pay-in-advance usage 30.00 (its own invoices):
    # lifetime 90.00, nothing. Oct 3: arrears 75.00 + advance 30.00 = 105.00 >= 100.00: an invoice
    # of the arrears 75.00 only (Lago's progressive invoice leaves pay-in-advance charges out), the
    # lifetime usage on it 105.00. Oct 4: arrears 80.00 + 30.00 = 110.00; billed = 75.00 + the
    # 30.00 paid in advance = 105.00, past 100.00: nothing passes again (lago-api, counting only the
    # 75.00 as billed, would pass 100.00 again: 100.00 in (75.00, 110.00]; see progressive_invoices).
    days = [UsageDay(oct_(2), "oct", 0, 9000, 6000), UsageDay(oct_(3), "oct", 0, 10500, 7500),
            UsageDay(oct_(4), "oct", 0, 11000, 8000)]
    assert progressive_invoices([T100], days) == [ProgressiveInvoice(oct_(3), "oct", (T100,), 7500, 0, 10500)]
    # Without the pay-in-advance usage (current = arrears: 60.00, 75.00, 80.00) 100.00 is never reached.
    assert progressive_invoices([T100], [UsageDay(d.day, "oct", 0, d.fees_cents) for d in days]) == []


def test_past_the_fixed_thresholds_pay_in_advance_usage_moves_the_recurring_steps_too():
    # Recurring 50.00 only. Oct 2: arrears 40.00 + advance 20.00 = 60.00: billed 0 + 20.00 = 20.00,
    # actual 40.00, invoiced_usage 20.00: 40 + 20 % 50 = 60 >= 50: an invoice of 40.00, lifetime 60.00.
    # Oct 3: arrears 70.00 + advance 25.00 = 95.00: billed 40.00 + 25.00 = 65.00, actual 30.00:
    # 30 + 65 % 50 = 45 < 50: nothing. Oct 4: arrears 80.00 + 25.00 = 105.00: actual 40.00,
    # 40 + 15 = 55 >= 50: an invoice of 80.00 less the 40.00 already billed, lifetime 105.00.
    days = [UsageDay(oct_(2), "oct", 0, 6000, 4000), UsageDay(oct_(3), "oct", 0, 9500, 7000),
            UsageDay(oct_(4), "oct", 0, 10500, 8000)]
    assert progressive_invoices([EVERY_50], days) == [ProgressiveInvoice(oct_(2), "oct", (EVERY_50,), 4000, 0, 6000),
                                                      ProgressiveInvoice(oct_(4), "oct", (EVERY_50,), 8000, 4000, 10500)]


def test_a_progressive_invoice_s_usage_leaves_the_ongoing_usage_from_its_payment_until_the_period_s_invoice():
    # Billed Oct 5 (paid Oct 6): 281 of tokens leave the ongoing usage on Oct 6; the period's invoice
    # is finalized Nov 1, when the whole period's usage leaves it (Nov 2): the 281 come back then,
    # so they are not taken out twice. Oct 31 (paid Nov 1): 270, back on Nov 2 too.
    key = ("charge", "tokens")
    assert ongoing_billed_changes([(oct_(5), dt.date(2026, 11, 1), key, 281),
                                   (oct_(31), dt.date(2026, 11, 1), key, 270)]) == [
        (oct_(6), key, -281), (dt.date(2026, 11, 2), key, 281),
        (dt.date(2026, 11, 1), key, -270), (dt.date(2026, 11, 2), key, 270)]
