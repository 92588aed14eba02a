"""Prepaid credit wallets replayed day by day: payment order, balances, threshold top-ups."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dagster_project.billing.wallets import (
    DueInvoice,
    ManualTransaction,
    OpenUsage,
    Rule,
    Transaction,
    WalletSpec,
    _Balance,
    allocate_ongoing_usage,
    balance_sync_days,
    cents_to_credits,
    credits_to_cents,
    replay_customer,
)

D = Decimal


def oct26(day: int) -> dt.date:
    return dt.date(2026, 10, day)


DAYS = [oct26(d) for d in range(1, 11)]


def credit_invoice_id(wallet_id: str, day: dt.date, source: str) -> str:
    return f"credit:{wallet_id}:{day.isoformat()}:{source}"


def wallet(wallet_id="w", *, paid="0", granted="0", rate="1.0", priority=50, order=0, on=oct26(1),
           expires_on=None, rules=(), requires_payment=False, currency="USD") -> WalletSpec:
    return WalletSpec(
        wallet_id=wallet_id, priority=priority, creation_order=order, currency=currency,
        rate_amount=D(rate), paid_credits=D(paid), granted_credits=D(granted), effective_on=on,
        expires_on=expires_on, invoice_requires_successful_payment=requires_payment, rules=rules,
    )


def replay(wallets, invoices=(), usage=None, days=DAYS):
    return replay_customer(list(wallets), list(invoices), usage or {}, days, credit_invoice_id)


def top_ups(result, source="threshold_top_up"):
    return [t for t in result.transactions if t.source == source]


# --- conversions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("credits", "rate", "currency", "cents"),
    [
        ("30", "1.0", "USD", 3000),  # 30 credits * 1 USD = 30.00 USD
        ("10", "0.5", "USD", 500),  # 10 * 0.5 = 5.00 USD
        ("0.333", "0.5", "USD", 17),  # 0.1665 USD -> 0.17 half-up
        ("0.331", "0.5", "USD", 17),  # 0.1655 USD -> 0.17 half-up
        ("0.329", "0.5", "USD", 16),  # 0.1645 USD -> 0.16
        ("10.5", "1", "JPY", 11),  # 10.5 JPY -> 11 yen
        ("3", "0.3335", "KWD", 1001),  # 1.0005 KWD -> 1.001 -> 1001 fils
    ],
)
def test_credits_to_cents_rounds_the_money_half_up(credits, rate, currency, cents):
    assert credits_to_cents(D(credits), D(rate), currency) == cents


@pytest.mark.parametrize(
    ("cents", "rate", "currency", "credits"),
    [
        (500, "0.5", "USD", "10.00000"),  # 5.00 USD / 0.5 = 10 credits
        (1, "0.5", "USD", "0.02000"),  # 0.01 / 0.5 = 0.02
        (100, "3", "USD", "0.33333"),  # 1.00 / 3 = 0.333333.. -> 5 decimals
        (200, "3", "USD", "0.66667"),  # 2.00 / 3 = 0.666666.. -> half-up
        (-3000, "1.0", "USD", "-30.00000"),
        (1000, "1", "JPY", "1000.00000"),
    ],
)
def test_cents_to_credits_keeps_five_decimals(cents, rate, currency, credits):
    result = cents_to_credits(cents, D(rate), currency)
    assert result == D(credits)
    assert str(result) == credits


# --- creation and payment ---------------------------------------------------------------------------


def test_a_new_wallet_receives_granted_credits_and_a_credit_invoice_for_paid_credits():
    result = replay([wallet(paid="100.0", granted="25.0")])
    creation = top_ups(result, "wallet_creation")
    # granted first (25.00 USD, no invoice), then paid (100.00 USD, with a credit invoice)
    assert [(t.granted_cents, t.paid_cents, t.invoice_id) for t in creation] == [
        (2500, 0, None),
        (0, 10000, "credit:w:2026-10-01:wallet_creation"),
    ]
    assert [t.balance_after_cents for t in creation] == [2500, 12500]
    (credit,) = result.issued
    assert (credit.kind, credit.invoice_id, credit.amount_cents, credit.paid_credits) == (
        "credit", "credit:w:2026-10-01:wallet_creation", 10000, D("100.0"),
    )


def test_the_seed_wallet_pays_thirty_dollars_with_granted_credits_first():
    # 25 granted + 100 paid at 1 USD; a 30.00 USD invoice: 25.00 granted, then 30 - 25 = 5.00 paid
    result = replay([wallet(paid="100.0", granted="25.0")], [DueInvoice("inv-1", oct26(5), 3000)])
    assert result.credits_applied["inv-1"] == (2500, 500)
    (payment,) = top_ups(result, "invoice_payment")
    assert (payment.transaction_type, payment.granted_cents, payment.paid_cents) == ("outbound", 2500, 500)
    assert payment.credits == D("30.00000")
    assert payment.balance_after_cents == 9500  # 125.00 - 30.00 = 95.00 USD left, all paid credits
    balance = result.balances["w"]
    assert (balance.granted_cents, balance.paid_cents, balance.consumed_cents) == (0, 9500, 3000)


def test_an_invoice_larger_than_the_balance_empties_the_wallet_but_never_below_zero():
    # balance 125.00 USD; invoice 200.00 USD: the wallet pays 125.00, the customer owes 75.00
    result = replay(
        [wallet(paid="100.0", granted="25.0")],
        [DueInvoice("inv-1", oct26(5), 20000), DueInvoice("inv-2", oct26(6), 1000)],
    )
    assert result.credits_applied["inv-1"] == (2500, 10000)
    assert result.credits_applied["inv-2"] == (0, 0)  # nothing left to pay with
    assert result.balances["w"].cents == 0
    assert all(t.balance_after_cents >= 0 for t in result.transactions)
    assert len(top_ups(result, "invoice_payment")) == 1  # no empty outbound transaction for inv-2


def test_the_wallet_with_the_lower_priority_number_pays_first():
    # "first" is created first but has priority 50; "second" has priority 1 and pays first.
    # invoice 25.00: second pays its 10.00 granted, then first pays 15.00 of its paid credits
    first = wallet("first", paid="100", priority=50, order=0)
    second = wallet("second", granted="10", priority=1, order=1)
    result = replay([first, second], [DueInvoice("inv-1", oct26(3), 2500)])
    payments = top_ups(result, "invoice_payment")
    assert [(t.wallet_id, t.granted_cents, t.paid_cents) for t in payments] == [
        ("second", 1000, 0),
        ("first", 0, 1500),
    ]
    assert result.credits_applied["inv-1"] == (1000, 1500)
    assert result.balances["first"].cents == 8500  # 100.00 - 15.00
    assert result.balances["second"].cents == 0


def test_between_equal_priorities_the_older_wallet_pays_first():
    older = wallet("older", paid="10", priority=5, order=0)
    newer = wallet("newer", paid="10", priority=5, order=1)
    result = replay([newer, older], [DueInvoice("inv-1", oct26(3), 500)])
    assert [(t.wallet_id, t.paid_cents) for t in top_ups(result, "invoice_payment")] == [("older", 500)]


def test_a_wallet_at_rate_one_half_pays_in_credits_worth_half_a_dollar():
    # 100 paid credits * 0.5 USD = 50.00 USD; a 30.00 USD invoice takes 30.00 / 0.5 = 60 credits
    result = replay([wallet(paid="100", rate="0.5")], [DueInvoice("inv-1", oct26(2), 3000)])
    (creation,) = top_ups(result, "wallet_creation")
    assert creation.paid_cents == 5000
    assert creation.credits == D("100.00000")
    (payment,) = top_ups(result, "invoice_payment")
    assert payment.paid_cents == 3000
    assert payment.credits == D("60.00000")
    assert payment.balance_after_cents == 2000  # 50.00 - 30.00 = 20.00 USD = 40 credits


def test_an_expired_wallet_no_longer_pays():
    # "old" expires on Oct 5; an invoice on Oct 4 is paid from it, one on Oct 6 falls to "new"
    old = wallet("old", paid="100", priority=1, order=0, expires_on=oct26(5))
    new = wallet("new", paid="100", priority=50, order=1)
    result = replay(
        [old, new],
        [DueInvoice("inv-4", oct26(4), 1000), DueInvoice("inv-5", oct26(5), 1000), DueInvoice("inv-6", oct26(6), 1000)],
    )
    payers = {t.invoice_id: t.wallet_id for t in top_ups(result, "invoice_payment")}
    assert payers == {"inv-4": "old", "inv-5": "new", "inv-6": "new"}
    assert result.balances["old"].is_terminated
    assert result.balances["old"].cents == 9000  # its remaining 90.00 stay in it, unused


def test_an_expired_wallet_alone_leaves_the_invoice_unpaid():
    result = replay([wallet(paid="100", expires_on=oct26(3))], [DueInvoice("inv-1", oct26(3), 1000)])
    assert result.credits_applied["inv-1"] == (0, 0)
    assert top_ups(result, "invoice_payment") == []


def test_a_wallet_not_yet_created_does_not_pay():
    result = replay([wallet(paid="100", on=oct26(5))], [DueInvoice("inv-1", oct26(4), 1000)])
    assert result.credits_applied["inv-1"] == (0, 0)


def test_paid_credits_awaiting_payment_are_pending_and_do_not_pay():
    # invoice_requires_successful_payment: the 100 paid credits are pending; only the 25 granted pay
    result = replay(
        [wallet(paid="100", granted="25", requires_payment=True)], [DueInvoice("inv-1", oct26(2), 3000)]
    )
    paid_creation = [t for t in top_ups(result, "wallet_creation") if t.paid_cents]
    assert [t.status for t in paid_creation] == ["pending"]
    assert result.credits_applied["inv-1"] == (2500, 0)


# --- last_balance_sync_at ---------------------------------------------------------------------------


def transaction(wallet_id, day, status="settled", settled_on=None, ttype="inbound"):
    return Transaction(wallet_id=wallet_id, day=day, sequence=0, transaction_type=ttype, source="manual", status=status,
                       granted_cents=0, paid_cents=100, credits=D("1"), balance_after_cents=100, settled_on=settled_on)


def test_a_wallet_s_balance_last_synced_on_its_last_settled_transaction_paid_credits_on_the_day_they_settled():
    # w1, in ledger order: granted on Oct 1; paid credits bought Oct 2 and settled by their payment on
    # Oct 6; more paid credits bought Oct 3, still pending (not in the balance); credits consumed by an
    # invoice on Oct 4 (the last settled one in the ledger, but not the latest change: Oct 6 is).
    # w2: only pending credits: never synced.
    synced = balance_sync_days([
        transaction("w1", oct26(1)),
        transaction("w1", oct26(2), settled_on=oct26(6)),
        transaction("w1", oct26(3), status="pending"),
        transaction("w1", oct26(4), ttype="outbound"),
        transaction("w2", oct26(4), status="pending"),
    ])
    assert synced == {"w1": oct26(6)}


def test_consumed_credits_sync_the_balance_but_ongoing_usage_does_not():
    # 25 granted on Oct 1; invoice inv-1 (finalized Oct 1, paid from the wallet on Oct 2) takes 10.00 USD;
    # open usage every day after that moves the ongoing balance only: the balance last changed on Oct 2.
    result = replay([wallet(granted="25")], [DueInvoice("inv-1", oct26(2), 1000)],
                    usage={day: 300 + 10 * day.day for day in DAYS[2:]})
    assert [(t.day, t.transaction_type) for t in result.transactions] == [(oct26(1), "inbound"), (oct26(2), "outbound")]
    assert result.ongoing_usage_cents["w"] == 400  # Oct 10's open usage
    assert balance_sync_days(result.transactions) == {"w": oct26(2)}


# --- ongoing balance and threshold top-ups ---------------------------------------------------------


def test_ongoing_usage_is_shared_in_payment_order_and_the_last_wallet_goes_negative():
    first = _Balance(wallet("a", priority=1, order=0), paid_cents=1000, is_active=True)
    last = _Balance(wallet("b", priority=2, order=1), paid_cents=500, is_active=True)
    inactive = _Balance(wallet("c", priority=0, order=2), paid_cents=9999, is_active=False)
    # usage 20.00: a covers its 10.00, b carries the other 10.00 (ongoing 5.00 - 10.00 = -5.00)
    assert allocate_ongoing_usage([last, inactive, first], 2000) == {"a": 1000, "b": 1000}


def test_a_threshold_rule_tops_up_once_on_the_day_the_ongoing_balance_falls_to_the_threshold():
    # 50 paid credits; threshold 20, fixed top-up of 50 paid credits.
    # ongoing: Oct 1 50 - 20 = 30 (> 20), Oct 2 50 - 30 = 20 (<= 20: fire, balance 100),
    # Oct 3 100 - 35 = 65, Oct 4..10 100 - 40 = 60: never again
    rule = Rule("threshold", "fixed", threshold_credits=D("20"), paid_credits=D("50"))
    usage = {oct26(1): 2000, oct26(2): 3000, oct26(3): 3500, **{oct26(d): 4000 for d in range(4, 11)}}
    result = replay([wallet(paid="50", rules=(rule,))], usage=usage)
    (top_up,) = top_ups(result)
    assert (top_up.day, top_up.paid_cents, top_up.granted_cents, top_up.status) == (oct26(2), 5000, 0, "settled")
    assert top_up.credits == D("50.00000")
    assert top_up.balance_after_cents == 10000
    assert top_up.invoice_id == "credit:w:2026-10-02:threshold_top_up"
    credit_invoices = [i.invoice_id for i in result.issued if i.kind == "credit"]
    assert credit_invoices == ["credit:w:2026-10-01:wallet_creation", "credit:w:2026-10-02:threshold_top_up"]
    assert result.ongoing_usage_cents == {"w": 4000}


def test_a_threshold_rule_does_not_fire_while_the_ongoing_balance_stays_above_it():
    # 50 - 29.99 = 20.01 credits > 20
    rule = Rule("threshold", "fixed", threshold_credits=D("20"), paid_credits=D("50"))
    result = replay([wallet(paid="50", rules=(rule,))], usage={d: 2999 for d in DAYS})
    assert top_ups(result) == []


def test_a_threshold_rule_can_grant_credits_without_an_invoice():
    # ongoing 50 - 40 = 10 <= 20 on Oct 1: 10 granted credits, settled, no credit invoice
    rule = Rule("threshold", "fixed", threshold_credits=D("20"), granted_credits=D("10"))
    result = replay([wallet(paid="50", rules=(rule,))], usage={oct26(1): 4000}, days=[oct26(1)])
    (top_up,) = top_ups(result)
    assert (top_up.granted_cents, top_up.paid_cents, top_up.invoice_id) == (1000, 0, None)
    assert [i.invoice_id for i in result.issued] == ["credit:w:2026-10-01:wallet_creation"]


def test_a_target_rule_tops_up_to_the_target_ongoing_balance():
    # 50 paid credits, usage 35.00: ongoing 15 <= 20 -> top up 100 - 15 = 85 paid credits;
    # balance 135.00, ongoing 135 - 35 = 100 = the target
    rule = Rule("threshold", "target", threshold_credits=D("20"), target_ongoing_balance=D("100"))
    result = replay([wallet(paid="50", rules=(rule,))], usage={oct26(1): 3500}, days=[oct26(1)])
    (top_up,) = top_ups(result)
    assert (top_up.paid_cents, top_up.granted_cents) == (8500, 0)
    assert top_up.credits == D("85.00000")
    assert top_up.balance_after_cents == 13500
    assert result.balances["w"].cents - result.ongoing_usage_cents["w"] == 10000
    credit = [i for i in result.issued if i.invoice_id == top_up.invoice_id]
    assert [(c.kind, c.paid_credits, c.amount_cents) for c in credit] == [("credit", D("85.00000"), 8500)]


def test_a_target_rule_at_rate_one_half_tops_up_in_credits():
    # 40 paid credits at 0.5 = 20.00 USD; usage 15.00 USD = 30 credits: ongoing 10 credits <= 20
    # -> 100 - 10 = 90 credits = 45.00 USD; balance 65.00 USD = 130 credits; ongoing 130 - 30 = 100
    rule = Rule("threshold", "target", threshold_credits=D("20"), target_ongoing_balance=D("100"))
    result = replay([wallet(paid="40", rate="0.5", rules=(rule,))], usage={oct26(1): 1500}, days=[oct26(1)])
    (top_up,) = top_ups(result)
    assert (top_up.paid_cents, top_up.credits, top_up.balance_after_cents) == (4500, D("90.00000"), 6500)


def test_a_target_rule_can_grant_the_top_up():
    rule = Rule("threshold", "target", threshold_credits=D("20"), target_ongoing_balance=D("100"),
                grants_target_top_up=True)
    result = replay([wallet(paid="50", rules=(rule,))], usage={oct26(1): 3500}, days=[oct26(1)])
    (top_up,) = top_ups(result)
    assert (top_up.granted_cents, top_up.paid_cents, top_up.invoice_id) == (8500, 0, None)


def test_an_expired_wallet_is_not_topped_up():
    rule = Rule("threshold", "fixed", threshold_credits=D("20"), paid_credits=D("50"))
    result = replay([wallet(paid="50", expires_on=oct26(2), rules=(rule,))], usage={d: 4000 for d in DAYS})
    # Oct 1: ongoing 50 - 40 = 10 -> one top-up; from Oct 2 the wallet is terminated
    assert [t.day for t in top_ups(result)] == [oct26(1)]


def test_replaying_the_same_history_twice_gives_the_same_ledger():
    rule = Rule("threshold", "fixed", threshold_credits=D("20"), paid_credits=D("50"))
    args = ([wallet(paid="50", granted="5", rules=(rule,))], [DueInvoice("inv-1", oct26(4), 4200)],
            {oct26(1): 2000, oct26(2): 4000, oct26(3): 4200})
    first, second = replay(*args), replay(*args)
    assert first.transactions == second.transactions
    assert first.issued == second.issued
    # hand check of the ledger: Oct 1 creation 5 granted + 50 paid (55.00); Oct 2 ongoing 55 - 40
    # = 15 -> top-up 50 (105.00); Oct 4 inv-1 42.00 = 5.00 granted + 37.00 paid -> 63.00 left
    assert first.credits_applied["inv-1"] == (500, 3700)
    assert first.balances["w"].cents == 6300


def test_a_pending_threshold_top_up_is_not_requested_again_every_day():
    # 30 granted credits (settled at once); usage 15.00 every day: ongoing 15 <= 20 -> one top-up of
    # 50 paid credits, pending until paid; 15 + 50 pending = 65 > 20, so no second request
    rule = Rule("threshold", "fixed", threshold_credits=D("20"), paid_credits=D("50"))
    result = replay(
        [wallet(granted="30", requires_payment=True, rules=(rule,))], usage={d: 1500 for d in DAYS}
    )
    assert [(t.day, t.status) for t in top_ups(result)] == [(oct26(1), "pending")]
    assert [i.invoice_id for i in result.issued if i.kind == "credit"] == ["credit:w:2026-10-01:threshold_top_up"]


def test_a_wallet_created_before_the_first_replayed_day_still_pays():
    # created Sep 20, replay from Oct 1: 100 paid credits, a 30.00 USD invoice on Oct 5 -> 30.00 paid
    result = replay([wallet(paid="100", on=dt.date(2026, 9, 20))], [DueInvoice("inv-1", oct26(5), 3000)])
    assert result.credits_applied["inv-1"] == (0, 3000)


# --- interval rules, manual transactions and voids, payments ----------------------------------------


@pytest.mark.parametrize(
    ("interval", "start", "due_days"),
    [
        ("weekly", dt.date(2026, 10, 1), [dt.date(2026, 10, 8), dt.date(2026, 10, 15)]),
        ("monthly", dt.date(2026, 1, 31), [dt.date(2026, 2, 28), dt.date(2026, 3, 31), dt.date(2026, 4, 30)]),
        ("quarterly", dt.date(2026, 1, 15), [dt.date(2026, 4, 15), dt.date(2026, 7, 15)]),
        ("yearly", dt.date(2024, 2, 29), [dt.date(2025, 2, 28), dt.date(2026, 2, 28)]),
    ],
)
def test_an_interval_rule_is_due_on_each_anniversary_of_its_start_but_not_the_start_day(interval, start, due_days):
    rule = Rule("interval", "fixed", interval=interval, granted_credits=D("1"))
    days = [start + dt.timedelta(days=i) for i in range((due_days[-1] - start).days + 1)]
    assert [d for d in days if rule.is_due(d, start)] == due_days


def test_an_interval_rule_counts_from_its_own_start_date_when_it_has_one():
    rule = Rule("interval", "fixed", interval="weekly", granted_credits=D("1"), started_on=oct26(3))
    assert [d for d in DAYS if rule.is_due(d, oct26(1))] == [oct26(10)]


def test_an_interval_rule_tops_up_weekly_a_fixed_amount_and_a_target_tops_up_to_the_target():
    # Wallet of 10 granted credits from Oct 1. Fixed weekly rule of 5 paid credits: Oct 8 only in
    # Oct 1-10 (a credit invoice of 5.00). Usage of 3.00 open on Oct 8.
    fixed = Rule("interval", "fixed", interval="weekly", paid_credits=D("5"))
    result = replay([wallet(granted="10", rules=(fixed,))], usage={oct26(8): 300})
    (t,) = top_ups(result, "interval_top_up")
    assert (t.day, t.paid_cents, t.granted_cents, t.balance_after_cents) == (oct26(8), 500, 0, 1500)
    assert t.invoice_id == "credit:w:2026-10-08:interval_top_up:0"
    # Target 20 granted: ongoing on Oct 8 is 10 - 3 = 7 credits, so 13 credits are granted.
    target = Rule("interval", "target", interval="weekly", target_ongoing_balance=D("20"), grants_target_top_up=True)
    result = replay([wallet(granted="10", rules=(target,))], usage={oct26(8): 300})
    (t,) = top_ups(result, "interval_top_up")
    assert (t.day, t.granted_cents, t.paid_cents, t.invoice_id) == (oct26(8), 1300, 0, None)


def test_manual_transactions_top_up_and_void_granted_credits_first_never_below_zero():

    manual = [
        ManualTransaction("w", oct26(3), 0, paid_credits=D("20"), granted_credits=D("5")),
        ManualTransaction("w", oct26(5), 1, voided_credits=D("12")),  # 5+10 granted first, then paid
        ManualTransaction("w", oct26(6), 2, voided_credits=D("1000")),  # only what is left: 28.00
    ]
    result = replay_customer([wallet(paid="5", granted="10")], [], {}, DAYS, credit_invoice_id, manual=manual)
    got = [(t.day, t.source, t.transaction_type, t.granted_cents, t.paid_cents, t.balance_after_cents)
           for t in result.transactions if t.source in ("manual", "void")]
    assert got == [
        (oct26(3), "manual", "inbound", 500, 0, 2000),     # 10 + 5 granted and 5 paid: 20.00
        (oct26(3), "manual", "inbound", 0, 2000, 4000),    # then the 20 paid: 40.00
        (oct26(5), "void", "outbound", 1200, 0, 2800),     # granted 15.00 covers the 12 voided
        (oct26(6), "void", "outbound", 300, 2500, 0),      # 3.00 granted + 25.00 paid left
    ]
    assert [i.invoice_id for i in result.issued if i.kind == "credit"] == [
        "credit:w:2026-10-01:wallet_creation", "credit:w:2026-10-03:manual:0"]


def test_pending_paid_credits_settle_on_the_day_their_credit_invoice_is_paid_in_full():
    # 30 paid credits wait for payment of their credit invoice (number N-1); 10.00 paid on Oct 3,
    # 20.00 on Oct 5: settled on Oct 5, and only then do they pay the invoice finalized on Oct 6.
    numbers = {}

    def number_for(invoice_id):
        return numbers.setdefault(invoice_id, f"N-{len(numbers) + 1}")

    result = replay_customer(
        [wallet(paid="30", requires_payment=True)], [DueInvoice("inv", oct26(4), 500), DueInvoice("inv2", oct26(6), 700)],
        {}, DAYS, credit_invoice_id, payments={"N-1": [(oct26(3), 1000), (oct26(5), 2000)]}, number_for=number_for,
    )
    (creation,) = top_ups(result, "wallet_creation")
    assert (creation.status, creation.settled_on, creation.day) == ("settled", oct26(5), oct26(1))
    assert result.credits_applied == {"inv": (0, 0), "inv2": (0, 700)}
    assert [(i.kind, i.number) for i in result.issued] == [("credit", "N-1"), ("subscription", "N-2"), ("subscription", "N-3")]


def test_payment_status_follows_collections():
    from dagster_project.billing.invoicing import payment_status

    assert payment_status(1904, []) == ("pending", None, 0)
    assert payment_status(1904, [(oct26(3), 1000)]) == ("pending", None, 1000)
    assert payment_status(1904, [(oct26(3), 1000), (oct26(9), 904)]) == ("succeeded", oct26(9), 1904)
    assert payment_status(0, []) == ("succeeded", None, 0)  # credits paid it all


def test_top_ups_decided_by_an_earlier_run_are_replayed_as_recorded_never_re_decided():
    """An earlier run decided through Oct 5 that the rule fired on Oct 2 for 50 credits. New data
    now puts the ongoing balance above the threshold on Oct 2 (no usage at all): the recorded
    top-up stays, and is not repeated; from Oct 6 on, the rule is evaluated again."""
    from dagster_project.billing.wallets import RuleTopUp

    rule = Rule("threshold", "fixed", threshold_credits=D("20"), paid_credits=D("50"))
    recorded = [RuleTopUp("w", oct26(2), "threshold_top_up", "threshold_top_up", D("50"), D("0"))]
    # From Oct 6, usage 120.00: ongoing 100 - 120 = -20 <= 20 fires (150.00); Oct 7: 150 - 120 = 30.
    usage = {oct26(d): 12000 for d in range(6, 11)}
    result = replay_customer([wallet(paid="50", rules=(rule,))], [], usage, DAYS, credit_invoice_id,
                             recorded=recorded, decided_through=oct26(5))
    assert [(t.day, t.paid_cents, t.invoice_id) for t in top_ups(result)] == [
        (oct26(2), 5000, "credit:w:2026-10-02:threshold_top_up"),   # as recorded
        (oct26(6), 5000, "credit:w:2026-10-06:threshold_top_up"),   # decided now
    ]
    assert [(r.day, r.paid_credits) for r in result.rule_top_ups] == [(oct26(2), D("50")), (oct26(6), D("50"))]
    # The same replay without the record would not top up on Oct 2 (no usage then).
    fresh = replay_customer([wallet(paid="50", rules=(rule,))], [], usage, DAYS, credit_invoice_id)
    assert [t.day for t in top_ups(fresh)][:1] == [oct26(6)]


class _VisitedDays(dict):
    """Open usage by day that records the days a replay looks at (every day it visits does)."""

    def __init__(self):
        super().__init__()
        self.visited: list[dt.date] = []

    def get(self, day, default=None):
        self.visited.append(day)
        return super().get(day, default)


def test_a_customer_without_wallets_or_credit_notes_is_never_replayed():
    """Nothing happens to it but its invoices being issued: the replay visits none of the 10 days
    (it looks up no open usage), and numbers the invoices in the order of their days (Oct 3, Oct 8,
    whatever the order given), with no credit taken. An invoice finalized after the last day
    (Oct 12) is not issued yet."""
    usage = _VisitedDays()
    numbered = []
    invoices = [DueInvoice("inv-2", oct26(8), 900), DueInvoice("inv-1", oct26(3), 2500), DueInvoice("inv-3", oct26(12), 70)]
    result = replay_customer([], invoices, usage, DAYS, credit_invoice_id,
                             number_for=lambda i: numbered.append(i) or f"N-{len(numbered)}")
    assert usage.visited == []
    assert [(i.invoice_id, i.day, i.number) for i in result.issued] == [("inv-1", oct26(3), "N-1"), ("inv-2", oct26(8), "N-2")]
    assert result.credits_applied == {"inv-1": (0, 0), "inv-2": (0, 0)}
    assert result.credit_notes_applied == {"inv-1": 0, "inv-2": 0}
    assert result.transactions == [] and result.balances == {} and result.ongoing_usage_cents == {}


def test_a_customer_with_a_wallet_is_still_replayed_on_its_days():
    """The same invoices with a wallet of 10.00 granted on Oct 1: the replay visits the first day
    (creation), the invoice days and the last day, and the wallet pays 10.00 of inv-1's 25.00."""
    usage = _VisitedDays()
    invoices = [DueInvoice("inv-1", oct26(3), 2500), DueInvoice("inv-2", oct26(8), 900)]
    result = replay_customer([wallet(granted="10")], invoices, usage, DAYS, credit_invoice_id)
    assert usage.visited == [oct26(1), oct26(3), oct26(8), oct26(10)]
    assert result.credits_applied == {"inv-1": (1000, 0), "inv-2": (0, 0)}


