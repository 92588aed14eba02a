"""Progressive billing: which usage thresholds a subscription crosses, on which day, and what each
`progressive_billing` invoice bills. Pure: integers (cents) and dates in, dataclasses out.

Lago's rule (lago-api `LifetimeUsages::UsageThresholds::CheckService`, `Invoices::ProgressiveBillingService`,
`Credits::ProgressiveBillingService`, `Subscriptions::ProgressiveBilledAmount`):

- A subscription's lifetime usage (`LifetimeUsages::CalculateService`, one definition for progressive
  billing, the `lifetime_usage_amount` alerts and the mart: `invoiced_usage_cents`) is the charge
  fees of its `subscription` invoices already issued (`invoiced`: its period-end invoices and its
  pay-in-advance charges' invoices, draft or finalized) plus the current usage of its open period
  (`current`: every charge, pay-in-advance ones included, priced on the period's units so far,
  before taxes). Thresholds are on that lifetime amount: a fixed threshold is crossed once in the
  subscription's life, not once per period.
- At each check, with `billed` the fees of the period's last progressive invoice (0 if none):
  `actual = current - billed` (negative: nothing passes); `invoiced_usage = invoiced + billed`;
  `total = invoiced + current`. While `invoiced_usage` is below the largest fixed threshold, the
  fixed thresholds in `(invoiced_usage, total]` pass, and the recurring one too when
  `total - largest >= recurring`. Past it, the recurring threshold passes when
  `actual + invoiced_usage % recurring >= recurring`: at each multiple of its amount.
- The thresholds passed at one check make ONE invoice (with each of them as an applied usage
  threshold); a jump over two recurring steps in one check is one invoice, and the next check
  finds nothing more to pass until usage reaches the following step.
- The invoice's fees are the whole usage of the period so far of its charges billed in arrears
  (Lago's `Invoices::ProgressiveBillingService` leaves pay-in-advance charges out: their own
  invoices bill them), so `billed` is those fees; the fees the period's previous
  progressive invoice billed are deducted as a progressive-billing credit before taxes (at most
  the fees), so that each invoice bills only what is new. The period-end invoice deducts the last
  progressive invoice's fees the same way.

The batch decision: a check is made once per day, on the usage arrived by the end of that day
(arrival date, the batch's granularity); the invoice is dated that day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class UsageThreshold:
    """One of a plan's (or a subscription's override's) `usage_thresholds`."""

    amount_cents: int
    recurring: bool = False
    threshold_display_name: str | None = None


@dataclass(frozen=True)
class UsageDay:
    """The state of a subscription at the end of one day of an open period.

    `invoiced_cents`: the charge fees of the subscription's invoices of earlier periods;
    `current_cents`: the period `period_id`'s current usage for the usage arrived by `day` (every
    charge); `billable_cents`: the part of it a progressive invoice bills (the charges billed in
    arrears; None: all of it)."""

    day: dt.date
    period_id: str
    invoiced_cents: int
    current_cents: int
    billable_cents: int | None = None

    @property
    def fees_cents(self) -> int:
        return self.current_cents if self.billable_cents is None else self.billable_cents


@dataclass(frozen=True)
class ProgressiveInvoice:
    """One progressive_billing invoice: issued on `day` for the period `period_id`.

    `fees_cents`: the period's usage so far (its arrears charges' fees); `credit_cents`: the fees of the
    period's previous progressive invoice, deducted before taxes; `thresholds`: the thresholds
    passed (fixed ones by amount, then the recurring one); `lifetime_usage_cents`: invoiced +
    current, as Lago records it on each applied usage threshold."""

    day: dt.date
    period_id: str
    thresholds: tuple[UsageThreshold, ...]
    fees_cents: int
    credit_cents: int
    lifetime_usage_cents: int

    @property
    def billed_cents(self) -> int:
        """What this invoice bills before taxes: its fees less its progressive-billing credit."""
        return self.fees_cents - self.credit_cents


def check_thresholds(thresholds: Sequence[UsageThreshold], *, invoiced_cents: int, current_cents: int,
                     billed_cents: int) -> list[UsageThreshold]:
    """The thresholds passed at one check (Lago's `UsageThresholds::CheckService`), fixed ones by
    amount, then the recurring one. `billed_cents`: the fees of the period's last progressive invoice."""
    fixed = sorted((t for t in thresholds if not t.recurring), key=lambda t: t.amount_cents)
    recurring = next((t for t in thresholds if t.recurring), None)
    actual = current_cents - billed_cents
    if not thresholds or actual < 0:
        return []
    invoiced_usage = invoiced_cents + billed_cents
    largest = fixed[-1].amount_cents if fixed else 0
    total = invoiced_usage + actual
    passed: list[UsageThreshold] = []
    if invoiced_usage < largest:
        passed += [t for t in fixed if invoiced_usage < t.amount_cents <= total]
        if recurring is not None and total - largest >= recurring.amount_cents:
            passed.append(recurring)
    elif recurring is not None and actual + invoiced_usage % recurring.amount_cents >= recurring.amount_cents:
        passed.append(recurring)
    return passed


