"""Plan changes: a later subscription body with the same `external_id` and a later
`subscription_at` replaces the earlier one, as Lago's upgrades and downgrades do.

An upgrade (a new plan at least as expensive, compared per year) ends the old subscription at once
and starts the new one then; a downgrade takes effect at the end of the old subscription's current
period (local midnight in the customer's timezone), when the new one starts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from dagster_project.billing.periods import local_date, local_midnight_utc, period_bounds

PER_YEAR = {"weekly": 52, "monthly": 12, "quarterly": 4, "semiannual": 2, "yearly": 1}


@dataclass(frozen=True)
class PlanTerm:
    """One subscription body, with what deciding a plan change needs of its plan and customer.
    Instants are naive UTC."""

    external_id: str
    subscription_at: dt.datetime | None
    terminated_at: dt.datetime | None
    amount_cents: int  # the plan's price per interval
    interval: str
    billing_time: str  # calendar or anniversary
    timezone: str

    @property
    def yearly_cents(self) -> int:
        return self.amount_cents * PER_YEAR[self.interval]


def resolve_plan_changes(terms: list[PlanTerm]) -> list[PlanTerm]:
    """The terms with plan changes applied, in the order given: each body followed by a later one
    of the same `external_id` ends when the next starts; a downgrade's start moves to the end of
    the period the change falls in. A body without `subscription_at` is the first of its chain (it
    starts no change); an end already earlier than the change is kept."""
    resolved = list(terms)
    chains: dict[str, list[int]] = {}
    for index, term in enumerate(terms):
        chains.setdefault(term.external_id, []).append(index)
    for chain in chains.values():
        chain.sort(key=lambda i: terms[i].subscription_at or dt.datetime.min)
        for old_index, new_index in zip(chain, chain[1:]):
            old, new = resolved[old_index], resolved[new_index]
            change_at = new.subscription_at
            if change_at is None:
                continue
            if new.yearly_cents < old.yearly_cents:  # downgrade: at the end of the current period
                local = local_date(change_at, old.timezone)
                anchor = (local_date(old.subscription_at, old.timezone)
                          if old.billing_time == "anniversary" and old.subscription_at else None)
                _, period_end = period_bounds(local, old.interval, anchor)
                change_at = local_midnight_utc(period_end, old.timezone)
                resolved[new_index] = new = dataclasses.replace(new, subscription_at=change_at)
            if old.terminated_at is None or old.terminated_at > change_at:
                resolved[old_index] = dataclasses.replace(old, terminated_at=change_at)
    return resolved
