"""Coupons (billing/coupons.py): what each takes off an invoice, in Lago's order, and what is left of it.

Every figure is worked out by hand in the test (amounts in cents)."""

import datetime as dt
from decimal import Decimal

from dagster_project.billing.coupons import (
    AppliedCoupon, CouponFee, CouponInvoice, apply_to_invoice, coupon_amount, fee_coupon_amounts, initial_state,
    replay_coupons,
)
from dagster_project.billing.taxes import Tax, invoice_taxes

OCT_1, NOV_1, DEC_1, JAN_1 = dt.date(2026, 10, 1), dt.date(2026, 11, 1), dt.date(2026, 12, 1), dt.date(2027, 1, 1)


def coupon(id_="c1", kind="fixed_amount", frequency="once", amount=None, rate=None, duration=None, on=OCT_1, order=0,
           plans=(), metrics=(), customer="acme"):
    return AppliedCoupon(id_, customer, id_, kind, frequency, on, order, amount_cents=amount,
                         currency="USD" if kind == "fixed_amount" else None,
                         percentage_rate=Decimal(rate) if rate is not None else None, frequency_duration=duration,
                         plan_codes=tuple(plans), billable_metric_codes=tuple(metrics))


def fee(fee_id, cents, plan="pro", metric=None):
    return CouponFee(fee_id, cents, plan, metric)


def invoice(invoice_id, on, *fees, customer="acme", currency="USD"):
    return CouponInvoice(invoice_id, customer, currency, on, tuple(fees))


def test_a_fixed_coupon_smaller_than_the_invoice_takes_its_amount_once():
    # 50.00 off a 120.00 invoice: 50.00; the invoice is left with 70.00 and the coupon is used up.
    c = coupon(amount=5000)
    credits, states = replay_coupons([invoice("i1", NOV_1, fee("f1", 12000)), invoice("i2", DEC_1, fee("f2", 12000))], [c])
    assert [(k.invoice_id, k.amount_cents) for k in credits] == [("i1", 5000)]
    assert states["c1"].amount_cents_remaining == 0 and states["c1"].terminated_on == NOV_1


def test_a_fixed_coupon_larger_than_the_invoice_carries_its_remainder_to_the_next_invoices():
    # 100.00 against 30.00, then 45.00, then 40.00: 30.00 (70.00 left), 45.00 (25.00 left), 25.00 (used up).
    c = coupon(amount=10000)
    credits, states = replay_coupons([invoice("i1", NOV_1, fee("f1", 3000)), invoice("i2", DEC_1, fee("f2", 4500)),
                                      invoice("i3", JAN_1, fee("f3", 4000))], [c])
    assert [k.amount_cents for k in credits] == [3000, 4500, 2500]
    assert states["c1"].amount_cents_remaining == 0 and states["c1"].terminated_on == JAN_1


def test_a_fixed_coupon_still_active_shows_what_is_left_of_it():
    # 100.00 against one 30.00 invoice: 70.00 left, still active
    _, states = replay_coupons([invoice("i1", NOV_1, fee("f1", 3000))], [coupon(amount=10000)])
    assert states["c1"].amount_cents_remaining == 7000 and states["c1"].is_active


def test_a_percentage_is_rounded_half_up_to_the_cent():
    # 12.5% of 10.05 = 1.25625 -> 1.26; 10% of 0.05 = 0.005 -> 0.01 (half-up, not to even)
    assert coupon_amount(coupon(kind="percentage", rate="12.5"), initial_state(coupon(kind="percentage", rate="12.5")), 1005) == 126
    assert coupon_amount(coupon(kind="percentage", rate="10"), initial_state(coupon(kind="percentage", rate="10")), 5) == 1


def test_a_percentage_coupon_once_applies_to_one_invoice_only():
    # 20% of 80.00 = 16.00 on the first invoice; nothing on the next
    c = coupon(kind="percentage", rate="20")
    credits, states = replay_coupons([invoice("i1", NOV_1, fee("f1", 8000)), invoice("i2", DEC_1, fee("f2", 8000))], [c])
    assert [(k.invoice_id, k.amount_cents) for k in credits] == [("i1", 1600)]
    assert states["c1"].terminated_on == NOV_1