def progressive_invoices(thresholds: Sequence[UsageThreshold], days: Iterable[UsageDay]) -> list[ProgressiveInvoice]:
    """Check the thresholds at the end of each day, in date order: one invoice per day that passes any.

    The period's pay-in-advance usage (`current_cents - fees_cents`: billed on its own invoices)
    counts as billed in the check, like the previous progressive invoice's fees. lago-api counts it
    in the current usage only (`billed` is the progressive invoice's fees), so that once it has
    helped pass a fixed threshold the same threshold passes again at every later check until the
    arrears usage alone is past it, each time an invoice of what is new (often nothing): Meterhouse
    issues no such repeat (a deliberate difference, docs/billing-semantics.md).

    Each invoice bills the period's usage so far, less the fees of the period's previous
    progressive invoice (its credit, at most its fees)."""
    invoices: list[ProgressiveInvoice] = []
    billed: dict[str, int] = {}  # period -> fees of its last progressive invoice
    for d in sorted(days, key=lambda d: d.day):
        previous = billed.get(d.period_id, 0)
        passed = check_thresholds(thresholds, invoiced_cents=d.invoiced_cents, current_cents=d.current_cents,
                                  billed_cents=previous + d.current_cents - d.fees_cents)
        if not passed:
            continue
        invoices.append(ProgressiveInvoice(d.day, d.period_id, tuple(passed), d.fees_cents,
                                           min(previous, d.fees_cents), d.invoiced_cents + d.current_cents))
        billed[d.period_id] = d.fees_cents
    return invoices


INVOICED_USAGE_STATUSES = ("draft", "finalized")


def invoiced_usage_cents(fees: Iterable[tuple[str, str, str, int]]) -> int:
    """Lago's lifetime `invoiced_usage_amount_cents` (`LifetimeUsages::CalculateService`): the charge
    fees (`amount_cents`, before taxes) of the subscription's invoices of type `subscription`, draft
    or finalized. Those are its period-end invoices and its pay-in-advance charges' invoices (Lago
    creates those as `subscription` invoices too); `progressive_billing` invoices do not count (the
    usage they bill is still in the period's current usage, then on its period-end invoice), nor do
    subscription or commitment fees, nor voided invoices. `fees`: (invoice type, invoice status,
    fee type, amount_cents), one per fee."""
    return sum(cents for invoice_type, status, fee_type, cents in fees
               if invoice_type == "subscription" and status in INVOICED_USAGE_STATUSES and fee_type == "charge")


def ongoing_billed_changes(billed: Iterable[tuple[dt.date, dt.date, object, int]]) -> list[tuple[dt.date, object, int]]:
    """What progressive invoices change in a wallet's ongoing usage (Lago's `RefreshWalletsService`
    takes the fees of the open period's progressive invoices, `sub_total_excluding_taxes_amount_cents
    + taxes_amount_cents`, off the current usage). `billed`: (the invoice's day, its period's
    invoice finalization day, fee key, what the fee billed: its amount less its progressive credit,
    plus its taxes). A wallet pays an invoice the day after its day: from then on the usage it
    billed is no longer ongoing (-cents). The day after the period's own invoice is finalized, the
    whole period's usage leaves the ongoing usage, so the deduction ends (+cents): nothing is taken
    out twice. Returns (day, fee key, cents) changes."""
    one = dt.timedelta(days=1)
    return [change for day, finalized_on, key, cents in billed
            for change in ((day + one, key, -cents), (finalized_on + one, key, cents))]


def credit_shares(fees: dict, previous_fees: dict) -> dict:
    """The progressive-billing credit an invoice takes from the period's previous progressive
    invoice, per fee (Lago's `Credits::ProgressiveBillingService#apply_credit_to_fees`): each of
    its fees takes the amount of the previous invoice's fee of the same charge and filter, at most
    its own amount. `fees` and `previous_fees`: fee key (charge, filter) -> cents; the credit is the
    sum of the shares, and taxes apply to each fee less its share. (Lago caps the whole credit at
    the invoice's charge fees and credits any excess by a credit note on the progressive invoice;
    with usage that only grows no fee is ever below its earlier amount, and Meterhouse issues no
    such credit note: see docs/architecture.md, "Progressive billing".)"""
    return {key: min(cents, previous_fees[key]) for key, cents in fees.items()
            if previous_fees.get(key, 0) > 0 and cents > 0}


def last_and_next_threshold(thresholds: Sequence[UsageThreshold], total_cents: int) -> tuple[int | None, int | None]:
    """The last threshold amount a lifetime usage of `total_cents` has reached and the next one, as
    Lago's lifetime usage shows them (`UsageThresholdsCompletionService`): the fixed ones by amount;
    once past them all, the recurring one's steps from the largest fixed one (largest + k * amount).
    None where there is none."""
    fixed = sorted(t.amount_cents for t in thresholds if not t.recurring)
    recurring = next((t for t in thresholds if t.recurring), None)
    passed = [a for a in fixed if a <= total_cents]
    last = passed[-1] if passed else None
    if len(passed) < len(fixed):
        return last, fixed[len(passed)]
    if recurring is None:
        return last, None
    base = fixed[-1] if fixed else 0
    steps = (total_cents - base) // recurring.amount_cents
    return (base + steps * recurring.amount_cents if steps else last), base + (steps + 1) * recurring.amount_cents
