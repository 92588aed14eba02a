"""Prepaid credit wallets, replayed day by day: creation, consumption at finalization, threshold
top-ups. A pure function of the catalog and the priced usage, so a rerun, or a backfill that groups
the days differently, produces the same ledger and the same invoices.

Within a day the order is fixed: wallets created that day receive their credits (a `credit`
invoice for paid credits), expired wallets stop, manual transactions of the day apply (top-ups and
voids), paid credits whose credit invoice is now paid in full are settled, invoices finalized that
day are paid, first from the customer's credit notes (oldest first), then from the wallets (by
priority, then creation order; granted credits before paid ones, never below zero), then the credit
notes of the day before are issued and voided, the ongoing balance is computed, interval rules due
that day top up, and threshold rules top up once.

A wallet limited by `applies_to` (fee types, billable metrics) pays only the fees it applies to, as
Lago's `Credits::AllocatePrepaidCreditsByWalletsService` does: see `fee_caps` and `pay_invoice`.
Its share of the ongoing usage is that of those fees only (`allocate_ongoing_usage`).

Credit notes and invoices of one day: an invoice is issued at the start of its issuing day, a
credit note during its day. So a credit note corrects invoices issued on or before its day and
credits those issued after it; a note voided on a day still credits the invoices issued that day.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal

from dagster_project.billing.credit_notes import CreditNoteRefused, CreditNoteRequest, IssuedCreditNote
from dagster_project.billing.money import from_cents, to_cents
from dagster_project.billing.periods import _add_months

CREDIT_DECIMALS = Decimal("0.00001")

# What a wallet limitation looks at in a fee: its type (charge, subscription, commitment) and, for a
# charge fee, its billable metric's code. `UNDIVIDED` is an amount given without its fees: only a
# wallet without limitations pays it.
FeeKey = tuple[str | None, str | None]
UNDIVIDED: FeeKey = (None, None)


@dataclass(frozen=True)
class Rule:
    trigger: str  # threshold | interval
    method: str  # fixed | target
    threshold_credits: Decimal | None = None
    target_ongoing_balance: Decimal | None = None
    paid_credits: Decimal = Decimal(0)
    granted_credits: Decimal = Decimal(0)
    grants_target_top_up: bool = False
    interval: str | None = None  # weekly | monthly | quarterly | semiannual | yearly (interval trigger)
    started_on: dt.date | None = None  # the anniversary an interval rule counts from (else the wallet's)
    metadata_json: str | None = None  # transaction_metadata of its top-ups

    def is_due(self, day: dt.date, wallet_start: dt.date) -> bool:
        """An interval rule tops up on each anniversary of its start, the start day itself excluded
        (the wallet's own credits arrive that day)."""
        start = self.started_on or wallet_start
        if self.trigger != "interval" or day <= start:
            return False
        if self.interval == "weekly":
            return (day - start).days % 7 == 0
        step = {"monthly": 1, "quarterly": 3, "semiannual": 6, "yearly": 12}[self.interval]
        months = (day.year - start.year) * 12 + day.month - start.month
        return months % step == 0 and _add_months(start, months, start.day) == day


@dataclass(frozen=True)
class ManualTransaction:
    """A `wallet_transaction` body: credits added or voided on `day`."""

    wallet_id: str
    day: dt.date
    order: int
    paid_credits: Decimal = Decimal(0)
    granted_credits: Decimal = Decimal(0)
    voided_credits: Decimal = Decimal(0)
    invoice_requires_successful_payment: bool | None = None  # None: the wallet's setting
    metadata_json: str | None = None  # its `metadata`, on the transactions it makes


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
    fee_types: tuple[str, ...] = ()  # applies_to.fee_types
    metadata_json: str | None = None  # transaction_metadata of the credits given at creation
    billable_metric_codes: tuple[str, ...] = ()  # applies_to.billable_metric_codes

    def pays(self, key: FeeKey) -> bool:
        """Lago's `applicable_fee?`: a wallet without limitations pays every fee; a limited one the
        fees of its fee types, and the charge fees of its billable metrics (either suffices)."""
        if not self.fee_types and not self.billable_metric_codes:
            return True
        fee_type, metric_code = key
        return fee_type in self.fee_types or (fee_type == "charge" and metric_code in self.billable_metric_codes)


@dataclass(frozen=True)
class DueInvoice:
    """A subscription invoice finalized on `finalized_on` for `total_cents` (taxes included)."""

    invoice_id: str
    finalized_on: dt.date
    total_cents: int
    currency: str | None = None  # credit notes pay invoices of their own currency only
    # Each fee's (key, amount less its coupons plus its precise taxes, in cents): what a limited
    # wallet may pay of it. Empty: the total is one undivided amount.
    fee_amounts: tuple[tuple[FeeKey, Decimal], ...] = ()


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
    source: str  # wallet_creation | threshold_top_up | interval_top_up | manual | void | invoice_payment
    status: str  # settled | pending
    granted_cents: int
    paid_cents: int
    credits: Decimal
    balance_after_cents: int
    invoice_id: str | None = None  # the invoice paid (outbound) or issued for paid credits
    settled_on: dt.date | None = None  # when paid credits waiting for a payment became available
    metadata_json: str | None = None  # the metadata of the body or rule that made it (`[{key, value}]`)


@dataclass(frozen=True)
class IssuedInvoice:
    """An invoice in the order it was issued: `kind` subscription, or credit (paid top-up)."""

    kind: str
    invoice_id: str
    day: dt.date
    number: str
    wallet_id: str | None = None
    paid_credits: Decimal = Decimal(0)
    amount_cents: int = 0


@dataclass(frozen=True)
class RuleTopUp:
    """A top-up decided by a recurring rule: once recorded, a fact that later runs replay as it is."""

    wallet_id: str
    day: dt.date
    source: str  # threshold_top_up | interval_top_up
    invoice_key: str
    paid_credits: Decimal
    granted_credits: Decimal


@dataclass(frozen=True)
class CreditNoteApplication:
    """Credit of a credit note taken by an invoice at its finalization."""

    credit_note_id: str
    invoice_id: str
    day: dt.date
    amount_cents: int


@dataclass
class CreditNoteBalance:
    """What is left of a credit note's credit, and what was voided (on `voided_on`)."""

    note: IssuedCreditNote
    balance_cents: int
    voided_cents: int = 0
    voided_on: dt.date | None = None
    last_used_on: dt.date | None = None

    @property
    def status(self) -> str:
        """Lago's `credit_status`: available, consumed (nothing left) or voided."""
        if self.voided_on is not None:
            return "voided"
        return "available" if self.balance_cents > 0 else "consumed"


@dataclass
class WalletReplay:
    rule_top_ups: list[RuleTopUp] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)
    issued: list[IssuedInvoice] = field(default_factory=list)
    # invoice_id -> (granted cents, paid cents) taken from wallets
    credits_applied: dict[str, tuple[int, int]] = field(default_factory=dict)
    credit_notes_applied: dict[str, int] = field(default_factory=dict)  # invoice_id -> cents of credit notes
    balances: dict[str, _Balance] = field(default_factory=dict)
    ongoing_usage_cents: dict[str, int] = field(default_factory=dict)
    credit_notes: dict[str, CreditNoteBalance] = field(default_factory=dict)  # by credit_note_id, in issue order
    credit_note_applications: list[CreditNoteApplication] = field(default_factory=list)
    credit_note_problems: list[str] = field(default_factory=list)