def test_a_recurring_coupon_stops_when_its_frequency_duration_runs_out():
    # 10.00 off for 2 invoices: 10.00, 10.00, then nothing; on a 6.00 invoice only 6.00 (no carry-over when recurring)
    c = coupon(amount=1000, frequency="recurring", duration=2)
    credits, states = replay_coupons([invoice("i1", NOV_1, fee("f1", 600)), invoice("i2", DEC_1, fee("f2", 5000)),
                                      invoice("i3", JAN_1, fee("f3", 5000))], [c])
    assert [(k.invoice_id, k.amount_cents) for k in credits] == [("i1", 600), ("i2", 1000)]
    assert states["c1"].frequency_duration_remaining == 0 and states["c1"].terminated_on == DEC_1


def test_a_forever_coupon_applies_to_every_invoice():
    # 15% forever of 40.00, 60.00 and 33.33: 6.00, 9.00, 4.9995 -> 5.00
    c = coupon(kind="percentage", rate="15", frequency="forever")
    credits, states = replay_coupons([invoice("i1", NOV_1, fee("f1", 4000)), invoice("i2", DEC_1, fee("f2", 6000)),
                                      invoice("i3", JAN_1, fee("f3", 3333))], [c])
    assert [k.amount_cents for k in credits] == [600, 900, 500]
    assert states["c1"].is_active


def test_a_coupon_applies_to_invoices_issued_on_or_after_the_day_it_was_applied():
    # applied on Nov 15: the Nov 1 invoice takes nothing, the Dec 1 one takes 10.00
    c = coupon(amount=1000, on=dt.date(2026, 11, 15))
    credits, _ = replay_coupons([invoice("i1", NOV_1, fee("f1", 5000)), invoice("i2", DEC_1, fee("f2", 5000))], [c])
    assert [(k.invoice_id, k.amount_cents) for k in credits] == [("i2", 1000)]


def test_a_coupon_limited_to_a_plan_reduces_only_that_plans_fees():
    # the invoice of plan 'basic' takes nothing; the 'pro' one takes 20.00 of its 25.00
    c = coupon(amount=2000, frequency="forever", plans=["pro"])
    credits, _ = replay_coupons([invoice("i1", NOV_1, fee("f1", 9000, plan="basic")),
                                 invoice("i2", NOV_1, fee("f2", 2500, plan="pro"))], [c])
    assert [(k.invoice_id, k.amount_cents) for k in credits] == [("i2", 2000)]


def test_a_coupon_limited_to_a_metric_reduces_only_that_metrics_fees():
    # 50% on the 'tokens' fees only: the fee of 30.00 tokens takes 15.00, the subscription fee of 100.00 nothing
    c = coupon(kind="percentage", rate="50", metrics=["tokens"])
    credits, _ = apply_to_invoice("i1", "USD", NOV_1, [fee("sub", 10000), fee("tok", 3000, metric="tokens")], [c],
                                  {"c1": initial_state(c)})
    assert credits[0].amount_cents == 1500 and credits[0].fee_shares == {"tok": Decimal(1500)}


def test_two_coupons_apply_in_the_order_they_were_applied_the_second_on_what_the_first_left():
    # fees 100.00: first (Oct 1) 30.00 fixed -> 70.00 left; second (Oct 2) 10% of 70.00 = 7.00 -> 63.00
    first = coupon("first", amount=3000, on=OCT_1, order=1)
    second = coupon("second", kind="percentage", rate="10", on=dt.date(2026, 10, 2), order=0)
    credits, _ = replay_coupons([invoice("i1", NOV_1, fee("f1", 10000))], [second, first])
    assert [(k.applied_coupon_id, k.amount_cents) for k in credits] == [("first", 3000), ("second", 700)]


def test_a_coupon_limited_to_metrics_comes_before_an_earlier_unlimited_one():
    # Lago: limited to metrics first. 10% on tokens' 50.00 = 5.00; then 20.00 fixed on the 95.00 left
    unlimited = coupon("all", amount=2000, on=OCT_1)
    tokens = coupon("tok", kind="percentage", rate="10", on=dt.date(2026, 10, 20), metrics=["tokens"])
    credits, _ = replay_coupons([invoice("i1", NOV_1, fee("sub", 5000), fee("t", 5000, metric="tokens"))], [unlimited, tokens])
    assert [(k.applied_coupon_id, k.amount_cents) for k in credits] == [("tok", 500), ("all", 2000)]


