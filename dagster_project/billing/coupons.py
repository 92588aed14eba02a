"""Coupons: what a coupon applied to a customer takes off each of its invoices, before taxes.

Pure functions, as Lago computes them (lago-api `Credits::AppliedCouponsService`,
`Credits::AppliedCouponService`, `AppliedCoupons::AmountService`):

- A customer's coupons apply to its subscription invoices as they are finalized, oldest invoice
  first, each invoice issued on or after the day the coupon was applied.
- On one invoice, coupons limited to billable metrics come first, then those limited to plans, then
  the others; within each group, in the order they were applied (`created_at`, then catalog order).
  They stop when nothing is left of the invoice's fees.
- The base of a coupon: the fees it may reduce, less what earlier coupons took of them (all fees of
  the invoice, or those of its metrics, or of its plans).
- Amount: a percentage coupon takes `base * rate / 100`, rounded half-up to a whole minor unit, at
  most the base. A fixed coupon takes its amount, at most the base; a `once` fixed coupon takes what
  is left of its amount, and the remainder waits for the next invoices.
- A coupon's amount is shared among the fees it reduces in proportion to what is left of each
  (kept exact, never above the fee): the taxes of a fee are computed on the fee less its share.
- `once`: a percentage coupon is used up by one invoice, a fixed one when its amount is.
  `recurring`: used up after `frequency_duration` invoices. `forever`: never.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal


@dataclass(frozen=True)
class AppliedCoupon:
    """A coupon applied to a customer, with the customer's overrides already taken."""

    applied_coupon_id: str
    customer_id: str
    coupon_code: str
    coupon_type: str  # fixed_amount | percentage
    frequency: str  # once | recurring | forever
    applied_on: dt.date
    order: int  # its place in the catalog: the tie-break between coupons applied the same day
    amount_cents: int | None = None
    currency: str | None = None
    percentage_rate: Decimal | None = None
    frequency_duration: int | None = None
    plan_codes: tuple[str, ...] = ()
    billable_metric_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CouponState:
    """What is left of an applied coupon: of its amount (fixed, once) and of its invoices (recurring)."""

    amount_cents_remaining: int | None
    frequency_duration_remaining: int | None
    terminated_on: dt.date | None = None

    @property
    def is_active(self) -> bool:
        return self.terminated_on is None


@dataclass(frozen=True)
class CouponFee:
    """A fee as coupons see it: its amount and what it belongs to."""

    fee_id: str
    amount_cents: int
    plan_code: str | None
    billable_metric_code: str | None


@dataclass(frozen=True)
class CouponCredit:
    """What one coupon took off one invoice, and each reduced fee's exact share of it."""

    applied_coupon_id: str
    invoice_id: str
    amount_cents: int
    fee_shares: dict[str, Decimal] = field(default_factory=dict)


def initial_state(coupon: AppliedCoupon) -> CouponState:
    return CouponState(
        amount_cents_remaining=coupon.amount_cents if coupon.coupon_type == "fixed_amount" else None,
        frequency_duration_remaining=coupon.frequency_duration if coupon.frequency == "recurring" else None,
    )


def application_order(coupons: list[AppliedCoupon]) -> list[AppliedCoupon]:
    """Lago's order on an invoice: limited to metrics, then to plans, then unlimited; each group in
    the order applied (day, then catalog order)."""
    return sorted(coupons, key=lambda c: (not c.billable_metric_codes, not c.plan_codes, c.applied_on, c.order))


def reduced_fees(coupon: AppliedCoupon, fees: list[CouponFee]) -> list[CouponFee]:
    """The fees a coupon may reduce: those of its metrics, or of its plans, or all."""
    if coupon.billable_metric_codes:
        return [f for f in fees if f.billable_metric_code in coupon.billable_metric_codes]
    if coupon.plan_codes:
        return [f for f in fees if f.plan_code in coupon.plan_codes]
    return list(fees)


def half_up(value: Decimal) -> int:
    """To a whole minor unit, ties away from zero (the amounts here are already in minor units)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def coupon_amount(coupon: AppliedCoupon, state: CouponState, base_cents: int) -> int:
    """What the coupon takes off a base (`AppliedCoupons::AmountService`): a percentage of it,
    half-up, or a fixed amount (what is left of it, for `once`), never more than the base."""
    if coupon.coupon_type == "percentage":
        return min(half_up(Decimal(base_cents) * coupon.percentage_rate / 100), base_cents)
    amount = coupon.amount_cents if coupon.frequency != "once" else state.amount_cents_remaining
    return min(amount, base_cents)


def after_credit(coupon: AppliedCoupon, state: CouponState, credit_cents: int, on: dt.date) -> CouponState:
    """The coupon's state after it took `credit_cents` off an invoice issued `on`."""
    remaining_amount = state.amount_cents_remaining
    if coupon.coupon_type == "fixed_amount" and coupon.frequency == "once":
        remaining_amount = state.amount_cents_remaining - credit_cents
    periods = state.frequency_duration_remaining
    if coupon.frequency == "recurring":
        periods = max(periods - 1, 0)
    if coupon.frequency == "once":
        used_up = coupon.coupon_type == "percentage" or credit_cents >= state.amount_cents_remaining
    else:
        used_up = coupon.frequency == "recurring" and periods <= 0
    return CouponState(remaining_amount, periods, on if used_up else None)