def test_a_wallet_without_rules_is_replayed_only_on_the_days_something_happens_to_it():
    """Created Sep 28 (before the first day: it starts on Oct 1), a manual top-up on Oct 4 that
    waits for its payment (collected Oct 7), an invoice issued Oct 6: the replay visits Oct 1, 4, 6,
    7 and the last day, Oct 10, and nothing else, and the ledger is the day-by-day one:
    - Oct 1: 10.00 granted (balance 10.00);
    - Oct 4: 5.00 granted (15.00), 20.00 paid, pending until paid;
    - Oct 6: the 25.00 invoice takes 15.00 granted, nothing paid yet (0.00);
    - Oct 7: the 20.00 paid credits settle (20.00)."""
    usage = _VisitedDays()
    usage.update({oct26(9): 300})
    manual = [ManualTransaction("w", oct26(4), 0, paid_credits=D("20"), granted_credits=D("5"),
                                invoice_requires_successful_payment=True)]
    result = replay_customer(
        [wallet(granted="10", on=dt.date(2026, 9, 28))], [DueInvoice("inv-1", oct26(6), 2500)], usage, DAYS,
        credit_invoice_id, manual=manual, payments={"credit:w:2026-10-04:manual:0": [(oct26(7), 2000)]},
    )
    assert usage.visited == [oct26(1), oct26(4), oct26(6), oct26(7), oct26(10)]
    assert [(t.day, t.source, t.granted_cents, t.paid_cents, t.status, t.settled_on) for t in result.transactions] == [
        (oct26(1), "wallet_creation", 1000, 0, "settled", None),
        (oct26(4), "manual", 500, 0, "settled", None),
        (oct26(4), "manual", 0, 2000, "settled", oct26(7)),
        (oct26(6), "invoice_payment", 1500, 0, "settled", None),
    ]
    assert result.credits_applied["inv-1"] == (1500, 0)
    assert result.balances["w"].cents == 2000