def credits_to_cents(credits: Decimal, rate_amount: Decimal, currency: str) -> int:
    """1 credit = `rate_amount` currency units; the money is rounded half-up to the currency."""
    return to_cents(credits * rate_amount, currency)


def cents_to_credits(cents: int, rate_amount: Decimal, currency: str) -> Decimal:
    """Minor units back to credits, to 5 decimals, half-up."""
    amount = from_cents(cents, currency)
    return (amount / rate_amount).quantize(CREDIT_DECIMALS, rounding=ROUND_HALF_UP)


def balance_sync_days(transactions: list[Transaction]) -> dict[str, dt.date]:
    """Lago's `last_balance_sync_at`, by wallet: the day its balance last changed. Lago stamps it
    when credits come in (`Wallets::Balance::IncreaseService`) or go out (`DecreaseService`:
    credits consumed by an invoice, or voided), not when it refreshes the ongoing usage. Here: the
    latest day a transaction of the wallet settled on, paid credits counting from the day they
    settled (`settled_on`), whatever the ledger's order. A wallet without a settled transaction is absent (Lago: `null`)."""
    days: dict[str, dt.date] = {}
    for t in transactions:
        if t.status == "settled":
            day = t.settled_on or t.day
            if t.wallet_id not in days or day > days[t.wallet_id]:
                days[t.wallet_id] = day
    return days


