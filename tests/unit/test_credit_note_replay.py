"""Credit notes in the day-by-day replay: issued the day after their created_at, their credit pays
later invoices before the wallets, voids stop it, and an invoice finalized earlier keeps what it took."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from dagster_project.billing.credit_notes import CreditNoteRequest, FeeFacts, InvoiceFacts, issue
from dagster_project.billing.taxes import Tax
from dagster_project.billing.wallets import DueInvoice, WalletSpec, replay_customer

VAT = Tax("vat20", "VAT", Decimal(20))
# The invoice corrected: issued (finalized) on 2026-11-01, a fee of 4.00 with 20% VAT.
CORRECTED = InvoiceFacts("inv_oct", "MTH-001-001", "subscription", dt.date(2026, 11, 1), "USD",
                         (FeeFacts("fee_large", 400, (VAT,)),))


def nov(day: int) -> dt.date:
    return dt.date(2026, 11, day)


DAYS = [nov(d) for d in range(1, 31)]


def note(created: int, credit=480, voided: int | None = None, note_id="cn1", order=0) -> CreditNoteRequest:
    return CreditNoteRequest(note_id, order, "MTH-001-001", nov(created), (("fee_large", 400),), credit_amount_cents=credit,
                             voided_on=nov(voided) if voided else None)


def issuer(request, earlier):
    return issue(request, CORRECTED, earlier, 0, request.created_on)


def wallet(granted: str) -> WalletSpec:
    return WalletSpec("w", 50, 0, "USD", Decimal(1), Decimal(0), Decimal(granted), nov(1))


def run(notes, invoices, wallets=(), recorded=None):
    return replay_customer(list(wallets), invoices, {}, DAYS, lambda *a: "credit_invoice", credit_notes=notes,
                           issue_credit_note=issuer, recorded_applications=recorded)


def test_a_credit_note_pays_the_next_invoice_before_the_wallet():
    # invoice of 13.20 finalized 2026-11-20 (paid in the replay the day after); note of 4.80 from 2026-11-05;
    # wallet of 10.00: the note takes 4.80 first, the wallet the remaining 8.40, leaving 1.60
    result = run([note(5)], [DueInvoice("inv_nov", nov(21), 1320)], [wallet("10")])
    assert result.credit_notes_applied == {"inv_nov": 480}
    assert result.credits_applied == {"inv_nov": (840, 0)}
    assert result.balances["w"].granted_cents == 160
    balance = result.credit_notes["cn1"]
    assert (balance.balance_cents, balance.status, balance.last_used_on) == (0, "consumed", nov(21))


def test_a_note_larger_than_the_invoice_carries_its_rest_to_the_following_ones():
    # 4.80 of credit against invoices of 3.00 then 5.00: 3.00, then 1.80
    result = run([note(5)], [DueInvoice("a", nov(10), 300), DueInvoice("b", nov(20), 500)])
    assert result.credit_notes_applied == {"a": 300, "b": 180}
    assert result.credit_notes["cn1"].status == "consumed"


def test_an_invoice_issued_on_the_notes_own_day_is_not_credited():
    # issued 2026-11-05 (replayed on the 6th), the note created on the 5th: only the invoice issued later takes it
    result = run([note(5)], [DueInvoice("same_day", nov(6), 1000), DueInvoice("later", nov(7), 1000)])
    assert result.credit_notes_applied == {"same_day": 0, "later": 480}


def test_a_voided_note_credits_nothing_after_its_void_day():
    # voided on the 9th: the invoice issued on the 9th (replayed the 10th) still takes it, the one on the 10th does not
    kept = run([note(5, voided=9)], [DueInvoice("on_void_day", nov(10), 100), DueInvoice("after", nov(11), 1000)])
    assert kept.credit_notes_applied == {"on_void_day": 100, "after": 0}
    balance = kept.credit_notes["cn1"]
    assert (balance.balance_cents, balance.voided_cents, balance.voided_on, balance.status) == (0, 380, nov(9), "voided")


def test_older_notes_are_used_first():
    # two notes on two fees of one invoice: cn1 (the 5th) 100 + 20 VAT = 120, cn2 (the 6th) 200 + 40 = 240.
    # An invoice of 2.00: cn1 pays 1.20, then cn2 0.80, which keeps 1.60.
    invoice = InvoiceFacts("inv_oct", "MTH-001-001", "subscription", nov(1), "USD",
                           (FeeFacts("a", 100, (VAT,)), FeeFacts("b", 200, (VAT,))))
    cn1 = CreditNoteRequest("cn1", 1, "MTH-001-001", nov(5), (("a", 100),), credit_amount_cents=120)
    cn2 = CreditNoteRequest("cn2", 0, "MTH-001-001", nov(6), (("b", 200),), credit_amount_cents=240)
    result = replay_customer([], [DueInvoice("inv", nov(20), 200)], {}, DAYS, lambda *a: "x", credit_notes=[cn2, cn1],
                             issue_credit_note=lambda r, earlier: issue(r, invoice, earlier, 0, r.created_on))
    assert [(a.credit_note_id, a.amount_cents) for a in result.credit_note_applications] == [("cn1", 120), ("cn2", 80)]
    assert result.credit_notes["cn2"].balance_cents == 160
    assert [n.note.number for n in result.credit_notes.values()] == ["MTH-001-001-CN001", "MTH-001-001-CN002"]


def test_an_invoice_finalized_earlier_takes_exactly_what_it_took_then():
    # a note dated the 5th added after an invoice of the 10th was finalized without it: that invoice takes
    # nothing now (recorded: none), and the credit goes to the next invoice
    result = run([note(5)], [DueInvoice("frozen", nov(11), 1000), DueInvoice("next", nov(21), 1000)],
                 recorded={"frozen": []})
    assert result.credit_notes_applied == {"frozen": 0, "next": 480}


def test_a_recorded_credit_the_catalog_no_longer_gives_is_a_problem():
    # the invoice took 480 of cn1 when it was finalized, but the note is voided before that day now
    result = run([note(5, voided=6)], [DueInvoice("frozen", nov(11), 1000)], recorded={"frozen": [("cn1", 480)]})
    assert result.credit_notes_applied == {"frozen": 0}
    assert result.credit_note_problems == [
        "invoice frozen was finalized with 480 cents of credit note cn1, which the catalog no longer gives (a credit "
        "note that credited a finalized invoice cannot be removed, changed or voided before that day)"
    ]


def test_a_refused_note_is_reported_and_credits_nothing():
    result = run([note(5, credit=9999)], [DueInvoice("next", nov(21), 1000)])
    assert result.credit_notes == {} and result.credit_notes_applied == {"next": 0}
    assert "does not match the items" in result.credit_note_problems[0]


def test_a_note_pays_only_invoices_in_its_own_currency():
    # the note is in USD (the corrected invoice's currency): a EUR invoice takes nothing, a USD one takes 4.80
    result = run([note(5)], [DueInvoice("eur", nov(10), 1000, "EUR"), DueInvoice("usd", nov(11), 1000, "USD")])
    assert result.credit_notes_applied == {"eur": 0, "usd": 480}


def test_voiding_a_note_with_nothing_left_is_refused():
    # 4.80 all taken by the invoice of the 10th; a void on the 12th has nothing to void (Lago refuses it too)
    result = run([note(5, voided=12)], [DueInvoice("a", nov(11), 1000)])
    assert result.credit_notes["cn1"].status == "consumed"
    assert result.credit_note_problems == [
        "credit note, field voided_at: credit note MTH-001-001-CN001 has no credit left to void on 2026-11-12"]
