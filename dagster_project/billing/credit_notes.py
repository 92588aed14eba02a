"""Credit notes, as Lago issues them: a correction of a finalized invoice that never alters it.

A credit note credits some of the invoice's fees (`items`, amounts excluding taxes) plus their
taxes, and splits that total into a credit (applied to the customer's next invoices, after taxes
and before wallets) and a refund (money to pay back, recorded with `refund_status: pending`).
This module checks and computes one credit note (`issue`), as Lago's `CreditNotes::CreateService`,
`ApplyTaxesService`, `ValidateItemService`, `ValidateService` and
`AdjustAmountsWithRoundingService` do (on an invoice with coupons, each item gives back its share of
its fee's coupons: Lago's coupons adjustment); applying credits to later invoices is part of the wallet
replay (`wallets.replay_customer`), which processes days in order.

Amounts are integer cents; taxes are computed exactly (`Decimal`) and rounded half-up once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from dagster_project.billing.money import stable_id
from dagster_project.billing.taxes import Tax, fee_tax_precise, half_up_cents

REASONS = ("duplicated_charge", "product_unsatisfactory", "order_change", "order_cancellation",
           "fraudulent_charge", "other")


@dataclass(frozen=True)
class CreditNoteRequest:
    """A `{"credit_note": ...}` body of the catalog. `invoice_ref` is the invoice's number (or its
    lago_id); `created_on` the day it is issued; `voided_on` the day its remaining credit is voided."""

    credit_note_id: str
    order: int  # position in the catalog: ties between notes of one day
    invoice_ref: str
    created_on: dt.date
    items: tuple[tuple[str, int], ...]  # (fee lago_id, amount_cents excluding taxes)
    credit_amount_cents: int = 0
    refund_amount_cents: int = 0
    reason: str = "other"
    description: str | None = None
    voided_on: dt.date | None = None
    where: str = "credit note"  # the body, for messages


@dataclass(frozen=True)
class FeeFacts:
    """What a credit note needs of one fee of the invoice: its amount, its taxes and its exact share
    of the invoice's coupons (Lago's `precise_coupons_amount_cents`)."""

    fee_id: str
    amount_cents: int
    taxes: tuple[Tax, ...] = ()
    precise_coupons_amount_cents: Decimal = Decimal(0)

    def coupons_share(self, item_cents: int) -> Decimal:
        """The part of the fee's coupons an item of `item_cents` takes back: the coupons in
        proportion to the part of the fee credited (none on a fee of 0)."""
        if not self.amount_cents:
            return Decimal(0)
        return self.precise_coupons_amount_cents * Decimal(item_cents) / Decimal(self.amount_cents)

    @property
    def taxes_rate(self) -> Decimal:
        return sum((t.rate for t in self.taxes), Decimal(0))


@dataclass(frozen=True)
class InvoiceFacts:
    invoice_id: str
    number: str
    invoice_type: str
    issuing_date: dt.date
    currency: str
    fees: tuple[FeeFacts, ...]
    coupons_amount_cents: int = 0

    @property
    def fee_total_amount_cents(self) -> int:
        """Lago's `fee_total_amount_cents`: the fees plus their taxes rounded once on the whole."""
        taxes = sum((fee_tax_precise(f.amount_cents, f.taxes_rate) for f in self.fees), Decimal(0))
        return sum(f.amount_cents for f in self.fees) + half_up_cents(taxes)


@dataclass(frozen=True)
class CreditNoteTax:
    """One tax of a credit note: the items it applies to (`base_amount_cents`) and its amount."""

    tax: Tax
    base_amount_cents: int
    amount_cents: int


@dataclass(frozen=True)
class IssuedCreditNote:
    request: CreditNoteRequest
    invoice: InvoiceFacts
    sequential_id: int
    sub_total_excluding_taxes_amount_cents: int
    precise_taxes_amount_cents: Decimal
    taxes_amount_cents: int
    taxes_rate: Decimal
    credit_amount_cents: int
    refund_amount_cents: int
    applied_taxes: tuple[CreditNoteTax, ...]
    precise_coupons_adjustment_amount_cents: Decimal = Decimal(0)

    @property
    def coupons_adjustment_amount_cents(self) -> int:
        """What the items give back of the invoice's coupons, half-up to cents."""
        return half_up_cents(self.precise_coupons_adjustment_amount_cents)

    @property
    def credit_note_id(self) -> str:
        return self.request.credit_note_id

    @property
    def number(self) -> str:
        """Lago's form: the invoice's number, then `-CN` and the note's sequence on that invoice."""
        return f"{self.invoice.number}-CN{self.sequential_id:03d}"

    @property
    def total_amount_cents(self) -> int:
        return self.credit_amount_cents + self.refund_amount_cents

    def item_id(self, fee_id: str) -> str:
        return stable_id("credit_note_item", self.credit_note_id, fee_id)


