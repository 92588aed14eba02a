"""What pricing keeps from earlier runs and the numbers it gives, worked by hand: customer numbers,
the invoice number prefix, finalized invoices kept as stored, credit notes that cannot change, and
how far billing periods reach."""

import datetime as dt

import polars as pl

from dagster_project.billing.frozen import changed_credit_notes, keep_finalized
from dagster_project.billing.numbering import new_customer_sequences, number_prefix
from dagster_project.billing.period_table import period_horizon, undated_subscriptions


def test_new_customers_take_the_next_numbers_in_order_of_creation_then_external_id():
    customers = pl.DataFrame({
        "customer_id": ["c_old", "c_b", "c_a", "c_undated", "c_late"],
        "external_id": ["old", "b", "a", "z", "late"],
        "created_at": ["2026-01-01", "2026-03-01", "2026-03-01", None, "2026-04-01"],
    })
    # c_old has 1, and 4 was given to a customer since removed: new numbers start at 5; the customer
    # with no creation date first, then March 1st's a before b, then April's
    assert new_customer_sequences({"c_old": 1, "c_gone": 4}, customers) == {
        "c_undated": 5, "c_a": 6, "c_b": 7, "c_late": 8}
    assert new_customer_sequences({}, customers.head(1)) == {"c_old": 1}
    assert new_customer_sequences({"c_old": 1}, customers.head(1)) == {}


def test_the_number_prefix_is_the_billing_entitys_else_mth():
    assert [number_prefix("ACME"), number_prefix(None), number_prefix("")] == ["ACME", "MTH", "MTH"]


def test_rows_of_invoices_finalized_before_are_kept_as_stored_and_the_others_are_this_runs():
    fresh = pl.DataFrame({"invoice_id": ["i1", "i2"], "amount_cents": [999, 200], "new_column": [7, 8]})
    stored = pl.DataFrame({"invoice_id": ["i1", "i2"], "amount_cents": [100, 150]})
    kept = keep_finalized(fresh, stored, {"i1"})
    # i1 as stored (a column added since: 0), i2 as priced now
    assert kept.to_dicts() == [{"invoice_id": "i1", "amount_cents": 100, "new_column": 0},
                               {"invoice_id": "i2", "amount_cents": 200, "new_column": 8}]
    assert keep_finalized(fresh, None, {"i1"}).equals(fresh)  # nothing stored yet
    assert keep_finalized(fresh, stored, set()).equals(fresh)  # nothing finalized yet


def test_a_credit_note_issued_or_voided_before_cannot_vanish_or_have_its_void_moved():
    issued_before = [("n1", "MTH-001-001-CN001", "inv1"), ("n2", "MTH-001-002-CN001", "inv2")]
    voids_before = [("n1", "MTH-001-001-CN001", dt.date(2026, 11, 5))]
    now = pl.DataFrame({"credit_note_id": ["n1", "n2"], "voided_on": [dt.date(2026, 11, 5), None]})
    assert changed_credit_notes(issued_before, voids_before, now) == []
    moved = now.with_columns(pl.Series("voided_on", [dt.date(2026, 11, 6), None]))
    assert changed_credit_notes(issued_before, voids_before, moved) == [
        "credit note MTH-001-001-CN001 was voided on 2026-11-05 by an earlier run: a void cannot be undone or moved "
        "(its voided_at must stay 2026-11-05)"]
    gone = now.filter(pl.col("credit_note_id") == "n1")
    assert changed_credit_notes(issued_before, voids_before, gone) == [
        "credit note MTH-001-002-CN001 (on invoice inv2) was issued by an earlier run and is no longer in the catalog "
        "as it was: an issued credit note cannot be changed or removed (void its credit with voided_at, or issue another)"]


def test_periods_reach_three_days_past_the_later_of_the_last_arrival_and_the_billing_date():
    oct_20, oct_31 = dt.date(2026, 10, 20), dt.date(2026, 10, 31)
    today = dt.date(2030, 1, 1)
    assert period_horizon(oct_20, oct_31, today) == dt.date(2026, 11, 3)
    assert period_horizon(oct_31, oct_20, today) == dt.date(2026, 11, 3)
    assert period_horizon(None, oct_20, today) == dt.date(2026, 10, 23)
    assert period_horizon(None, None, today) == dt.date(2030, 1, 4)  # no event, no date: the clock


def test_undated_subscriptions_are_listed_once_each_in_order():
    subs = [{"external_id": "s2", "subscription_at": None}, {"external_id": "s1", "subscription_at": None},
            {"external_id": "s2", "subscription_at": None}, {"external_id": "s3", "subscription_at": dt.datetime(2026, 10, 1)}]
    assert undated_subscriptions(subs) == ["s1", "s2"]
