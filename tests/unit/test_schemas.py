"""The pandera schemas refuse priced frames whose money is wrong."""

from decimal import Decimal

import pandera.errors
import polars as pl
import pytest

from dagster_project.billing.schemas import Fees, Invoices


def invoices(**overrides):
    row = {"invoice_id": "i1", "invoice_type": "subscription", "status": "finalized", "number": "MTH-001-001",
           "fees_amount_cents": 1000, "taxes_amount_cents": 0, "prepaid_granted_credit_amount_cents": 100,
           "prepaid_purchased_credit_amount_cents": 800, "credit_notes_amount_cents": 100, "coupons_amount_cents": 0,
           "progressive_billing_credit_amount_cents": 0}
    row.update(overrides)
    return pl.DataFrame([row])


def test_an_invoice_paid_exactly_by_credits_passes():
    assert Invoices.validate(invoices()).height == 1


def test_credits_larger_than_the_invoice_are_refused():
    # 100 granted + 801 purchased + 100 of credit notes = 1,001 > 1,000
    with pytest.raises(pandera.errors.SchemaError):
        Invoices.validate(invoices(prepaid_purchased_credit_amount_cents=801))


def test_credits_larger_than_what_the_coupons_left_are_refused():
    # fees 1,000 less 100 of coupons = 900; credits 100 + 700 + 100 = 900 pass, 100 + 800 + 100 = 1,000 do not
    assert Invoices.validate(invoices(coupons_amount_cents=100, prepaid_purchased_credit_amount_cents=700)).height == 1
    with pytest.raises(pandera.errors.SchemaError):
        Invoices.validate(invoices(coupons_amount_cents=100))


def test_coupons_larger_than_the_fees_are_refused():
    # 1,001 of coupons on 1,000 of fees (the 10 of taxes keep the credits' check at 1,000 - 1,001 + 10 = 9 >= 0)
    with pytest.raises(pandera.errors.SchemaError, match="coupons_take_at_most_the_fees"):
        Invoices.validate(invoices(coupons_amount_cents=1001, taxes_amount_cents=10, prepaid_granted_credit_amount_cents=0,
                                   prepaid_purchased_credit_amount_cents=0, credit_notes_amount_cents=0))


def test_a_progressive_billing_credit_with_the_coupons_above_the_fees_is_refused():
    # fees 1,000: 300 of coupons + 700 deducted for earlier progressive invoices pass; + 701 does not
    no_credits = {"prepaid_granted_credit_amount_cents": 0, "prepaid_purchased_credit_amount_cents": 0,
                  "credit_notes_amount_cents": 0}
    assert Invoices.validate(invoices(coupons_amount_cents=300, progressive_billing_credit_amount_cents=700,
                                      **no_credits)).height == 1
    with pytest.raises(pandera.errors.SchemaError, match="coupons_take_at_most_the_fees"):
        Invoices.validate(invoices(coupons_amount_cents=300, progressive_billing_credit_amount_cents=701,
                                   taxes_amount_cents=10, **no_credits))


def test_two_finalized_invoices_with_one_number_are_refused():
    frame = pl.concat([invoices(), invoices(invoice_id="i2")])
    with pytest.raises(pandera.errors.SchemaError):
        Invoices.validate(frame)


def fee(precise: str, cents: int) -> pl.DataFrame:
    return pl.DataFrame(
        [{"fee_id": "f", "invoice_id": "i", "fee_type": "charge", "units": Decimal(1), "events_count": 1,
          "precise_amount": Decimal(precise), "amount_cents": cents, "currency": "USD"}],
        schema_overrides={"units": pl.Decimal(38, 12), "precise_amount": pl.Decimal(38, 12)},
    )


def test_a_fee_of_two_dollars_passes():
    assert Fees.validate(fee("2", 200)).height == 1


def test_a_negative_fee_is_refused():
    with pytest.raises(pandera.errors.SchemaError, match="greater_than_or_equal_to"):
        Fees.validate(fee("-1", -100))


def test_a_raw_event_without_a_reason_must_be_readable():
    from dagster_project.billing.schemas import RawEvents

    row = {"source_file": "d/a.jsonl", "line_number": 1, "transaction_id": None, "code": "c",
           "external_subscription_id": "s", "event_at": None, "load_error": None, "raw_line": None}
    with pytest.raises(pandera.errors.SchemaError):
        RawEvents.validate(pl.DataFrame([row], schema_overrides={"transaction_id": pl.String, "event_at": pl.Datetime}))
    quarantined = {**row, "load_error": "invalid_json", "raw_line": "{"}
    assert RawEvents.validate(
        pl.DataFrame([quarantined], schema_overrides={"transaction_id": pl.String, "event_at": pl.Datetime})
    ).height == 1