def _order(balance: _Balance) -> tuple[int, int]:
    return balance.spec.priority, balance.spec.creation_order


def _largest_first(amounts: dict[FeeKey, int]) -> list[tuple[FeeKey, int]]:
    """Fee keys by amount, largest first (Lago's order), ties by key so that reruns agree."""
    return sorted(amounts.items(), key=lambda item: (-item[1], tuple(str(k) for k in item[0])))


def allocate_ongoing_usage(balances: list[_Balance], usage: int | dict[FeeKey, int]) -> dict[str, int]:
    """Share the open usage (cents, or cents per fee key) among active wallets, as Lago's
    `AllocateOngoingUsageByWalletsService`: key by key, largest first, among the wallets that pay
    that key in payment order; each takes up to its balance, the last of them carries what the
    others cannot cover (its ongoing balance may go negative). Usage no wallet pays is nobody's."""
    active = sorted((b for b in balances if b.is_active), key=_order)
    shares = {b.spec.wallet_id: 0 for b in active}
    for key, amount in _largest_first(usage if isinstance(usage, dict) else {UNDIVIDED: usage}):
        paying = [b for b in active if b.spec.pays(key)]
        remaining = amount
        for index, balance in enumerate(paying):
            if remaining <= 0:
                break
            room = max(balance.cents, 0) - shares[balance.spec.wallet_id]
            share = remaining if index == len(paying) - 1 else min(max(room, 0), remaining)
            shares[balance.spec.wallet_id] += share
            remaining -= share
    return shares


def fee_caps(invoice: DueInvoice, credited_cents: int) -> dict[FeeKey, int]:
    """What wallets may pay of each fee key of an invoice, as Lago's
    `calculate_amounts_for_fees_by_type_and_bm`: per key, its fees less their coupons plus their
    precise taxes, less the key's share of the credit notes that paid the invoice (in proportion
    to the amounts, as Lago's `apply_credit_to_fees`), rounded half-up to the cent. The invoice's
    taxes are rounded once, so the keys may miss the amount due by a cent or so: a shortfall of at
    most one cent per key goes to the largest key (Lago's `reconcile_remaining_amounts`); an excess
    is bounded by the amount due in `pay_invoice`."""
    due = invoice.total_cents - credited_cents
    if not invoice.fee_amounts:
        return {UNDIVIDED: due}
    exact: dict[FeeKey, Decimal] = {}
    for key, amount in invoice.fee_amounts:
        exact[key] = exact.get(key, Decimal(0)) + amount
    left = Decimal(due) / invoice.total_cents if invoice.total_cents > 0 else Decimal(0)
    caps = {key: int((amount * left).quantize(Decimal(1), rounding=ROUND_HALF_UP)) for key, amount in exact.items()}
    caps = {key: cents for key, cents in caps.items() if cents > 0}
    shortfall = due - sum(caps.values())
    if caps and 0 < shortfall <= len(caps):
        largest = _largest_first(caps)[0][0]
        caps[largest] += shortfall
    return caps


