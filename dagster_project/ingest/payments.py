"""Payments files: what was actually collected, whatever the processor.

A payments folder holds `*.csv` files with a header and the columns `invoice_number`, `amount`
(in currency units, e.g. `19.04`), `currency`, `paid_at` (a date or an ISO 8601 time; its UTC
date counts), `provider` (e.g. `stripe_eu`, `stripe_us`, `bank_transfer`) and
`provider_payment_id`. Several processors, or several Stripe accounts, each export their own file.

Every row is kept: a readable one in `raw.payments`, a bad one quarantined with its reason, file
and line. A row repeating an earlier `(provider, provider_payment_id)` is a duplicate, counted
once. Matching to invoices (unknown numbers, currency) happens in the pricing step.
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal, InvalidOperation
from pathlib import Path

from dagster_project.billing.money import currency_exponent

COLUMNS = ("invoice_number", "amount", "currency", "paid_at", "provider", "provider_payment_id")


def _paid_on(text: str) -> dt.date:
    if len(text) == 10:
        return dt.date.fromisoformat(text)
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc)
    return value.date()


def parse_row(row: dict[str, str]) -> tuple[dict | None, str | None]:
    """A CSV row as a payment `(invoice_number, currency, amount_cents, paid_on, provider,
    provider_payment_id)`, or its rejection reason."""
    values = {c: (row.get(c) or "").strip() for c in COLUMNS}
    for column in COLUMNS:
        if not values[column]:
            return None, f"missing_{column}"
    try:
        exponent = currency_exponent(values["currency"].upper())
    except KeyError:
        return None, "unknown_currency"
    try:
        amount = Decimal(values["amount"])
    except InvalidOperation:
        return None, "invalid_amount"
    if not amount.is_finite() or amount <= 0 or -amount.as_tuple().exponent > exponent:
        return None, "invalid_amount"  # not positive, or finer than the currency's minor unit
    try:
        paid_on = _paid_on(values["paid_at"])
    except ValueError:
        return None, "invalid_paid_at"
    return {
        "invoice_number": values["invoice_number"], "currency": values["currency"].upper(),
        "amount_cents": int(amount.scaleb(exponent)), "paid_on": paid_on, "provider": values["provider"],
        "provider_payment_id": values["provider_payment_id"],
    }, None


def read_payments(folder: Path) -> tuple[list[dict], list[dict]]:
    """(payments, rejected rows) of every `*.csv` under `folder`, in (file, line) order."""
    payments, rejected, seen = [], [], set()
    for path in sorted(Path(folder).glob("*.csv")) if folder and Path(folder).is_dir() else []:
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                rejected.append({"source_file": path.name, "line_number": 1, "reason": f"missing_column_{missing[0]}",
                                 "raw_line": ",".join(reader.fieldnames or [])})
                continue
            for line_number, row in enumerate(reader, start=2):
                payment, reason = parse_row(row)
                key = payment and (payment["provider"], payment["provider_payment_id"])
                if payment is not None and key in seen:
                    payment, reason = None, "duplicate_payment"
                if payment is None:
                    rejected.append({"source_file": path.name, "line_number": line_number, "reason": reason,
                                     "raw_line": ",".join(row.get(c) or "" for c in COLUMNS)})
                    continue
                seen.add(key)
                payments.append({**payment, "source_file": path.name, "line_number": line_number})
    return payments, rejected
