"""Prepaid credit wallets, replayed day by day: creation, consumption at finalization, threshold
top-ups. A pure function of the catalog and the priced usage, so a rerun, or a backfill that groups
the days differently, produces the same ledger and the same invoices.

Within a day the order is fixed: wallets created that day receive their credits (a `credit`
invoice for paid credits), expired wallets stop, invoices finalized that day are paid from the
wallets (by priority, then creation order; granted credits before paid ones, never below zero),
then the ongoing balance is computed and threshold rules top up once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from dagster_project.billing.money import currency_exponent, to_cents

CREDIT_DECIMALS = Decimal("0.00001")


@dataclass(frozen=True)
class Rule:
    trigger: str  # threshold | interval
    method: str  # fixed | target
    threshold_credits: Decimal | None = None
    target_ongoing_balance: Decimal | None = None
    paid_credits: Decimal = Decimal(0)
    granted_credits: Decimal = Decimal(0)
    grants_target_top_up: bool = False


@dataclass(frozen=True)
class WalletSpec:
    wallet_id: str
    priority: int
    creation_order: int
    currency: str
    rate_amount: Decimal
    paid_credits: Decimal
    granted_credits: Decimal
    effective_on: dt.date
    expires_on: dt.date | None = None
    invoice_requires_successful_payment: bool = False
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class DueInvoice:
    """A subscription invoice finalized on `finalized_on` for `total_cents` (taxes included)."""

    invoice_id: str
    finalized_on: dt.date
    total_cents: int


@dataclass
class _Balance:
    spec: WalletSpec
    granted_cents: int = 0
    paid_cents: int = 0
    consumed_cents: int = 0
    pending_cents: int = 0  # paid credits invoiced but waiting for a payment
    is_active: bool = False
    is_terminated: bool = False

    @property
    def cents(self) -> int:
        return self.granted_cents + self.paid_cents


@dataclass(frozen=True)
class Transaction:
    wallet_id: str
    day: dt.date
    sequence: int  # order of the transaction within the customer's history
    transaction_type: str  # inbound | outbound
    source: str  # wallet_creation | threshold_top_up | invoice_payment
    status: str  # settled | pending
    granted_cents: int
    paid_cents: int
    credits: Decimal
    balance_after_cents: int
    invoice_id: str | None = None  # the invoice paid (outbound) or issued for paid credits


@dataclass(frozen=True)
class IssuedInvoice:
    """An invoice in the order it was issued: `kind` subscription, or credit (paid top-up)."""

    kind: str
    invoice_id: str
    day: dt.date
    wallet_id: str | None = None
    paid_credits: Decimal = Decimal(0)
    amount_cents: int = 0


@dataclass
class WalletReplay:
    transactions: list[Transaction] = field(default_factory=list)
    issued: list[IssuedInvoice] = field(default_factory=list)
    # invoice_id -> (granted cents, paid cents) taken from wallets
    credits_applied: dict[str, tuple[int, int]] = field(default_factory=dict)
    balances: dict[str, _Balance] = field(default_factory=dict)
    ongoing_usage_cents: dict[str, int] = field(default_factory=dict)


def credits_to_cents(credits: Decimal, rate_amount: Decimal, currency: str) -> int:
    """1 credit = `rate_amount` currency units; the money is rounded half-up to the currency."""
    return to_cents(credits * rate_amount, currency)


def cents_to_credits(cents: int, rate_amount: Decimal, currency: str) -> Decimal:
    """Minor units back to credits, to 5 decimals, half-up."""
    amount = Decimal(cents).scaleb(-currency_exponent(currency))
    return (amount / rate_amount).quantize(CREDIT_DECIMALS, rounding=ROUND_HALF_UP)


def _order(balance: _Balance) -> tuple[int, int]:
    return balance.spec.priority, balance.spec.creation_order


def allocate_ongoing_usage(balances: list[_Balance], usage_cents: int) -> dict[str, int]:
    """Share the open usage among active wallets in payment order; the last one carries what the
    others cannot cover, so its ongoing balance may go negative."""
    active = sorted((b for b in balances if b.is_active), key=_order)
    shares: dict[str, int] = {}
    remaining = usage_cents
    for index, balance in enumerate(active):
        share = remaining if index == len(active) - 1 else min(max(balance.cents, 0), remaining)
        shares[balance.spec.wallet_id] = share
        remaining -= share
    return shares


def replay_customer(
    wallets: list[WalletSpec],
    due_invoices: list[DueInvoice],
    ongoing_usage_cents: dict[dt.date, int],
    days: list[dt.date],
    credit_invoice_id,
) -> WalletReplay:
    """Replay one customer's wallets over `days` (ascending).

    `ongoing_usage_cents[d]` is the customer's usage not yet finalized at the end of day `d`
    (open periods and drafts, fees plus taxes); a missing day means no usage.
    `credit_invoice_id(wallet_id, day, source)` names the credit invoice of a paid top-up.
    """
    replay = WalletReplay()
    balances = {w.wallet_id: _Balance(w) for w in wallets}
    replay.balances = balances
    sequence = 0
    invoices_by_day: dict[dt.date, list[DueInvoice]] = {}
    for invoice in due_invoices:
        invoices_by_day.setdefault(invoice.finalized_on, []).append(invoice)

    def record(balance: _Balance, day: dt.date, ttype: str, source: str, status: str,
               granted: int, paid: int, invoice_id: str | None) -> None:
        nonlocal sequence
        sequence += 1
        spec = balance.spec
        replay.transactions.append(
            Transaction(
                wallet_id=spec.wallet_id, day=day, sequence=sequence, transaction_type=ttype, source=source,
                status=status, granted_cents=granted, paid_cents=paid,
                credits=cents_to_credits(granted + paid, spec.rate_amount, spec.currency),
                balance_after_cents=balance.cents, invoice_id=invoice_id,
            )
        )

    def top_up(balance: _Balance, day: dt.date, source: str, paid_credits: Decimal, granted_credits: Decimal) -> None:
        spec = balance.spec
        granted = credits_to_cents(granted_credits, spec.rate_amount, spec.currency)
        paid = credits_to_cents(paid_credits, spec.rate_amount, spec.currency)
        if granted > 0:
            balance.granted_cents += granted
            record(balance, day, "inbound", source, "settled", granted, 0, None)
        if paid > 0:
            invoice_id = credit_invoice_id(spec.wallet_id, day, source)
            replay.issued.append(IssuedInvoice("credit", invoice_id, day, spec.wallet_id, paid_credits, paid))
            pending = spec.invoice_requires_successful_payment
            if pending:
                balance.pending_cents += paid
            else:
                balance.paid_cents += paid
            record(balance, day, "inbound", source, "pending" if pending else "settled", 0, paid, invoice_id)

    for day in days:
        for balance in sorted(balances.values(), key=_order):
            spec = balance.spec
            if spec.effective_on <= day and not balance.is_active and not balance.is_terminated:
                balance.is_active = True
                top_up(balance, day, "wallet_creation", spec.paid_credits, spec.granted_credits)
            if balance.is_active and spec.expires_on is not None and spec.expires_on <= day:
                balance.is_active, balance.is_terminated = False, True

        for invoice in invoices_by_day.get(day, []):
            replay.issued.append(IssuedInvoice("subscription", invoice.invoice_id, day))
            remaining = invoice.total_cents
            taken_granted = taken_paid = 0
            for balance in sorted((b for b in balances.values() if b.is_active), key=_order):
                if remaining <= 0:
                    break
                granted = min(balance.granted_cents, remaining)
                paid = min(balance.paid_cents, remaining - granted)
                if granted + paid == 0:
                    continue
                balance.granted_cents -= granted
                balance.paid_cents -= paid
                balance.consumed_cents += granted + paid
                remaining -= granted + paid
                taken_granted += granted
                taken_paid += paid
                record(balance, day, "outbound", "invoice_payment", "settled", granted, paid, invoice.invoice_id)
            replay.credits_applied[invoice.invoice_id] = (taken_granted, taken_paid)

        usage = ongoing_usage_cents.get(day, 0)
        shares = allocate_ongoing_usage(list(balances.values()), usage)
        for balance in sorted((b for b in balances.values() if b.is_active), key=_order):
            spec = balance.spec
            ongoing_credits = cents_to_credits(balance.cents - shares.get(spec.wallet_id, 0), spec.rate_amount, spec.currency)
            # A top-up still waiting for its payment counts, as in Lago's ThresholdTopUpService:
            # otherwise the rule would fire again every day until the payment arrives.
            pending_credits = cents_to_credits(balance.pending_cents, spec.rate_amount, spec.currency)
            for rule in spec.rules:
                if rule.trigger != "threshold" or ongoing_credits + pending_credits > rule.threshold_credits:
                    continue
                if rule.method == "target":
                    gap = max(rule.target_ongoing_balance - ongoing_credits, Decimal(0))
                    paid, granted = (Decimal(0), gap) if rule.grants_target_top_up else (gap, Decimal(0))
                else:
                    paid, granted = rule.paid_credits, rule.granted_credits
                top_up(balance, day, "threshold_top_up", paid, granted)
                break  # one top-up per wallet and day
        replay.ongoing_usage_cents = allocate_ongoing_usage(list(balances.values()), usage)
    return replay
