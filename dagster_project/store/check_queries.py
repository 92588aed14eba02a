"""The queries of the asset checks (`defs/checks.py`): the rows that break a rule, or the tables a
schema is validated on."""

import polars as pl


def days_not_accounted_for(con) -> list[tuple]:
    """Arrival days whose raw events are not each accepted, a duplicate or rejected."""
    return con.execute(
        """select arrival_date::varchar, events_raw, events_accepted, events_duplicate, events_rejected
           from marts.fct_event_loads
           where events_raw <> events_accepted + events_duplicate + events_rejected order by 1"""
    ).fetchall()


def invoices_off(con) -> list[tuple]:
    """Numbers of the invoices whose amounts do not add up (see `invoice_arithmetic`)."""
    return con.execute(
        """select number from billing.invoices
           where total_amount_cents < 0
              or sub_total_excluding_taxes_amount_cents <> fees_amount_cents - coupons_amount_cents
                                                          - progressive_billing_credit_amount_cents
              or progressive_billing_credit_amount_cents <> coalesce((select sum(amount_cents)
                     from billing.progressive_billing_credits p where p.invoice_id = invoices.invoice_id), 0)
              or sub_total_including_taxes_amount_cents <> sub_total_excluding_taxes_amount_cents + taxes_amount_cents
              or coupons_amount_cents not between 0 and fees_amount_cents
              or coupons_amount_cents <> coalesce((select sum(amount_cents) from billing.coupon_credits c
                                                  where c.invoice_id = invoices.invoice_id), 0)
              or prepaid_credit_amount_cents <> prepaid_granted_credit_amount_cents + prepaid_purchased_credit_amount_cents
              or total_amount_cents <> sub_total_including_taxes_amount_cents - credit_notes_amount_cents
                                       - prepaid_credit_amount_cents
              or credit_notes_amount_cents <> coalesce((select sum(amount_cents) from billing.credit_note_applications a
                                                       where a.invoice_id = invoices.invoice_id), 0)
              or fees_amount_cents <> coalesce((select sum(amount_cents) from billing.fees f
                                               where f.invoice_id = invoices.invoice_id), 0)
                 and invoice_type in ('subscription', 'progressive_billing')
              or exists (select 1 from billing.fees f where f.invoice_id = invoices.invoice_id
                         and f.total_amount_cents <> f.amount_cents + f.taxes_amount_cents)
              or taxes_amount_cents <> coalesce((select sum(amount_cents) from billing.invoice_taxes t
                                                where t.invoice_id = invoices.invoice_id), 0)"""
    ).fetchall()


def credit_notes_off(con) -> list[tuple]:
    """Numbers of the credit notes whose amounts do not add up (see `credit_note_arithmetic`)."""
    return con.execute(
        """select number from billing.credit_notes n
           where total_amount_cents <> credit_amount_cents + refund_amount_cents
              or total_amount_cents <> sub_total_excluding_taxes_amount_cents + taxes_amount_cents
              or sub_total_excluding_taxes_amount_cents <> round(coalesce((select sum(amount_cents)
                     from billing.credit_note_items i where i.credit_note_id = n.credit_note_id), 0)
                     - precise_coupons_adjustment_amount_cents)
              or coupons_adjustment_amount_cents <> round(precise_coupons_adjustment_amount_cents)
              or consumed_amount_cents <> coalesce((select sum(amount_cents) from billing.credit_note_applications a
                                                   where a.credit_note_id = n.credit_note_id and a.applied_on <= n.as_of), 0)
              or credit_amount_cents <> consumed_amount_cents + balance_amount_cents + voided_amount_cents
              or least(balance_amount_cents, consumed_amount_cents, voided_amount_cents) < 0
           order by number"""
    ).fetchall()


def table(con, name: str) -> pl.DataFrame:
    """A whole table (`schema.name`) as a frame, for a schema check."""
    return con.execute(f"select * from {name}").pl()


# The rows of `raw.events` (with the text of their line from `raw.rejected_lines`) that
# `RawEvents` could reject: quarantined, or missing a field it requires. Every other row passes
# each of its rules (`source_file` and a `line_number` >= 1, ids and a time when there is no
# `load_error`), so only these are read into memory: every event would be 100M rows in polars at
# 100M events (about 10 GB); these are about one in a thousand.
RAW_EVENTS_SUSPECT = (
    "load_error is not null or source_file is null or line_number is null or line_number < 1"
    " or transaction_id is null or code is null or external_subscription_id is null or event_at is null"
)


def suspect_raw_events(con) -> tuple[pl.DataFrame, int]:
    """The raw events `RawEvents` could reject (`RAW_EVENTS_SUSPECT`), and the number of rows of the table."""
    suspect = con.execute(
        "select source_file, line_number, transaction_id, code, external_subscription_id, event_at, load_error,"
        " raw_line from raw.events left join raw.rejected_lines using (arrival_date, source_file, line_number)"
        f" where {RAW_EVENTS_SUSPECT}"
    ).pl()
    return suspect, con.execute("select count(*) from raw.events").fetchone()[0]
