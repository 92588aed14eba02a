"""Credit notes, checked and computed as Lago does, with every figure worked out by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dagster_project.billing.credit_notes import (
    CreditNoteRefused, CreditNoteRequest, FeeFacts, InvoiceFacts, customer_of, issue,
)
from dagster_project.billing.taxes import Tax

VAT = Tax("vat20", "VAT", Decimal(20))
REDUCED = Tax("vat5_5", "Reduced VAT", Decimal("5.5"))
DAY = dt.date(2026, 11, 5)

# An October invoice: subscription 10.00, large tokens 4.00, small tokens 3.33, all at 20% VAT.
INVOICE = InvoiceFacts(
    "inv_oct", "MTH-001-001", "subscription", dt.date(2026, 11, 1), "USD",
    (FeeFacts("fee_sub", 1000, (VAT,)), FeeFacts("fee_large", 400, (VAT,)), FeeFacts("fee_small", 333, (VAT,))),
)


def request(items, credit=0, refund=0, **kw) -> CreditNoteRequest:
    return CreditNoteRequest(credit_note_id=kw.pop("id", "cn"), order=0, invoice_ref="MTH-001-001", created_on=DAY,
                             items=tuple(items), credit_amount_cents=credit, refund_amount_cents=refund,
                             where="credit_notes.json, body 1 (credit_note 'MTH-001-001')", **kw)


def refused(*args, **kwargs) -> list[str]:
    with pytest.raises(CreditNoteRefused) as excinfo:
        issue(*args, **kwargs)
    return excinfo.value.problems


def test_a_whole_fee_is_credited_with_its_tax():
    # 400 + 20% of 400 = 80 -> 480
    note = issue(request([("fee_large", 400)], credit=480), INVOICE, [], 0, DAY)
    assert (note.sub_total_excluding_taxes_amount_cents, note.taxes_amount_cents, note.total_amount_cents,
            note.credit_amount_cents, note.refund_amount_cents) == (400, 80, 480, 480, 0)
    assert note.number == "MTH-001-001-CN001"
    assert [(t.tax.code, t.base_amount_cents, t.amount_cents) for t in note.applied_taxes] == [("vat20", 400, 80)]
    assert note.taxes_rate == Decimal("20.00000")


def test_a_total_one_cent_off_is_brought_back_to_items_plus_taxes_half_up():
    # 333 * 20% = 66.6 -> 67 (half-up); items + taxes = 400. Lago accepts 399 or 401 and adjusts to 400.
    for given in (399, 400, 401):
        note = issue(request([("fee_small", 333)], credit=given), INVOICE, [], 0, DAY)
        assert (note.taxes_amount_cents, note.total_amount_cents, note.credit_amount_cents) == (67, 400, 400)


def test_a_total_two_cents_off_is_refused_with_the_expected_figure():
    assert refused(request([("fee_small", 333)], credit=398), INVOICE, [], 0, DAY) == [
        "credit_notes.json, body 1 (credit_note 'MTH-001-001'), field credit_amount_cents: credit_amount_cents + "
        "refund_amount_cents = 398 does not match the items: 333 + taxes 67 = 400 cents"
    ]


def test_each_tax_of_a_fee_is_credited_on_its_own_base():
    # one fee of 10.00 under VAT 20% and a 5.5% tax: 200 + 55 = 255 of taxes, 1,255 in all; rate 25.5
    invoice = InvoiceFacts("inv", "MTH-001-001", "subscription", DAY, "USD", (FeeFacts("fee", 1000, (VAT, REDUCED)),))
    note = issue(request([("fee", 1000)], credit=1255), invoice, [], 0, DAY)
    assert [(t.tax.code, t.amount_cents) for t in note.applied_taxes] == [("vat20", 200), ("vat5_5", 55)]
    assert (note.taxes_amount_cents, note.total_amount_cents, note.taxes_rate) == (255, 1255, Decimal("25.50000"))


def test_the_tax_rate_is_weighted_by_the_items_each_tax_applies_to():
    # 300 taxed at 20% and 100 untaxed: 60 of tax on 400 of items, a rate of 20 * 300/400 = 15
    invoice = InvoiceFacts("inv", "MTH-001-001", "subscription", DAY, "USD",
                           (FeeFacts("taxed", 300, (VAT,)), FeeFacts("free", 100, ())))
    note = issue(request([("taxed", 300), ("free", 100)], credit=460), invoice, [], 0, DAY)
    assert (note.taxes_amount_cents, note.total_amount_cents, note.taxes_rate) == (60, 460, Decimal("15.00000"))


def test_an_item_larger_than_what_is_left_of_its_fee_is_refused():
    first = issue(request([("fee_large", 300)], credit=360), INVOICE, [], 0, DAY)
    # 400 - 300 credited = 100 left
    assert refused(request([("fee_large", 150)], credit=180, id="cn2"), INVOICE, [first], 0, DAY) == [
        "credit_notes.json, body 1 (credit_note 'MTH-001-001'), field items.0.amount_cents: 150 is more than the 100 "
        "cents left to credit on this fee (fee 400 cents, already credited 300)"
    ]
    second = issue(request([("fee_large", 100)], credit=120, id="cn2"), INVOICE, [first], 0, DAY)
    assert second.number == "MTH-001-001-CN002"


def test_a_credit_larger_than_the_invoice_is_refused():
    # items of 400 + 80 tax = 480 cannot carry a credit of 5,000
    problems = refused(request([("fee_large", 400)], credit=5000), INVOICE, [], 0, DAY)
    assert any("= 5000 does not match the items: 400 + taxes 80 = 480 cents" in p for p in problems)


def test_the_creditable_amount_is_the_fees_with_taxes_less_what_was_credited():
    # fees 1,733 + taxes 20% of 1,733 = 346.6 -> 347: 2,080 creditable. After 1,680 credited, 400 are left.
    assert INVOICE.fee_total_amount_cents == 2080
    first = issue(request([("fee_sub", 1000), ("fee_large", 400)], credit=1680), INVOICE, [], 0, DAY)
    second = issue(request([("fee_small", 333)], credit=400, id="cn2"), INVOICE, [first], 0, DAY)
    assert second.credit_amount_cents == 400  # exactly what was left


def test_a_refund_needs_a_payment_and_is_never_more_than_was_paid():
    assert refused(request([("fee_large", 400)], refund=480), INVOICE, [], 0, DAY) == [
        "credit_notes.json, body 1 (credit_note 'MTH-001-001'), field refund_amount_cents: invoice MTH-001-001 has no "
        "payment to refund (nothing collected by 2026-11-05)"
    ]
    assert refused(request([("fee_large", 400)], refund=480), INVOICE, [], 300, DAY)[0].endswith(
        "480 is more than the 300 cents paid and not yet refunded on invoice MTH-001-001")
    note = issue(request([("fee_large", 400)], credit=180, refund=300), INVOICE, [], 300, DAY)
    assert (note.credit_amount_cents, note.refund_amount_cents, note.total_amount_cents) == (180, 300, 480)


def test_a_credit_note_on_nothing_or_on_a_prepaid_credit_invoice_is_refused():
    assert "no finalized invoice 'MTH-001-001' on 2026-11-05" in refused(request([("x", 1)], credit=1), None, [], 0, DAY)[0]
    credit_invoice = InvoiceFacts("inv", "MTH-001-002", "credit", DAY, "USD", ())
    assert "credit notes on prepaid-credit invoices are not supported yet" in refused(
        request([("x", 1)], credit=1), credit_invoice, [], 0, DAY)[0]


def test_an_unknown_fee_and_a_fee_credited_twice_are_named():
    problems = refused(request([("nope", 1), ("fee_large", 100), ("fee_large", 100)], credit=240), INVOICE, [], 0, DAY)
    assert problems == [
        "credit_notes.json, body 1 (credit_note 'MTH-001-001'), field items.0.fee_id: 'nope' is not a fee of invoice MTH-001-001",
        "credit_notes.json, body 1 (credit_note 'MTH-001-001'), field items.2.fee_id: fee 'fee_large' is credited twice "
        "in this credit note",
    ]


def test_a_zero_credit_note_is_refused():
    assert any("must be above 0" in p for p in refused(request([("fee_large", 0)]), INVOICE, [], 0, DAY))


def test_a_recorded_number_is_kept():
    note = issue(request([("fee_large", 400)], credit=480), INVOICE, [], 0, DAY, sequential_id=3)
    assert note.number == "MTH-001-001-CN003"


def test_the_customer_of_a_credit_note_is_found_by_invoice_id_or_by_number():
    assert customer_of("inv_oct", {"inv_oct": "cust_a"}, {}, "MTH") == "cust_a"
    assert customer_of("MTH-002-014", {}, {2: "cust_b"}, "MTH") == "cust_b"
    assert customer_of("XYZ-002-014", {}, {2: "cust_b"}, "MTH") is None
    assert customer_of("MTH-002", {}, {2: "cust_b"}, "MTH") is None


# Lago's last-note rounding: one fee of 5.00 at 20% VAT (invoice 6.00), credited in three notes.
FIVE = InvoiceFacts("inv", "MTH-001-001", "subscription", dt.date(2026, 11, 1), "USD", (FeeFacts("fee", 500, (VAT,)),))


def test_the_note_that_credits_the_rest_takes_back_the_rounding_of_the_earlier_ones():
    # 333 -> 66.6 -> 67 (4.00); 33 -> 6.6 -> 7 (0.40); the last 134 -> 26.8, less the 0.4 + 0.4 rounding added
    # before = 26.0 -> 26: 1.60, so that the three notes credit 6.00, the invoice's total, not 6.01
    first = issue(request([("fee", 333)], credit=400, id="a"), FIVE, [], 0, DAY)
    second = issue(request([("fee", 33)], credit=40, id="b"), FIVE, [first], 0, DAY)
    last = issue(request([("fee", 134)], credit=160, id="c"), FIVE, [first, second], 0, DAY)
    assert [(n.taxes_amount_cents, n.total_amount_cents) for n in (first, second, last)] == [(67, 400), (7, 40), (26, 160)]
    assert sum(n.total_amount_cents for n in (first, second, last)) == 600


def test_a_refund_the_rounding_would_raise_above_what_was_paid_is_refused():
    # items 134 + 26.8 -> 27 of tax = 161; a refund of 160 (within the cent) would be brought to 161 > 160 paid
    assert refused(request([("fee", 134)], refund=160), FIVE, [], 160, DAY) == [
        "credit_notes.json, body 1 (credit_note 'MTH-001-001'), field refund_amount_cents: brought to the items plus "
        "their taxes (161 cents), the refund would be 161, more than was paid and not yet refunded on invoice "
        "MTH-001-001: lower the refund and raise the credit"]


def _recorded_note(credit: int, refund: int = 0) -> object:
    """A note recorded by an earlier run on the subscription fee, with the amounts it was issued with."""
    note = issue(request([("fee_sub", 1000)], credit=1200, id="old"), INVOICE, [], 0, DAY)
    from dataclasses import replace
    return replace(note, credit_amount_cents=credit, refund_amount_cents=refund)


def test_the_credit_is_held_to_what_earlier_notes_left_creditable():
    # 2,080 creditable (fees 1,733 + 347 of taxes); an earlier note credited 2,000 of it: 80 left, so 4.80 is refused
    problems = refused(request([("fee_large", 400)], credit=480), INVOICE, [_recorded_note(2000)], 0, DAY)
    assert problems[0] == ("credit_notes.json, body 1 (credit_note 'MTH-001-001'), field credit_amount_cents: 480 is more "
                           "than the invoice's creditable amount (80 cents: fees with taxes 2080, credited before 2000)")


def test_the_total_is_held_to_what_earlier_notes_left_of_the_invoice():
    # an earlier note of 1,900 refunded: 2,080 - 1,900 = 180 left of the invoice, so a total of 480 is refused
    problems = refused(request([("fee_large", 400)], refund=480), INVOICE, [_recorded_note(0, 1900)], 5000, DAY)
    assert problems == ["credit_notes.json, body 1 (credit_note 'MTH-001-001'), field credit_amount_cents: the credit "
                        "note's total 480 is more than the 180 cents of invoice MTH-001-001 not yet covered by credit notes"]


def test_a_new_note_is_numbered_after_every_number_issued_on_its_invoice():
    from dagster_project.billing.credit_notes import next_sequence

    recorded = {"cn_a": ("inv", 1), "cn_b": ("inv", 2), "cn_c": ("other", 7)}
    assert next_sequence("inv", [], recorded) == 3  # filed before the recorded ones in the replay: still after them
    assert next_sequence("fresh", [], recorded) == 1


# --- on an invoice with coupons: Lago's coupons adjustment (CreditNotes::ApplyTaxesService) -----------
# The coupons scenario's MTH-001-002: 20.00 subscription, 8.00 tokens, 0.50 calls at 20 % VAT, coupons
# 4.65 spread over the fees in proportion to their amounts (each share as billing.fee_coupons keeps it,
# to 12 decimals: 2000 x 465 / 2850 = 326.315789473684..., 800 x 465 / 2850, 50 x 465 / 2850).
WITH_COUPONS = InvoiceFacts(
    "inv_nov", "MTH-001-001", "subscription", dt.date(2026, 12, 1), "USD",
    (FeeFacts("fee_sub", 2000, (VAT,), Decimal("326.315789473684")),
     FeeFacts("fee_tokens", 800, (VAT,), Decimal("130.526315789474")),
     FeeFacts("fee_calls", 50, (VAT,), Decimal("8.157894736843"))),
    coupons_amount_cents=465,
)


def test_a_fee_credited_whole_gives_back_its_share_of_the_coupons():
    # 800 less its share 130.526315789474 = 669.473684210526 -> sub-total 669; VAT 20 % of that
    # = 133.894736842105... -> 134; total half-up(669.4736... + 133.8947...) = half-up(803.368...) = 803
    note = issue(request([("fee_tokens", 800)], credit=803), WITH_COUPONS, [], 0, DAY)
    assert (note.precise_coupons_adjustment_amount_cents, note.coupons_adjustment_amount_cents,
            note.sub_total_excluding_taxes_amount_cents, note.taxes_amount_cents, note.total_amount_cents) == (
        Decimal("130.526315789474"), 131, 669, 134, 803)
    assert [(t.base_amount_cents, t.amount_cents) for t in note.applied_taxes] == [(669, 134)]


def test_part_of_a_fee_gives_back_the_same_part_of_its_coupons():
    # half the subscription: 326.315789473684 x 1000 / 2000 = 163.157894736842 given back;
    # 1000 - 163.157894736842 = 836.842105263158 -> 837; VAT 167.368421052631... -> 167;
    # total half-up(836.842... + 167.368...) = half-up(1004.2105...) = 1004 = 837 + 167
    note = issue(request([("fee_sub", 1000)], credit=1004), WITH_COUPONS, [], 0, DAY)
    assert (note.precise_coupons_adjustment_amount_cents, note.sub_total_excluding_taxes_amount_cents,
            note.taxes_amount_cents, note.total_amount_cents) == (Decimal("163.157894736842"), 837, 167, 1004)


def test_the_whole_invoice_credited_gives_back_its_sub_total_and_taxes():
    # all three fees: the shares add up to 465.000000000001 -> 465; 2850 - 465.000000000001
    # = 2384.999999999999 -> 2385 (the invoice's sub-total); VAT 476.9999999999998 -> 477 (the
    # invoice's); total 2862, the invoice's total
    note = issue(request([("fee_sub", 2000), ("fee_tokens", 800), ("fee_calls", 50)], credit=2862), WITH_COUPONS, [], 0, DAY)
    assert (note.coupons_adjustment_amount_cents, note.sub_total_excluding_taxes_amount_cents, note.taxes_amount_cents,
            note.total_amount_cents) == (465, 2385, 477, 2862)


def test_a_credit_note_that_ignores_the_coupons_is_refused_with_the_expected_figure():
    # 800 + 20 % = 960 is what the fee would give back without coupons: 803 is expected
    assert refused(request([("fee_tokens", 800)], credit=960), WITH_COUPONS, [], 0, DAY) == [
        "credit_notes.json, body 1 (credit_note 'MTH-001-001'), field credit_amount_cents: credit_amount_cents + "
        "refund_amount_cents = 960 does not match the items: 669 + taxes 134 = 803 cents"
    ]


def test_each_tax_applies_to_its_items_less_their_coupons_and_weights_the_rate():
    # A 10 % coupon of 2.00 over a 10.00 fee at 20 % VAT and a 10.00 fee at 5.5 %: 1.00 of each.
    # Half the first (5.00, coupons 0.50) and all the second (10.00, coupons 1.00): sub-total
    # 15.00 - 1.50 = 13.50; VAT 20 % of 4.50 = 0.90; reduced 5.5 % of 9.00 = 0.495 -> 0.50; taxes
    # 0.90 + 0.495 = 1.395 -> 1.40; total half-up(13.50 + 1.395) = 14.90 (= 13.50 + 1.40); rate
    # 20 x 4.50 / 13.50 + 5.5 x 9.00 / 13.50 = 6.6666... + 3.6666... = 10.33333
    invoice = InvoiceFacts("inv", "MTH-001-001", "subscription", DAY, "USD",
                           (FeeFacts("fee_a", 1000, (VAT,), Decimal(100)), FeeFacts("fee_b", 1000, (REDUCED,), Decimal(100))),
                           coupons_amount_cents=200)
    note = issue(request([("fee_a", 500), ("fee_b", 1000)], credit=1490), invoice, [], 0, DAY)
    assert [(t.tax.code, t.base_amount_cents, t.amount_cents) for t in note.applied_taxes] == [
        ("vat20", 450, 90), ("vat5_5", 900, 50)]
    assert (note.sub_total_excluding_taxes_amount_cents, note.taxes_amount_cents, note.total_amount_cents,
            note.coupons_adjustment_amount_cents, note.taxes_rate) == (1350, 140, 1490, 150, Decimal("10.33333"))


def test_a_fee_of_nothing_has_no_coupons_to_give_back():
    assert FeeFacts("fee_zero", 0, (VAT,), Decimal(0)).coupons_share(0) == 0


def test_the_coupons_adjustment_is_kept_to_twelve_decimals_half_up():
    # a third of a 3.00 fee whose share is 1.00: 100 x 1 / 3 = 33.3333... -> 33.333333333333 (the
    # scale billing.credit_notes keeps); sub-total 100 - 33.333333333333 = 66.666666666667 -> 67
    invoice = InvoiceFacts("inv", "MTH-001-001", "subscription", DAY, "USD",
                           (FeeFacts("fee", 300, (), Decimal(100)),), coupons_amount_cents=100)
    note = issue(request([("fee", 100)], credit=67), invoice, [], 0, DAY)
    assert (note.precise_coupons_adjustment_amount_cents, note.sub_total_excluding_taxes_amount_cents,
            note.total_amount_cents) == (Decimal("33.333333333333"), 67, 67)