def test_coupons_stop_once_nothing_is_left_of_the_invoice():
    # 100.00 fixed on a 60.00 invoice takes it all; the forever 10% coupon applied later takes nothing, and keeps going
    big = coupon("big", amount=10000, on=OCT_1)
    pct = coupon("pct", kind="percentage", rate="10", frequency="forever", on=dt.date(2026, 10, 2))
    credits, states = replay_coupons([invoice("i1", NOV_1, fee("f1", 6000))], [big, pct])
    assert [(k.applied_coupon_id, k.amount_cents) for k in credits] == [("big", 6000)]
    assert states["big"].amount_cents_remaining == 4000 and states["pct"].is_active


def test_a_coupon_is_shared_among_fees_in_proportion_and_taxes_apply_to_what_is_left():
    # 30.00 off fees of 60.00 and 40.00: shares 30 x 60/100 = 18.00 and 30 x 40/100 = 12.00. Tax 20% on what
    # is left, 42.00 + 28.00 = 70.00: 14.00 (on the fees alone it would be 20.00): Lago's order, taxes after coupons
    c = coupon(amount=3000)
    credits, _ = apply_to_invoice("i1", "USD", NOV_1, [fee("a", 6000), fee("b", 4000)], [c], {"c1": initial_state(c)})
    shares = fee_coupon_amounts(credits)
    assert shares == {"a": Decimal(1800), "b": Decimal(1200)}
    vat = Tax("vat", "VAT", Decimal(20))
    applied = invoice_taxes([(6000 - shares["a"], (vat,)), (4000 - shares["b"], (vat,))])
    assert (applied[0].fees_amount_cents, applied[0].amount_cents) == (7000, 1400)


def test_uneven_shares_are_kept_exact_and_the_taxes_rounded_once():
    # 1.00 off three fees of 1.00: each share 100 x 100/300 = 33.33...c, kept exact; left 3 x 66.66...c = 200c;
    # 20% of each 66.66...c = 13.33...c, summed 40c and rounded once: 40c (rounding per fee would give 3 x 13c = 39c)
    c = coupon(amount=100)
    credits, _ = apply_to_invoice("i1", "USD", NOV_1, [fee("a", 100), fee("b", 100), fee("c", 100)], [c],
                                  {"c1": initial_state(c)})
    shares = fee_coupon_amounts(credits)
    assert credits[0].amount_cents == 100 and abs(sum(shares.values()) - 100) < Decimal("1e-20")
    vat = Tax("vat", "VAT", Decimal(20))
    applied = invoice_taxes([(100 - s, (vat,)) for s in shares.values()])
    assert (applied[0].fees_amount_cents, applied[0].amount_cents) == (200, 40)


def test_a_fixed_coupon_in_another_currency_takes_nothing():
    c = coupon(amount=1000)
    credits, _ = replay_coupons([invoice("i1", NOV_1, fee("f1", 5000), currency="EUR")], [c])
    assert credits == []


def test_an_invoice_finalized_before_keeps_its_recorded_credits_and_they_count_against_the_coupon():
    # recorded: 40.00 of a 100.00 coupon on i1 (the catalog now would give 50.00): 60.00 left for i2 of 80.00
    c = coupon(amount=10000)
    credits, states = replay_coupons([invoice("i1", NOV_1, fee("f1", 5000)), invoice("i2", DEC_1, fee("f2", 8000))], [c],
                                     recorded={"i1": [("c1", 4000)]})
    assert [(k.invoice_id, k.amount_cents) for k in credits] == [("i1", 4000), ("i2", 6000)]
    assert states["c1"].terminated_on == DEC_1


def test_a_coupon_added_later_never_reduces_an_invoice_finalized_before():
    # i1 was finalized with no coupon recorded: it stays so, though the coupon is dated before it
    credits, states = replay_coupons([invoice("i1", NOV_1, fee("f1", 5000))], [coupon(amount=1000, on=OCT_1)],
                                     recorded={"i1": []})
    assert credits == [] and states["c1"].amount_cents_remaining == 1000


def test_other_customers_coupons_take_nothing():
    credits, _ = replay_coupons([invoice("i1", NOV_1, fee("f1", 5000), customer="globex")], [coupon(amount=1000)])
    assert credits == []