def apply_to_invoice(
    invoice_id: str, currency: str, on: dt.date, fees: list[CouponFee], coupons: list[AppliedCoupon],
    states: dict[str, CouponState],
) -> tuple[list[CouponCredit], dict[str, CouponState]]:
    """The credits of the customer's coupons on one invoice issued `on`, and their states after it.

    `coupons`: the customer's applied coupons (any order); those applied after `on`, used up, or
    fixed in another currency take nothing. A coupon none of whose fees are on the invoice takes
    nothing and keeps its state."""
    states = dict(states)
    taken: dict[str, Decimal] = {f.fee_id: Decimal(0) for f in fees}
    fees_cents = sum(f.amount_cents for f in fees)
    if fees_cents == 0:
        return [], states
    credits: list[CouponCredit] = []
    left = fees_cents  # the invoice's sub-total excluding taxes, as coupons reduce it
    for coupon in application_order(coupons):
        if left <= 0:
            break
        state = states[coupon.applied_coupon_id]
        if coupon.applied_on > on or not state.is_active:
            continue
        if coupon.coupon_type == "fixed_amount" and coupon.currency != currency:
            continue
        mine = reduced_fees(coupon, fees)
        if not mine:
            continue
        limited = bool(coupon.billable_metric_codes or coupon.plan_codes)
        # (Lago's base of a limited coupon is what is left of its fees, kept exact; taken here to the cent)
        base = half_up(sum((f.amount_cents - taken[f.fee_id] for f in mine), Decimal(0))) if limited else left
        amount = coupon_amount(coupon, state, base)
        shares = {}
        for f in mine:
            share = Decimal(amount) * (f.amount_cents - taken[f.fee_id]) / base if base else Decimal(0)
            share = min(share, f.amount_cents - taken[f.fee_id])
            shares[f.fee_id] = share
            taken[f.fee_id] += share
        credits.append(CouponCredit(coupon.applied_coupon_id, invoice_id, amount, shares))
        states[coupon.applied_coupon_id] = after_credit(coupon, state, amount, on)
        left -= amount
    return credits, states


def fee_coupon_amounts(credits: list[CouponCredit]) -> dict[str, Decimal]:
    """Each fee's exact share of all the coupons of its invoice."""
    total: dict[str, Decimal] = {}
    for credit in credits:
        for fee_id, share in credit.fee_shares.items():
            total[fee_id] = total.get(fee_id, Decimal(0)) + share
    return total


@dataclass(frozen=True)
class CouponInvoice:
    """A finalized subscription invoice as coupons see it: issued `issued_on`, with its fees."""

    invoice_id: str
    customer_id: str
    currency: str
    issued_on: dt.date
    fees: tuple[CouponFee, ...]


def replay_coupons(
    invoices: list[CouponInvoice], coupons: list[AppliedCoupon],
    recorded: dict[str, list[tuple[str, int]]] | None = None,
) -> tuple[list[CouponCredit], dict[str, CouponState]]:
    """Every coupon credit of the finalized invoices, taken in the order given (oldest first), and
    each applied coupon's state after them.

    `recorded`: the credits (applied coupon id, cents) of invoices finalized by earlier runs: such an
    invoice keeps them as they were (maybe none), whatever the catalog says now, and they count
    against their coupons as they did then (their fee shares are stored with the invoice)."""
    recorded = recorded or {}
    states = {c.applied_coupon_id: initial_state(c) for c in coupons}
    by_id = {c.applied_coupon_id: c for c in coupons}
    mine: dict[str, list[AppliedCoupon]] = {}
    for coupon in coupons:
        mine.setdefault(coupon.customer_id, []).append(coupon)
    credits: list[CouponCredit] = []
    for invoice in invoices:
        if invoice.invoice_id in recorded:
            for applied_coupon_id, cents in recorded[invoice.invoice_id]:
                if applied_coupon_id in by_id:  # (a coupon since removed from the catalog: nothing left to count)
                    states[applied_coupon_id] = after_credit(by_id[applied_coupon_id], states[applied_coupon_id],
                                                             cents, invoice.issued_on)
                credits.append(CouponCredit(applied_coupon_id, invoice.invoice_id, cents))
            continue
        taken, states = apply_to_invoice(invoice.invoice_id, invoice.currency, invoice.issued_on, list(invoice.fees),
                                         mine.get(invoice.customer_id, []), states)
        credits += taken
    return credits, states