class _VisitedOpenUsage(OpenUsage):
    """`OpenUsage` that records the days a replay looks at."""

    def __init__(self, changes):
        super().__init__(changes, per_fee_key=False)
        self.visited: list[dt.date] = []

    def get(self, day, default=None):
        self.visited.append(day)
        return super().get(day, default)


TOKENS = ("charge", "tokens")


def test_a_wallet_with_a_threshold_rule_is_replayed_on_usage_changes_and_the_day_after_each_top_up():
    """10 granted credits from Oct 1; threshold 5, a fixed top-up of 10 granted credits; open usage
    6.00 from Oct 3 and 17.00 from Oct 7. Visited: Oct 1 (creation), Oct 3 (usage: ongoing
    10 - 6 = 4 <= 5, top-up to 20), Oct 4 (the day after: 20 - 6 = 14, nothing), Oct 7 (usage:
    20 - 17 = 3 <= 5, top-up to 30), Oct 8 (30 - 17 = 13, nothing), Oct 10 (the last day). On the
    other days nothing changed since a day on which the rule did not fire."""
    usage = _VisitedOpenUsage({oct26(3): {TOKENS: 600}, oct26(7): {TOKENS: 1700}})
    rule = Rule("threshold", "fixed", threshold_credits=D("5"), granted_credits=D("10"))
    result = replay_customer([wallet(granted="10", rules=(rule,))], [], usage, DAYS, credit_invoice_id)
    assert usage.visited == [oct26(1), oct26(3), oct26(4), oct26(7), oct26(8), oct26(10)]
    assert [(t.day, t.granted_cents, t.balance_after_cents) for t in top_ups(result)] == [
        (oct26(3), 1000, 2000), (oct26(7), 1000, 3000)]
    assert result.ongoing_usage_cents == {"w": 1700}