def pay_invoice(wallets: list[_Balance], caps: dict[FeeKey, int], due_cents: int) -> list[tuple[_Balance, int]]:
    """(wallet, cents) each wallet pays of an invoice, in payment order (priority, creation), as
    Lago's `AllocatePrepaidCreditsByWalletsService`: a wallet pays, key by key (largest first), what
    is left of the keys it applies to, up to its balance and what is left of the amount due."""
    left = dict(caps)
    remaining = due_cents
    paid = []
    for balance in sorted(wallets, key=_order):
        taken = 0
        for key, _ in _largest_first(left):
            cents = min(left[key], balance.cents - taken, remaining)
            if cents <= 0 or not balance.spec.pays(key):
                continue
            left[key] -= cents
            remaining -= cents
            taken += cents
        if taken > 0:
            paid.append((balance, taken))
    return paid


def _rule_of(spec: WalletSpec, invoice_key: str) -> Rule | None:
    """The rule a top-up's key names: `interval_top_up:<index>`, or the wallet's (first) threshold rule."""
    if invoice_key.startswith("interval_top_up:"):
        index = int(invoice_key.rsplit(":", 1)[1])
        return spec.rules[index] if index < len(spec.rules) else None
    return next((r for r in spec.rules if r.trigger == "threshold"), None)


def _rule_credits(rule: Rule, balance: _Balance, ongoing_usage_cents: int) -> tuple[Decimal, Decimal]:
    """(paid, granted) credits a rule adds: fixed amounts, or what brings the ongoing balance up to
    `target_ongoing_balance` (granted instead of paid with `grants_target_top_up`)."""
    if rule.method != "target":
        return rule.paid_credits, rule.granted_credits
    spec = balance.spec
    ongoing = cents_to_credits(balance.cents - ongoing_usage_cents, spec.rate_amount, spec.currency)
    gap = max(rule.target_ongoing_balance - ongoing, Decimal(0))
    return (Decimal(0), gap) if rule.grants_target_top_up else (gap, Decimal(0))


class OpenUsage:
    """A customer's open usage on each day, as `replay_customer` reads it (`get(day, default)`),
    from the days on which it changed (`changes[day]`: cents per fee key): on any day, that of the
    latest change on or before it, summed (or per fee key, `per_fee_key`, for limited wallets);
    before the first change, none. Looked up on the days the replay visits only, not filled in
    for every day."""

    def __init__(self, changes: dict[dt.date, dict[FeeKey, int]], *, per_fee_key: bool):
        self.changes, self.per_fee_key = changes, per_fee_key
        self.days = sorted(changes)

    def get(self, day: dt.date, default=None) -> int | dict[FeeKey, int]:
        at = bisect.bisect_right(self.days, day)
        running = self.changes[self.days[at - 1]] if at else {}
        return dict(running) if self.per_fee_key else sum(running.values())


def _days_with_events(days: list[dt.date], wallets: list[WalletSpec], invoices_by_day: dict, manual_by_day: dict,
                      payments: dict[str, list[tuple[dt.date, int]]], credit_notes, recorded) -> set[dt.date]:
    """The days on which something can happen to wallets without recurring rules: the first and
    last day (a wallet created earlier starts on the first; the ongoing balance is the last's), a
    wallet's start and end, a manual transaction, an invoice issued, a payment collected (paid
    credits settle), and the day after a credit note is created or voided (it is issued or voided
    then), and a top-up recorded by an earlier run (replayed as it is). On any other day the
    replay changes nothing: no rule can fire (for rules, see `_days_rules_look_at`)."""
    one = dt.timedelta(days=1)
    return {
        days[0], days[-1], *invoices_by_day, *manual_by_day,
        *(w.effective_on for w in wallets), *(w.expires_on for w in wallets if w.expires_on is not None),
        *(paid_on for collected in payments.values() for paid_on, _ in collected),
        *(request.created_on + one for request in credit_notes),
        *(request.voided_on + one for request in credit_notes if request.voided_on is not None),
        *(r.day for r in recorded),
    }


