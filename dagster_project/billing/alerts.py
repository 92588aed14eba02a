"""Usage alerts (Lago's `UsageMonitoring` alerts on a subscription): which thresholds a check crosses.

An alert watches one value of a subscription and remembers the value of its previous check
(Lago's `previous_value`, 0 before the first check). A check compares the new value with it:

- `current_usage_amount`: the current usage's `amount_cents` (the open period, before taxes, as
  Lago's alerting asks for usage with `apply_taxes: false`);
- `billable_metric_current_usage_amount` / `billable_metric_current_usage_units`: the largest
  `amount_cents` / `units` of the current usage's fees on the alert's metric (Lago takes `.max` over
  the fees of the charges on that metric: here each charge filter's bucket and the default bucket
  is one fee, as in Lago's current usage); no value (no check) when the plan has no charge on it;
- `lifetime_usage_amount`: Lago's lifetime usage `total_amount_cents` (the same `LifetimeUsage`
  record progressive billing checks its thresholds on): `billing.lifetime_usage`'s total, computed
  once by progressive billing (`progressive.invoiced_usage_cents` plus the current usage).

Thresholds are increasing (Lago's subscription alerts are): a check fires when the value went up
past one or more of them; the crossed ones are listed in one `alert.triggered` message. A value that
goes down (a new period's current usage) fires nothing but becomes the previous value, so the same
threshold fires again when the next period's usage crosses it: once per crossing. A recurring
threshold fires again every `value` past the last one-time threshold (or past 0). This is lago-api's
`Alert#find_thresholds_crossed_increasing` and `#formatted_crossed_thresholds`, in exact decimals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

ALERT_TYPES = ("current_usage_amount", "billable_metric_current_usage_amount",
               "billable_metric_current_usage_units", "lifetime_usage_amount")
METRIC_ALERT_TYPES = ("billable_metric_current_usage_amount", "billable_metric_current_usage_units")


@dataclass(frozen=True)
class Threshold:
    value: Decimal
    code: str | None = None
    recurring: bool = False


def thresholds_crossed(previous: Decimal, current: Decimal, thresholds: list[Threshold]) -> list[Decimal]:
    """The threshold values crossed going up from `previous` to `current`, sorted: each one-time
    value in (previous, current], and each step of the recurring threshold from the last one-time
    value (or 0) that lies in (previous, current] (never the starting point itself)."""
    if current <= previous:
        return []
    one_time = sorted({t.value for t in thresholds if not t.recurring})
    crossed: list[Decimal] = []
    if one_time:
        if current < one_time[0]:
            return []
        if previous < one_time[-1]:
            crossed += [v for v in one_time if previous < v <= current]
    step = next((t.value for t in thresholds if t.recurring), None)
    if step is not None:
        crossed += _recurring_crossed(previous, current, step, one_time[-1] if one_time else Decimal(0))
    return sorted(set(crossed))


def _recurring_crossed(previous: Decimal, current: Decimal, step: Decimal, initial: Decimal) -> list[Decimal]:
    """lago-api's `find_recurring_thresholds_crossed_increasing`: the multiples of `step` past
    `initial` from the first one above `previous` (at least one step past `initial`) to the last
    one at or below `current`."""
    first = initial + max(math.ceil((previous - initial) / step), 1) * step
    last = initial + math.floor((current - initial) / step) * step
    values = []
    while first <= last:
        values.append(first)
        first += step
    return values


def formatted_crossed(crossed: list[Decimal], thresholds: list[Threshold]) -> list[dict]:
    """Lago's `crossed_thresholds`: the one-time thresholds crossed (in the order written), then
    each recurring value crossed with the recurring threshold's code. Values as Lago's JSON writes
    a BigDecimal: text."""
    one_time = [t for t in thresholds if not t.recurring]
    one_time_values = {t.value for t in one_time}
    recurring = next((t for t in thresholds if t.recurring), None)
    regular = [{"code": t.code, "value": decimal_text(t.value), "recurring": False}
               for t in one_time if t.value in crossed]
    repeated = [{"code": recurring.code if recurring else None, "value": decimal_text(v), "recurring": True}
                for v in crossed if v not in one_time_values]
    return regular + repeated


def decimal_text(value: Decimal) -> str:
    """A decimal as Lago's JSON writes a BigDecimal threshold or value: `'1000.0'`, `'0.5'`."""
    text = format(value.normalize(), "f")
    return text if "." in text else f"{text}.0"


def usage_value(alert_type: str, customer_usage: dict, metric_code: str | None = None,
                lifetime_usage_cents: int = 0) -> Decimal | None:
    """The value an alert of `alert_type` checks, from a Lago `customer_usage` object (the open
    period of the subscription) and the subscription's lifetime usage (`billing.lifetime_usage`).
    None: nothing to check (a metric alert whose metric the plan does not charge, as lago-api
    returns early)."""
    if alert_type == "current_usage_amount":
        return Decimal(customer_usage["amount_cents"])
    if alert_type == "lifetime_usage_amount":
        return Decimal(lifetime_usage_cents)
    fees = [f for charge in customer_usage["charges_usage"] if charge["billable_metric"]["code"] == metric_code
            for f in charge["filters"]]
    if not fees:
        return None
    key = "units" if alert_type == "billable_metric_current_usage_units" else "amount_cents"
    return max(Decimal(str(f[key])) for f in fees)