def test_a_top_up_that_leaves_the_balance_at_the_threshold_fires_again_the_next_day():
    """10 granted credits; threshold 5, a fixed top-up of 1 granted credit; open usage 6.00 from
    Oct 3: Oct 3 ongoing 10 - 6 = 4 <= 5 (top-up to 11), Oct 4 11 - 6 = 5 <= 5 (top-up to 12),
    Oct 5 12 - 6 = 6 > 5: nothing. Visited: Oct 1, 3, 4, 5 and the last day."""
    usage = _VisitedOpenUsage({oct26(3): {TOKENS: 600}})
    rule = Rule("threshold", "fixed", threshold_credits=D("5"), granted_credits=D("1"))
    result = replay_customer([wallet(granted="10", rules=(rule,))], [], usage, DAYS, credit_invoice_id)
    assert usage.visited == [oct26(1), oct26(3), oct26(4), oct26(5), oct26(10)]
    assert [(t.day, t.balance_after_cents) for t in top_ups(result)] == [(oct26(3), 1100), (oct26(4), 1200)]


def test_a_wallet_with_an_interval_rule_is_replayed_on_its_anniversaries():
    """Created Oct 1 with 10 granted credits, a weekly rule of 2 granted credits: Oct 8 is its one
    anniversary in the ten days. No usage: visited Oct 1, Oct 8 and the last day."""
    usage = _VisitedOpenUsage({})
    rule = Rule("interval", "fixed", granted_credits=D("2"), interval="weekly")
    result = replay_customer([wallet(granted="10", rules=(rule,))], [], usage, DAYS, credit_invoice_id)
    assert usage.visited == [oct26(1), oct26(8), oct26(10)]
    assert [(t.day, t.granted_cents) for t in top_ups(result, "interval_top_up")] == [(oct26(8), 200)]


def test_open_usage_on_a_day_is_that_of_the_latest_change_on_or_before_it():
    """Changes on Oct 3 (2.00 + 1.00 on two fee keys) and Oct 7 (5.00 on one): none before Oct 3,
    3.00 from Oct 3 to Oct 6, 5.00 from Oct 7 on; per fee key for a limited wallet."""
    a, b = ("charge", "tokens"), ("subscription", None)
    changes = {oct26(3): {a: 200, b: 100}, oct26(7): {a: 500}}
    total = OpenUsage(changes, per_fee_key=False)
    assert [total.get(oct26(d), 0) for d in (1, 2, 3, 6, 7, 10)] == [0, 0, 300, 300, 500, 500]
    per_key = OpenUsage(changes, per_fee_key=True)
    assert [per_key.get(oct26(d), 0) for d in (2, 3, 8)] == [{}, {a: 200, b: 100}, {a: 500}]