class CreditNoteRefused(ValueError):
    """A credit note that cannot be issued; `problems` name the body and the field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def coupons_adjustment(invoice: InvoiceFacts, items: tuple[tuple[str, int], ...]) -> Decimal:
    """Lago's `precise_coupons_adjustment_amount_cents`: what the items give back of the coupons,
    each item its fee's coupons in proportion to the part of the fee it credits, rounded half-up to
    the 12 decimals `billing.credit_notes` keeps (so the note's sub-total, derived from it, can be
    checked against the stored value)."""
    fees = {f.fee_id: f for f in invoice.fees}
    exact = sum((fees[fee_id].coupons_share(amount) for fee_id, amount in items), Decimal(0))
    return exact.quantize(Decimal("1E-12"), rounding=ROUND_HALF_UP)


def credit_note_taxes(invoice: InvoiceFacts, items: tuple[tuple[str, int], ...]) -> tuple[tuple[CreditNoteTax, ...], Decimal, Decimal]:
    """(taxes per tax code, the precise total tax in cents, the credit note's tax rate), as Lago's
    `ApplyTaxesService`: per tax, the items of the fees it applies to, less their share of the
    fee's coupons, are its base (exact; shown half-up); each tax is `base * rate / 100`, rounded
    half-up on its own; the note's tax rate is each rate weighted by its base's share of the items
    less their coupons."""
    fees = {f.fee_id: f for f in invoice.fees}
    bases: dict[str, tuple[Tax, Decimal]] = {}
    for fee_id, amount in items:
        for tax in fees[fee_id].taxes:
            _, base = bases.get(tax.code, (tax, Decimal(0)))
            bases[tax.code] = (tax, base + amount - fees[fee_id].coupons_share(amount))
    total_items = sum(amount for _, amount in items) - coupons_adjustment(invoice, items)
    applied, precise_total, rate = [], Decimal(0), Decimal(0)
    for code in sorted(bases):
        tax, base = bases[code]
        precise = fee_tax_precise(base, tax.rate)
        applied.append(CreditNoteTax(tax, half_up_cents(base), half_up_cents(precise)))
        precise_total += precise
        if total_items:
            rate += base / total_items * tax.rate
    return tuple(applied), precise_total, rate.quantize(Decimal("0.00001"))


def issue(request: CreditNoteRequest, invoice: InvoiceFacts | None, earlier: list[IssuedCreditNote],
          paid_cents: int, on: dt.date, sequential_id: int | None = None) -> IssuedCreditNote:
    """Check and compute one credit note against `invoice` (None: no such invoice finalized by
    `on`), given the notes `earlier` issued on the same invoice and the cents collected on it by
    payments so far; raise `CreditNoteRefused` naming every problem. `sequential_id`: its number
    on the invoice when one was recorded before, else the next one."""
    at = request.where
    if invoice is None:
        raise CreditNoteRefused([f"{at}, field invoice_id: no finalized invoice {request.invoice_ref!r} on "
                                 f"{on.isoformat()} (a credit note corrects a finalized invoice issued on or before its created_at)"])
    if invoice.invoice_type != "subscription":
        raise CreditNoteRefused([f"{at}, field invoice_id: {invoice.number} is a {invoice.invoice_type} invoice: "
                                 f"credit notes on prepaid-credit invoices are not supported yet by Meterhouse"])
    problems = []
    fees = {f.fee_id: f for f in invoice.fees}
    credited_per_fee: dict[str, int] = {}
    for note in earlier:
        for fee_id, amount in note.request.items:
            credited_per_fee[fee_id] = credited_per_fee.get(fee_id, 0) + amount
    seen = set()
    for index, (fee_id, amount) in enumerate(request.items):
        where = f"{at}, field items.{index}"
        if fee_id not in fees:
            problems.append(f"{where}.fee_id: {fee_id!r} is not a fee of invoice {invoice.number}")
            continue
        if fee_id in seen:
            problems.append(f"{where}.fee_id: fee {fee_id!r} is credited twice in this credit note")
        seen.add(fee_id)
        left = fees[fee_id].amount_cents - credited_per_fee.get(fee_id, 0)
        if amount > left:
            problems.append(f"{where}.amount_cents: {amount} is more than the {left} cents left to credit on "
                            f"this fee (fee {fees[fee_id].amount_cents} cents, already credited "
                            f"{credited_per_fee.get(fee_id, 0)})")
    if problems:
        raise CreditNoteRefused(problems)

    applied, precise_taxes, taxes_rate = credit_note_taxes(invoice, request.items)
    # Lago's sub-total: the items less what they give back of the coupons, half-up
    precise_coupons = coupons_adjustment(invoice, request.items)
    precise_sub_total = sum(amount for _, amount in request.items) - precise_coupons
    sub_total = half_up_cents(precise_sub_total)
    # Lago's adjust_credit_note_tax_rounding: the note that credits all that is left of the invoice
    # takes back what rounding added to the earlier notes' taxes, so that the notes' taxes add up
    # to the invoice's (three notes of 3.33, 0.33 and 1.34 at 20%: 0.67 + 0.07 + 0.26, not 0.27).
    credited_after = {fee_id: credited_per_fee.get(fee_id, 0) for fee_id in fees}
    for fee_id, amount in request.items:
        credited_after[fee_id] += amount
    if all(credited_after[f.fee_id] >= f.amount_cents for f in invoice.fees):
        precise_taxes -= sum((Decimal(n.taxes_amount_cents) - n.precise_taxes_amount_cents for n in earlier), Decimal(0))
    taxes = half_up_cents(precise_taxes)
    expected = half_up_cents(precise_sub_total + precise_taxes)
    credit, refund = request.credit_amount_cents, request.refund_amount_cents
    total = credit + refund
    if total <= 0:
        problems.append(f"{at}, field credit_amount_cents: credit_amount_cents + refund_amount_cents must be above 0")
    # Lago accepts one cent either way (the caller's rounding of the taxes), then adjusts below.
    if abs(total - expected) > 1:
        problems.append(f"{at}, field credit_amount_cents: credit_amount_cents + refund_amount_cents = {total} does not "
                        f"match the items: {sub_total} + taxes {taxes} = {expected} cents")
    credited_before = sum(n.credit_amount_cents for n in earlier)
    noted_before = sum(n.total_amount_cents for n in earlier)
    creditable = invoice.fee_total_amount_cents - credited_before
    if credit - creditable > 1:
        problems.append(f"{at}, field credit_amount_cents: {credit} is more than the invoice's creditable amount "
                        f"({creditable} cents: fees with taxes {invoice.fee_total_amount_cents}, credited before {credited_before})")
    remaining = invoice.fee_total_amount_cents - noted_before
    if total - remaining > 1:
        problems.append(f"{at}, field credit_amount_cents: the credit note's total {total} is more than the "
                        f"{remaining} cents of invoice {invoice.number} not yet covered by credit notes")
    if refund > 0:
        refundable = paid_cents - sum(n.refund_amount_cents for n in earlier)
        if paid_cents <= 0:
            problems.append(f"{at}, field refund_amount_cents: invoice {invoice.number} has no payment to refund "
                            f"(nothing collected by {on.isoformat()})")
        elif refund > refundable:
            problems.append(f"{at}, field refund_amount_cents: {refund} is more than the {refundable} cents paid "
                            f"and not yet refunded on invoice {invoice.number}")
    if problems:
        raise CreditNoteRefused(problems)

    # Lago's AdjustAmountsWithRoundingService: total - taxes must be the items' subtotal.
    if total - taxes != sub_total:
        total += 1 if total - taxes < sub_total else -1
        if credit > 0:
            credit = total - refund
        else:
            refund = total
        if refund > 0 and refund > paid_cents - sum(n.refund_amount_cents for n in earlier):
            raise CreditNoteRefused([
                f"{at}, field refund_amount_cents: brought to the items plus their taxes ({total} cents), the refund "
                f"would be {refund}, more than was paid and not yet refunded on invoice {invoice.number}: lower the "
                f"refund and raise the credit"])
    return IssuedCreditNote(
        request=request, invoice=invoice,
        sequential_id=sequential_id or max((n.sequential_id for n in earlier), default=0) + 1,
        sub_total_excluding_taxes_amount_cents=sub_total, precise_taxes_amount_cents=precise_taxes,
        taxes_amount_cents=taxes, taxes_rate=taxes_rate, credit_amount_cents=credit, refund_amount_cents=refund,
        applied_taxes=applied, precise_coupons_adjustment_amount_cents=precise_coupons,
    )


@dataclass(frozen=True)
class CreditNoteBook:
    """What billing needs to issue and apply credit notes: the catalog's bodies, each invoice's fee
    facts, and what earlier runs recorded (numbers on their invoice, and the credit each finalized
    invoice took: a finalized invoice never changes)."""

    requests: tuple[CreditNoteRequest, ...] = ()
    fees: dict[str, tuple[FeeFacts, ...]] | None = None  # invoice_id -> its fees
    recorded_sequences: dict[str, tuple[str, int]] | None = None  # credit_note_id -> (invoice_id, sequential_id)
    recorded_applications: dict[str, list[tuple[str, int]]] | None = None  # finalized invoice_id -> [(note, cents)]


def next_sequence(invoice_id: str, earlier: list[IssuedCreditNote], recorded: dict[str, tuple[str, int]]) -> int:
    """A new note's number on its invoice: after every number issued on it, by this replay or
    recorded by an earlier run (a note filed before an issued one never takes its number)."""
    taken = [seq for note_invoice, seq in recorded.values() if note_invoice == invoice_id]
    return max([*taken, *(n.sequential_id for n in earlier)], default=0) + 1


def customer_of(invoice_ref: str, invoice_customers: dict[str, str], customers_by_sequence: dict[int, str],
                prefix: str) -> str | None:
    """The customer of the invoice a credit note names: by the invoice's lago_id, or by the
    customer sequence inside its number (`PREFIX-001-004`)."""
    if invoice_ref in invoice_customers:
        return invoice_customers[invoice_ref]
    head, _, rest = invoice_ref.partition(f"{prefix}-")
    sequence, _, number = rest.partition("-")
    if head == "" and sequence.isdigit() and number.isdigit():
        return customers_by_sequence.get(int(sequence))
    return None