def _days_rules_look_at(days: list[dt.date], wallets: list[WalletSpec], ongoing_usage_cents,
                        decided_through: dt.date | None) -> set[dt.date]:
    """The days besides `_days_with_events` on which a recurring rule can top up: an interval
    rule's anniversaries; the days the open usage changes (a threshold looks at the ongoing
    balance, which moves with the balance, on event days, and with the open usage); and the first
    day decided anew after `decided_through` (rules are evaluated from then on). The day after a
    threshold top-up is added as the replay goes (the top-up may leave the balance at or below the
    threshold, which fires again the next day). On any other day the wallets' state is the one the
    previous day's rules left, on which they did not fire."""
    one = dt.timedelta(days=1)
    if isinstance(ongoing_usage_cents, OpenUsage):
        changing = set(ongoing_usage_cents.days)
    else:  # a plain mapping of day -> usage, none on a missing day: it may change on and after each key
        changing = {day + shift for day in ongoing_usage_cents for shift in (dt.timedelta(0), one)}
    due = {day for w in wallets for rule in w.rules for day in days if rule.is_due(day, w.effective_on)}
    return changing | due | ({decided_through + one} if decided_through is not None else set())


def issue_invoices_only(due_invoices: list[DueInvoice], days: list[dt.date], number_for) -> WalletReplay:
    """The replay of a customer without wallets, manual transactions or credit notes, which is not
    replayed at all: nothing happens to it but its invoices being issued. Those finalized on one of
    `days` are issued in day order (the order of `due_invoices` within a day), each numbered by
    `number_for` as it is issued, and take no credit."""
    on_days = set(days)
    replay = WalletReplay()
    for invoice in sorted((i for i in due_invoices if i.finalized_on in on_days), key=lambda i: i.finalized_on):
        replay.issued.append(IssuedInvoice("subscription", invoice.invoice_id, invoice.finalized_on,
                                           number_for(invoice.invoice_id)))
        replay.credit_notes_applied[invoice.invoice_id] = 0
        replay.credits_applied[invoice.invoice_id] = (0, 0)
    return replay


