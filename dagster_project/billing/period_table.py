"""Rows of `calendar.billing_periods`: every period of every subscription up to a horizon."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import polars as pl

from dagster_project.billing.money import stable_id
from dagster_project.billing.periods import billed_days, local_date, subscription_periods


def billing_period_rows(
    subscriptions: list[dict],
    grace_days: dict[str, int],
    first_event_at: dict[str, dt.datetime],
    horizon: dt.date,
) -> list[dict]:
    """Periods of each subscription through the one containing `horizon` (a UTC date).

    A subscription without `subscription_at` is effective from the start of time; its periods
    start with the one holding the first arrival day of its events (`first_event_at`), so a replay
    never depends on today's date.
    The invoice of a period is finalized on its billing day plus the customer's grace days.
    """
    rows = []
    for sub in subscriptions:
        started_at = sub["subscription_at"] or first_event_at.get(sub["external_id"])
        if started_at is None:
            continue  # no start and no event: nothing to bill yet
        tz = sub["timezone"]
        trial_days = Decimal(sub.get("trial_period_days") or 0)
        trial_ends = local_date(started_at + dt.timedelta(seconds=int(trial_days * 86400)), tz) if trial_days else None
        through = local_date(dt.datetime.combine(horizon, dt.time(0)), tz)
        for index, period in enumerate(subscription_periods(
            interval=sub["interval"],
            timezone=tz,
            billing_time=sub["billing_time"],
            started_at=started_at,
            terminated_at=sub["terminated_at"],
            through=through,
        )):
            billing_day = period.end_date
            if period.charges_to < period.end_at:  # terminated: invoiced on the day it ends
                billing_day = local_date(period.charges_to, tz)
            days = billed_days(period, tz)
            if trial_ends is not None:  # the fee is not charged for trial days
                first_paid = max(local_date(period.charges_from, tz), trial_ends)
                last = local_date(period.charges_to - dt.timedelta(microseconds=1), tz)
                fee_days = max((last - first_paid).days + 1, 0)
            else:
                fee_days = days
            rows.append(
                {
                    "billing_period_id": stable_id("billing_period", sub["subscription_id"], period.start_date),
                    "subscription_id": sub["subscription_id"],
                    "external_subscription_id": sub["external_id"],
                    "period_start_date": period.start_date,
                    "period_end_date": period.end_date,
                    "period_start_at": period.start_at,
                    "period_end_at": period.end_at,
                    "charges_from_at": period.charges_from,
                    "charges_to_at": period.charges_to,
                    "days_in_period": period.days_in_period,
                    "billed_days": days,
                    "fee_days": fee_days,
                    "period_index": index,
                    "billing_day": billing_day,
                    "invoice_finalized_on": billing_day + dt.timedelta(days=grace_days.get(sub["customer_id"], 0)),
                }
            )
    return rows


def undated_subscriptions(subscriptions: list[dict]) -> list[str]:
    """External ids of the subscriptions without `subscription_at`: they start with the first
    arrival day of their events (the landing folder's date is set by the operator, an event's
    timestamp by the client)."""
    return sorted({s["external_id"] for s in subscriptions if s["subscription_at"] is None})


def period_horizon(latest_arrival: dt.date | None, through: dt.date | None, today: dt.date) -> dt.date:
    """How far periods reach: three days past the latest arrival date or billing date (today when
    there is neither), so that every event that is not in the future finds its period."""
    candidates = [d for d in (latest_arrival, through) if d is not None] or [today]
    return max(candidates) + dt.timedelta(days=3)


def derivation_digest(subscriptions: pl.DataFrame, grace_days: dict[str, int], first_event_at: dict[str, dt.datetime]) -> str:
    """The SHA-256 of everything `billing_period_rows` reads but the horizon: the subscriptions'
    rows (as CSV with their columns' names, by `subscription_id`: each value but numbers quoted, a
    null an unquoted `\\N`), the customers' grace days and the first arrivals of undated
    subscriptions."""
    rows = subscriptions.sort("subscription_id").write_csv(null_value="\\N", quote_style="non_numeric")
    digest = hashlib.sha256(rows.encode())
    digest.update(repr((sorted(grace_days.items()), sorted(first_event_at.items()))).encode())
    return digest.hexdigest()


def subscriptions_to_derive(subscriptions: list[dict], last_period_end: dict[str, dt.date], horizon: dt.date) -> set[str]:
    """Of `subscriptions`, the ids whose periods through `horizon` may differ from those stored,
    when the stored ones were derived from the same `derivation_digest` at an earlier or the same
    horizon (`last_period_end`: each subscription's stored last `period_end_date`).

    `subscription_periods` adds periods while the next one starts on or before the local day of
    the horizon: a subscription whose last stored period ends after that day gets no new period
    (nor does one terminated before it, which may still be listed: deriving it again gives the same
    rows). A subscription with no stored period is derived."""
    return {
        sub["subscription_id"] for sub in subscriptions
        if sub["subscription_id"] not in last_period_end
        or last_period_end[sub["subscription_id"]] <= local_date(dt.datetime.combine(horizon, dt.time(0)), sub["timezone"])
    }
