"""Billing periods: calendar or anniversary, any Lago interval, in the customer's timezone.

A period is the half-open range of local dates [start_date, end_date); its instants are local
midnights converted to UTC, so a period's UTC length changes with DST and an event at
2026-11-01T02:00Z belongs to October for a customer in America/New_York.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

_MONTHS = {"monthly": 1, "quarterly": 3, "semiannual": 6, "yearly": 12}
INTERVALS = ("weekly", *_MONTHS)


@dataclass(frozen=True)
class Period:
    start_date: dt.date  # first local day of the period
    end_date: dt.date  # local day after the last: the billing day, at whose midnight it ends
    start_at: dt.datetime  # UTC, naive: local midnight starting start_date
    end_at: dt.datetime  # UTC, naive, exclusive
    charges_from: dt.datetime  # start_at, or the subscription's start if later
    charges_to: dt.datetime  # end_at, or the subscription's termination if earlier (exclusive)

    @property
    def days_in_period(self) -> int:
        return (self.end_date - self.start_date).days


def local_midnight_utc(day: dt.date, timezone: str) -> dt.datetime:
    """The UTC instant (naive) of midnight starting `day` in `timezone`."""
    local = dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(timezone))
    return local.astimezone(dt.timezone.utc).replace(tzinfo=None)


def local_date(instant_utc: dt.datetime, timezone: str) -> dt.date:
    """The local calendar date of a naive-UTC instant in `timezone`."""
    return instant_utc.replace(tzinfo=dt.timezone.utc).astimezone(ZoneInfo(timezone)).date()


def _add_months(day: dt.date, months: int, anchor_day: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(anchor_day, last))


def period_bounds(day: dt.date, interval: str, anchor: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The local dates [start, end) of the period containing `day`.

    `anchor=None` is calendar billing (weeks from Monday, months from the 1st, quarters from
    January, April, July and October, years from January 1st). An anchor date is anniversary
    billing: periods start on the anchor's weekday or day of month, clamped to the month's end.
    """
    if interval == "weekly":
        weekday = 0 if anchor is None else anchor.weekday()
        start = day - dt.timedelta(days=(day.weekday() - weekday) % 7)
        return start, start + dt.timedelta(days=7)
    step = _MONTHS[interval]
    if anchor is None:
        index = day.year * 12 + day.month - 1
        first = index - index % step
        start = dt.date(first // 12, first % 12 + 1, 1)
        return start, _add_months(start, step, 1)
    months_since = (day.year - anchor.year) * 12 + day.month - anchor.month
    k = months_since // step
    start = _add_months(anchor, k * step, anchor.day)
    if start > day:
        k -= 1
        start = _add_months(anchor, k * step, anchor.day)
    end = _add_months(anchor, (k + 1) * step, anchor.day)
    if end <= day:  # clamping can leave the day in the next period
        start, end = end, _add_months(anchor, (k + 2) * step, anchor.day)
    return start, end


def subscription_periods(
    *,
    interval: str,
    timezone: str,
    billing_time: str,
    started_at: dt.datetime,
    terminated_at: dt.datetime | None,
    through: dt.date,
) -> list[Period]:
    """Every period of a subscription from its start through the one containing local day `through`
    (or until its termination, if earlier). Instants are naive UTC."""
    start_day = local_date(started_at, timezone)
    anchor = start_day if billing_time == "anniversary" else None
    last_day = through
    if terminated_at is not None:
        last_day = min(last_day, local_date(terminated_at - dt.timedelta(microseconds=1), timezone))
    periods: list[Period] = []
    day = start_day
    while day <= last_day:
        start, end = period_bounds(day, interval, anchor)
        start_at, end_at = local_midnight_utc(start, timezone), local_midnight_utc(end, timezone)
        periods.append(
            Period(
                start_date=start,
                end_date=end,
                start_at=start_at,
                end_at=end_at,
                charges_from=max(start_at, started_at),
                charges_to=min(end_at, terminated_at) if terminated_at else end_at,
            )
        )
        day = end
    return periods


def billed_days(period: Period, timezone: str) -> int:
    """Days of the period the subscription was active, counted inclusively in local time."""
    first = local_date(period.charges_from, timezone)
    last = local_date(period.charges_to - dt.timedelta(microseconds=1), timezone)
    return (last - first).days + 1