def replay_customer(
    wallets: list[WalletSpec],
    due_invoices: list[DueInvoice],
    ongoing_usage_cents: dict[dt.date, int],
    days: list[dt.date],
    credit_invoice_id,
    *,
    manual: list[ManualTransaction] = (),
    payments: dict[str, list[tuple[dt.date, int]]] | None = None,
    number_for=None,
    recorded: list[RuleTopUp] = (),
    decided_through: dt.date | None = None,
    credit_notes: list[CreditNoteRequest] = (),
    issue_credit_note=None,
    recorded_applications: dict[str, list[tuple[str, int]]] | None = None,
) -> WalletReplay:
    """Replay one customer's wallets over `days` (ascending).

    `ongoing_usage_cents[d]` is the customer's usage not yet finalized at the end of day `d`
    (open periods and drafts, fees plus taxes); a missing day means no usage.
    `credit_invoice_id(wallet_id, day, source)` names the credit invoice of a paid top-up.
    `number_for(invoice_id)` gives an invoice its number when it is issued; `payments` maps invoice
    numbers to the (date, cents) collected, which settle paid credits waiting for a payment.
    Rule top-ups of days up to `decided_through` (decided by earlier runs) are not re-evaluated:
    the `recorded` ones are applied as they are, so a top-up is never repeated nor withdrawn
    because later data changed the history.
    `credit_notes` (this customer's bodies) are issued on the day after their `created_on`, once
    that day's invoices are numbered, by `issue_credit_note(request, earlier_notes_of_its_invoice)`
    (which raises `CreditNoteRefused`); their credit pays invoices finalized later, before the
    wallets. An invoice listed in `recorded_applications` (finalized by an earlier run) takes
    exactly the credit it took then: a finalized invoice never changes. A customer with no wallet,
    manual transaction, credit note or recorded credit is not replayed (`issue_invoices_only`).
    """
    if not wallets and not manual and not credit_notes and not any((recorded_applications or {}).values()):
        return issue_invoices_only(due_invoices, days, number_for or (lambda invoice_id: invoice_id))
    recorded_by_day: dict[tuple[str, dt.date], list[RuleTopUp]] = {}
    for r in recorded:
        recorded_by_day.setdefault((r.wallet_id, r.day), []).append(r)
    number_for = number_for or (lambda invoice_id: invoice_id)
    payments = payments or {}
    manual_by_day: dict[dt.date, list[ManualTransaction]] = {}
    for m in sorted(manual, key=lambda m: m.order):
        manual_by_day.setdefault(m.day, []).append(m)
    waiting: list[tuple[int, str, _Balance]] = []  # (transaction index, invoice number, wallet)
    replay = WalletReplay()
    balances = {w.wallet_id: _Balance(w) for w in wallets}
    replay.balances = balances
    sequence = 0
    invoices_by_day: dict[dt.date, list[DueInvoice]] = {}
    for invoice in due_invoices:
        invoices_by_day.setdefault(invoice.finalized_on, []).append(invoice)
    notes_by_day: dict[dt.date, list[CreditNoteRequest]] = {}
    for request in sorted(credit_notes, key=lambda r: (r.created_on, r.order)):
        notes_by_day.setdefault(request.created_on, []).append(request)
    voids_by_day: dict[dt.date, list[str]] = {}
    for request in credit_notes:
        if request.voided_on is not None:
            voids_by_day.setdefault(request.voided_on, []).append(request.credit_note_id)
    recorded_applications = recorded_applications or {}
    notes = replay.credit_notes
    if days:
        happening = _days_with_events(days, wallets, invoices_by_day, manual_by_day, payments, credit_notes, recorded)
        if any(w.rules for w in wallets):
            happening |= _days_rules_look_at(days, wallets, ongoing_usage_cents, decided_through)
        visit = happening  # (grows: the day after each threshold top-up)
    else:
        visit = None

    def take_credit_notes(invoice: DueInvoice, day: dt.date) -> int:
        """Credit notes pay the invoice first (oldest first), or exactly as recorded when finalized before."""
        remaining, taken = invoice.total_cents, 0
        if invoice.invoice_id in recorded_applications:
            plan = recorded_applications[invoice.invoice_id]
        else:
            plan = [(note_id, None) for note_id, note in notes.items() if note.balance_cents > 0 and note.voided_on is None
                    and (invoice.currency is None or note.note.invoice.currency == invoice.currency)]
        for note_id, recorded_cents in plan:
            note = notes.get(note_id)
            if note is None or (recorded_cents is not None and recorded_cents > note.balance_cents):
                replay.credit_note_problems.append(
                    f"invoice {invoice.invoice_id} was finalized with {recorded_cents} cents of credit note {note_id}, "
                    f"which the catalog no longer gives (a credit note that credited a finalized invoice cannot be "
                    f"removed, changed or voided before that day)")
                continue
            cents = recorded_cents if recorded_cents is not None else min(note.balance_cents, remaining)
            if cents <= 0:
                continue
            note.balance_cents -= cents
            note.last_used_on = day
            remaining -= cents
            taken += cents
            replay.credit_note_applications.append(CreditNoteApplication(note_id, invoice.invoice_id, day, cents))
        return taken

    def credit_notes_of(day: dt.date) -> None:
        """Issue the credit notes created on `day` and void those voided on it."""
        for request in notes_by_day.get(day, []):
            earlier = [n.note for n in notes.values() if n.note.invoice.invoice_id == request.invoice_ref
                       or n.note.invoice.number == request.invoice_ref]
            try:
                issued = issue_credit_note(request, earlier)
            except CreditNoteRefused as refused:
                replay.credit_note_problems += refused.problems
                continue
            notes[request.credit_note_id] = CreditNoteBalance(issued, issued.credit_amount_cents)
        for note_id in voids_by_day.get(day, []):
            note = notes.get(note_id)
            if note is not None and note.voided_on is None:
                if note.balance_cents <= 0:  # as Lago's void: no voidable amount
                    replay.credit_note_problems.append(
                        f"{note.note.request.where}, field voided_at: credit note {note.note.number} has no credit "
                        f"left to void on {day.isoformat()}")
                    continue
                note.voided_cents, note.balance_cents, note.voided_on = note.balance_cents, 0, day

    def record(balance: _Balance, day: dt.date, ttype: str, source: str, status: str,
               granted: int, paid: int, invoice_id: str | None, metadata_json: str | None = None) -> None:
        nonlocal sequence
        sequence += 1
        spec = balance.spec
        replay.transactions.append(
            Transaction(
                wallet_id=spec.wallet_id, day=day, sequence=sequence, transaction_type=ttype, source=source,
                status=status, granted_cents=granted, paid_cents=paid,
                credits=cents_to_credits(granted + paid, spec.rate_amount, spec.currency),
                balance_after_cents=balance.cents, invoice_id=invoice_id, metadata_json=metadata_json,
            )
        )

    def top_up(balance: _Balance, day: dt.date, source: str, paid_credits: Decimal, granted_credits: Decimal,
               requires_payment: bool | None = None, invoice_key: str | None = None,
               metadata_json: str | None = None) -> None:
        spec = balance.spec
        granted = credits_to_cents(granted_credits, spec.rate_amount, spec.currency)
        paid = credits_to_cents(paid_credits, spec.rate_amount, spec.currency)
        if granted > 0:
            balance.granted_cents += granted
            record(balance, day, "inbound", source, "settled", granted, 0, None, metadata_json)
        if paid > 0:
            invoice_id = credit_invoice_id(spec.wallet_id, day, invoice_key or source)
            number = number_for(invoice_id)
            replay.issued.append(IssuedInvoice("credit", invoice_id, day, number, spec.wallet_id, paid_credits, paid))
            pending = spec.invoice_requires_successful_payment if requires_payment is None else requires_payment
            if pending:
                balance.pending_cents += paid
                waiting.append((len(replay.transactions), number, balance))
            else:
                balance.paid_cents += paid
            record(balance, day, "inbound", source, "pending" if pending else "settled", 0, paid, invoice_id, metadata_json)

    def void(balance: _Balance, day: dt.date, credits: Decimal, metadata_json: str | None = None) -> None:
        """Voided credits leave the wallet, granted ones first, never below zero."""
        spec = balance.spec
        cents = min(credits_to_cents(credits, spec.rate_amount, spec.currency), balance.cents)
        granted = min(cents, balance.granted_cents)
        paid = cents - granted
        if cents > 0:
            balance.granted_cents -= granted
            balance.paid_cents -= paid
            record(balance, day, "outbound", "void", "settled", granted, paid, None, metadata_json)

    def settle_paid(day: dt.date) -> None:
        """Paid credits become available on the day their credit invoice is paid in full."""
        for item in list(waiting):
            index, number, balance = item
            pending = replay.transactions[index]
            collected = sum(cents for paid_on, cents in payments.get(number, []) if paid_on <= day)
            if collected >= pending.paid_cents:
                balance.pending_cents -= pending.paid_cents
                balance.paid_cents += pending.paid_cents
                replay.transactions[index] = replace(pending, status="settled", settled_on=day)
                waiting.remove(item)

    last_usage = None
    for day in days:
        if visit is not None and day not in visit:
            continue
        for balance in sorted(balances.values(), key=_order):
            spec = balance.spec
            if spec.effective_on <= day and not balance.is_active and not balance.is_terminated:
                balance.is_active = True
                top_up(balance, day, "wallet_creation", spec.paid_credits, spec.granted_credits,
                       metadata_json=spec.metadata_json)
            if balance.is_active and spec.expires_on is not None and spec.expires_on <= day:
                balance.is_active, balance.is_terminated = False, True

        for m in manual_by_day.get(day, []):
            balance = balances[m.wallet_id]
            if not balance.is_active:
                continue  # a terminated wallet takes no credits (the catalog check names the others)
            top_up(balance, day, "manual", m.paid_credits, m.granted_credits,
                   m.invoice_requires_successful_payment, f"manual:{m.order}", m.metadata_json)
            if m.voided_credits:
                void(balance, day, m.voided_credits, m.metadata_json)
        settle_paid(day)

        for invoice in invoices_by_day.get(day, []):
            replay.issued.append(IssuedInvoice("subscription", invoice.invoice_id, day, number_for(invoice.invoice_id)))
            credited = take_credit_notes(invoice, day)
            replay.credit_notes_applied[invoice.invoice_id] = credited
            active = [b for b in balances.values() if b.is_active]
            taken_granted = taken_paid = 0
            for balance, cents in pay_invoice(active, fee_caps(invoice, credited), invoice.total_cents - credited):
                granted = min(balance.granted_cents, cents)
                paid = cents - granted
                balance.granted_cents -= granted
                balance.paid_cents -= paid
                balance.consumed_cents += granted + paid
                taken_granted += granted
                taken_paid += paid
                record(balance, day, "outbound", "invoice_payment", "settled", granted, paid, invoice.invoice_id)
            replay.credits_applied[invoice.invoice_id] = (taken_granted, taken_paid)
        credit_notes_of(day - dt.timedelta(days=1))

        usage = ongoing_usage_cents.get(day, 0)
        shares = allocate_ongoing_usage(list(balances.values()), usage)
        for balance in sorted((b for b in balances.values() if b.is_active), key=_order):
            spec = balance.spec

            def rule_top_up(source: str, key: str, paid: Decimal, granted: Decimal, balance=balance) -> None:
                replay.rule_top_ups.append(RuleTopUp(balance.spec.wallet_id, day, source, key, paid, granted))
                rule = _rule_of(balance.spec, key)
                top_up(balance, day, source, paid, granted, invoice_key=key,
                       metadata_json=rule.metadata_json if rule else None)

            if decided_through is not None and day <= decided_through:
                for r in recorded_by_day.get((spec.wallet_id, day), []):
                    rule_top_up(r.source, r.invoice_key, r.paid_credits, r.granted_credits)
                continue
            for index, rule in enumerate(spec.rules):
                if rule.is_due(day, spec.effective_on):
                    paid, granted = _rule_credits(rule, balance, shares.get(spec.wallet_id, 0))
                    rule_top_up("interval_top_up", f"interval_top_up:{index}", paid, granted)
            ongoing_credits = cents_to_credits(balance.cents - shares.get(spec.wallet_id, 0), spec.rate_amount, spec.currency)
            # A top-up still waiting for its payment counts, as in Lago's ThresholdTopUpService:
            # otherwise the rule would fire again every day until the payment arrives.
            pending_credits = cents_to_credits(balance.pending_cents, spec.rate_amount, spec.currency)
            for rule in spec.rules:
                if rule.trigger != "threshold" or ongoing_credits + pending_credits > rule.threshold_credits:
                    continue
                paid, granted = _rule_credits(rule, balance, shares.get(spec.wallet_id, 0))
                rule_top_up("threshold_top_up", "threshold_top_up", paid, granted)
                if visit is not None:
                    visit.add(day + dt.timedelta(days=1))
                break  # one top-up per wallet and day
        last_usage = usage
    if last_usage is not None:  # each wallet's share of the last visited day's usage, after its top-ups
        replay.ongoing_usage_cents = allocate_ongoing_usage(list(balances.values()), last_usage)
    if days:
        credit_notes_of(days[-1])  # the last day's notes: issued, their credit waits for later invoices
    return replay
